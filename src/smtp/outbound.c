#include "smtp/outbound.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/smtp-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 512
#define REPLY_MAX_LINES 200 /* a server that never ends its reply is cut off */
#define REPLY_MAX_OCTETS (64 * 1024)

enum { CAP_STARTTLS = 1, CAP_SIZE = 2, CAP_DSN = 4, CAP_SMTPUTF8 = 8, CAP_AUTH_PLAIN = 16,
       CAP_AUTH_LOGIN = 32, CAP_8BITMIME = 64 };

/* One connection to one server address. */
struct client {
	const struct config *cfg;
	char *host;
	char ip[64];
	char key[400];        /* host, address, port and TLS policy: what a reuse must match */
	time_t idle_since;
	struct client *next;  /* in the pool of idle sessions */
	int fd;
	SSL *ssl;
	unsigned char in[4096];
	size_t in_len, in_pos;
	unsigned caps;
	int code;             /* of the last reply, -1 after an I/O error */
	bool tls_failed;      /* the STARTTLS handshake failed */
	struct buf reply;     /* its text, lines joined by spaces */
};

static void xtext_encode(const char *s, struct buf *out)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x21 || c > 0x7e || c == '+' || c == '=')
			buf_printf(out, "+%02X", c);
		else
			buf_append(out, s, 1);
	}
}

static void set_error(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	c->reply.len = 0;
	buf_printf(&c->reply, "%s[%s]: ", c->host, c->ip);
	char tmp[256];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	buf_append_str(&c->reply, tmp);
	buf_cstr(&c->reply);
	va_end(ap);
	c->code = -1;
}

