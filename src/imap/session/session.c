/* IMAP session: connection callbacks, the command loop, dispatch and responses. */
#include "imap/session/imap-private.h"

#include "auth/login.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/quote.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum {
	ANY = IMAP_NOT_AUTHENTICATED | IMAP_AUTHENTICATED | IMAP_SELECTED,
	AUTH = IMAP_AUTHENTICATED | IMAP_SELECTED,
	SEL = IMAP_SELECTED,
	PRE = IMAP_NOT_AUTHENTICATED,
};

struct imap_command {
	const char *name;
	unsigned states;
	/* RFC 9051 §7.5.1: no EXPUNGE response while FETCH, STORE or SEARCH runs. */
	bool no_expunge;
	imap_cmd_fn *run;
};

static const struct imap_command commands[] = {
	{"CAPABILITY", ANY, false, imap_cmd_capability},
	{"NOOP", ANY, false, imap_cmd_noop},
	{"LOGOUT", ANY, false, imap_cmd_logout},
	{"ID", ANY, false, imap_cmd_id},
	{"STARTTLS", PRE, false, imap_cmd_starttls},
	{"LOGIN", PRE, false, imap_cmd_login},
	{"AUTHENTICATE", PRE, false, imap_cmd_authenticate},
	{"ENABLE", AUTH, false, imap_cmd_enable},
	{"NAMESPACE", AUTH, false, imap_cmd_namespace},
	{"SELECT", AUTH, false, imap_cmd_select},
	{"EXAMINE", AUTH, false, imap_cmd_examine},
	{"CREATE", AUTH, false, imap_cmd_create},
	{"DELETE", AUTH, false, imap_cmd_delete},
	{"RENAME", AUTH, false, imap_cmd_rename},
	{"SUBSCRIBE", AUTH, false, imap_cmd_subscribe},
	{"UNSUBSCRIBE", AUTH, false, imap_cmd_unsubscribe},
	{"LIST", AUTH, false, imap_cmd_list},
	{"LSUB", AUTH, false, imap_cmd_lsub},
	{"STATUS", AUTH, false, imap_cmd_status},
	{"APPEND", AUTH, false, imap_cmd_append},
	{"IDLE", AUTH, false, imap_cmd_idle},
	{"CHECK", SEL, false, imap_cmd_noop},
	{"CLOSE", SEL, false, imap_cmd_close},
	{"UNSELECT", SEL, false, imap_cmd_unselect},
	{"EXPUNGE", SEL, false, imap_cmd_expunge},
	{"SEARCH", SEL, true, imap_cmd_search},
	{"FETCH", SEL, true, imap_cmd_fetch},
	{"STORE", SEL, true, imap_cmd_store},
	{"COPY", SEL, false, imap_cmd_copy},
	{"MOVE", SEL, false, imap_cmd_move},
};

static const struct imap_command uid_commands[] = {
	{"FETCH", SEL, false, imap_cmd_uid_fetch},
	{"SEARCH", SEL, false, imap_cmd_uid_search},
	{"STORE", SEL, false, imap_cmd_uid_store},
	{"COPY", SEL, false, imap_cmd_uid_copy},
	{"MOVE", SEL, false, imap_cmd_uid_move},
	{"EXPUNGE", SEL, false, imap_cmd_uid_expunge},
};

/* ---- responses ---- */

void imap_send_buf(struct imap *s, struct buf *b)
{
	conn_write(s->c, b->data, b->len);
	buf_clear(b);
}

void imap_send(struct imap *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf_line(s->c, fmt, ap);
	va_end(ap);
}

static void tagged(struct imap *s, const char *tag, const char *status, const char *fmt,
		   va_list ap) __attribute__((format(printf, 4, 0)));

static void tagged(struct imap *s, const char *tag, const char *status, const char *fmt,
		   va_list ap)
{
	conn_printf(s->c, "%s %s ", tag, status);
	conn_vprintf_line(s->c, fmt, ap);
}

static void announce(struct imap *s)
{
	if (s->view != NULL)
		imap_view_sync(s, !s->no_expunge);
}

void imap_tagged_raw(struct imap *s, const char *tag, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged(s, tag, status, fmt, ap);
	va_end(ap);
}

void imap_ok(struct imap *s, const char *tag, const char *fmt, ...)
{
	announce(s);
	va_list ap;
	va_start(ap, fmt);
	tagged(s, tag, "OK", fmt, ap);
	va_end(ap);
}

