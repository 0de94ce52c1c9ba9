/* The SMTP client that carries queued mail to other servers (RFC 5321), with STARTTLS
 * (RFC 3207), AUTH at a smarthost (RFC 4954), SIZE, SMTPUTF8 and DSN parameters. Blocking
 * I/O with timeouts: it runs on the queue's delivery threads. */
#ifndef SARN_SMTP_OUTBOUND_H
#define SARN_SMTP_OUTBOUND_H

#include "config/config.h"
#include "core/buf.h"
#include "smtp/queue.h"
#include "smtp/resolve.h"

#include <openssl/ssl.h>
#include <stdbool.h>

enum outbound_result { OUTBOUND_SENT, OUTBOUND_TEMP, OUTBOUND_PERM };

struct outbound_rcpt {
	struct queue_rcpt *rcpt;    /* address and DSN parameters; the outcome is written here */
	enum outbound_result result;
	bool next_hop_notifies;     /* the next hop took the DSN request (it offered DSN) */
};

struct outbound_pool;

struct outbound {
	const struct config *cfg;
	struct resolver *resolver;
	SSL_CTX *tls;
	struct outbound_pool *pool;
};

/* Delivers msg (file msg_fd, size octets) to the recipients of one domain, through the
 * smarthost or the domain's MX hosts. Every rcpts[i] gets a result, a status and a reply. */
void outbound_deliver(struct outbound *o, const struct queue_msg *msg, int msg_fd, uint64_t size,
		      const char *domain, struct outbound_rcpt *rcpts, size_t n);

/* Sessions kept open between messages to the same server (thread-safe). close_idle ends
 * those unused for at least min_idle_seconds (QUIT); free ends them all. */
struct outbound_pool *outbound_pool_new(void);
void outbound_pool_close_idle(struct outbound_pool *pool, int min_idle_seconds);
void outbound_pool_free(struct outbound_pool **pool);

#endif