static int connect_to(struct client *c, const struct sockaddr_storage *ss)
{
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	inet_ntop(ss->ss_family, a, c->ip, sizeof c->ip);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		set_error(c, "socket: %s", strerror(errno));
		return -1;
	}
	int r = connect(fd, (const struct sockaddr *)ss, len);
	if (r < 0 && errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		r = poll(&p, 1, (int)c->cfg->connect_timeout * 1000);
		int err = 0;
		socklen_t elen = sizeof err;
		if (r == 0)
			err = ETIMEDOUT;
		else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			err = errno;
		r = err ? -1 : 0;
		errno = err;
	}
	if (r < 0) {
		set_error(c, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	/* Commands and the final dot are small writes that must not wait for the previous
	 * segment's ACK (Nagle + delayed ACK cost 40 ms per message). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct timeval tv = {.tv_sec = c->cfg->command_timeout};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	c->fd = fd;
	return 0;
}

static int send_raw(struct client *c, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n;
		if (c->ssl != NULL) {
			int w = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
			n = w > 0 ? w : -1;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
		}
		if (n <= 0) {
			set_error(c, "connection lost while sending");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fill(struct client *c)
{
	ssize_t n;
	do {
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->in, sizeof c->in);
			n = r > 0 ? r : -1;
		} else {
			n = recv(c->fd, c->in, sizeof c->in, 0);
		}
	} while (n < 0 && errno == EINTR && c->ssl == NULL);
	if (n <= 0)
		return -1;
	c->in_len = (size_t)n;
	c->in_pos = 0;
	return 0;
}

/* Reads one reply (RFC 5321 §4.2: "NNN-" lines then "NNN "). Returns its code, -1 on error. */
static int read_reply(struct client *c)
{
	c->reply.len = 0;
	struct buf line = {0};
	size_t octets = 0;
	for (int lines = 0;; lines++) {
		if (lines == REPLY_MAX_LINES) {
			buf_free(&line);
			set_error(c, "reply of more than %d lines", REPLY_MAX_LINES);
			return -1;
		}
		line.len = 0;
		for (;;) {
			if (c->in_pos == c->in_len && fill(c) < 0) {
				buf_free(&line);
				set_error(c, "connection lost or timed out waiting for a reply");
				return -1;
			}
			unsigned char ch = c->in[c->in_pos++];
			if (ch == '\n')
				break;
			if (++octets > REPLY_MAX_OCTETS) {
				buf_free(&line);
				set_error(c, "reply longer than %d octets", REPLY_MAX_OCTETS);
				return -1;
			}
			if (ch != '\r' && line.len < 1000)
				buf_append(&line, &ch, 1);
		}
		const char *l = (const char *)buf_cstr(&line);
		if (line.len < 3 || l[0] < '2' || l[0] > '5' || (line.len > 3 && l[3] != ' ' && l[3] != '-')) {
			buf_free(&line);
			set_error(c, "malformed reply");
			return -1;
		}
		if (c->reply.len + line.len < REPLY_MAX) {
			if (c->reply.len > 0)
				buf_append(&c->reply, " ", 1);
			buf_append(&c->reply, c->reply.len > 0 && line.len > 4 ? l + 4 : l,
				   c->reply.len > 0 && line.len > 4 ? line.len - 4 : line.len);
		}
		if (line.len == 3 || l[3] == ' ') {
			c->code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
			buf_free(&line);
			buf_cstr(&c->reply);
			return c->code;
		}
	}
}

static int command(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int command(struct client *c, const char *fmt, ...)
{
	struct buf b = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append(&b, "\r\n", 2);
	int r = send_raw(c, b.data, b.len);
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return r < 0 ? -1 : read_reply(c);
}

static void parse_ehlo(struct client *c)
{
	/* The reply text is "host cap cap ..." joined: look for whole words. */
	c->caps = 0;
	char *save = NULL;
	char *copy = xstrdup((const char *)buf_cstr(&c->reply));
	bool auth = false;
	for (char *w = strtok_r(copy, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		if (strcasecmp(w, "STARTTLS") == 0)
			c->caps |= CAP_STARTTLS;
		else if (strcasecmp(w, "SIZE") == 0)
			c->caps |= CAP_SIZE;
		else if (strcasecmp(w, "DSN") == 0)
			c->caps |= CAP_DSN;
		else if (strcasecmp(w, "SMTPUTF8") == 0)
			c->caps |= CAP_SMTPUTF8;
		else if (strcasecmp(w, "8BITMIME") == 0)
			c->caps |= CAP_8BITMIME;
		else if (strcasecmp(w, "AUTH") == 0)
			auth = true;
		else if (auth && strcasecmp(w, "PLAIN") == 0)
			c->caps |= CAP_AUTH_PLAIN;
		else if (auth && strcasecmp(w, "LOGIN") == 0)
			c->caps |= CAP_AUTH_LOGIN;
	}
	free(copy);
}

static int ehlo(struct client *c)
{
	int code = command(c, "EHLO %s", c->cfg->hostname);
	if (code == 250) {
		parse_ehlo(c);
		return 0;
	}
	if (code < 0)
		return -1;
	c->caps = 0;
	return command(c, "HELO %s", c->cfg->hostname) == 250 ? 0 : -1;
}

/* verify: the certificate must chain to a trusted CA and name the host (or its address). */
static int start_tls(struct client *c, SSL_CTX *ctx, bool verify)
{
	if (command(c, "STARTTLS") != 220)
		return -1;
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, c->host);
	if (verify) {
		unsigned char raw[16];
		bool literal = inet_pton(AF_INET, c->host, raw) == 1 || inet_pton(AF_INET6, c->host, raw) == 1;
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		if (literal)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host);
		else
			SSL_set1_host(c->ssl, c->host);
	}
	if (SSL_connect(c->ssl) != 1) {
		unsigned long e = ERR_get_error();
		long v = SSL_get_verify_result(c->ssl);
		ERR_clear_error();
		c->tls_failed = true;
		if (verify && v != X509_V_OK)
			set_error(c, "TLS certificate not accepted: %s", X509_verify_cert_error_string(v));
		else
			set_error(c, "TLS handshake failed: %s", e ? ERR_reason_error_string(e) : "connection lost");
		return -1;
	}
	c->in_len = c->in_pos = 0;
	return ehlo(c);
}

static int authenticate(struct client *c)
{
	const char *user = c->cfg->smarthost_user, *pass = c->cfg->smarthost_password ? c->cfg->smarthost_password : "";
	if (c->caps & CAP_AUTH_PLAIN) {
		size_t ul = strlen(user), pl = strlen(pass);
		unsigned char *raw = xmalloc(ul + pl + 2);
		raw[0] = '\0';
		memcpy(raw + 1, user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, pass, pl);
		char *b64 = base64_encode(raw, ul + pl + 2);
		OPENSSL_cleanse(raw, ul + pl + 2);
		free(raw);
		int code = command(c, "AUTH PLAIN %s", b64);
		OPENSSL_cleanse(b64, strlen(b64));
		free(b64);
		return code == 235 ? 0 : -1;
	}
	if (c->caps & CAP_AUTH_LOGIN) {
		char *u = base64_encode((const unsigned char *)user, strlen(user));
		char *p = base64_encode((const unsigned char *)pass, strlen(pass));
		int code = command(c, "AUTH LOGIN %s", u);
		if (code == 334)
			code = command(c, "%s", p);
		OPENSSL_cleanse(p, strlen(p));
		free(u);
		free(p);
		return code == 235 ? 0 : -1;
	}
	set_error(c, "the smarthost offers neither AUTH PLAIN nor AUTH LOGIN");
	return -1;
}

/* Sends data dot-stuffed (RFC 5321 §4.5.2); *last is the previous octet sent. */
static int send_stuffed(struct client *c, const unsigned char *data, size_t n, unsigned char *last,
			struct buf *out)
{
	if (n == 0)
		return 0;
	out->len = 0;
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		bool at_start = i == 0 ? *last == '\n' : data[i - 1] == '\n';
		if (at_start && data[i] == '.') {
			buf_append(out, data + from, i - from);
			buf_append(out, ".", 1);
			from = i;
		}
	}
	buf_append(out, data + from, n - from);
	*last = data[n - 1];
	return send_raw(c, out->data, out->len);
}

/* The length of the header section at the start of head (through its empty line), with every
 * Return-Path field copied out of it into kept: RFC 5321 §4.4 leaves that field to the final
 * delivery. 0 if head holds no complete header section. */
static size_t header_without_return_path(const struct buf *head, struct buf *kept)
{
	const char *p = (const char *)head->data, *end = p + head->len;
	const char *hend = memmem(p, head->len, "\r\n\r\n", 4);
	if (hend == NULL)
		return 0;
	hend += 4;
	bool skipping = false;
	while (p < hend) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : hend;
		if (*p != ' ' && *p != '\t')
			skipping = (size_t)(next - p) > 12 && strncasecmp(p, "Return-Path:", 12) == 0;
		if (!skipping)
			buf_append(kept, p, (size_t)(next - p));
		p = next;
	}
	return (size_t)(hend - (const char *)head->data);
}

