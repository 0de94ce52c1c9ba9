/* Logged-in sessions per account across every worker thread, for the per-user connection
 * limit (IMAP, POP3). Thread-safe. */
#ifndef SARN_NET_USERCOUNT_H
#define SARN_NET_USERCOUNT_H

#include <stdbool.h>
#include <stdint.h>

struct usercount;

struct usercount *usercount_new(void);
void usercount_free(struct usercount **uc);
/* Counts a session of account unless it already has max; false then. */
bool usercount_acquire(struct usercount *uc, const char *account, uint32_t max);
void usercount_release(struct usercount *uc, const char *account);

#endif
