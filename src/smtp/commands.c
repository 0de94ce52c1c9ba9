/* SMTP/LMTP envelope commands: HELO/EHLO/LHLO, MAIL, RCPT. */
#include "smtp/smtp-private.h"

#include "auth/login.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_cmd_helo(struct smtp *s, const char *verb, char *args)
{
	/* The name goes into the Received: header, so only printable ASCII without spaces. */
	bool ok = args[0] != '\0' && strlen(args) <= 255;
	for (const char *q = args; ok && *q; q++)
		ok = *q > 0x20 && *q < 0x7f;
	if (!ok) {
		smtp_bad_command(s, "501 5.5.4 Usage: %s hostname", verb);
		return;
	}
	smtp_reset_transaction(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = strcasecmp(verb, "HELO") != 0;
	const struct config *cfg = conn_config(s->c);
	if (!s->esmtp) {
		smtp_reply(s, "250 %s", cfg->hostname);
		return;
	}
	struct buf b = {0};
	buf_printf(&b, "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n"
		   "250-SMTPUTF8\r\n250-CHUNKING\r\n", cfg->hostname,
		   (unsigned long long)cfg->max_message_size);
	if (conn_tls_available(s->c))
		buf_append_str(&b, "250-STARTTLS\r\n");
	if (s->submission) {
		buf_append_str(&b, "250-DSN\r\n");
		/* "AUTH=" too: the pre-RFC 2554 form some Outlook versions still look for. */
		if (login_plaintext_allowed(s->c) && s->account == NULL)
			buf_append_str(&b, "250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n");
	}
	buf_append_str(&b, "250 ENHANCEDSTATUSCODES\r\n");
	conn_write(s->c, b.data, b.len);
	buf_free(&b);
}

/* Octets >= 0x80 are UTF-8 (RFC 6531); callers refuse them without SMTPUTF8. */
static bool is_atext(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Parses a mailbox (RFC 5321 §4.1.2: Local-part "@" (Domain / address-literal)) from p,
 * appending its unquoted form to out. Returns the position after it, or NULL. */
static const char *parse_mailbox(const char *p, struct buf *out)
{
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\\' && p[1] >= 0x20 && p[1] < 0x7f)
				c = (unsigned char)*++p;
			else if (c < 0x20 || c >= 0x7f || c == '\\')
				return NULL;
			buf_append(out, &c, 1);
		}
		p++;
	} else {
		const char *start = p;
		while (is_atext((unsigned char)*p) || (*p == '.' && p > start && p[1] != '.' && p[1] != '@'))
			p++;
		if (p == start)
			return NULL;
		buf_append(out, start, (size_t)(p - start));
	}
	if (*p++ != '@')
		return NULL;
	buf_append(out, "@", 1);
	const char *d = p;
	if (*p == '[') {
		p++;
		while (*p && *p != ']' && *p != '[' && *p != '\\' && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
			p++;
		if (*p++ != ']')
			return NULL;
	} else {
		/* Letters, digits, hyphens and dots: labels are checked where domains matter. */
		while ((unsigned char)*p >= 0x80 || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		       *p == '-' || *p == '.')
			p++;
		if (p == d)
			return NULL;
	}
	buf_append(out, d, (size_t)(p - d));
	return p;
}

static bool is_dot_atom(const char *p, const char *end)
{
	if (p == end || *p == '.' || end[-1] == '.')
		return false;
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.' ? p[1] == '.'
			     : !(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c)))
			return false;
	}
	return true;
}

void smtp_format_path(const char *address, struct buf *out)
{
	const char *at = strrchr(address, '@');
	if (at == NULL) {
		buf_append_str(out, address);
		return;
	}
	if (is_dot_atom(address, at)) {
		buf_append(out, address, (size_t)(at - address));
	} else {
		buf_append(out, "\"", 1);
		for (const char *p = address; p < at; p++) {
			if (*p == '"' || *p == '\\')
				buf_append(out, "\\", 1);
			buf_append(out, p, 1);
		}
		buf_append(out, "\"", 1);
	}
	buf_append_str(out, at);
}

/* Parses "FROM:<path> params" or "TO:<path> params" in place. Source routes
 * (RFC 5321 §4.1.1.3) are accepted and dropped; a quoted local part is unquoted. */
