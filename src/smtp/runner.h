/* The queue runner inside `sarn serve`: a scheduler thread finds messages that are due and
 * delivery threads carry them out, with back-off, expiry, per-domain limits and notices. */
#ifndef SARN_SMTP_RUNNER_H
#define SARN_SMTP_RUNNER_H

#include "auth/auth.h"
#include "store/store.h"

struct queue_runner;

/* Starts the threads; settings are read from config_current() at each attempt.
 * NULL on failure (logged). */
struct queue_runner *queue_runner_start(struct store *store, struct auth_db *auth);
/* Deliveries in progress finish first (bounded by the outbound timeouts). */
void queue_runner_stop(struct queue_runner **runner);
/* A message was just queued: deliver it now rather than at the next scan of the queue.
 * Thread-safe; a NULL runner is a no-op. */
void queue_runner_enqueued(struct queue_runner *runner, const char *id);

#endif
