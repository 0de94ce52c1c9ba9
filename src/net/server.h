/* Listeners and worker threads. Each worker runs its own event loop and its own listening
 * sockets (SO_REUSEPORT), so the kernel spreads connections across workers. */
#ifndef SARN_NET_SERVER_H
#define SARN_NET_SERVER_H

#include "config/config.h"
#include "net/conn.h"

struct server;

struct server_params {
	/* Listeners and worker count; limits are read from config_current() as they change. */
	const struct config *cfg;
	/* Protocol per listener kind; NULL = that protocol is not built, the listener stays shut. */
	const struct proto *protos[LISTEN_COUNT];
	/* Listener kinds that start TLS at once (implicit TLS: imaps, pop3s, submissions). */
	bool implicit_tls[LISTEN_COUNT];
	void *app;
};

/* Binds every configured listener. 0 ok, -1 with *err_r. */
int server_start(const struct server_params *params, struct server **server_r, char **err_r);
/* Runs the workers until server_stop; returns after every worker has finished. */
void server_run(struct server *server);
/* Stops accepting, closes connections (in-flight commands finish first), ends server_run.
 * Safe from any thread. */
void server_stop(struct server *server);
void server_free(struct server **server);

/* Connection accounting, called by conn.c. */
bool server_conn_admit(struct server *server, const char *ip);
void server_conn_release(struct server *server, const char *ip);

#endif
