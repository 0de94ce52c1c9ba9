/* SMTP/LMTP envelope commands: HELO/EHLO/LHLO, MAIL, RCPT. */
#include "smtp/smtp-private.h"

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
	buf_printf(&b, "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n", cfg->hostname,
		   (unsigned long long)cfg->max_message_size);
	if (conn_tls_available(s->c))
		buf_append_str(&b, "250-STARTTLS\r\n");
	buf_append_str(&b, "250 ENHANCEDSTATUSCODES\r\n");
	conn_write(s->c, b.data, b.len);
	buf_free(&b);
}

static bool is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
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
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		       *p == '-' || *p == '.')
			p++;
		if (p == d)
			return NULL;
	}
	buf_append(out, d, (size_t)(p - d));
	return p;
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

void smtp_cmd_mail(struct smtp *s, char *args)
{
	if (s->helo == NULL) {
		smtp_bad_command(s, "503 5.5.1 Send %s first", s->lmtp ? "LHLO" : "EHLO/HELO");
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
		if (strncasecmp(tok, "SIZE=", 5) == 0 && s->esmtp) {
			if (parse_u64(tok + 5, strlen(tok + 5), UINT64_MAX, &size) < 0) {
				free(addr);
				smtp_bad_command(s, "501 5.5.4 Bad SIZE parameter");
				return;
			}
		} else if (strcasecmp(tok, "BODY=7BIT") == 0 || strcasecmp(tok, "BODY=8BITMIME") == 0) {
			if (!s->esmtp)
				goto unknown;
		} else {
		unknown:
			free(addr);
			smtp_bad_command(s, "555 5.5.4 Unsupported parameter %s", tok);
			return;
		}
	}
	if (size > cfg->max_message_size) {
		free(addr);
		smtp_reply(s, "552 5.3.4 Message size exceeds the limit of %llu octets",
			   (unsigned long long)cfg->max_message_size);
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

void smtp_cmd_rcpt(struct smtp *s, char *args)
{
	if (!s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 Send MAIL first");
		return;
	}
	char *addr = NULL, *params = NULL;
	if (smtp_parse_path(args, "TO:", &addr, &params) < 0 || addr[0] == '\0') {
		free(addr);
		smtp_bad_command(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (params[0] != '\0') {
		free(addr);
		smtp_bad_command(s, "555 5.5.4 Unsupported RCPT parameters");
		return;
	}
	const struct config *cfg = conn_config(s->c);
	if (s->nrcpts >= cfg->max_recipients) {
		free(addr);
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	/* RFC 5321 §4.5.1: "postmaster" without a domain must be accepted. */
	if (strcasecmp(addr, "postmaster") == 0) {
		free(addr);
		addr = postmaster_address(s->app->auth, cfg->hostname);
	}
	char *at = strrchr(addr, '@');
	char *domain = at ? xstrdup(at + 1) : NULL;
	if (domain != NULL)
		ascii_lower(domain);
	if (domain == NULL || !auth_domain_is_local(s->app->auth, domain)) {
		log_info("sess=%08x event=rcpt_rejected rcpt=\"%s\" reason=relay", conn_id(s->c), addr);
		smtp_reply(s, "550 5.7.1 <%s>: Relaying denied", addr);
		free(domain);
		free(addr);
		return;
	}
	free(domain);
	char *account = NULL;
	int r = auth_resolve_rcpt(s->app->auth, addr, &account);
	if (r < 0) {
		smtp_reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
		free(addr);
		return;
	}
	if (r == 0) {
		log_info("sess=%08x event=rcpt_rejected rcpt=\"%s\" reason=unknown", conn_id(s->c), addr);
		smtp_reply(s, "550 5.1.1 <%s>: No such user here", addr);
		free(addr);
		return;
	}
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof *s->rcpts);
	s->rcpts[s->nrcpts].address = addr;
	s->rcpts[s->nrcpts].account = account;
	s->nrcpts++;
	smtp_reply(s, "250 2.1.5 Recipient OK");
}