int smtp_parse_path(char *args, const char *prefix, char **addr_r, char **params_r)
{
	size_t plen = strlen(prefix);
	if (strncasecmp(args, prefix, plen) != 0)
		return -1;
	const char *p = args + plen;
	while (*p == ' ')
		p++;
	if (*p++ != '<')
		return -1;
	if (*p == '@') {
		/* A-d-l: "@host,@host:" before the mailbox. */
		p = strchr(p, ':');
		if (p == NULL)
			return -1;
		p++;
	}
	struct buf a = {0};
	/* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain is a valid RCPT path. */
	if (strncasecmp(p, "postmaster>", 11) == 0 && strcasecmp(prefix, "TO:") == 0) {
		buf_append(&a, p, 10);
		p += 10;
	} else if (*p != '>') {
		p = parse_mailbox(p, &a);
		if (p == NULL || *p != '>' || a.len > 256) {
			buf_free(&a);
			return -1;
		}
	}
	p++;
	if (*p != '\0' && *p != ' ') {
		buf_free(&a);
		return -1;
	}
	while (*p == ' ')
		p++;
	buf_cstr(&a);
	*addr_r = (char *)a.data;
	*params_r = args + (p - args);
	return 0;
}

static bool is_ascii(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	return true;
}

int smtp_xtext_decode(char *p)
{
	char *out = p;
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x21 || c > 0x7e || c == '=')
			return -1;
		if (c == '+') {
			int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
			if (lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			p += 2;
			/* Decoded values are kept in tab-separated queue files. */
			if (c < 0x20 || c == 0x7f)
				return -1;
		}
		*out++ = (char)c;
	}
	*out = '\0';
	return 0;
}

/* Submission: the sender must be the account or an address that resolves to it (its +tag
 * forms, its aliases). */
static bool sender_owned(struct smtp *s, const char *addr)
{
	char *account = NULL;
	bool owned = addr[0] != '\0' && auth_resolve_rcpt(s->app->auth, addr, &account) == 1 &&
		     strcasecmp(account, s->account) == 0;
	free(account);
	return owned;
}

/* Applies one MAIL parameter; 0 ok, -1 after replying. */
static int mail_param(struct smtp *s, char *tok, uint64_t *size)
{
	if (!s->esmtp)
		goto unknown;
	if (strncasecmp(tok, "SIZE=", 5) == 0) {
		if (parse_u64(tok + 5, strlen(tok + 5), UINT64_MAX, size) < 0)
			goto bad;
	} else if (strcasecmp(tok, "BODY=7BIT") == 0 || strcasecmp(tok, "BODY=8BITMIME") == 0) {
		/* nothing to do: the store keeps 8-bit data as it is */
	} else if (strcasecmp(tok, "SMTPUTF8") == 0) {
		s->smtputf8 = true;
	} else if (s->submission && strncasecmp(tok, "RET=", 4) == 0) {
		if (strcasecmp(tok + 4, "HDRS") == 0)
			s->ret_hdrs = true;
		else if (strcasecmp(tok + 4, "FULL") != 0)
			goto bad;
	} else if (s->submission && strncasecmp(tok, "AUTH=", 5) == 0) {
		/* RFC 4954 §5: a server offering AUTH must take the parameter; the sender is
		 * checked against the authenticated account anyway, so the value is not used. */
		if (smtp_xtext_decode(tok + 5) < 0)
			goto bad;
	} else if (s->submission && strncasecmp(tok, "ENVID=", 6) == 0) {
		if (s->envid != NULL || smtp_xtext_decode(tok + 6) < 0 || strlen(tok + 6) > 100)
			goto bad;
		s->envid = xstrdup(tok + 6);
	} else {
		goto unknown;
	}
	return 0;
bad:
	smtp_bad_command(s, "501 5.5.4 Bad parameter %s", tok);
	return -1;
unknown:
	smtp_bad_command(s, "555 5.5.4 Unsupported parameter %s", tok);
	return -1;
}

