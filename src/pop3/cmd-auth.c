/* POP3 AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH, QUIT, and opening the maildrop. */
#include "pop3/pop3-private.h"

#include "auth/login.h"
#include "auth/sasl.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int server_retention(struct pop3 *p)
{
	return conn_config(p->c)->pop3_retention_days;
}

void pop3_cmd_capa(struct pop3 *p, char *args)
{
	(void)args;
	bool plain_ok = login_plaintext_allowed(p->c);
	struct buf b = {0};
	buf_append_str(&b, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			   "AUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (p->state == POP3_AUTHORIZATION) {
		if (plain_ok)
			buf_append_str(&b, "USER\r\nSASL PLAIN LOGIN\r\n");
		if (conn_tls_available(p->c))
			buf_append_str(&b, "STLS\r\n");
		int days = server_retention(p);
		/* RFC 2449 §6.7: "USER" means the value may differ per account. */
		if (days > 0)
			buf_printf(&b, "EXPIRE %d USER\r\n", days);
		else
			buf_append_str(&b, "EXPIRE NEVER USER\r\n");
	} else if (p->retention_days > 0) {
		buf_printf(&b, "EXPIRE %d\r\n", p->retention_days);
	} else {
		buf_append_str(&b, "EXPIRE NEVER\r\n");
	}
	buf_append_str(&b, "LOGIN-DELAY 0\r\nIMPLEMENTATION sarn\r\n.\r\n");
	conn_write(p->c, b.data, b.len);
	buf_free(&b);
}

void pop3_cmd_stls(struct pop3 *p, char *args)
{
	(void)args;
	if (conn_tls_active(p->c)) {
		pop3_bad_command(p, "TLS is already active");
		return;
	}
	if (!conn_tls_available(p->c)) {
		pop3_reply_err(p, "[SYS/PERM] TLS is not configured");
		return;
	}
	/* RFC 2595 §4: forget what was said before TLS. */
	free(p->user);
	p->user = NULL;
	pop3_reply_ok(p, "Begin TLS negotiation");
	conn_starttls(p->c);
}

static bool plaintext_check(struct pop3 *p)
{
	if (login_plaintext_allowed(p->c))
		return true;
	pop3_reply_err(p, "[AUTH] Plaintext authentication is not allowed without TLS (use STLS)");
	return false;
}

void pop3_cmd_user(struct pop3 *p, char *args)
{
	if (!plaintext_check(p))
		return;
	if (args[0] == '\0' || strlen(args) > 254) {
		pop3_bad_command(p, "Usage: USER name");
		return;
	}
	free(p->user);
	p->user = xstrdup(args);
	pop3_reply_ok(p, "Send your password");
}

static enum store_err open_maildrop(struct pop3 *p)
{
	struct app *app = p->app;
	enum store_err err = store_account_open(app->store, p->account, &p->acct);
	if (err != STORE_OK)
		return err;
	if (conn_config(p->c)->pop3_lock && (err = store_pop3_lock(p->acct)) != STORE_OK)
		return err;
	int days = -1;
	if (auth_retention_get(app->auth, p->account, &days) < 0 || days < 0)
		days = server_retention(p);
	p->retention_days = days;
	if (days > 0) {
		size_t expired = 0;
		int64_t before = (int64_t)time(NULL) - (int64_t)days * 86400;
		err = store_expire_downloaded(p->acct, NULL, before, &expired);
		if (err != STORE_OK)
			return err;
		if (expired > 0)
			log_info("sess=%08x event=pop3_expire user=\"%s\" messages=%zu", conn_id(p->c),
				 p->account, expired);
	}
	struct store_mailbox_info info;
	struct store_msg *msgs = NULL;
	size_t n = 0;
	err = store_mailbox_info(p->acct, NULL, &info);
	if (err == STORE_OK)
		err = store_mailbox_messages(p->acct, NULL, &msgs, &n);
	if (err != STORE_OK)
		return err;
	p->uidvalidity = info.uidvalidity;
	p->msgs = xcalloc(n, sizeof *p->msgs);
	p->nmsgs = n;
	for (size_t i = 0; i < n; i++) {
		p->msgs[i].uid = msgs[i].uid;
		/* RETR adds a final CRLF when the message lacks one. */
		p->msgs[i].size = msgs[i].size + (msgs[i].ends_in_crlf ? 0 : 2);
		p->msgs[i].already_downloaded = msgs[i].downloaded != 0;
	}
	free(msgs);
	return STORE_OK;
}

static void login_done(void *sess, enum login_result result, const char *account)
{
	struct pop3 *p = sess;
	p->state = POP3_AUTHORIZATION;
	free(p->user);
	p->user = NULL;
	switch (result) {
	case LOGIN_OK:
		break;
	case LOGIN_FAILED:
		pop3_bad_command(p, "[AUTH] Invalid user name or password");
		return;
	case LOGIN_THROTTLED:
		pop3_reply_err(p, "[AUTH] Too many failed logins; try again later");
		return;
	case LOGIN_TEMPFAIL:
		pop3_reply_err(p, "[SYS/TEMP] Account database unavailable; try again later");
		return;
	}
	if (!usercount_acquire(p->app->user_sessions, account,
			       conn_config(p->c)->max_connections_per_user)) {
		pop3_reply_err(p, "[SYS/TEMP] Too many sessions for this account");
		return;
	}
	p->counted = true;
	p->account = xstrdup(account);
	enum store_err err = open_maildrop(p);
	if (err != STORE_OK) {
		if (err == STORE_INUSE)
			pop3_reply_err(p, "[IN-USE] Mailbox is locked by another POP3 session");
		else
			pop3_reply_err(p, "[SYS/TEMP] Cannot open mailbox: %s", store_strerror(err));
		store_account_close(&p->acct);
		usercount_release(p->app->user_sessions, p->account);
		p->counted = false;
		free(p->account);
		p->account = NULL;
		free(p->msgs);
		p->msgs = NULL;
		p->nmsgs = 0;
		return;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < p->nmsgs; i++)
		total += p->msgs[i].size;
	p->state = POP3_TRANSACTION;
	pop3_reply_ok(p, "Logged in; %zu messages (%llu octets)", p->nmsgs,
		      (unsigned long long)total);
}