void imap_no(struct imap *s, const char *tag, const char *fmt, ...)
{
	announce(s);
	va_list ap;
	va_start(ap, fmt);
	tagged(s, tag, "NO", fmt, ap);
	va_end(ap);
}

static void count_bad(struct imap *s)
{
	if (++s->bad_commands >= conn_config(s->c)->max_bad_commands) {
		imap_send(s, "* BYE Too many bad commands");
		conn_close(s->c);
	}
}

void imap_bad(struct imap *s, const char *tag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged(s, tag, "BAD", fmt, ap);
	va_end(ap);
	count_bad(s);
}

void imap_no_store(struct imap *s, const char *tag, enum store_err err, const char *what)
{
	const char *code;
	switch (err) {
	case STORE_NOTFOUND: code = "NONEXISTENT"; break;
	case STORE_EXISTS: code = "ALREADYEXISTS"; break;
	case STORE_PERM: code = "CANNOT"; break;
	case STORE_OVERQUOTA: code = "OVERQUOTA"; break;
	case STORE_NOSPACE: code = "OVERQUOTA"; break;
	case STORE_LIMIT: code = "LIMIT"; break;
	case STORE_EXPUNGED: code = "EXPUNGEISSUED"; break;
	case STORE_INUSE: code = "INUSE"; break;
	case STORE_INVALID: code = "CANNOT"; break;
	default: code = "UNAVAILABLE"; break;
	}
	imap_no(s, tag, "[%s] %s: %s", code, what, store_strerror(err));
}

void imap_capability_string(struct imap *s, struct buf *out)
{
	buf_append_str(out, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT"
			    " UIDPLUS MOVE CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE ESEARCH"
			    " SEARCHRES BINARY MULTIAPPEND STATUS=SIZE");
	buf_printf(out, " APPENDLIMIT=%llu",
		   (unsigned long long)conn_config(s->c)->max_message_size);
	if (s->state == IMAP_NOT_AUTHENTICATED) {
		if (!conn_tls_active(s->c) && conn_tls_available(s->c))
			buf_append_str(out, " STARTTLS");
		if (login_plaintext_allowed(s->c))
			buf_append_str(out, " AUTH=PLAIN AUTH=LOGIN");
		else
			buf_append_str(out, " LOGINDISABLED");
	}
}

/* ---- connection callbacks ---- */