/* The queued message without Return-Path, dot-stuffed, then the final dot. -1 if the file
 * cannot be read (the connection is then dropped without ending DATA) or the connection
 * fails. */
static int send_body(struct client *c, int fd, uint64_t size)
{
	unsigned char *chunk = xmalloc(65536);
	struct buf out = {0}, head = {0}, kept = {0};
	unsigned char last = '\n';
	int r = 0;
	uint64_t off = 0;
	/* The header, up to 1 MiB, is filtered; a longer one goes out as it is. */
	while (off < size && head.len < 1024 * 1024 &&
	       (head.len == 0 || memmem(head.data, head.len, "\r\n\r\n", 4) == NULL)) {
		ssize_t n = pread(fd, chunk, 65536, (off_t)off);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		if (n > 0) {
			buf_append(&head, chunk, (size_t)n);
			off += (uint64_t)n;
		}
	}
	size_t hlen = header_without_return_path(&head, &kept);
	if (hlen > 0) {
		r = send_stuffed(c, kept.data, kept.len, &last, &out);
		off = hlen;
	} else {
		off = 0;
	}
	while (off < size && r == 0) {
		ssize_t n = pread(fd, chunk, 65536, (off_t)off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			set_error(c, "cannot read the queued message");
			r = -1;
			break;
		}
		off += (uint64_t)n;
		r = send_stuffed(c, chunk, (size_t)n, &last, &out);
	}
	if (r == 0)
		r = send_raw(c, last == '\n' ? ".\r\n" : "\r\n.\r\n", last == '\n' ? 3 : 5);
	free(chunk);
	buf_free(&out);
	buf_free(&head);
	buf_free(&kept);
	return r;
}

