/* RFC 2047 encoded-words and charset conversion to UTF-8 with glibc iconv.
 *
 * Decoding is lenient in the ways real mail needs: encoded-words are recognised inside
 * words too, adjacent encoded-words in the same charset are joined before conversion (so
 * a multi-byte character split across two words survives), the whitespace between two
 * encoded-words is dropped (RFC 2047 §6.2), and an encoded-word in an unknown charset is
 * left as written. */
#include "core/util.h"
#include "mime/mime-private.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

static const unsigned char replacement[] = {0xef, 0xbf, 0xbd}; /* U+FFFD */

/* Length of a valid UTF-8 sequence at p (RFC 3629 §4), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t n;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if (c == 0xe0 && p[1] < 0xa0)
		return 0; /* overlong */
	if (c == 0xed && p[1] >= 0xa0)
		return 0; /* surrogate */
	if (c == 0xf0 && p[1] < 0x90)
		return 0;
	if (c == 0xf4 && p[1] >= 0x90)
		return 0;
	return n;
}

void mime_append_utf8_sanitized(struct buf *out, const unsigned char *data, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		size_t n;
		while (i < len && (n = utf8_seq_len(data + i, len - i)) != 0)
			i += n;
		buf_append(out, data + start, i - start);
		if (i < len) {
			unsigned char c = data[i++];
			unsigned char two[2] = {(unsigned char)(0xc0 | (c >> 6)),
						(unsigned char)(0x80 | (c & 0x3f))};
			buf_append(out, two, 2);
		}
	}
}

static bool charset_name_ok(const char *cs)
{
	size_t n = 0;
	for (; cs[n] != '\0'; n++) {
		unsigned char c = (unsigned char)cs[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':' || c == '+'))
			return false;
	}
	return n > 0 && n < 64;
}

static bool is_utf8_name(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

bool mime_charset_to_utf8(const char *charset, const unsigned char *data, size_t len,
			  struct buf *out)
{
	if (is_utf8_name(charset)) {
		mime_append_utf8_sanitized(out, data, len);
		return true;
	}
	if (!charset_name_ok(charset))
		return false;
	iconv_t cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return false;
	char *in = (char *)data;
	size_t inleft = len;
	unsigned char tmp[1024];
	while (inleft > 0) {
		char *o = (char *)tmp;
		size_t oleft = sizeof(tmp);
		size_t r = iconv(cd, &in, &inleft, &o, &oleft);
		buf_append(out, tmp, sizeof(tmp) - oleft);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		/* EILSEQ or EINVAL (truncated sequence): replace one byte and go on */
		buf_append(out, replacement, sizeof(replacement));
		in++;
		inleft--;
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	/* flush shift state (ISO-2022-JP) */
	char *o = (char *)tmp;
	size_t oleft = sizeof(tmp);
	iconv(cd, NULL, NULL, &o, &oleft);
	buf_append(out, tmp, sizeof(tmp) - oleft);
	iconv_close(cd);
	return true;
}

static void decode_q(const unsigned char *p, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '_') {
			c = ' ';
		} else if (c == '=' && i + 2 < len && hex_value(p[i + 1]) >= 0 &&
			   hex_value(p[i + 2]) >= 0) {
			c = (unsigned char)(hex_value(p[i + 1]) * 16 + hex_value(p[i + 2]));
			i += 2;
		}
		buf_append(out, &c, 1);
	}
}

static void decode_b(const unsigned char *p, size_t len, struct buf *out)
{
	unsigned int bits = 0, nbits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = base64_value(p[i]);
		if (v < 0)
			continue;
		bits = (bits << 6) | (unsigned int)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			unsigned char c = (unsigned char)(bits >> nbits);
			buf_append(out, &c, 1);
			bits &= (1u << nbits) - 1;
		}
	}
}

struct ew {
	const unsigned char *charset;
	size_t charset_len;
	char enc;
	const unsigned char *text;
	size_t text_len;
	size_t total_len; /* bytes from "=?" to after "?=" */
};

