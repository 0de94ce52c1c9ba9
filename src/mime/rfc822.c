/* RFC 5322 §3.2 lexical tokens: CFWS, atoms, quoted strings, domain literals, and the
 * RFC 2045 §5.1 token. Input is a counted string without NUL bytes. Everything is
 * lenient: an unterminated quoted string or comment runs to the end of the input. */
#include "mime/mime-private.h"

#include <string.h>

void rfc822_lexer_init(struct rfc822_lexer *lx, const char *s, size_t len)
{
	lx->p = (const unsigned char *)s;
	lx->end = lx->p + len;
	lx->comment = NULL;
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool rfc822_is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true; /* RFC 6532 §3.2: UTF-8 in atoms */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool rfc822_is_ttext(unsigned char c)
{
	if (c <= ' ' || c == 0x7f)
		return false;
	if (c >= 0x80)
		return true;
	return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

bool rfc822_skip_cfws(struct rfc822_lexer *lx)
{
	for (;;) {
		while (lx->p < lx->end && is_wsp(*lx->p))
			lx->p++;
		if (lx->p >= lx->end)
			return false;
		if (*lx->p != '(')
			return true;
		/* RFC 5322 §3.2.2: comments nest; quoted-pair inside. */
		unsigned int level = 0;
		if (lx->comment != NULL)
			buf_clear(lx->comment);
		while (lx->p < lx->end) {
			unsigned char c = *lx->p++;
			if (c == '\\' && lx->p < lx->end) {
				if (lx->comment != NULL)
					buf_append(lx->comment, lx->p, 1);
				lx->p++;
				continue;
			}
			if (c == '(') {
				if (level++ == 0)
					continue;
			} else if (c == ')') {
				if (--level == 0)
					break;
			}
			if (lx->comment != NULL)
				buf_append(lx->comment, &c, 1);
		}
	}
}

bool rfc822_parse_atom(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;
	while (lx->p < lx->end && rfc822_is_atext(*lx->p))
		lx->p++;
	if (lx->p == start)
		return false;
	buf_append(out, start, (size_t)(lx->p - start));
	return true;
}

bool rfc822_parse_quoted(struct rfc822_lexer *lx, struct buf *out)
{
	if (lx->p >= lx->end || *lx->p != '"')
		return false;
	lx->p++;
	while (lx->p < lx->end) {
		unsigned char c = *lx->p++;
		if (c == '"')
			return true;
		if (c == '\\' && lx->p < lx->end) {
			buf_append(out, lx->p, 1);
			lx->p++;
			continue;
		}
		if (c == '\r' || c == '\n')
			continue; /* RFC 5322 §3.2.4: folding is not part of the content */
		buf_append(out, &c, 1);
	}
	return false; /* unterminated */
}

bool rfc822_parse_dot_atom(struct rfc822_lexer *lx, struct buf *out)
{
	/* Lenient: leading, trailing and repeated dots are taken as written ("a..b",
	 * ".a", "a."), as mailers produce them; CFWS may surround dots (obs-domain). */
	bool any = false, last_dot = false;
	for (;;) {
		if (lx->p < lx->end && *lx->p == '.') {
			buf_append(out, ".", 1);
			lx->p++;
			last_dot = true;
		} else if (rfc822_parse_atom(lx, out)) {
			last_dot = false;
		} else {
			return any;
		}
		any = true;
		const unsigned char *save = lx->p;
		rfc822_skip_cfws(lx);
		if (lx->p < lx->end && (*lx->p == '.' || (last_dot && rfc822_is_atext(*lx->p))))
			continue;
		lx->p = save;
		return true;
	}
}

bool rfc822_parse_token(struct rfc822_lexer *lx, struct buf *out)
{
	const unsigned char *start = lx->p;
	while (lx->p < lx->end && rfc822_is_ttext(*lx->p))
		lx->p++;
	if (lx->p == start)
		return false;
	buf_append(out, start, (size_t)(lx->p - start));
	return true;
}

bool rfc822_parse_domain_literal(struct rfc822_lexer *lx, struct buf *out)
{
	if (lx->p >= lx->end || *lx->p != '[')
		return false;
	while (lx->p < lx->end) {
		unsigned char c = *lx->p++;
		if (c == '\\' && lx->p < lx->end) {
			buf_append(out, &c, 1);
			c = *lx->p++;
		} else if (c == '\r' || c == '\n') {
			continue;
		}
		buf_append(out, &c, 1);
		if (c == ']')
			break;
	}
	return true;
}