/* The enhanced status code of the last reply ("5.1.1"), or a default for its class. */
static void reply_status(const struct client *c, char *out, size_t size)
{
	const char *t = (const char *)c->reply.data;
	if (c->code > 0 && c->reply.len > 9 && t[4] == t[0] && t[5] == '.') {
		size_t n = strspn(t + 4, "0123456789.");
		if (n >= 5 && n < size) {
			memcpy(out, t + 4, n);
			out[n] = '\0';
			return;
		}
	}
	snprintf(out, size, "%c.0.0", c->code >= 200 ? '0' + c->code / 100 : '4');
}

static void set_outcome(struct client *c, struct outbound_rcpt *r)
{
	r->result = c->code >= 200 && c->code < 300 ? OUTBOUND_SENT
		    : c->code >= 500                ? OUTBOUND_PERM
						    : OUTBOUND_TEMP;
	reply_status(c, r->rcpt->status, sizeof r->rcpt->status);
	free(r->rcpt->reply);
	r->rcpt->reply = xstrdup((const char *)buf_cstr(&c->reply));
}

static bool has_non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Greeting, EHLO, STARTTLS and AUTH on a new connection; false to try the next address. */
static bool open_session(struct outbound *o, struct client *c, bool smarthost, enum outbound_tls mode)
{
	const struct config *cfg = o->cfg;
	if (read_reply(c) != 220 || ehlo(c) < 0)
		return false;
	if ((c->caps & CAP_STARTTLS) && mode != OUTBOUND_TLS_NONE &&
	    start_tls(c, o->tls, mode == OUTBOUND_TLS_VERIFY) < 0)
		return false;
	if ((mode == OUTBOUND_TLS_REQUIRED || mode == OUTBOUND_TLS_VERIFY) && c->ssl == NULL) {
		set_error(c, "STARTTLS is required but not offered");
		return false;
	}
	if (smarthost && cfg->smarthost_user != NULL) {
		/* The configured policy, not this attempt's (a fallback to clear text). */
		if (c->ssl == NULL && cfg->smarthost_tls != OUTBOUND_TLS_NONE) {
			set_error(c, "no TLS: the smarthost password is not sent in clear");
			return false;
		}
		if (authenticate(c) < 0)
			return false;
	}
	return true;
}

/* One transaction on a ready session. Returns true when the server gave answers that settle
 * this attempt (the recipients have outcomes), false to try the next address. */
