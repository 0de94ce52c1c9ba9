#include "net/conn-private.h"

#include "core/log.h"
#include "core/util.h"
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384

static atomic_uint next_conn_id;

static void conn_on_io(void *arg, int events);
static void conn_update(struct conn *c);
static void pump_output(struct conn *c);

static void free_now(struct conn *c)
{
	struct worker *w = c->w;
	if (c->sess != NULL && c->proto->close != NULL)
		c->proto->close(c->sess);
	c->sess = NULL;
	ev_timer_stop(w->loop, &c->idle);
	ev_io_stop(w->loop, &c->io);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	server_conn_release(w->server, c->ip);
	/* glibc keeps freed memory in its arenas: give it back when a worker goes quiet. */
	if (w->nconns == 0)
		release_free_memory();
	log_info("sess=%08x proto=%s ip=%s user=\"%s\" event=disconnect dur_ms=%llu", c->id,
		 c->proto->name, c->peer, c->user ? c->user : "",
		 (unsigned long long)(ev_now_ms() - c->started_ms));
	free(c->user);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void deferred_free(void *arg)
{
	struct conn *c = arg;
	c->free_scheduled = false;
	if (c->refs == 0)
		free_now(c);
}

/* Once, however many of conn_kill and the last conn_unref happen in one loop round. */
static void schedule_free(struct conn *c)
{
	if (c->free_scheduled)
		return;
	c->free_scheduled = true;
	ev_defer(c->w->loop, deferred_free, c);
}

/* Marks the connection dead: no more I/O, freed once nothing refers to it. */
static void conn_kill(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	ev_io_stop(c->w->loop, &c->io);
	ev_timer_stop(c->w->loop, &c->idle);
	/* The session's close hook runs now, so it sees the connection still in place. */
	if (c->sess != NULL && c->proto->close != NULL)
		c->proto->close(c->sess);
	c->sess = NULL;
	if (c->refs == 0)
		schedule_free(c);
}

void conn_ref(struct conn *c)
{
	c->refs++;
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0 && c->dead)
		schedule_free(c);
}

bool conn_peer_gone(const struct conn *c)
{
	char byte;
	ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	/* 0: an orderly close; an error other than "nothing yet": reset. */
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool conn_closed(const struct conn *c)
{
	return c->dead || c->closing;
}

static void on_idle(void *arg)
{
	struct conn *c = arg;
	log_info("sess=%08x proto=%s ip=%s event=timeout", c->id, c->proto->name, c->peer);
	if (c->proto->timeout != NULL && c->sess != NULL)
		c->proto->timeout(c->sess);
	conn_close(c);
	conn_update(c);
}

static void start_ssl(struct conn *c)
{
	SSL_CTX *ctx = tls_ctx_acquire();
	if (ctx == NULL) {
		conn_kill(c);
		return;
	}
	c->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_accept_state(c->ssl);
	c->handshaking = true;
}

void conn_accept(struct worker *w, int fd, const struct proto *proto, bool implicit_tls)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char ip[48] = "?";
	int port = 0;
	bool loopback = false;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
			port = ntohs(sin->sin_port);
			loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
			port = ntohs(sin6->sin6_port);
			loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		} else if (ss.ss_family == AF_UNIX) {
			strcpy(ip, "local");
			loopback = true;
		}
	}
	if (!server_conn_admit(w->server, ip)) {
		log_warn("proto=%s ip=%s event=refused reason=connection_limit", proto->name, ip);
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	struct conn *c = xcalloc(1, sizeof *c);
	c->w = w;
	c->proto = proto;
	c->fd = fd;
	c->id = atomic_fetch_add(&next_conn_id, 1) + 1;
	c->loopback = loopback;
	c->started_ms = ev_now_ms();
	snprintf(c->ip, sizeof c->ip, "%s", ip);
	snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	ev_timer_init(&c->idle, on_idle, c);
	SSL_CTX *ctx = tls_ctx_acquire();
	c->tls_offered = ctx != NULL;
	SSL_CTX_free(ctx);
	log_info("sess=%08x proto=%s ip=%s event=connect tls=%s", c->id, proto->name, c->peer,
		 implicit_tls ? "yes" : "no");
	if (ev_io_start(w->loop, &c->io, fd, EV_READ, conn_on_io, c) < 0) {
		conn_kill(c);
		return;
	}
	if (implicit_tls) {
		start_ssl(c);
		if (c->dead)
			return;
	} else {
		c->sess = proto->open(c);
	}
	conn_update(c);
}

struct buf *conn_input(struct conn *c)
{
	return &c->in;
}

