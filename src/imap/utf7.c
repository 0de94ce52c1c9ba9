/* Modified UTF-7 (RFC 3501 §5.1.3), UTF-8 checks and mailbox-name validation. */
#include "core/util.h"
#include "imap/utf7.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"

size_t imap_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	if (len == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	size_t n;
	uint32_t cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

bool imap_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = imap_utf8_decode(s + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static void put_utf8(struct buf *out, uint32_t cp)
{
	unsigned char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, b, n);
}

/* Modified BASE64: RFC 2045 base64 with "," for "/", no padding. */
static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Modified BASE64 uses "," where base64 has "/". */
static int b64val(unsigned char c)
{
	return c == ',' ? 63 : c == '/' ? -1 : base64_value(c);
}

static int utf7_fail(struct buf *out, const char **error_r, const char *reason)
{
	buf_free(out);
	*error_r = reason;
	return -1;
}

int imap_utf7_to_utf8(const char *in, size_t len, char **out_r, const char **error_r)
{
	const unsigned char *s = (const unsigned char *)in;
	struct buf out = {0};
	bool just_shifted = false; /* the previous byte closed a shift */
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x20 || c > 0x7e)
			return utf7_fail(&out, error_r, "Invalid character in modified UTF-7");
		if (c != '&') {
			buf_append(&out, &c, 1);
			just_shifted = false;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			buf_append(&out, "&", 1);
			just_shifted = false;
			i++;
			continue;
		}
		/* RFC 3501 §5.1.3: null shifts ("-&" while in BASE64) are not permitted. */
		if (just_shifted)
			return utf7_fail(&out, error_r, "Adjacent shifts in modified UTF-7");

		uint32_t bits = 0, high = 0;
		unsigned nbits = 0;
		for (;;) {
			if (i >= len)
				return utf7_fail(&out, error_r, "Unterminated shift in modified UTF-7");
			c = s[i++];
			if (c == '-')
				break;
			int v = b64val(c);
			if (v < 0)
				return utf7_fail(&out, error_r, "Invalid BASE64 in modified UTF-7");
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			uint32_t unit = (bits >> nbits) & 0xffff;
			bits &= (1u << nbits) - 1;
			if (high != 0) {
				if (unit < 0xdc00 || unit > 0xdfff)
					return utf7_fail(&out, error_r,
							 "Unpaired surrogate in modified UTF-7");
				put_utf8(&out, 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00));
				high = 0;
				continue;
			}
			if (unit >= 0xd800 && unit <= 0xdbff) {
				high = unit;
				continue;
			}
			if (unit >= 0xdc00 && unit <= 0xdfff)
				return utf7_fail(&out, error_r, "Unpaired surrogate in modified UTF-7");
			/* Printable US-ASCII (and "&") must represent itself. */
			if (unit >= 0x20 && unit <= 0x7e)
				return utf7_fail(&out, error_r, "Non-canonical modified UTF-7");
			if (unit == 0)
				return utf7_fail(&out, error_r, "NUL in modified UTF-7");
			put_utf8(&out, unit);
		}
		if (high != 0)
			return utf7_fail(&out, error_r, "Unpaired surrogate in modified UTF-7");
		/* The shift held no character at all ("&-" is handled above, so this is "&" + only
		 * padding), or more than the padding of the last unit, or non-zero padding. */
		if (nbits >= 6 || bits != 0)
			return utf7_fail(&out, error_r, "Invalid BASE64 padding in modified UTF-7");
		just_shifted = true;
	}
	buf_cstr(&out);
	*out_r = out.data != NULL ? (char *)out.data : xstrdup("");
	return 0;
}

static void b64_flush(struct buf *out, uint32_t *bits, unsigned *nbits)
{
	if (*nbits > 0) {
		unsigned v = (*bits << (6 - *nbits)) & 0x3f;
		buf_append(out, &b64chars[v], 1);
	}
	*bits = 0;
	*nbits = 0;
	buf_append(out, "-", 1);
}

static void b64_put16(struct buf *out, uint32_t *bits, unsigned *nbits, uint32_t unit)
{
	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		unsigned v = (*bits >> *nbits) & 0x3f;
		buf_append(out, &b64chars[v], 1);
	}
	*bits &= (1u << *nbits) - 1;
}