static bool mail_transaction(struct client *c, const struct queue_msg *msg, int fd, uint64_t size,
			     struct outbound_rcpt *rcpts, size_t n)
{
	bool need_utf8 = has_non_ascii(msg->from);
	for (size_t i = 0; i < n; i++)
		need_utf8 |= has_non_ascii(rcpts[i].rcpt->address);
	if (need_utf8 && !(c->caps & CAP_SMTPUTF8)) {
		c->reply.len = 0;
		buf_printf(&c->reply, "550 5.6.7 %s does not support SMTPUTF8 for non-ASCII addresses", c->host);
		c->code = 550;
		for (size_t i = 0; i < n; i++)
			set_outcome(c, &rcpts[i]);
		return true;
	}
	struct buf cmd = {0};
	buf_append_str(&cmd, "MAIL FROM:<");
	smtp_format_path(msg->from, &cmd);
	buf_append_str(&cmd, ">");
	if (c->caps & CAP_SIZE)
		buf_printf(&cmd, " SIZE=%llu", (unsigned long long)size);
	if ((c->caps & CAP_SMTPUTF8) && msg->smtputf8)
		buf_append_str(&cmd, " SMTPUTF8");
	if (c->caps & CAP_DSN) {
		buf_append_str(&cmd, msg->ret_hdrs ? " RET=HDRS" : " RET=FULL");
		if (msg->envid != NULL) {
			buf_append_str(&cmd, " ENVID=");
			xtext_encode(msg->envid, &cmd);
		}
	}
	int code = command(c, "%s", (const char *)buf_cstr(&cmd));
	if (code < 0) {
		buf_free(&cmd);
		return false;
	}
	if (code != 250) {
		for (size_t i = 0; i < n; i++)
			set_outcome(c, &rcpts[i]);
		buf_free(&cmd);
		return true;
	}
	size_t accepted = 0;
	bool *ok = xcalloc(n, sizeof *ok);
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *r = rcpts[i].rcpt;
		cmd.len = 0;
		buf_append_str(&cmd, "RCPT TO:<");
		smtp_format_path(r->address, &cmd);
		buf_append_str(&cmd, ">");
		if ((c->caps & CAP_DSN) && r->notify != 0) {
			buf_append_str(&cmd, " NOTIFY=");
			const char *sep = "";
			static const struct { unsigned bit; const char *name; } names[] = {
				{DSN_NOTIFY_NEVER, "NEVER"}, {DSN_NOTIFY_SUCCESS, "SUCCESS"},
				{DSN_NOTIFY_FAILURE, "FAILURE"}, {DSN_NOTIFY_DELAY, "DELAY"}};
			for (size_t k = 0; k < 4; k++)
				if (r->notify & names[k].bit) {
					buf_printf(&cmd, "%s%s", sep, names[k].name);
					sep = ",";
				}
		}
		if ((c->caps & CAP_DSN) && r->orcpt != NULL) {
			buf_append_str(&cmd, " ORCPT=");
			xtext_encode(r->orcpt, &cmd);
		}
		code = command(c, "%s", (const char *)buf_cstr(&cmd));
		if (code < 0) {
			buf_free(&cmd);
			free(ok);
			return false;
		}
		/* A refusal is this recipient's outcome; an acceptance waits for the end of DATA. */
		set_outcome(c, &rcpts[i]);
		if (rcpts[i].result == OUTBOUND_SENT) {
			ok[i] = true;
			accepted++;
		}
	}
	buf_free(&cmd);
	bool settled = true;
	if (accepted > 0) {
		code = command(c, "DATA");
		if (code == 354) {
			int r = send_body(c, fd, size);
			code = r < 0 ? -1 : read_reply(c);
		}
		settled = code > 0;
		for (size_t i = 0; i < n && settled; i++) {
			if (!ok[i])
				continue;
			set_outcome(c, &rcpts[i]);
			rcpts[i].next_hop_notifies = (c->caps & CAP_DSN) && rcpts[i].result == OUTBOUND_SENT;
		}
	}
	free(ok);
	return settled;
}

static struct client *client_new(const struct config *cfg, const char *host)
{
	struct client *c = xcalloc(1, sizeof *c);
	c->cfg = cfg;
	c->host = xstrdup(host);
	c->fd = -1;
	c->code = -1;
	return c;
}

static void client_close(struct client *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in_len = c->in_pos = 0;
}

