/* Delivery status notifications (RFC 3464, RFC 3461): bounces, delay warnings and success
 * notices, sent from MAILER-DAEMON with the null sender, so they are never bounced. */
#ifndef SARN_SMTP_NOTICE_H
#define SARN_SMTP_NOTICE_H

#include "auth/auth.h"
#include "config/config.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

enum notice_action { NOTICE_FAILED, NOTICE_DELAYED, NOTICE_DELIVERED, NOTICE_RELAYED };

struct notice_rcpt {
	const char *address;
	const char *orcpt;      /* NULL if none */
	enum notice_action action;
	const char *status;     /* enhanced status code, e.g. "5.1.1" */
	const char *diagnostic; /* the remote reply or the reason, NULL if none */
};

struct notice {
	const char *to;         /* the original envelope sender */
	const char *envid;      /* NULL if none */
	bool headers_only;      /* RET=HDRS, or not a failure: return only the header */
	const char *msg_path;   /* the original message */
	int64_t arrival;        /* when the original was accepted */
	int64_t retry_until;    /* for delay notices */
	const struct notice_rcpt *rcpts;
	size_t nrcpts;
};

/* Builds the report and sends it: into the sender's INBOX if the sender is local, else into
 * the outbound queue. 0 ok, -1 (logged). A null sender gets nothing (returns 0). */
int notice_send(struct store *store, struct auth_db *auth, const struct config *cfg,
		const struct notice *n);

/* A "delivered" notice for a local recipient that asked for NOTIFY=SUCCESS. */
void notice_local_delivered(struct store *store, struct auth_db *auth, const struct config *cfg,
			    const char *mail_from, const char *envid, const char *rcpt,
			    const char *orcpt, struct store_blob *blob);

#endif
