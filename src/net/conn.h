/* A client connection: socket, optional TLS, input and output buffers, idle timer.
 * The protocol session on top sees lines and raw bytes, never the socket. */
#ifndef SARN_NET_CONN_H
#define SARN_NET_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/ev.h"

struct conn;
struct worker;

/* A protocol: called on the connection's worker thread. */
struct proto {
	const char *name;
	/* Creates the session; usually writes the greeting. */
	void *(*open)(struct conn *c);
	/* New input is in conn_input(c). Consume what was handled. */
	void (*input)(void *sess);
	/* Output is below the low-water mark: a streaming producer writes more and returns true
	 * while it has more to come (the connection then calls again when the client has read).
	 * May be NULL. */
	bool (*drain)(void *sess);
	/* The connection is going away; free the session. */
	void (*close)(void *sess);
	/* Idle timeout expired: the session may write a last line. May be NULL. */
	void (*timeout)(void *sess);
	/* The server is stopping: the session may write a last line. May be NULL. */
	void (*shutdown)(void *sess);
};

/* Output above this stops input processing until the client reads. */
#define CONN_OUT_HIGH (256 * 1024)
#define CONN_OUT_LOW (64 * 1024)

struct buf *conn_input(struct conn *c);
/* Takes the next line (without CRLF or LF, NUL-terminated) out of the input.
 * 1 line, 0 incomplete, CONN_LINE_TOO_LONG (longer than max_line_length) or
 * CONN_LINE_NUL (contains a NUL byte, never legal in a command); both are discarded. */
#define CONN_LINE_TOO_LONG (-1)
#define CONN_LINE_NUL (-2)
int conn_getline(struct conn *c, struct buf *line);

void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats a protocol line and ends it with CRLF, straight into the output. */
void conn_vprintf_line(struct conn *c, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
size_t conn_output_pending(const struct conn *c);
/* The session stops taking input for now although more is buffered (it has used its share of
 * the worker): input processing resumes after the loop's other connections had their turn. */
void conn_yield(struct conn *c);
/* Sends what was written outside the connection's own callbacks (e.g. from another fd's
 * event, like an IDLE notification). */
void conn_flush(struct conn *c);

/* Ends the connection once pending output is sent; input is ignored from now on. */
void conn_close(struct conn *c);
/* Starts TLS after pending output is flushed; unprocessed input is discarded (RFC 2595 §3.1,
 * RFC 3207 §4.2: no command injection). */
void conn_starttls(struct conn *c);
bool conn_tls_active(const struct conn *c);
bool conn_tls_available(const struct conn *c);
bool conn_is_loopback(const struct conn *c);
const char *conn_peer(const struct conn *c);
/* The client's address without the port. */
const char *conn_peer_ip(const struct conn *c);
uint32_t conn_id(const struct conn *c);
/* Names the logged-in user in the connection's log lines from now on. */
void conn_set_user(struct conn *c, const char *user);
void conn_set_idle_timeout(struct conn *c, uint32_t seconds);
/* Stops reading input until conn_resume (e.g. while a job thread verifies a password). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

struct ev_loop *conn_loop(const struct conn *c);
const struct config *conn_config(const struct conn *c);
/* The application context given to the server (store, auth, job pool). */
void *conn_app(const struct conn *c);
/* Keeps the conn alive across an asynchronous job; conn_unref frees it when closed. */
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
bool conn_closed(const struct conn *c);
/* The client has closed its side and nothing it sent is left unread in the socket. Looks only
 * at the socket (never at TLS state), so a job thread may ask while the connection is
 * paused. */
bool conn_peer_gone(const struct conn *c);

#endif