static void client_free(struct client **cp)
{
	struct client *c = *cp;
	if (c == NULL)
		return;
	client_close(c);
	buf_free(&c->reply);
	free(c->host);
	free(c);
	*cp = NULL;
}

/* Sessions kept open after a delivery, for the next message to the same server: any
 * delivery thread may take one; the scheduler ends those that stay unused. */
struct outbound_pool {
	pthread_mutex_t lock;
	struct client *idle; /* most recently used first */
};

struct outbound_pool *outbound_pool_new(void)
{
	struct outbound_pool *p = xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void outbound_pool_close_idle(struct outbound_pool *p, int min_idle_seconds)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&p->lock);
	struct client *old = NULL, **link = &p->idle;
	while (*link != NULL) {
		struct client *c = *link;
		if (now - c->idle_since >= min_idle_seconds) {
			*link = c->next;
			c->next = old;
			old = c;
		} else {
			link = &c->next;
		}
	}
	pthread_mutex_unlock(&p->lock);
	while (old != NULL) {
		struct client *c = old;
		old = c->next;
		command(c, "QUIT");
		client_free(&c);
	}
}

void outbound_pool_free(struct outbound_pool **pp)
{
	if (*pp == NULL)
		return;
	outbound_pool_close_idle(*pp, 0);
	pthread_mutex_destroy(&(*pp)->lock);
	free(*pp);
	*pp = NULL;
}

/* A kept session for key that still answers, or NULL. */
static struct client *take_idle(struct outbound_pool *p, const char *key)
{
	pthread_mutex_lock(&p->lock);
	struct client *c = NULL, **link = &p->idle;
	for (; *link != NULL; link = &(*link)->next)
		if (strcmp((*link)->key, key) == 0) {
			c = *link;
			*link = c->next;
			c->next = NULL;
			break;
		}
	pthread_mutex_unlock(&p->lock);
	if (c != NULL && command(c, "RSET") != 250)
		client_free(&c); /* the server closed it meanwhile: no QUIT */
	return c;
}

/* After a settled transaction: keep a healthy session for the next message, else end it. */
static void put_idle(struct outbound_pool *p, struct client **cp)
{
	struct client *c = *cp;
	*cp = NULL;
	if (c->code <= 0 || c->code == 421) {
		client_free(&c);
		return;
	}
	c->idle_since = time(NULL);
	pthread_mutex_lock(&p->lock);
	c->next = p->idle;
	p->idle = c;
	pthread_mutex_unlock(&p->lock);
}

static void make_key(const char *host, const struct sockaddr_storage *ss, bool smarthost,
		     enum outbound_tls mode, char *out, size_t size)
{
	char ip[64] = "";
	const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	unsigned port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
							: ((const struct sockaddr_in *)ss)->sin_port);
	inet_ntop(ss->ss_family, a, ip, sizeof ip);
	snprintf(out, size, "%s|%s|%u|%d|%d", host, ip, port, smarthost, (int)mode);
}

static void all_outcome(struct outbound_rcpt *rcpts, size_t n, enum outbound_result result,
			const char *status, const char *reply)
{
	for (size_t i = 0; i < n; i++) {
		rcpts[i].result = result;
		snprintf(rcpts[i].rcpt->status, sizeof rcpts[i].rcpt->status, "%s", status);
		free(rcpts[i].rcpt->reply);
		rcpts[i].rcpt->reply = xstrdup(reply);
	}
}

/* "host:port" or "[v6]:port" of the smarthost. */
static char *split_hostport(const char *spec, unsigned *port)
{
	const char *colon = strrchr(spec, ':');
	char *host;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		host = xstrndup(spec + 1, close ? (size_t)(close - spec - 1) : strlen(spec + 1));
		colon = close && close[1] == ':' ? close + 1 : NULL;
	} else {
		host = colon ? xstrndup(spec, (size_t)(colon - spec)) : xstrdup(spec);
	}
	*port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 25;
	if (*port == 0 || *port > 65535)
		*port = 25;
	return host;
}