int conn_getline(struct conn *c, struct buf *line)
{
	unsigned char *lf = memchr(c->in.data, '\n', c->in.len);
	size_t max = config_current()->max_line_length;
	if (lf == NULL) {
		if (c->in.len <= max)
			return 0;
		/* Overlong: drop what we have and keep dropping up to the next LF. */
		bool first = !c->discarding;
		c->discarding = true;
		buf_clear(&c->in);
		return first ? -1 : 0;
	}
	size_t n = (size_t)(lf - c->in.data);
	if (c->discarding) {
		/* The end of a line already reported as too long. */
		c->discarding = false;
		buf_consume(&c->in, n + 1);
		return conn_getline(c, line);
	}
	if (n > max) {
		buf_consume(&c->in, n + 1);
		return -1;
	}
	size_t len = n > 0 && c->in.data[n - 1] == '\r' ? n - 1 : n;
	if (memchr(c->in.data, '\0', len) != NULL) {
		buf_consume(&c->in, n + 1);
		return CONN_LINE_NUL;
	}
	buf_clear(line);
	buf_append(line, c->in.data, len);
	buf_cstr(line);
	buf_consume(&c->in, n + 1);
	return 1;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->dead)
		return;
	buf_append(&c->out, data, len);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	if (c->dead)
		return;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
}

void conn_vprintf_line(struct conn *c, const char *fmt, va_list ap)
{
	if (c->dead)
		return;
	buf_vprintf(&c->out, fmt, ap);
	buf_append(&c->out, "\r\n", 2);
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out.len;
}

void conn_close(struct conn *c)
{
	c->closing = true;
}

void conn_starttls(struct conn *c)
{
	c->starttls_pending = true;
	buf_clear(&c->in);
}

bool conn_tls_active(const struct conn *c)
{
	return c->ssl != NULL;
}

bool conn_tls_available(const struct conn *c)
{
	return c->tls_offered && c->ssl == NULL;
}

bool conn_is_loopback(const struct conn *c)
{
	return c->loopback;
}

const char *conn_peer(const struct conn *c)
{
	return c->peer;
}

const char *conn_peer_ip(const struct conn *c)
{
	return c->ip;
}

uint32_t conn_id(const struct conn *c)
{
	return c->id;
}

void conn_set_user(struct conn *c, const char *user)
{
	free(c->user);
	c->user = xstrdup(user);
}

void conn_set_idle_timeout(struct conn *c, uint32_t seconds)
{
	c->idle_seconds = seconds;
	if (!c->dead && seconds > 0)
		ev_timer_start(c->w->loop, &c->idle, (uint64_t)seconds * 1000);
}

struct ev_loop *conn_loop(const struct conn *c)
{
	return c->w->loop;
}

const struct config *conn_config(const struct conn *c)
{
	(void)c; /* one snapshot for every connection; kept in the API for per-listener settings */
	return config_current();
}

void *conn_app(const struct conn *c)
{
	return c->w->app;
}

void conn_pause(struct conn *c)
{
	c->paused++;
	conn_update(c);
}

static void process_input(struct conn *c);

static void resume_after_yield(void *arg)
{
	struct conn *c = arg;
	c->yield_pending = false;
	if (!c->dead) {
		process_input(c);
		if (!c->dead)
			conn_update(c);
	}
	conn_unref(c);
}

void conn_yield(struct conn *c)
{
	if (c->yield_pending || c->dead)
		return;
	c->yield_pending = true;
	conn_ref(c);
	ev_post(c->w->loop, resume_after_yield, c);
}

void conn_flush(struct conn *c)
{
	if (c->dead || c->handshaking)
		return;
	pump_output(c);
	if (!c->dead)
		conn_update(c);
}

void conn_resume(struct conn *c)
{
	if (c->paused > 0)
		c->paused--;
	if (c->dead)
		return;
	process_input(c);
	conn_update(c);
	/* Input may already be waiting in the TLS layer, where epoll cannot see it. */
	if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
		conn_on_io(c, EV_READ);
}

static bool can_process(const struct conn *c)
{
	return !c->dead && !c->closing && c->paused == 0 && !c->starttls_pending &&
	       !c->handshaking && !c->yield_pending && c->out.len < CONN_OUT_HIGH && c->sess != NULL;
}

static void process_input(struct conn *c)
{
	if (c->in_input)
		return;
	c->in_input = true;
	while (can_process(c) && c->in.len > 0) {
		size_t before = c->in.len;
		c->proto->input(c->sess);
		if (c->in.len == before)
			break;
	}
	c->in_input = false;
}