static void *imap_open(struct conn *c)
{
	struct imap *s = xcalloc(1, sizeof *s);
	s->c = c;
	s->app = conn_app(c);
	s->state = IMAP_NOT_AUTHENTICATED;
	s->parser = imap_parser_new(&imap_parser_limits_preauth);
	imap_parser_set_literal_mode(s->parser, IMAP_LITERAL_PLUS);
	conn_set_idle_timeout(c, conn_config(c)->imap_idle_timeout);
	struct buf b = {0};
	buf_append_str(&b, "* OK [CAPABILITY ");
	imap_capability_string(s, &b);
	buf_append_str(&b, "] sarn IMAP server ready\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	return s;
}

static void imap_close(void *sess)
{
	struct imap *s = sess;
	imap_fetch_abort(s);
	imap_append_abort(s);
	imap_idle_stop(s);
	imap_view_free(&s->view);
	store_account_close(&s->acct);
	if (s->counted)
		usercount_release(s->app->user_sessions, s->account);
	imap_parser_free(&s->parser);
	buf_free(&s->line);
	free(s->sasl_user);
	free(s->tag);
	free(s->account);
	free(s);
}

static void imap_timeout(void *sess)
{
	struct imap *s = sess;
	imap_send(s, "* BYE Autologout; idle for too long");
}

static void imap_shutdown(void *sess)
{
	struct imap *s = sess;
	if (s->fetch == NULL) /* never inside a response being streamed */
		imap_send(s, "* BYE Server shutting down");
}

static const struct imap_command *find(const struct imap_command *table, size_t n,
				       const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

static void dispatch(struct imap *s)
{
	const char *tag = imap_parser_tag(s->parser);
	const char *name = imap_parser_name(s->parser);
	size_t nargs = 0;
	const struct imap_arg *args = imap_parser_args(s->parser, &nargs);
	const struct imap_command *cmd =
		find(commands, sizeof commands / sizeof commands[0], name);
	if (cmd == NULL && strcasecmp(name, "UID") == 0) {
		const char *sub = nargs > 0 ? imap_arg_atom(&args[0]) : NULL;
		if (sub == NULL) {
			imap_bad(s, tag, "UID needs a command");
			return;
		}
		cmd = find(uid_commands, sizeof uid_commands / sizeof uid_commands[0], sub);
		args++;
		nargs--;
	}
	if (cmd == NULL) {
		imap_bad(s, tag, "Unknown command");
		return;
	}
	log_debug("sess=%08x event=command cmd=%s", conn_id(s->c), cmd->name);
	if (!(cmd->states & s->state)) {
		imap_bad(s, tag, "%s",
			 s->state == IMAP_NOT_AUTHENTICATED ? "Log in first"
			 : s->state == IMAP_AUTHENTICATED   ? "Select a mailbox first"
							    : "Command not valid in this state");
		return;
	}
	s->no_expunge = cmd->no_expunge;
	cmd->run(s, tag, args, nargs);
}

static void parse_error(struct imap *s)
{
	const struct imap_parse_error *e = imap_parser_error(s->parser);
	const char *tag = imap_parser_tag(s->parser);
	if (e->code == IMAP_PARSE_ERR_EMPTY_LINE)
		return;
	if (e->fatal) {
		imap_send(s, "* BYE %s", e->reason);
		conn_close(s->c);
		return;
	}
	if (e->code == IMAP_PARSE_ERR_LITERAL_REFUSED || e->code == IMAP_PARSE_ERR_LITERAL_TOO_BIG) {
		/* APPEND's sink explains a refusal itself when it has a better reason. */
		imap_append_abort(s);
		imap_tagged_raw(s, tag ? tag : "*", "NO", "[TOOBIG] %s", e->reason);
		return;
	}
	if (tag == NULL) {
		imap_send(s, "* BAD %s", e->reason);
		count_bad(s);
	} else {
		imap_bad(s, tag, "%s", e->reason);
	}
}

static bool busy(const struct imap *s)
{
	return s->login_pending || s->fetch != NULL || conn_closed(s->c);
}

/* One connection's pipelined commands (e.g. thousands of APPENDs) must not keep the worker
 * from its other connections: after this much work, the rest waits for the next round. */
#define INPUT_SLICE_MS 20
#define INPUT_SLICE_COMMANDS 64

void imap_input(void *sess)
{
	struct imap *s = sess;
	struct buf *in = conn_input(s->c);
	uint64_t started = ev_now_ms();
	unsigned done = 0;
	while (!busy(s)) {
		if (done >= INPUT_SLICE_COMMANDS || ev_now_ms() - started >= INPUT_SLICE_MS) {
			conn_yield(s->c);
			return;
		}
		if (s->sasl != IMAP_SASL_NONE || s->idling) {
			int r = conn_getline(s->c, &s->line);
			if (r == 0)
				return;
			if (r < 0) {
				if (s->idling)
					imap_idle_stop(s);
				s->sasl = IMAP_SASL_NONE;
				imap_bad(s, s->tag ? s->tag : "*", "Line too long or NUL byte");
				continue;
			}
			if (s->idling)
				imap_idle_line(s, (char *)s->line.data);
			else
				imap_sasl_line(s, (char *)s->line.data);
			continue;
		}
		if (in->len == 0)
			return;
		size_t used = 0;
		enum imap_parse_result r = imap_parser_feed(s->parser, in->data, in->len, &used);
		buf_consume(in, used);
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			if (in->len == 0)
				return;
			break;
		case IMAP_PARSE_HAVE_NAME:
			if (strcasecmp(imap_parser_name(s->parser), "APPEND") == 0 &&
			    (s->state & AUTH))
				imap_append_prepare(s);
			break;
		case IMAP_PARSE_NEED_CONTINUATION:
			imap_send(s, "+ Ready for literal data");
			break;
		case IMAP_PARSE_COMPLETE:
			dispatch(s);
			imap_parser_reset(s->parser);
			done++;
			break;
		case IMAP_PARSE_ERROR:
			parse_error(s);
			imap_parser_reset(s->parser);
			break;
		}
		if (conn_output_pending(s->c) >= CONN_OUT_HIGH)
			return;
	}
}

static bool imap_drain(void *sess)
{
	struct imap *s = sess;
	if (s->fetch != NULL && !imap_fetch_continue(s))
		imap_input(s); /* pipelined commands waited for the FETCH */
	return s->fetch != NULL;
}

const struct proto imap_proto = {
	.name = "imap",
	.open = imap_open,
	.input = imap_input,
	.drain = imap_drain,
	.close = imap_close,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
};
