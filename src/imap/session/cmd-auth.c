/* Commands of any state and the login: CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE,
 * STARTTLS, LOGIN, AUTHENTICATE. */
#include "imap/session/imap-private.h"

#include "auth/login.h"
#include "auth/sasl.h"
#include "core/log.h"
#include "core/util.h"
#include "imap/quote.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void imap_cmd_capability(struct imap *s, const char *tag, const struct imap_arg *args,
			 size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "CAPABILITY takes no arguments");
		return;
	}
	struct buf b = {0};
	buf_append_str(&b, "* CAPABILITY ");
	imap_capability_string(s, &b);
	buf_append_str(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_ok(s, tag, "CAPABILITY completed");
}

void imap_cmd_noop(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "No arguments expected");
		return;
	}
	imap_ok(s, tag, "Done");
}

void imap_cmd_logout(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "LOGOUT takes no arguments");
		return;
	}
	imap_send(s, "* BYE Logging out");
	imap_tagged_raw(s, tag, "OK", "LOGOUT completed");
	s->state = IMAP_LOGOUT;
	conn_close(s->c);
}

void imap_cmd_id(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	/* RFC 2971: NIL or a list of at most 30 field/value pairs. */
	if (nargs != 1 || (args[0].type != IMAP_ARG_NIL &&
			   (args[0].type != IMAP_ARG_LIST || args[0].list_count % 2 != 0 ||
			    args[0].list_count > 60))) {
		imap_bad(s, tag, "Usage: ID NIL or ID (\"field\" \"value\" ...)");
		return;
	}
	imap_send(s, "* ID (\"name\" \"sarn\" \"vendor\" \"sarn\" \"support-url\" \"https://sarn.example/\")");
	imap_ok(s, tag, "ID completed");
}

void imap_cmd_enable(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	if (nargs == 0) {
		imap_bad(s, tag, "Usage: ENABLE capability ...");
		return;
	}
	struct buf b = {0};
	buf_append_str(&b, "* ENABLED");
	for (size_t i = 0; i < nargs; i++) {
		const char *cap = imap_arg_atom(&args[i]);
		if (cap == NULL) {
			buf_free(&b);
			imap_bad(s, tag, "ENABLE takes atoms");
			return;
		}
		/* Only what is advertised and changes behaviour can be enabled (RFC 5161 §3.1). */
		if (strcasecmp(cap, "IMAP4rev2") == 0 && !s->rev2) {
			s->rev2 = true;
			imap_parser_set_utf8(s->parser, true);
			buf_append_str(&b, " IMAP4rev2");
		}
	}
	buf_append_str(&b, "\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_ok(s, tag, "ENABLE completed");
}

void imap_cmd_namespace(struct imap *s, const char *tag, const struct imap_arg *args,
			size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "NAMESPACE takes no arguments");
		return;
	}
	imap_send(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_ok(s, tag, "NAMESPACE completed");
}

void imap_cmd_starttls(struct imap *s, const char *tag, const struct imap_arg *args,
		       size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "STARTTLS takes no arguments");
		return;
	}
	if (conn_tls_active(s->c)) {
		imap_bad(s, tag, "TLS is already active");
		return;
	}
	if (!conn_tls_available(s->c)) {
		imap_no(s, tag, "[UNAVAILABLE] TLS is not configured");
		return;
	}
	imap_tagged_raw(s, tag, "OK", "Begin TLS negotiation now");
	conn_starttls(s->c);
}

static void login_failed(struct imap *s, const char *tag)
{
	imap_tagged_raw(s, tag, "NO", "[AUTHENTICATIONFAILED] Invalid user name or password");
	if (++s->bad_commands >= conn_config(s->c)->max_bad_commands) {
		imap_send(s, "* BYE Too many failed logins");
		conn_close(s->c);
	}
}

static void login_done(void *sess, enum login_result result, const char *account)
{
	struct imap *s = sess;
	s->login_pending = false;
	char *tag = s->tag;
	s->tag = NULL;
	switch (result) {
	case LOGIN_OK:
		break;
	case LOGIN_FAILED:
		login_failed(s, tag);
		free(tag);
		return;
	case LOGIN_THROTTLED:
		imap_tagged_raw(s, tag, "NO", "[UNAVAILABLE] Too many failed logins; try again later");
		free(tag);
		return;
	case LOGIN_TEMPFAIL:
		imap_tagged_raw(s, tag, "NO", "[UNAVAILABLE] Account database unavailable; try again later");
		free(tag);
		return;
	}
	enum store_err err = store_account_open(s->app->store, account, &s->acct);
	if (err == STORE_NOTFOUND) {
		login_failed(s, tag); /* the account was deleted meanwhile */
		free(tag);
		return;
	}
	if (err != STORE_OK) {
		imap_tagged_raw(s, tag, "NO", "[UNAVAILABLE] Cannot open the mailboxes: %s",
				store_strerror(err));
		free(tag);
		return;
	}
	if (!usercount_acquire(s->app->user_sessions, account,
			       conn_config(s->c)->max_connections_per_user)) {
		store_account_close(&s->acct);
		imap_tagged_raw(s, tag, "NO", "[LIMIT] Too many sessions for this account");
		free(tag);
		return;
	}
	s->counted = true;
	s->account = xstrdup(account);
	s->state = IMAP_AUTHENTICATED;
	imap_parser_set_limits(s->parser, &imap_parser_limits_default);
	imap_parser_set_literal8(s->parser, true);
	struct buf b = {0};
	buf_printf(&b, "%s OK [CAPABILITY ", tag);
	imap_capability_string(s, &b);
	buf_append_str(&b, "] Logged in\r\n");
	imap_send_buf(s, &b);
	buf_free(&b);
	free(tag);
}

