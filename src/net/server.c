#include "net/server.h"

#include "core/buf.h"
#include "core/log.h"
#include "net/conn-private.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One listening socket per kind, watched by every worker's loop. */
struct listener {
	struct worker *w;
	enum listener_kind kind;
	int fd;
	struct ev_io io;
};

struct ip_count {
	char ip[48];
	uint32_t count;
	struct ip_count *next;
};

struct server {
	struct server_params params;
	int nworkers;
	struct worker *workers;
	int listen_fds[LISTEN_COUNT]; /* -1 when off */
	struct listener *listeners;   /* nworkers * LISTEN_COUNT watchers of listen_fds */
	pthread_t *threads;
	pthread_mutex_t count_lock;
	uint32_t total_conns;
	struct ip_count *ip_counts;
};

/* Splits "host:port" or "[v6]:port". */
static int split_hostport(const char *spec, char **host_r, char **port_r)
{
	const char *colon;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		*host_r = xstrndup(spec + 1, (size_t)(end - spec - 1));
		*port_r = xstrdup(end + 2);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (colon == NULL)
		return -1;
	*host_r = xstrndup(spec, (size_t)(colon - spec));
	*port_r = xstrdup(colon + 1);
	return 0;
}

static int bind_one(const char *spec, char **err_r)
{
	char *host = NULL, *port = NULL;
	if (split_hostport(spec, &host, &port) < 0) {
		*err_r = xasprintf("listener \"%s\": expected host:port", spec);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	free(host);
	free(port);
	if (gai != 0) {
		*err_r = xasprintf("listener \"%s\": %s", spec, gai_strerror(gai));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (res->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 511) < 0) {
		*err_r = xasprintf("listener \"%s\": %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void on_accept(void *arg, int events)
{
	(void)events;
	struct listener *l = arg;
	struct server *s = l->w->server;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("event=accept_failed error=\"%s\"", strerror(errno));
			return;
		}
		conn_accept(l->w, fd, s->params.protos[l->kind], s->params.implicit_tls[l->kind]);
	}
}

int server_start(const struct server_params *params, struct server **server_r, char **err_r)
{
	struct server *s = xcalloc(1, sizeof *s);
	s->params = *params;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->nworkers = params->cfg->workers > 0 ? params->cfg->workers : (cores > 0 ? (int)cores : 1);
	s->workers = xcalloc((size_t)s->nworkers, sizeof *s->workers);
	s->listeners = xcalloc((size_t)s->nworkers * LISTEN_COUNT, sizeof *s->listeners);
	pthread_mutex_init(&s->count_lock, NULL);
	for (int k = 0; k < LISTEN_COUNT; k++)
		s->listen_fds[k] = -1;
	*server_r = s;
	/* One socket per listener (no SO_REUSEPORT, so a second server on the same port fails
	 * to start instead of silently sharing it). */
	for (int k = 0; k < LISTEN_COUNT; k++) {
		const char *spec = params->cfg->listen[k];
		if (spec == NULL || params->protos[k] == NULL)
			continue;
		s->listen_fds[k] = bind_one(spec, err_r);
		if (s->listen_fds[k] < 0)
			return -1;
		log_info("event=listen proto=%s addr=%s", listener_name((enum listener_kind)k), spec);
	}
	for (int w = 0; w < s->nworkers; w++) {
		struct worker *wk = &s->workers[w];
		wk->server = s;
		wk->loop = ev_loop_new();
		wk->app = params->app;
		for (int k = 0; k < LISTEN_COUNT; k++) {
			struct listener *l = &s->listeners[w * LISTEN_COUNT + k];
			l->w = wk;
			l->kind = (enum listener_kind)k;
			l->fd = s->listen_fds[k];
			if (l->fd >= 0)
				ev_io_start(wk->loop, &l->io, l->fd, EV_READ | EV_EXCLUSIVE, on_accept, l);
		}
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	ev_run(w->loop);
	return NULL;
}

void server_run(struct server *s)
{
	s->threads = xcalloc((size_t)s->nworkers, sizeof *s->threads);
	for (int i = 0; i < s->nworkers; i++)
		pthread_create(&s->threads[i], NULL, worker_main, &s->workers[i]);
	for (int i = 0; i < s->nworkers; i++)
		pthread_join(s->threads[i], NULL);
	free(s->threads);
	s->threads = NULL;
}

static void stop_loop(void *loop)
{
	ev_loop_stop(loop);
}

/* Runs on each worker: the command being handled has finished, since this is a posted call. */
static void worker_shutdown(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->server;
	int idx = (int)(w - s->workers);
	for (int k = 0; k < LISTEN_COUNT; k++) {
		struct listener *l = &s->listeners[idx * LISTEN_COUNT + k];
		if (l->fd >= 0)
			ev_io_stop(w->loop, &l->io);
		l->fd = -1;
	}
	conn_shutdown_all(w);
	ev_defer(w->loop, stop_loop, w->loop);
}

void server_stop(struct server *s)
{
	for (int i = 0; i < s->nworkers; i++)
		ev_post(s->workers[i].loop, worker_shutdown, &s->workers[i]);
}

void server_free(struct server **sp)
{
	struct server *s = *sp;
	if (s == NULL)
		return;
	for (int k = 0; k < LISTEN_COUNT; k++)
		if (s->listen_fds[k] >= 0)
			close(s->listen_fds[k]);
	for (int i = 0; i < s->nworkers; i++) {
		if (s->workers[i].loop != NULL)
			ev_loop_drain(s->workers[i].loop); /* results of jobs that ended after the stop */
		ev_loop_free(&s->workers[i].loop);
	}
	while (s->ip_counts != NULL) {
		struct ip_count *n = s->ip_counts->next;
		free(s->ip_counts);
		s->ip_counts = n;
	}
	pthread_mutex_destroy(&s->count_lock);
	free(s->workers);
	free(s->listeners);
	free(s);
	*sp = NULL;
}

bool server_conn_admit(struct server *s, const char *ip)
{
	const struct config *cfg = config_current();
	bool ok = false;
	pthread_mutex_lock(&s->count_lock);
	struct ip_count *e = s->ip_counts;
	while (e != NULL && strcmp(e->ip, ip) != 0)
		e = e->next;
	if (s->total_conns < cfg->max_connections &&
	    (e == NULL || e->count < cfg->max_connections_per_ip)) {
		if (e == NULL) {
			e = xcalloc(1, sizeof *e);
			snprintf(e->ip, sizeof e->ip, "%s", ip);
			e->next = s->ip_counts;
			s->ip_counts = e;
		}
		e->count++;
		s->total_conns++;
		ok = true;
	}
	pthread_mutex_unlock(&s->count_lock);
	return ok;
}

void server_conn_release(struct server *s, const char *ip)
{
	pthread_mutex_lock(&s->count_lock);
	struct ip_count **pp = &s->ip_counts;
	while (*pp != NULL && strcmp((*pp)->ip, ip) != 0)
		pp = &(*pp)->next;
	if (*pp != NULL && --(*pp)->count == 0) {
		struct ip_count *dead = *pp;
		*pp = dead->next;
		free(dead);
	}
	s->total_conns--;
	pthread_mutex_unlock(&s->count_lock);
}