static void start_login(struct pop3 *p, const char *user, const char *pass)
{
	p->state = POP3_AUTHORIZATION | POP3_LOGIN_PENDING;
	login_start(p->c, p->app, user, pass, login_done, p);
}

void pop3_cmd_pass(struct pop3 *p, char *args)
{
	if (!plaintext_check(p))
		return;
	if (p->user == NULL) {
		pop3_bad_command(p, "Send USER first");
		return;
	}
	char *user = xstrdup(p->user);
	start_login(p, user, args);
	OPENSSL_cleanse(args, strlen(args));
	free(user);
}

static void sasl_plain(struct pop3 *p, const char *resp)
{
	char *user = NULL, *pass = NULL;
	if (sasl_plain_decode(resp, strlen(resp), &user, &pass) < 0) {
		pop3_bad_command(p, "[AUTH] Invalid SASL PLAIN response");
		return;
	}
	start_login(p, user, pass);
	OPENSSL_cleanse(pass, strlen(pass));
	free(user);
	free(pass);
}

void pop3_cmd_auth(struct pop3 *p, char *args)
{
	if (args[0] == '\0') {
		/* RFC 5034 §4 allows no list, but many clients probe with a bare AUTH. */
		conn_printf(p->c, "+OK Mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	if (!plaintext_check(p))
		return;
	size_t n = strcspn(args, " ");
	char *ir = args[n] ? args + n + 1 : NULL;
	enum sasl_mech mech = sasl_mech_parse(args, n);
	if (mech == SASL_UNKNOWN) {
		pop3_reply_err(p, "Unsupported authentication mechanism");
		return;
	}
	if (mech == SASL_PLAIN) {
		if (ir != NULL) {
			/* "=" is an empty initial response (RFC 5034 §4), which PLAIN cannot use. */
			sasl_plain(p, strcmp(ir, "=") == 0 ? "" : ir);
		} else {
			p->sasl = SASL_STEP_PLAIN;
			conn_printf(p->c, "+ \r\n");
		}
		return;
	}
	p->sasl = SASL_STEP_LOGIN_USER;
	if (ir != NULL) {
		pop3_sasl_continue(p, ir); /* the initial response is the user name */
		return;
	}
	conn_printf(p->c, "+ " SASL_LOGIN_PROMPT_USER "\r\n");
}

void pop3_sasl_continue(struct pop3 *p, char *line)
{
	enum pop3_sasl step = p->sasl;
	p->sasl = SASL_STEP_NONE;
	if (strcmp(line, "*") == 0) {
		pop3_reply_err(p, "Authentication cancelled");
		return;
	}
	if (step == SASL_STEP_PLAIN) {
		sasl_plain(p, line);
		return;
	}
	char *value = sasl_login_decode(line, strlen(line));
	if (value == NULL) {
		free(p->user);
		p->user = NULL;
		pop3_bad_command(p, "[AUTH] Invalid base64 in SASL LOGIN response");
		return;
	}
	if (step == SASL_STEP_LOGIN_PASS && p->user != NULL) {
		char *user = xstrdup(p->user);
		start_login(p, user, value);
		free(user);
	} else {
		free(p->user);
		p->user = xstrdup(value);
		p->sasl = SASL_STEP_LOGIN_PASS;
		conn_printf(p->c, "+ " SASL_LOGIN_PROMPT_PASS "\r\n");
	}
	OPENSSL_cleanse(value, strlen(value));
	free(value);
}

void pop3_cmd_quit(struct pop3 *p, char *args)
{
	(void)args;
	if (p->state == POP3_TRANSACTION) {
		pop3_record_downloads(p);
		/* UPDATE state (RFC 1939 §6): only now do deletions take effect. */
		uint32_t *uids = xcalloc(p->nmsgs, sizeof *uids);
		size_t n = 0;
		for (size_t i = 0; i < p->nmsgs; i++)
			if (p->msgs[i].deleted)
				uids[n++] = p->msgs[i].uid;
		enum store_err err = n ? store_expunge(p->acct, NULL, uids, n) : STORE_OK;
		free(uids);
		if (err != STORE_OK) {
			pop3_reply_err(p, "[SYS/TEMP] Deleted messages were not removed: %s",
				       store_strerror(err));
			conn_close(p->c);
			return;
		}
		log_info("sess=%08x event=pop3_update user=\"%s\" deleted=%zu", conn_id(p->c),
			 p->account, n);
		pop3_reply_ok(p, "Logging out (%zu messages deleted)", n);
	} else {
		pop3_reply_ok(p, "Logging out");
	}
	conn_close(p->c);
}
