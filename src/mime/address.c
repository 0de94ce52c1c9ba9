/* RFC 5322 §3.4 address lists, with the obsolete syntax of §4.4 (routes, comments as
 * names, missing parts) and the recovery rules Dovecot uses for broken input, so that
 * ENVELOPE answers agree with it:
 *   - "user" alone is a mailbox without domain; "some words" alone is a display name
 *     without address;
 *   - "addr (Comment)" takes the comment as display name;
 *   - parsing stops at the first unparseable separator.
 */
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>

struct addr_ctx {
	struct rfc822_lexer lx;
	struct buf str;
	struct buf comment;
	bool fill_missing;
	struct mime_address *head, **tail;
};

static char *buf_strdup(struct buf *b)
{
	return xstrndup(b->data != NULL ? (const char *)b->data : "", b->len);
}

static struct mime_address *add_address(struct addr_ctx *ctx)
{
	struct mime_address *a = xcalloc(1, sizeof(*a));
	*ctx->tail = a;
	ctx->tail = &a->next;
	return a;
}

static bool at(struct addr_ctx *ctx, unsigned char c)
{
	return ctx->lx.p < ctx->lx.end && *ctx->lx.p == c;
}

static bool at_end(struct addr_ctx *ctx)
{
	return ctx->lx.p >= ctx->lx.end;
}

/* phrase = 1*word / obs-phrase: words joined with one space. */
static bool parse_phrase(struct addr_ctx *ctx, struct buf *out)
{
	bool any = false;

	rfc822_skip_cfws(&ctx->lx);
	if (at(ctx, '.'))
		return false;
	for (;;) {
		if (at(ctx, '"')) {
			rfc822_parse_quoted(&ctx->lx, out);
		} else {
			const unsigned char *start = ctx->lx.p;
			while (ctx->lx.p < ctx->lx.end &&
			       (rfc822_is_atext(*ctx->lx.p) || *ctx->lx.p == '.'))
				ctx->lx.p++;
			if (ctx->lx.p == start)
				return any;
			buf_append(out, start, (size_t)(ctx->lx.p - start));
		}
		any = true;
		rfc822_skip_cfws(&ctx->lx);
		if (at_end(ctx))
			return true;
		unsigned char c = *ctx->lx.p;
		if (!rfc822_is_atext(c) && c != '"' && c != '.')
			return true;
		buf_append(out, " ", 1);
	}
}

static void parse_domain(struct addr_ctx *ctx, struct mime_address *a)
{
	/* after '@' */
	ctx->lx.p++;
	buf_clear(&ctx->str);
	rfc822_skip_cfws(&ctx->lx);
	if (at(ctx, '['))
		rfc822_parse_domain_literal(&ctx->lx, &ctx->str);
	else
		rfc822_parse_dot_atom(&ctx->lx, &ctx->str);
	a->domain = buf_strdup(&ctx->str);
	rfc822_skip_cfws(&ctx->lx);
}

/* addr-spec = local-part "@" domain, outside angle brackets, with Dovecot's
 * fallbacks for what is not an addr-spec. Returns false when the syntax was broken. */
static bool parse_addr_spec(struct addr_ctx *ctx, struct mime_address *a)
{
	bool quoted = at(ctx, '"');
	bool ok;

	buf_clear(&ctx->str);
	buf_clear(&ctx->comment);
	ctx->lx.comment = &ctx->comment;
	if (quoted)
		ok = rfc822_parse_quoted(&ctx->lx, &ctx->str);
	else
		ok = rfc822_parse_dot_atom(&ctx->lx, &ctx->str);
	rfc822_skip_cfws(&ctx->lx);
	if (ok || quoted)
		a->mailbox = buf_strdup(&ctx->str);
	bool had_domain = at(ctx, '@');
	if (had_domain) {
		parse_domain(ctx, a);
		if (a->domain[0] == '\0')
			ok = false;
	}
	ctx->lx.comment = NULL;
	if (ctx->comment.len > 0) {
		/* obsolete "user@domain (Display Name)" */
		a->name = buf_strdup(&ctx->comment);
	} else if (!had_domain) {
		/* "user" alone is a mailbox without domain; "user more words" is a
		 * display name without address */
		buf_clear(&ctx->str);
		if (a->mailbox != NULL)
			buf_append_str(&ctx->str, a->mailbox);
		size_t before = ctx->str.len;
		buf_append(&ctx->str, " ", 1);
		parse_phrase(ctx, &ctx->str);
		if (ctx->str.len > before + 1) {
			free(a->mailbox);
			a->mailbox = NULL;
			a->name = buf_strdup(&ctx->str);
		} else if (!quoted) {
			a->domain = xstrdup("");
		}
		ok = false;
	}
	return ok;
}