int imap_utf8_to_utf7(const char *in, size_t len, char **out_r, const char **error_r)
{
	const unsigned char *s = (const unsigned char *)in;
	struct buf out = {0};
	bool shifted = false;
	uint32_t bits = 0;
	unsigned nbits = 0;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = imap_utf8_decode(s + i, len - i, &cp);
		if (n == 0)
			return utf7_fail(&out, error_r, "Invalid UTF-8");
		if (cp == 0)
			return utf7_fail(&out, error_r, "NUL in name");
		i += n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (shifted) {
				b64_flush(&out, &bits, &nbits);
				shifted = false;
			}
			if (cp == '&')
				buf_append(&out, "&-", 2);
			else
				buf_append(&out, &(unsigned char){(unsigned char)cp}, 1);
			continue;
		}
		if (!shifted) {
			buf_append(&out, "&", 1);
			shifted = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			b64_put16(&out, &bits, &nbits, 0xd800 + (cp >> 10));
			b64_put16(&out, &bits, &nbits, 0xdc00 + (cp & 0x3ff));
		} else {
			b64_put16(&out, &bits, &nbits, cp);
		}
	}
	if (shifted)
		b64_flush(&out, &bits, &nbits);
	buf_cstr(&out);
	*out_r = out.data != NULL ? (char *)out.data : xstrdup("");
	return 0;
}

bool imap_mailbox_is_inbox(const char *name, size_t len)
{
	return len == 5 && strncasecmp(name, "INBOX", 5) == 0;
}

int imap_mailbox_normalize(const char *name, size_t len, char **canon_r, const char **error_r)
{
	const unsigned char *s = (const unsigned char *)name;

	if (len == 0) {
		*error_r = "Empty mailbox name";
		return -1;
	}
	if (len > IMAP_MAILBOX_NAME_MAX) {
		*error_r = "Mailbox name too long";
		return -1;
	}
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = imap_utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			*error_r = "Mailbox name is not valid UTF-8";
			return -1;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			*error_r = "Control character in mailbox name";
			return -1;
		}
		if (cp == '%' || cp == '*') {
			*error_r = "Wildcard character in mailbox name";
			return -1;
		}
		i += n;
	}
	if (s[0] == IMAP_HIERARCHY_SEP) {
		*error_r = "Mailbox name starts with the hierarchy separator";
		return -1;
	}
	if (s[len - 1] == IMAP_HIERARCHY_SEP) {
		*error_r = "Mailbox name ends with the hierarchy separator";
		return -1;
	}
	size_t start = 0, depth = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != IMAP_HIERARCHY_SEP)
			continue;
		size_t clen = i - start;
		if (clen == 0) {
			*error_r = "Empty hierarchy level in mailbox name";
			return -1;
		}
		if ((clen == 1 && s[start] == '.') ||
		    (clen == 2 && s[start] == '.' && s[start + 1] == '.')) {
			*error_r = "\".\" or \"..\" in mailbox name";
			return -1;
		}
		if (clen > IMAP_MAILBOX_COMPONENT_MAX) {
			*error_r = "Mailbox name level too long";
			return -1;
		}
		if (++depth > IMAP_MAILBOX_DEPTH_MAX) {
			*error_r = "Mailbox name has too many levels";
			return -1;
		}
		start = i + 1;
	}
	char *canon = xstrndup(name, len);
	const char *sep = memchr(name, IMAP_HIERARCHY_SEP, len);
	size_t first = sep != NULL ? (size_t)(sep - name) : len;
	if (imap_mailbox_is_inbox(name, first))
		memcpy(canon, "INBOX", 5);
	*canon_r = canon;
	return 0;
}

int imap_mailbox_from_client(const char *name, size_t len, bool utf8, char **canon_r,
			     const char **error_r)
{
	if (utf8)
		return imap_mailbox_normalize(name, len, canon_r, error_r);
	char *decoded;
	if (imap_utf7_to_utf8(name, len, &decoded, error_r) < 0)
		return -1;
	int ret = imap_mailbox_normalize(decoded, strlen(decoded), canon_r, error_r);
	free(decoded);
	return ret;
}
