#ifndef SARN_NET_CONN_PRIVATE_H
#define SARN_NET_CONN_PRIVATE_H

#include "net/conn.h"
#include "net/server.h"

#include <openssl/ssl.h>

struct worker {
	struct server *server;
	struct ev_loop *loop;
	void *app;
	struct conn *conns; /* doubly linked list of live connections */
	int nconns;
	bool stopping;
};

struct conn {
	struct worker *w;
	const struct proto *proto;
	void *sess;
	uint32_t id;
	int fd;
	SSL *ssl;
	struct ev_io io;
	struct ev_timer idle;
	uint32_t idle_seconds;
	struct buf in, out;
	char peer[64];
	char *user;           /* for the log, once logged in */
	uint64_t started_ms;
	char ip[48];
	bool loopback;
	bool tls_offered;     /* a TLS context exists for STARTTLS */
	bool handshaking;
	bool starttls_pending;
	bool closing;         /* flush output, then free */
	bool dead;            /* freed at the next deferred point */
	bool discarding;      /* inside an overlong line */
	bool in_input;        /* proto->input is on the stack */
	bool producing;       /* proto->drain has more output to give */
	bool yield_pending;   /* conn_yield: input processing resumes at the next loop round */
	bool free_scheduled;  /* deferred_free is queued */
	int paused;
	int refs;
	struct conn *prev, *next;
};

void conn_accept(struct worker *w, int fd, const struct proto *proto, bool implicit_tls);
void conn_shutdown_all(struct worker *w);

#endif