/* Recognises "=?charset[*lang]?B|Q?text?=" at p. */
static bool parse_ew(const unsigned char *p, const unsigned char *end, struct ew *ew)
{
	if (end - p < 8 || p[0] != '=' || p[1] != '?')
		return false;
	const unsigned char *q = p + 2;
	ew->charset = q;
	while (q < end && *q != '?' && *q > ' ' && *q < 0x7f)
		q++;
	if (q >= end || *q != '?' || q == ew->charset)
		return false;
	ew->charset_len = (size_t)(q - ew->charset);
	q++;
	if (end - q < 2 || q[1] != '?')
		return false;
	ew->enc = (char)(*q | 0x20);
	if (ew->enc != 'b' && ew->enc != 'q')
		return false;
	q += 2;
	ew->text = q;
	while (q + 1 < end && !(q[0] == '?' && q[1] == '=')) {
		if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			return false;
		q++;
	}
	if (q + 1 >= end)
		return false;
	ew->text_len = (size_t)(q - ew->text);
	ew->total_len = (size_t)(q + 2 - p);
	return true;
}

static void flush_pending(struct buf *out, struct buf *pending, char *charset,
			  const unsigned char *raw, size_t raw_len)
{
	if (charset[0] == '\0')
		return;
	if (!mime_charset_to_utf8(charset, pending->data, pending->len, out))
		mime_append_utf8_sanitized(out, raw, raw_len);
	buf_clear(pending);
	charset[0] = '\0';
}

void mime_rfc2047_decode(const char *s, size_t len, struct buf *out)
{
	if (len == 0)
		return; /* s may be NULL then */
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	struct buf pending = {0};
	char charset[64] = "";
	const unsigned char *pending_raw = NULL; /* start of the pending words, as written */
	const unsigned char *text_start = p;

	while (p < end) {
		struct ew ew;
		if (*p != '=' || !parse_ew(p, end, &ew)) {
			p++;
			continue;
		}
		/* Text before this word: whitespace only between two words is dropped. */
		bool ws_only = charset[0] != '\0' || pending_raw != NULL;
		for (const unsigned char *t = text_start; t < p && ws_only; t++) {
			if (*t != ' ' && *t != '\t' && *t != '\r' && *t != '\n')
				ws_only = false;
		}
		char cs[64];
		size_t cl = ew.charset_len < sizeof(cs) - 1 ? ew.charset_len : sizeof(cs) - 1;
		memcpy(cs, ew.charset, cl);
		cs[cl] = '\0';
		char *star = strchr(cs, '*'); /* RFC 2231 §5: charset*language */
		if (star != NULL)
			*star = '\0';
		if (!ws_only || strcasecmp(cs, charset) != 0) {
			flush_pending(out, &pending, charset, pending_raw,
				      (size_t)(text_start - (pending_raw ? pending_raw : text_start)));
			if (!ws_only) {
				mime_append_utf8_sanitized(out, text_start, (size_t)(p - text_start));
			}
			pending_raw = p;
			memcpy(charset, cs, strlen(cs) + 1);
			if (charset[0] == '\0')
				memcpy(charset, "us-ascii", 9);
		}
		if (ew.enc == 'b')
			decode_b(ew.text, ew.text_len, &pending);
		else
			decode_q(ew.text, ew.text_len, &pending);
		p += ew.total_len;
		text_start = p;
	}
	flush_pending(out, &pending, charset, pending_raw,
		      (size_t)(text_start - (pending_raw ? pending_raw : text_start)));
	mime_append_utf8_sanitized(out, text_start, (size_t)(end - text_start));
	buf_free(&pending);
}

char *mime_decode_header(const char *value, size_t len)
{
	struct buf out = {0};
	mime_rfc2047_decode(value, len, &out);
	buf_cstr(&out);
	return (char *)out.data;
}
