/* POP3 session: state, command table and dispatch. */
#include "pop3/pop3-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct pop3_command {
	const char *name;
	unsigned states; /* POP3_AUTHORIZATION and/or POP3_TRANSACTION */
	void (*run)(struct pop3 *p, char *args);
} commands[] = {
	{"CAPA", POP3_AUTHORIZATION | POP3_TRANSACTION, pop3_cmd_capa},
	{"QUIT", POP3_AUTHORIZATION | POP3_TRANSACTION, pop3_cmd_quit},
	{"NOOP", POP3_TRANSACTION, pop3_cmd_noop},
	{"STLS", POP3_AUTHORIZATION, pop3_cmd_stls},
	{"USER", POP3_AUTHORIZATION, pop3_cmd_user},
	{"PASS", POP3_AUTHORIZATION, pop3_cmd_pass},
	{"AUTH", POP3_AUTHORIZATION, pop3_cmd_auth},
	{"STAT", POP3_TRANSACTION, pop3_cmd_stat},
	{"LIST", POP3_TRANSACTION, pop3_cmd_list},
	{"UIDL", POP3_TRANSACTION, pop3_cmd_uidl},
	{"RETR", POP3_TRANSACTION, pop3_cmd_retr},
	{"TOP", POP3_TRANSACTION, pop3_cmd_top},
	{"DELE", POP3_TRANSACTION, pop3_cmd_dele},
	{"RSET", POP3_TRANSACTION, pop3_cmd_rset},
};

static void reply(struct pop3 *p, const char *status, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void reply(struct pop3 *p, const char *status, const char *fmt, va_list ap)
{
	conn_write(p->c, status, strlen(status));
	conn_vprintf_line(p->c, fmt, ap);
}

void pop3_reply_ok(struct pop3 *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(p, "+OK ", fmt, ap);
	va_end(ap);
}

void pop3_reply_err(struct pop3 *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(p, "-ERR ", fmt, ap);
	va_end(ap);
}

void pop3_bad_command(struct pop3 *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply(p, "-ERR ", fmt, ap);
	va_end(ap);
	if (++p->bad_commands >= conn_config(p->c)->max_bad_commands) {
		pop3_reply_err(p, "Too many bad commands, closing connection");
		conn_close(p->c);
	}
}

static void *pop3_open(struct conn *c)
{
	struct pop3 *p = xcalloc(1, sizeof *p);
	p->c = c;
	p->app = conn_app(c);
	p->state = POP3_AUTHORIZATION;
	p->retr.fd = -1;
	conn_set_idle_timeout(c, conn_config(c)->pop3_idle_timeout);
	pop3_reply_ok(p, "sarn POP3 server ready");
	return p;
}

static void pop3_close(void *sess)
{
	struct pop3 *p = sess;
	/* Leaving without QUIT: RFC 1939 §6, no UPDATE state, nothing is deleted; what was
	 * downloaded still counts for retention. */
	pop3_retr_abort(p);
	if (p->acct != NULL && p->state == POP3_TRANSACTION)
		pop3_record_downloads(p);
	store_account_close(&p->acct);
	if (p->counted)
		usercount_release(p->app->user_sessions, p->account);
	buf_free(&p->line);
	free(p->user);
	free(p->account);
	free(p->msgs);
	free(p);
}

static void pop3_timeout(void *sess)
{
	struct pop3 *p = sess;
	pop3_reply_err(p, "Autologout; idle for too long");
}

static void dispatch(struct pop3 *p, char *line)
{
	if (p->sasl != SASL_STEP_NONE) {
		pop3_sasl_continue(p, line);
		return;
	}
	size_t n = strcspn(line, " ");
	char *args = line[n] ? line + n + 1 : line + n;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (!token_eq(line, n, commands[i].name))
			continue;
		/* The command name only: arguments may be passwords. */
		log_debug("sess=%08x event=command cmd=%s", conn_id(p->c), commands[i].name);
		if (!(commands[i].states & p->state)) {
			pop3_bad_command(p, "Command not valid in this state");
			return;
		}
		commands[i].run(p, args);
		return;
	}
	pop3_bad_command(p, "Unknown command");
}

void pop3_input(void *sess)
{
	struct pop3 *p = sess;
	while (!p->retr.active && !(p->state & POP3_LOGIN_PENDING) && !conn_closed(p->c)) {
		int r = conn_getline(p->c, &p->line);
		if (r == 0)
			return;
		if (r < 0) {
			p->sasl = SASL_STEP_NONE;
			pop3_bad_command(p, r == CONN_LINE_NUL ? "NUL byte in command" : "Line too long");
			continue;
		}
		dispatch(p, (char *)p->line.data);
		if (conn_output_pending(p->c) >= CONN_OUT_HIGH)
			return;
	}
}

static bool pop3_drain(void *sess)
{
	struct pop3 *p = sess;
	if (p->retr.active && pop3_retr_continue(p))
		pop3_input(p); /* pipelined commands waited for the message to finish */
	return p->retr.active;
}

const struct proto pop3_proto = {
	.name = "pop3",
	.open = pop3_open,
	.input = pop3_input,
	.drain = pop3_drain,
	.close = pop3_close,
	.timeout = pop3_timeout,
};