/* Returns 1 if bytes were read, 0 on would-block, -1 on EOF or error. */
static int read_some(struct conn *c)
{
	buf_reserve(&c->in, READ_CHUNK);
	unsigned char *dst = c->in.data + c->in.len;
	if (c->ssl != NULL) {
		int n = SSL_read(c->ssl, dst, READ_CHUNK);
		if (n > 0) {
			c->in.len += (size_t)n;
			return 1;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		ERR_clear_error();
		return -1;
	}
	ssize_t n = read(c->fd, dst, READ_CHUNK);
	if (n > 0) {
		c->in.len += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

static void flush_output(struct conn *c)
{
	while (c->out.len > 0 && !c->dead) {
		size_t chunk = c->out.len > 65536 ? 65536 : c->out.len;
		if (c->ssl != NULL) {
			int n = SSL_write(c->ssl, c->out.data, (int)chunk);
			if (n <= 0) {
				int e = SSL_get_error(c->ssl, n);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					return;
				ERR_clear_error();
				conn_kill(c);
				return;
			}
			buf_consume(&c->out, (size_t)n);
		} else {
			ssize_t n = send(c->fd, c->out.data, chunk, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				conn_kill(c);
				return;
			}
			buf_consume(&c->out, (size_t)n);
		}
	}
	if (c->out.cap > 4 * CONN_OUT_HIGH && c->out.len == 0)
		buf_free(&c->out); /* give back the memory a big response needed */
}

static void handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		log_info("sess=%08x proto=%s ip=%s event=tls version=%s cipher=%s", c->id,
			 c->proto->name, c->peer, SSL_get_version(c->ssl), SSL_get_cipher(c->ssl));
		if (c->sess == NULL)
			c->sess = c->proto->open(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	log_info("sess=%08x proto=%s ip=%s event=tls_failed", c->id, c->proto->name, c->peer);
	ERR_clear_error();
	conn_kill(c);
}

static void conn_update(struct conn *c)
{
	if (c->dead)
		return;
	if (c->out.len == 0) {
		if (c->closing) {
			/* A clean TLS close (close_notify), best effort on a non-blocking socket. */
			if (c->ssl != NULL && !c->handshaking)
				SSL_shutdown(c->ssl);
			ERR_clear_error();
			conn_kill(c);
			return;
		}
		if (c->starttls_pending) {
			c->starttls_pending = false;
			buf_clear(&c->in);
			start_ssl(c);
			if (c->dead)
				return;
			handshake(c);
			if (c->dead)
				return;
		}
	}
	int events = 0;
	if (c->handshaking) {
		events = EV_READ | (SSL_want_write(c->ssl) ? EV_WRITE : 0);
	} else {
		if (c->out.len > 0 || c->producing)
			events |= EV_WRITE;
		if (!c->closing && !c->starttls_pending && c->paused == 0 &&
		    c->out.len < CONN_OUT_HIGH && c->in.len < config_current()->max_line_length + READ_CHUNK)
			events |= EV_READ;
		if (c->ssl != NULL && SSL_want_write(c->ssl))
			events |= EV_WRITE;
	}
	ev_io_modify(c->w->loop, &c->io, events);
}

/* Sends output and lets a streaming producer refill it, a few rounds at most so one big
 * download does not starve the loop's other connections. */
static void pump_output(struct conn *c)
{
	for (int round = 0; round < 8 && !c->dead; round++) {
		flush_output(c);
		if (c->dead || c->closing || c->out.len >= CONN_OUT_LOW || c->proto->drain == NULL ||
		    c->sess == NULL)
			break;
		c->producing = c->proto->drain(c->sess);
		if (!c->producing)
			break;
	}
	if (!c->dead && c->out.len > 0)
		flush_output(c);
}

static void conn_on_io(void *arg, int events)
{
	struct conn *c = arg;
	if (c->dead)
		return;
	if (c->handshaking) {
		handshake(c);
		if (c->dead || c->handshaking) {
			conn_update(c);
			return;
		}
		/* The client's first command may have arrived with its last handshake message. */
		events |= EV_READ;
	}
	if (events & EV_WRITE) {
		pump_output(c);
		if (!c->dead)
			process_input(c);
	}
	/* Decrypted bytes held by OpenSSL are invisible to epoll. */
	if (!c->dead && c->ssl != NULL && SSL_pending(c->ssl) > 0)
		events |= EV_READ;
	if (events & EV_READ) {
		while (!c->dead && !c->closing && c->paused == 0 && !c->starttls_pending &&
		       c->out.len < CONN_OUT_HIGH &&
		       c->in.len < config_current()->max_line_length + READ_CHUNK) {
			int r = read_some(c);
			if (r < 0) {
				conn_kill(c);
				return;
			}
			if (r == 0)
				break;
			if (c->idle_seconds > 0)
				ev_timer_start(c->w->loop, &c->idle, (uint64_t)c->idle_seconds * 1000);
			process_input(c);
			if (c->handshaking)
				break;
		}
	}
	if (!c->dead)
		pump_output(c);
	conn_update(c);
}

void conn_shutdown_all(struct worker *w)
{
	for (struct conn *c = w->conns; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		if (c->proto->shutdown != NULL && c->sess != NULL && !c->handshaking && !c->closing)
			c->proto->shutdown(c->sess);
		flush_output(c);
		conn_kill(c);
	}
}
