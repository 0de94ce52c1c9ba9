/* Quoting strings for responses. */
#include "imap/quote.h"

#include <string.h>
#include <strings.h>

#include "imap/utf7.h"

static bool atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

bool imap_is_atom(const void *data, size_t len)
{
	const unsigned char *s = data;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!atom_char(s[i]))
			return false;
	return true;
}

static bool quotable(const unsigned char *s, size_t len, unsigned flags)
{
	bool eight = false;
	if (len > IMAP_QUOTED_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		/* TEXT-CHAR: any CHAR except CR and LF; CHAR excludes NUL. */
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return false;
		if (s[i] >= 0x80)
			eight = true;
	}
	if (eight)
		return (flags & IMAP_QUOTE_UTF8) && imap_utf8_valid(s, len);
	return true;
}

int imap_write_string(struct buf *out, const void *data, size_t len, unsigned flags)
{
	const unsigned char *s = data;
	if (len > 0 && quotable(s, len, flags)) {
		buf_reserve(out, len + 2);
		buf_append(out, "\"", 1);
		size_t start = 0;
		for (size_t i = 0; i < len; i++) {
			if (s[i] != '"' && s[i] != '\\')
				continue;
			buf_append(out, s + start, i - start);
			buf_append(out, "\\", 1);
			start = i;
		}
		buf_append(out, s + start, len - start);
		buf_append(out, "\"", 1);
		return 0;
	}
	if (len == 0) {
		buf_append(out, "\"\"", 2);
		return 0;
	}
	bool nul = memchr(s, '\0', len) != NULL;
	if (nul && !(flags & IMAP_QUOTE_BINARY))
		return -1;
	buf_printf(out, "%s{%zu}\r\n", nul ? "~" : "", len);
	buf_append(out, s, len);
	return 0;
}

int imap_write_astring(struct buf *out, const void *data, size_t len, unsigned flags)
{
	const unsigned char *s = data;
	bool atom = len > 0 && !(len == 3 && strncasecmp(data, "NIL", 3) == 0);
	for (size_t i = 0; atom && i < len; i++)
		atom = atom_char(s[i]) || s[i] == ']';
	if (atom) {
		buf_append(out, s, len);
		return 0;
	}
	return imap_write_string(out, data, len, flags);
}

int imap_write_nstring(struct buf *out, const void *data, size_t len, unsigned flags)
{
	if (data == NULL) {
		buf_append(out, "NIL", 3);
		return 0;
	}
	return imap_write_string(out, data, len, flags);
}