void smtp_cmd_mail(struct smtp *s, char *args)
{
	if (s->helo == NULL) {
		smtp_bad_command(s, "503 5.5.1 Send %s first", s->lmtp ? "LHLO" : "EHLO/HELO");
		return;
	}
	if (s->submission && s->account == NULL) {
		smtp_bad_command(s, "530 5.7.0 Authentication required");
		return;
	}
	if (s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 Sender already given");
		return;
	}
	char *addr, *params;
	if (smtp_parse_path(args, "FROM:", &addr, &params) < 0) {
		smtp_bad_command(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	uint64_t size = 0;
	const struct config *cfg = conn_config(s->c);
	for (char *tok = strtok(params, " "); tok != NULL; tok = strtok(NULL, " ")) {
		if (mail_param(s, tok, &size) < 0) {
			free(addr);
			smtp_reset_transaction(s);
			return;
		}
	}
	if (!s->smtputf8 && !is_ascii(addr)) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		free(addr);
		smtp_reset_transaction(s);
		return;
	}
	if (size > cfg->max_message_size) {
		free(addr);
		smtp_reset_transaction(s);
		smtp_reply(s, "552 5.3.4 Message size exceeds the limit of %llu octets",
			   (unsigned long long)cfg->max_message_size);
		return;
	}
	if (s->submission && !sender_owned(s, addr)) {
		log_info("sess=%08x event=sender_rejected user=\"%s\" from=\"%s\"", conn_id(s->c),
			 s->account, addr);
		smtp_reply(s, "553 5.7.1 <%s>: Sender address not owned by user %s", addr, s->account);
		free(addr);
		smtp_reset_transaction(s);
		return;
	}
	s->mail_from = addr;
	s->declared_size = size;
	s->have_mail = true;
	smtp_reply(s, "250 2.1.0 Sender OK");
}

struct postmaster_search {
	struct auth_db *auth;
	char *found;
};

static void try_postmaster(const char *domain, void *ctx)
{
	struct postmaster_search *ps = ctx;
	if (ps->found != NULL)
		return;
	char *candidate = xasprintf("postmaster@%s", domain);
	char *account = NULL;
	if (auth_resolve_rcpt(ps->auth, candidate, &account) == 1)
		ps->found = candidate;
	else
		free(candidate);
	free(account);
}

/* The postmaster of this server: at the host name's domain if it is local, else of the
 * first local domain that has one. */
static char *postmaster_address(struct auth_db *auth, const char *hostname)
{
	struct postmaster_search ps = {.auth = auth};
	try_postmaster(hostname, &ps);
	if (ps.found == NULL)
		auth_domain_list(auth, try_postmaster, &ps);
	return ps.found ? ps.found : xasprintf("postmaster@%s", hostname);
}

/* A destination the queue can route: LDH labels, at least two, no address literal. */
static bool remote_domain_valid(const char *d)
{
	size_t labels = 0, len = 0, total = strlen(d);
	if (total == 0 || total > 253)
		return false;
	for (const char *p = d;; p++) {
		if (*p == '.' || *p == '\0') {
			if (len == 0 || len > 63 || p[-1] == '-' || *(p - len) == '-')
				return false;
			labels++;
			len = 0;
			if (*p == '\0')
				break;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			   (*p >= '0' && *p <= '9') || *p == '-') {
			len++;
		} else {
			return false;
		}
	}
	return labels >= 2;
}

/* DSN parameters of RCPT (RFC 3461 §4.1, §4.2); 0 ok, -1 after replying. */
static int rcpt_params(struct smtp *s, char *params, unsigned *notify, char **orcpt)
{
	for (char *tok = strtok(params, " "); tok != NULL; tok = strtok(NULL, " ")) {
		if (s->submission && strncasecmp(tok, "NOTIFY=", 7) == 0 && *notify == 0) {
			char *save = NULL;
			for (char *v = strtok_r(tok + 7, ",", &save); v != NULL; v = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(v, "NEVER") == 0)
					*notify |= DSN_NOTIFY_NEVER;
				else if (strcasecmp(v, "SUCCESS") == 0)
					*notify |= DSN_NOTIFY_SUCCESS;
				else if (strcasecmp(v, "FAILURE") == 0)
					*notify |= DSN_NOTIFY_FAILURE;
				else if (strcasecmp(v, "DELAY") == 0)
					*notify |= DSN_NOTIFY_DELAY;
				else
					*notify = ~0u;
			}
			if (*notify == 0 || ((*notify & DSN_NOTIFY_NEVER) && *notify != DSN_NOTIFY_NEVER)) {
				smtp_bad_command(s, "501 5.5.4 Bad NOTIFY parameter");
				return -1;
			}
		} else if (s->submission && strncasecmp(tok, "ORCPT=", 6) == 0 && *orcpt == NULL) {
			char *v = tok + 6;
			if (strchr(v, ';') == NULL || smtp_xtext_decode(v) < 0 || strlen(v) > 500) {
				smtp_bad_command(s, "501 5.5.4 Bad ORCPT parameter");
				return -1;
			}
			*orcpt = xstrdup(v);
		} else {
			smtp_bad_command(s, "555 5.5.4 Unsupported RCPT parameter %s", tok);
			return -1;
		}
	}
	return 0;
}

