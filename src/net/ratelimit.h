/* Failed-authentication throttle keyed by client address or account name. Thread-safe. */
#ifndef SARN_NET_RATELIMIT_H
#define SARN_NET_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit *ratelimit_new(uint32_t window_seconds);
void ratelimit_free(struct ratelimit **rl);
/* True when key has reached max_failures within the window. */
bool ratelimit_blocked(struct ratelimit *rl, const char *key, uint32_t max_failures);
/* Records a failure; returns the failures within the window, this one included. */
uint32_t ratelimit_fail(struct ratelimit *rl, const char *key);
void ratelimit_clear(struct ratelimit *rl, const char *key);

#endif
