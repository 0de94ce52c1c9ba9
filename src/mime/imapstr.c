/* IMAP string output (RFC 3501 §4.3 and §9; RFC 9051 §4.3). A string is sent quoted when
 * it can be, else as a literal "{n}\r\n" + bytes: quoted strings cannot hold CR, LF,
 * NUL or 8-bit bytes, and a few escaped '"' / '\' are cheaper quoted than as a literal.
 * The choices follow what Dovecot sends, so clients see the same bytes from both. */
#include "mime/mime-private.h"

#include <string.h>

static void append_literal(struct buf *out, const char *s, size_t len)
{
	buf_printf(out, "{%zu}\r\n", len);
	buf_append(out, s, len);
}

static void append_quoted(struct buf *out, const char *s)
{
	buf_append(out, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(out, "\\", 1);
		buf_append(out, s, 1);
	}
	buf_append(out, "\"", 1);
}

void imap_append_nstring(struct buf *out, const char *s)
{
	unsigned int escapes = 0;

	if (s == NULL) {
		buf_append_str(out, "NIL");
		return;
	}
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			if (++escapes <= 4)
				continue;
			/* more escaping than a literal costs */
			append_literal(out, s, strlen(s));
			return;
		}
		if (c == '\r' || c == '\n' || c >= 0x80) {
			append_literal(out, s, strlen(s));
			return;
		}
	}
	append_quoted(out, s);
}

void imap_append_nstring_nolf(struct buf *out, const char *s)
{
	if (s == NULL || strpbrk(s, "\r\n") == NULL) {
		imap_append_nstring(out, s);
		return;
	}
	struct buf tmp = {0};
	for (; *s != '\0'; s++) {
		if (*s != '\r' && *s != '\n')
			buf_append(&tmp, s, 1);
	}
	imap_append_nstring(out, buf_cstr(&tmp));
	buf_free(&tmp);
}

static bool is_lwsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void imap_append_string_for_humans(struct buf *out, const char *s)
{
	size_t len = strlen(s);
	bool modify = false, last_lwsp = true, only_ws = true;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_lwsp(c)) {
			if (c != ' ' || last_lwsp)
				modify = true;
			last_lwsp = true;
			continue;
		}
		if (c == '"' || c == '\\' || c >= 0x80)
			modify = true;
		last_lwsp = false;
		only_ws = false;
	}
	if (last_lwsp && len > 0)
		modify = true;
	if (!modify) {
		buf_append(out, "\"", 1);
		buf_append(out, s, len);
		buf_append(out, "\"", 1);
		return;
	}
	if (only_ws) {
		buf_append_str(out, "\"\"");
		return;
	}
	/* Collapse whitespace runs to one space, drop it at both ends, send a literal. */
	struct buf tmp = {0};
	last_lwsp = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_lwsp(c)) {
			if (!last_lwsp)
				buf_append(&tmp, " ", 1);
			last_lwsp = true;
			continue;
		}
		buf_append(&tmp, &c, 1);
		last_lwsp = false;
	}
	if (tmp.len > 0 && tmp.data[tmp.len - 1] == ' ')
		tmp.len--;
	append_literal(out, (const char *)tmp.data, tmp.len);
	buf_free(&tmp);
}
