/* AUTH on the submission listeners (RFC 4954): PLAIN and LOGIN, with an initial response. */
#include "smtp/smtp-private.h"

#include "auth/login.h"
#include "auth/sasl.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static void login_done(void *sess, enum login_result result, const char *account)
{
	struct smtp *s = sess;
	s->sasl = SASL_IDLE;
	switch (result) {
	case LOGIN_OK:
		s->account = xstrdup(account);
		log_info("sess=%08x event=smtp_auth user=\"%s\"", conn_id(s->c), account);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		break;
	case LOGIN_FAILED:
		smtp_bad_command(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case LOGIN_THROTTLED:
		smtp_reply(s, "454 4.7.0 Too many failed logins, try again later");
		break;
	case LOGIN_TEMPFAIL:
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
}

static void start_login(struct smtp *s, const char *user, const char *pass)
{
	s->sasl = SASL_CHECKING;
	login_start(s->c, s->app, user, pass, login_done, s);
}

static void sasl_plain(struct smtp *s, const char *resp)
{
	char *user = NULL, *pass = NULL;
	if (sasl_plain_decode(resp, strlen(resp), &user, &pass) < 0) {
		smtp_bad_command(s, "501 5.5.2 Invalid SASL PLAIN response");
		return;
	}
	start_login(s, user, pass);
	OPENSSL_cleanse(pass, strlen(pass));
	free(user);
	free(pass);
}

void smtp_cmd_auth(struct smtp *s, char *args)
{
	if (s->helo == NULL || !s->esmtp) {
		smtp_bad_command(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->account != NULL) {
		smtp_bad_command(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 AUTH not allowed during a mail transaction");
		return;
	}
	if (!login_plaintext_allowed(s->c)) {
		smtp_bad_command(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (args[0] == '\0') {
		smtp_bad_command(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	size_t n = strcspn(args, " ");
	char *ir = args[n] ? args + n + 1 : NULL;
	enum sasl_mech mech = sasl_mech_parse(args, n);
	if (mech == SASL_UNKNOWN) {
		smtp_bad_command(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	if (mech == SASL_PLAIN) {
		if (ir != NULL) {
			/* "=" is an empty initial response (RFC 4954 §4). */
			sasl_plain(s, strcmp(ir, "=") == 0 ? "" : ir);
		} else {
			s->sasl = SASL_WAIT_PLAIN;
			smtp_reply(s, "334 ");
		}
		return;
	}
	s->sasl = SASL_WAIT_USER;
	if (ir != NULL) {
		smtp_sasl_input(s, ir); /* the initial response is the user name */
		return;
	}
	smtp_reply(s, "334 " SASL_LOGIN_PROMPT_USER);
}

void smtp_sasl_input(struct smtp *s, char *line)
{
	enum sasl_state step = s->sasl;
	s->sasl = SASL_IDLE;
	if (strcmp(line, "*") == 0) {
		free(s->sasl_user);
		s->sasl_user = NULL;
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (step == SASL_WAIT_PLAIN) {
		sasl_plain(s, line);
		return;
	}
	char *value = sasl_login_decode(line, strlen(line));
	if (value == NULL) {
		free(s->sasl_user);
		s->sasl_user = NULL;
		smtp_bad_command(s, "501 5.5.2 Invalid base64 in SASL LOGIN response");
		return;
	}
	if (step == SASL_WAIT_PASS && s->sasl_user != NULL) {
		char *user = s->sasl_user;
		s->sasl_user = NULL;
		start_login(s, user, value);
		free(user);
	} else {
		free(s->sasl_user);
		s->sasl_user = xstrdup(value);
		s->sasl = SASL_WAIT_PASS;
		smtp_reply(s, "334 " SASL_LOGIN_PROMPT_PASS);
	}
	OPENSSL_cleanse(value, strlen(value));
	free(value);
}
