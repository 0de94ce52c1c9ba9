/* The services every protocol session uses, created once by `sarn serve`. */
#ifndef SARN_APP_H
#define SARN_APP_H

#include "auth/auth.h"
#include "config/config.h"
#include "core/workq.h"
#include "net/ratelimit.h"
#include "net/usercount.h"
#include "store/store.h"

struct queue_runner;

struct app {
	struct store *store;
	struct auth_db *auth;
	struct workq *jobs;               /* password hashing */
	struct workq *deliveries;         /* fsync-bound local deliveries, off the event loops */
	struct ratelimit *auth_fail_ip;   /* failed logins per client address */
	struct ratelimit *auth_fail_user; /* failed logins per account name */
	struct ratelimit *remote_rcpts;   /* submitted remote recipients per account, per hour */
	struct usercount *user_sessions;  /* logged-in IMAP/POP3 sessions per account */
	struct queue_runner *queue;       /* outbound delivery (smtp/runner.h) */
};

#endif