/* "<" [obs-route] addr-spec ">". Returns false on a syntax error. */
static bool parse_angle_addr(struct addr_ctx *ctx, struct mime_address *a)
{
	ctx->lx.p++;
	rfc822_skip_cfws(&ctx->lx);
	if (at(ctx, '@')) {
		/* obs-route = obs-domain-list ":" (RFC 5322 §4.4) */
		struct buf route = {0};
		while (at(ctx, '@') || at(ctx, ',')) {
			if (at(ctx, ',')) {
				ctx->lx.p++;
				rfc822_skip_cfws(&ctx->lx);
				continue;
			}
			ctx->lx.p++;
			if (route.len > 0)
				buf_append(&route, ",", 1);
			buf_append(&route, "@", 1);
			rfc822_skip_cfws(&ctx->lx);
			if (at(ctx, '['))
				rfc822_parse_domain_literal(&ctx->lx, &route);
			else
				rfc822_parse_dot_atom(&ctx->lx, &route);
			rfc822_skip_cfws(&ctx->lx);
		}
		if (at(ctx, ':')) {
			ctx->lx.p++;
			a->route = buf_strdup(&route);
		} else {
			a->route = xstrdup("INVALID_ROUTE");
		}
		buf_free(&route);
		rfc822_skip_cfws(&ctx->lx);
	}
	if (!at(ctx, '>')) {
		buf_clear(&ctx->str);
		if (at(ctx, '"')) {
			rfc822_parse_quoted(&ctx->lx, &ctx->str);
			a->mailbox = buf_strdup(&ctx->str);
		} else if (rfc822_parse_dot_atom(&ctx->lx, &ctx->str)) {
			a->mailbox = buf_strdup(&ctx->str);
		}
		rfc822_skip_cfws(&ctx->lx);
		if (at(ctx, '@'))
			parse_domain(ctx, a);
		if (!at(ctx, '>'))
			return false;
	}
	ctx->lx.p++;
	rfc822_skip_cfws(&ctx->lx);
	return true;
}

static void fill_missing(struct addr_ctx *ctx, struct mime_address *a)
{
	if (!ctx->fill_missing)
		return;
	if (a->mailbox == NULL)
		a->mailbox = xstrdup("MISSING_MAILBOX");
	if (a->domain == NULL || a->domain[0] == '\0') {
		free(a->domain);
		a->domain = xstrdup("MISSING_DOMAIN");
	}
}

/* mailbox = name-addr / addr-spec. Returns false if the syntax was broken. */
static bool parse_mailbox(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->lx.p;
	struct mime_address *a = add_address(ctx);
	bool ok;

	buf_clear(&ctx->str);
	parse_phrase(ctx, &ctx->str);
	if (at(ctx, '<')) {
		if (ctx->str.len > 0)
			a->name = buf_strdup(&ctx->str);
		ok = parse_angle_addr(ctx, a);
		if (!ok) {
			free(a->domain);
			a->domain = xstrdup("SYNTAX_ERROR");
		}
	} else {
		ctx->lx.p = start;
		rfc822_skip_cfws(&ctx->lx);
		ok = parse_addr_spec(ctx, a);
	}
	a->invalid = !ok;
	fill_missing(ctx, a);
	return ok;
}

/* group = display-name ":" [mailbox-list / CFWS] ";" [CFWS]. Returns false if this is
 * not a group (nothing consumed). */
static bool parse_group(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->lx.p;

	buf_clear(&ctx->str);
	if (!parse_phrase(ctx, &ctx->str) || !at(ctx, ':')) {
		ctx->lx.p = start;
		return false;
	}
	ctx->lx.p++;
	struct mime_address *g = add_address(ctx);
	g->mailbox = buf_strdup(&ctx->str);
	g->group_start = true;
	rfc822_skip_cfws(&ctx->lx);
	bool ok = true;
	if (!at_end(ctx) && !at(ctx, ';')) {
		for (;;) {
			if (!parse_mailbox(ctx)) {
				ok = false;
				break;
			}
			if (!at(ctx, ','))
				break;
			ctx->lx.p++;
			if (!rfc822_skip_cfws(&ctx->lx)) {
				ok = false;
				break;
			}
		}
	}
	if (ok && at(ctx, ';')) {
		ctx->lx.p++;
		rfc822_skip_cfws(&ctx->lx);
	} else {
		g->invalid = true;
	}
	add_address(ctx)->group_end = true; /* group end: all NIL */
	return true;
}

struct mime_address *mime_address_parse(const char *s, size_t len, bool fill)
{
	struct addr_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	rfc822_lexer_init(&ctx.lx, s, len);
	ctx.fill_missing = fill;
	ctx.tail = &ctx.head;

	if (rfc822_skip_cfws(&ctx.lx)) {
		/* address-list = address *("," address); parsing stops at anything
		 * else, and an empty element is an address with nothing in it */
		for (unsigned int n = 0; n < 10000; n++) {
			if (!parse_group(&ctx))
				parse_mailbox(&ctx);
			if (!at(&ctx, ','))
				break;
			ctx.lx.p++;
			if (!rfc822_skip_cfws(&ctx.lx))
				break;
		}
	}
	buf_free(&ctx.str);
	buf_free(&ctx.comment);
	return ctx.head;
}

void mime_address_free(struct mime_address **list)
{
	struct mime_address *a = *list;
	while (a != NULL) {
		struct mime_address *next = a->next;
		free(a->name);
		free(a->route);
		free(a->mailbox);
		free(a->domain);
		free(a);
		a = next;
	}
	*list = NULL;
}

void mime_address_write_imap(struct buf *out, const struct mime_address *a)
{
	if (a == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	buf_append(out, "(", 1);
	for (; a != NULL; a = a->next) {
		buf_append(out, "(", 1);
		if (a->name == NULL)
			buf_append_str(out, "NIL");
		else
			imap_append_string_for_humans(out, a->name);
		buf_append(out, " ", 1);
		imap_append_nstring_nolf(out, a->route);
		buf_append(out, " ", 1);
		imap_append_nstring_nolf(out, a->mailbox);
		buf_append(out, " ", 1);
		imap_append_nstring_nolf(out, a->domain);
		buf_append(out, ")", 1);
	}
	buf_append(out, ")", 1);
}