static void start_login(struct imap *s, const char *tag, const char *user, const char *pass)
{
	free(s->tag);
	s->tag = xstrdup(tag);
	s->login_pending = true;
	login_start(s->c, s->app, user, pass, login_done, s);
}

static bool plaintext_ok(struct imap *s, const char *tag)
{
	if (login_plaintext_allowed(s->c))
		return true;
	imap_tagged_raw(s, tag, "NO", "[PRIVACYREQUIRED] Plaintext authentication is disabled without TLS (use STARTTLS)");
	return false;
}

void imap_cmd_login(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	const char *user = nargs == 2 ? imap_arg_astring(&args[0]) : NULL;
	const char *pass = nargs == 2 ? imap_arg_astring(&args[1]) : NULL;
	if (user == NULL || pass == NULL) {
		imap_bad(s, tag, "Usage: LOGIN user password");
		return;
	}
	if (!plaintext_ok(s, tag))
		return;
	start_login(s, tag, user, pass);
	OPENSSL_cleanse((void *)args[1].data, args[1].len);
}

/* A SASL response (initial or continuation), base64; tag is s->tag. */
static void sasl_step(struct imap *s, enum imap_sasl_step step, const char *resp)
{
	char *tag = xstrdup(s->tag);
	if (step == IMAP_SASL_PLAIN) {
		char *user = NULL, *pass = NULL;
		if (sasl_plain_decode(resp, strlen(resp), &user, &pass) < 0)
			imap_tagged_raw(s, tag, "NO", "[AUTHENTICATIONFAILED] Invalid SASL PLAIN response "
					"(or an authorization identity other than the user)");
		else
			start_login(s, tag, user, pass);
		if (pass != NULL)
			OPENSSL_cleanse(pass, strlen(pass));
		free(user);
		free(pass);
		free(tag);
		return;
	}
	char *value = sasl_login_decode(resp, strlen(resp));
	if (value == NULL) {
		imap_bad(s, tag, "Invalid base64 in the SASL LOGIN response");
	} else if (step == IMAP_SASL_LOGIN_PASS) {
		start_login(s, tag, s->sasl_user, value);
		OPENSSL_cleanse(value, strlen(value));
	} else {
		free(s->sasl_user);
		s->sasl_user = xstrdup(value);
		s->sasl = IMAP_SASL_LOGIN_PASS;
		imap_send(s, "+ " SASL_LOGIN_PROMPT_PASS);
	}
	free(value);
	free(tag);
}

void imap_cmd_authenticate(struct imap *s, const char *tag, const struct imap_arg *args,
			   size_t nargs)
{
	const char *mech_name = nargs >= 1 && nargs <= 2 ? imap_arg_atom(&args[0]) : NULL;
	const char *ir = nargs == 2 ? imap_arg_atom(&args[1]) : NULL;
	if (mech_name == NULL || (nargs == 2 && ir == NULL)) {
		imap_bad(s, tag, "Usage: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	enum sasl_mech mech = sasl_mech_parse(mech_name, strlen(mech_name));
	if (mech == SASL_UNKNOWN) {
		imap_no(s, tag, "[CANNOT] Unsupported authentication mechanism");
		return;
	}
	if (!plaintext_ok(s, tag))
		return;
	free(s->tag);
	s->tag = xstrdup(tag);
	/* RFC 4959: "=" is an empty initial response. */
	if (ir != NULL && strcmp(ir, "=") == 0)
		ir = "";
	if (mech == SASL_PLAIN) {
		if (ir != NULL) {
			sasl_step(s, IMAP_SASL_PLAIN, ir);
		} else {
			s->sasl = IMAP_SASL_PLAIN;
			imap_send(s, "+ ");
		}
		return;
	}
	if (ir != NULL && ir[0] != '\0') {
		sasl_step(s, IMAP_SASL_LOGIN_USER, ir);
		return;
	}
	s->sasl = IMAP_SASL_LOGIN_USER;
	imap_send(s, "+ " SASL_LOGIN_PROMPT_USER);
}

void imap_sasl_line(struct imap *s, char *line)
{
	enum imap_sasl_step step = s->sasl;
	s->sasl = IMAP_SASL_NONE;
	if (strcmp(line, "*") == 0) {
		imap_bad(s, s->tag, "Authentication cancelled");
		return;
	}
	sasl_step(s, step, line);
	OPENSSL_cleanse(line, strlen(line));
}