static void add_rcpt(struct smtp *s, char *addr, char *account, unsigned notify, char *orcpt)
{
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof *s->rcpts);
	s->rcpts[s->nrcpts] = (struct smtp_rcpt){addr, account, notify, orcpt};
	s->nrcpts++;
}

void smtp_cmd_rcpt(struct smtp *s, char *args)
{
	if (!s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 Send MAIL first");
		return;
	}
	char *addr = NULL, *params = NULL, *orcpt = NULL, *domain = NULL, *account = NULL;
	unsigned notify = 0;
	if (smtp_parse_path(args, "TO:", &addr, &params) < 0 || addr[0] == '\0') {
		smtp_bad_command(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		goto out;
	}
	if (rcpt_params(s, params, &notify, &orcpt) < 0)
		goto out;
	if (!s->smtputf8 && !is_ascii(addr)) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
		goto out;
	}
	const struct config *cfg = conn_config(s->c);
	if (s->nrcpts >= cfg->max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		goto out;
	}
	/* RFC 5321 §4.5.1: "postmaster" without a domain must be accepted. */
	if (strcasecmp(addr, "postmaster") == 0) {
		free(addr);
		addr = postmaster_address(s->app->auth, cfg->hostname);
	}
	char *at = strrchr(addr, '@');
	domain = at ? xstrdup(at + 1) : NULL;
	if (domain != NULL)
		ascii_lower(domain);
	if (domain == NULL || !auth_domain_is_local(s->app->auth, domain)) {
		if (s->submission && domain != NULL && remote_domain_valid(domain)) {
			/* A stolen password should not make the server a spam cannon. */
			uint32_t limit = cfg->max_remote_rcpts_per_hour;
			if (limit > 0 && s->app->remote_rcpts != NULL &&
			    ratelimit_blocked(s->app->remote_rcpts, s->account, limit)) {
				log_warn("sess=%08x event=rcpt_rate_limited user=\"%s\" limit=%u", conn_id(s->c),
					 s->account, limit);
				smtp_reply(s, "450 4.7.1 <%s>: Limit of %u remote recipients per hour reached, "
					   "try again later", addr, limit);
				goto out;
			}
			if (limit > 0 && s->app->remote_rcpts != NULL)
				ratelimit_fail(s->app->remote_rcpts, s->account);
			add_rcpt(s, addr, NULL, notify, orcpt);
			addr = orcpt = NULL;
			smtp_reply(s, "250 2.1.5 Recipient OK");
			goto out;
		}
		log_info("sess=%08x event=rcpt_rejected rcpt=\"%s\" reason=relay", conn_id(s->c), addr);
		if (s->submission)
			smtp_reply(s, "553 5.1.2 <%s>: Bad destination domain", addr);
		else
			smtp_reply(s, "550 5.7.1 <%s>: Relaying denied", addr);
		goto out;
	}
	int r = auth_resolve_rcpt(s->app->auth, addr, &account);
	if (r < 0) {
		smtp_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
		goto out;
	}
	if (r == 0) {
		log_info("sess=%08x event=rcpt_rejected rcpt=\"%s\" reason=unknown", conn_id(s->c), addr);
		smtp_reply(s, "550 5.1.1 <%s>: No such user here", addr);
		goto out;
	}
	add_rcpt(s, addr, account, notify, orcpt);
	addr = account = orcpt = NULL;
	smtp_reply(s, "250 2.1.5 Recipient OK");
out:
	free(addr);
	free(account);
	free(orcpt);
	free(domain);
}