void outbound_deliver(struct outbound *o, const struct queue_msg *msg, int msg_fd, uint64_t size,
		      const char *domain, struct outbound_rcpt *rcpts, size_t n)
{
	const struct config *cfg = o->cfg;
	char **hosts = NULL;
	size_t nhosts = 0;
	unsigned port = cfg->remote_port;
	bool smarthost = cfg->smarthost != NULL;
	enum outbound_tls mode = smarthost ? cfg->smarthost_tls : OUTBOUND_TLS_OPPORTUNISTIC;
	if (smarthost) {
		hosts = xmalloc(sizeof *hosts);
		hosts[0] = split_hostport(cfg->smarthost, &port);
		nhosts = 1;
	} else {
		enum resolve_result rr = resolver_mx(o->resolver, domain, &hosts, &nhosts);
		if (rr == RESOLVE_NXDOMAIN) {
			all_outcome(rcpts, n, OUTBOUND_PERM, "5.1.2", "Host or domain name not found");
			return;
		}
		if (rr == RESOLVE_NULL_MX) {
			all_outcome(rcpts, n, OUTBOUND_PERM, "5.1.10", "Domain does not accept mail (null MX)");
			return;
		}
		if (rr == RESOLVE_TEMP) {
			all_outcome(rcpts, n, OUTBOUND_TEMP, "4.4.3", "DNS lookup failed, will retry");
			return;
		}
	}
	bool settled = false, any_address = false;
	char *last_error = NULL;
	for (size_t h = 0; h < nhosts && !settled; h++) {
		struct sockaddr_storage *addrs = NULL;
		size_t naddrs = 0;
		enum resolve_result rr = resolver_addresses(o->resolver, hosts[h], port, &addrs, &naddrs);
		if (rr == RESOLVE_TEMP)
			any_address = true; /* unknown yet: not a permanent failure */
		for (size_t a = 0; a < naddrs && !settled; a++) {
			any_address = true;
			char key[sizeof ((struct client *)0)->key];
			make_key(hosts[h], &addrs[a], smarthost, mode, key, sizeof key);
			struct client *c = take_idle(o->pool, key);
			if (c != NULL && !(settled = mail_transaction(c, msg, msg_fd, size, rcpts, n)))
				client_free(&c); /* the kept session failed: start afresh */
			for (int round = 0; !settled && round < 2; round++) {
				/* Round 1: once more in clear after a failed opportunistic STARTTLS
				 * (RFC 7435 §3). */
				c = client_new(cfg, hosts[h]);
				memcpy(c->key, key, sizeof key);
				if (connect_to(c, &addrs[a]) == 0 &&
				    open_session(o, c, smarthost, round == 0 ? mode : OUTBOUND_TLS_NONE))
					settled = mail_transaction(c, msg, msg_fd, size, rcpts, n);
				log_info("event=outbound id=%s host=%s ip=%s%s code=%d reply=\"%s\"", msg->id,
					 c->host, c->ip, round ? " tls=fallback" : "", c->code,
					 c->reply.len ? (const char *)c->reply.data : "");
				if (settled)
					break;
				bool again = c->tls_failed && mode == OUTBOUND_TLS_OPPORTUNISTIC;
				free(last_error);
				last_error = c->reply.len ? xstrdup((const char *)c->reply.data) : NULL;
				client_free(&c);
				if (!again)
					break;
			}
			if (settled)
				put_idle(o->pool, &c);
		}
		free(addrs);
	}
	if (!settled) {
		if (!any_address && !smarthost)
			all_outcome(rcpts, n, OUTBOUND_PERM, "5.4.4", "No address found for the mail hosts");
		else
			all_outcome(rcpts, n, OUTBOUND_TEMP, "4.4.1",
				    last_error ? last_error : "No server could be reached");
	}
	free(last_error);
	resolver_hosts_free(hosts, nhosts);
}
