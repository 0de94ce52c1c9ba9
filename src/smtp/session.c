/* SMTP/LMTP session: greeting, command table and dispatch. */
#include "smtp/smtp-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void smtp_reply(struct smtp *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf_line(s->c, fmt, ap);
	va_end(ap);
}

void smtp_bad_command(struct smtp *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vprintf_line(s->c, fmt, ap);
	va_end(ap);
	if (++s->bad_commands >= conn_config(s->c)->max_bad_commands) {
		smtp_reply(s, "421 4.7.0 Too many errors, closing connection");
		conn_close(s->c);
	}
}

void smtp_reset_transaction(struct smtp *s)
{
	free(s->mail_from);
	s->mail_from = NULL;
	s->have_mail = false;
	s->declared_size = 0;
	s->smtputf8 = false;
	s->ret_hdrs = false;
	free(s->envid);
	s->envid = NULL;
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].address);
		free(s->rcpts[i].account);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	store_blob_free(&s->blob);
	s->in_data = false;
	s->bdat = false;
}

static struct smtp *open_common(struct conn *c, bool lmtp, bool submission)
{
	struct smtp *s = xcalloc(1, sizeof *s);
	s->c = c;
	s->app = conn_app(c);
	s->lmtp = lmtp;
	s->submission = submission;
	conn_set_idle_timeout(c, conn_config(c)->smtp_idle_timeout);
	smtp_reply(s, "220 %s %s sarn ready", conn_config(c)->hostname, lmtp ? "LMTP" : "ESMTP");
	return s;
}

static void *smtp_open(struct conn *c)
{
	return open_common(c, false, false);
}

static void *submission_open(struct conn *c)
{
	return open_common(c, false, true);
}

static void *lmtp_open(struct conn *c)
{
	return open_common(c, true, false);
}

static void smtp_close(void *sess)
{
	struct smtp *s = sess;
	/* A connection lost mid-DATA drops the unfinished message: nothing was acknowledged. */
	smtp_reset_transaction(s);
	free(s->helo);
	free(s->account);
	free(s->sasl_user);
	buf_free(&s->line);
	free(s);
}

static void smtp_timeout(void *sess)
{
	struct smtp *s = sess;
	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection", conn_config(s->c)->hostname);
}

static void smtp_shutdown(void *sess)
{
	struct smtp *s = sess;
	if (!s->delivering)
		smtp_reply(s, "421 4.3.2 %s Service shutting down", conn_config(s->c)->hostname);
}

static void cmd_starttls(struct smtp *s, char *args)
{
	if (args[0] != '\0') {
		smtp_bad_command(s, "501 5.5.4 STARTTLS takes no arguments");
		return;
	}
	if (!conn_tls_available(s->c)) {
		smtp_bad_command(s, conn_tls_active(s->c) ? "503 5.5.1 TLS already active"
							  : "454 4.7.0 TLS not available");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 §4.2: the client starts over, with EHLO. */
	smtp_reset_transaction(s);
	free(s->helo);
	s->helo = NULL;
	conn_starttls(s->c);
}

static void dispatch(struct smtp *s, char *line)
{
	size_t n = strcspn(line, " ");
	char *args = line[n] ? line + n + 1 : line + n;
	if (token_eq(line, n, "EHLO") || token_eq(line, n, "HELO") || token_eq(line, n, "LHLO")) {
		bool lhlo = token_eq(line, n, "LHLO");
		if (lhlo != s->lmtp) {
			smtp_bad_command(s, "500 5.5.1 %s", s->lmtp ? "Use LHLO on LMTP" : "Unknown command");
			return;
		}
		line[n] = '\0';
		smtp_cmd_helo(s, line, args);
	} else if (token_eq(line, n, "MAIL")) {
		smtp_cmd_mail(s, args);
	} else if (token_eq(line, n, "RCPT")) {
		smtp_cmd_rcpt(s, args);
	} else if (token_eq(line, n, "DATA")) {
		smtp_cmd_data(s, args);
	} else if (token_eq(line, n, "RSET")) {
		smtp_reset_transaction(s);
		smtp_reply(s, "250 2.0.0 Reset");
	} else if (token_eq(line, n, "NOOP")) {
		smtp_reply(s, "250 2.0.0 OK");
	} else if (token_eq(line, n, "QUIT")) {
		smtp_reply(s, "221 2.0.0 %s closing connection", conn_config(s->c)->hostname);
		conn_close(s->c);
	} else if (token_eq(line, n, "VRFY")) {
		smtp_reply(s, "252 2.5.0 Cannot verify the user, but will accept the message");
	} else if (token_eq(line, n, "HELP")) {
		smtp_reply(s, "214 2.0.0 See RFC 5321");
	} else if (token_eq(line, n, "STARTTLS")) {
		cmd_starttls(s, args);
	} else if (token_eq(line, n, "BDAT")) {
		smtp_cmd_bdat(s, args);
	} else if (token_eq(line, n, "AUTH") && s->submission) {
		smtp_cmd_auth(s, args);
	} else if (token_eq(line, n, "ETRN") || token_eq(line, n, "EXPN")) {
		smtp_bad_command(s, "502 5.5.1 Command not implemented");
	} else {
		smtp_bad_command(s, "500 5.5.2 Unknown command");
	}
}

static void smtp_input(void *sess)
{
	struct smtp *s = sess;
	while (!conn_closed(s->c) && !s->delivering) {
		if (s->in_data) {
			if (!smtp_data_input(s))
				return;
			continue;
		}
		if (s->chunk_left > 0) {
			if (!smtp_chunk_input(s))
				return;
			continue;
		}
		if (s->sasl == SASL_CHECKING)
			return;
		int r = conn_getline(s->c, &s->line);
		if (r == 0)
			return;
		if (r < 0) {
			smtp_bad_command(s, r == CONN_LINE_NUL ? "500 5.5.2 NUL byte in command"
							       : "500 5.5.2 Line too long");
			continue;
		}
		if (s->sasl != SASL_IDLE)
			smtp_sasl_input(s, (char *)s->line.data);
		else
			dispatch(s, (char *)s->line.data);
		if (conn_output_pending(s->c) >= CONN_OUT_HIGH)
			return;
	}
}

const struct proto smtp_proto = {
	.name = "smtp",
	.open = smtp_open,
	.input = smtp_input,
	.close = smtp_close,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
};

const struct proto submission_proto = {
	.name = "submission",
	.open = submission_open,
	.input = smtp_input,
	.close = smtp_close,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
};

const struct proto lmtp_proto = {
	.name = "lmtp",
	.open = lmtp_open,
	.input = smtp_input,
	.close = smtp_close,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
};
