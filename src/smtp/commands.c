/* SMTP/LMTP envelope commands: HELO/EHLO/LHLO, MAIL, RCPT. */
#include "smtp/smtp-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void smtp_cmd_helo(struct smtp *s, const char *verb, char *args)
{
	if (args[0] == '\0' || strchr(args, ' ') != NULL || strlen(args) > 255) {
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

/* Parses "FROM:<path> params" or "TO:<path> params" in place. Source routes
 * (RFC 5321 §4.1.1.3) are dropped; a quoted local part is unquoted. Returns 0, or -1. */
int smtp_parse_path(char *args, const char *prefix, char **addr_r, char **params_r)
{
	size_t plen = strlen(prefix);
	if (strncasecmp(args, prefix, plen) != 0)
		return -1;
	char *p = args + plen;
	while (*p == ' ')
		p++;
	if (*p != '<')
		return -1;
	p++;
	char *end = NULL;
	bool quoted = false;
	for (char *q = p; *q; q++) {
		if (quoted && *q == '\\' && q[1] != '\0') {
			q++;
			continue;
		}
		if (*q == '"')
			quoted = !quoted;
		else if (!quoted && *q == '>') {
			end = q;
			break;
		}
	}
	if (end == NULL)
		return -1;
	*end = '\0';
	char *params = end + 1;
	while (*params == ' ')
		params++;
	if (*p == '@') {
		char *colon = strchr(p, ':');
		if (colon == NULL)
			return -1;
		p = colon + 1;
	}
	struct buf a = {0};
	quoted = false;
	for (char *q = p; *q; q++) {
		unsigned char ch = (unsigned char)*q;
		if (ch < 0x20 || ch == 0x7f) {
			buf_free(&a);
			return -1;
		}
		if (*q == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && *q == '\\' && q[1] != '\0')
			q++;
		buf_append(&a, q, 1);
	}
	if (quoted || a.len > 256) {
		buf_free(&a);
		return -1;
	}
	buf_cstr(&a);
	*addr_r = (char *)a.data;
	*params_r = params;
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
		addr = xasprintf("postmaster@%s", cfg->hostname);
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
