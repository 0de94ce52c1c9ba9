/* Text extraction for the full-text index (docs/MIME.md, "Full-text index").
 *
 * Given the parse result and the stored message, produces folded UTF-8 text for the message
 * header and for the text of its body: every text/... leaf (transfer-decoded, converted to
 * UTF-8) and the header and text of attached messages. The message is read with pread()
 * through one fixed buffer and each stage (transfer decoding, charset conversion, folding)
 * works on bounded chunks, so memory is bounded by the cap on the output, not by the
 * message size.
 *
 * Folding is Unicode NFKC with full case folding (utf8proc), default-ignorable characters
 * (soft hyphen, zero-width space, ...) and control characters removed, tabs written as
 * spaces and every line break (CRLF, CR, LF, NEL) written as LF. The search
 * needle goes through mime_text_fold(), the same function, so a substring test on folded
 * text is a case-insensitive, normalisation-insensitive substring test.
 */
#include "mime/mime-private.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <utf8proc.h>

#define READ_CHUNK (64 * 1024)
/* Folding works on pieces of about this size (cut at a safe boundary). */
#define FOLD_CHUNK (64 * 1024)

static const unsigned char replacement[] = {0xef, 0xbf, 0xbd};

/* ---- folding ---- */

#define FOLD_OPTIONS                                                                       \
	(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |        \
	 UTF8PROC_IGNORE | UTF8PROC_STRIPCC | UTF8PROC_NLF2LF)

static void fold_utf8proc(const unsigned char *s, size_t len, struct buf *out)
{
	if (len == 0)
		return;
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t n = utf8proc_map(s, (utf8proc_ssize_t)len, &dst, FOLD_OPTIONS);
	if (n >= 0)
		buf_append(out, dst, (size_t)n);
	else if (n == UTF8PROC_ERROR_NOMEM)
		abort(); /* as xmalloc does */
	else
		buf_append(out, s, len); /* cannot happen with valid input */
	free(dst);
}

/* Whether s[i] folds on its own to its ASCII lowercase: a printable ASCII character or an
 * LF that does not end a CRLF, not followed by a non-ASCII character (which could be a
 * combining mark that composes with it). Everything else goes through utf8proc. */
static bool fold_simple(const unsigned char *s, size_t len, size_t i)
{
	unsigned char c = s[i];
	if (!((c >= 0x20 && c < 0x7f) || (c == '\n' && (i == 0 || s[i - 1] != '\r'))))
		return false;
	return i + 1 == len || s[i + 1] < 0x80;
}

/* Folds valid UTF-8 and appends it to out. Runs of plain ASCII (most mail) take a fast
 * path that gives what utf8proc gives for them. */
static void fold_valid(const unsigned char *s, size_t len, struct buf *out)
{
	if (len == 0)
		return; /* s may be NULL */
	buf_reserve(out, len);
	size_t slow = 0; /* start of the text not yet folded */
	for (size_t i = 0; i < len;) {
		if (!fold_simple(s, len, i)) {
			i++;
			continue;
		}
		fold_utf8proc(s + slow, i - slow, out);
		buf_reserve(out, len - i);
		for (; i < len && fold_simple(s, len, i); i++) {
			unsigned char c = s[i];
			out->data[out->len++] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
		}
		slow = i;
	}
	fold_utf8proc(s + slow, len - slow, out);
}

void mime_text_fold(const char *s, size_t len, struct buf *out)
{
	struct buf valid = {0};
	mime_append_utf8_sanitized(&valid, (const unsigned char *)s, len);
	fold_valid(valid.data, valid.len, out);
	buf_free(&valid);
}

/* Start of the character that ends before end in valid UTF-8 s (end > 0). */
static size_t char_start_before(const unsigned char *s, size_t end)
{
	size_t i = end - 1;
	while (i > 0 && (s[i] & 0xc0) == 0x80)
		i--;
	return i;
}

/* Where valid UTF-8 text may be cut so that folding the two pieces separately gives the
 * same result as folding the whole: after the last LF, else before the last ASCII
 * character (no ASCII character composes with what precedes it), else at the last
 * grapheme cluster boundary (combining marks and Hangul jamo stay with their base), else
 * before the last character. Returns 0 when there is no such place. */
static size_t fold_cut(const unsigned char *s, size_t len)
{
	const unsigned char *lf = memrchr(s, '\n', len);
	if (lf != NULL)
		return (size_t)(lf - s) + 1;
	for (size_t i = len; i > 0 && len - i < 4096; i--) {
		if (s[i - 1] < 0x80)
			return i - 1;
	}
	if (len == 0)
		return 0;
	size_t last = char_start_before(s, len);
	size_t cur = last;
	for (int tries = 0; cur > 0 && tries < 64; tries++) {
		size_t prev = char_start_before(s, cur);
		utf8proc_int32_t c1 = 0, c2 = 0;
		utf8proc_iterate(s + prev, (utf8proc_ssize_t)(cur - prev), &c1);
		utf8proc_iterate(s + cur, (utf8proc_ssize_t)(len - cur), &c2);
		if (utf8proc_grapheme_break(c1, c2))
			return cur;
		cur = prev;
	}
	return last;
}

/* ---- the output: two columns sharing one cap ---- */

struct extract {
	int fd;
	size_t max;          /* bytes of folded text in header + body */
	size_t used;
	bool full;
	struct buf *out;     /* the column being written */
	struct buf pending;  /* valid UTF-8 not folded yet */
	struct buf folded;
	unsigned char *rbuf; /* READ_CHUNK bytes */
	struct buf dec;      /* transfer-decoded chunk */
	struct buf utf;      /* chunk converted to UTF-8 */
	struct buf field;    /* one header field */
	struct mime_limits limits;
};

/* Appends folded text to the current column, up to the cap (cut at a character). */
static void emit_folded(struct extract *x, const unsigned char *s, size_t len)
{
	if (x->full)
		return;
	size_t room = x->max - x->used;
	if (len > room) {
		len = room;
		while (len > 0 && (s[len] & 0xc0) == 0x80)
			len--;
		x->full = true;
	}
	buf_append(x->out, s, len);
	x->used += len;
}

static void fold_some(struct extract *x, size_t n)
{
	buf_clear(&x->folded);
	fold_valid(x->pending.data, n, &x->folded);
	buf_consume(&x->pending, n);
	emit_folded(x, x->folded.data, x->folded.len);
}

/* Adds valid UTF-8 text. */
static void text_add(struct extract *x, const unsigned char *s, size_t len)
{
	if (x->full)
		return;
	buf_append(&x->pending, s, len);
	while (x->pending.len >= FOLD_CHUNK && !x->full) {
		size_t cut = fold_cut(x->pending.data, x->pending.len);
		if (cut == 0)
			cut = x->pending.len;
		fold_some(x, cut);
	}
}

static void text_flush(struct extract *x)
{
	if (x->pending.len > 0)
		fold_some(x, x->pending.len);
	buf_clear(&x->pending);
}

/* Starts a new piece of text in column out: pieces are separated by a line break. */
static void text_begin(struct extract *x, struct buf *out)
{
	text_flush(x);
	x->out = out;
	if (out->len > 0)
		emit_folded(x, (const unsigned char *)"\n", 1);
}

/* ---- charset conversion, streaming ---- */

struct conv {
	iconv_t cd;               /* (iconv_t)-1: UTF-8, with Latin-1 for invalid bytes */
	unsigned char carry[16];  /* an incomplete sequence at the end of the last chunk */
	size_t carry_len;
	struct buf in;
};

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

static void conv_init(struct conv *c, const char *charset)
{
	/* Labels glibc lacks or that senders use for a superset (as web browsers read them). */
	static const struct {
		const char *label, *iconv_name;
	} aliases[] = {
		{"iso-8859-1", "WINDOWS-1252"}, {"latin1", "WINDOWS-1252"},
		{"ks_c_5601-1987", "CP949"}, {"gb2312", "GB18030"}, {"x-gbk", "GB18030"},
		{"iso-8859-8-i", "ISO-8859-8"},
	};
	memset(c, 0, sizeof *c);
	c->cd = (iconv_t)-1;
	if (charset == NULL || !charset_name_ok(charset) || strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "utf8") == 0 || strcasecmp(charset, "us-ascii") == 0 ||
	    strcasecmp(charset, "ascii") == 0)
		return;
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
		if (strcasecmp(charset, aliases[i].label) == 0) {
			charset = aliases[i].iconv_name;
			break;
		}
	}
	/* An unknown charset is read as UTF-8 (with Latin-1 for invalid bytes). */
	c->cd = iconv_open("UTF-8", charset);
}

/* Bytes at the end of s[0..len) that start a UTF-8 sequence not complete yet. */
static size_t utf8_incomplete_tail(const unsigned char *s, size_t len)
{
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned char c = s[len - back];
		if ((c & 0xc0) == 0x80)
			continue;
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		return need > back ? back : 0;
	}
	return 0;
}

static void conv_feed(struct conv *c, const unsigned char *data, size_t len, struct buf *out,
		      bool last)
{
	buf_clear(&c->in);
	buf_append(&c->in, c->carry, c->carry_len);
	buf_append(&c->in, data, len);
	c->carry_len = 0;
	const unsigned char *s = c->in.data;
	size_t n = c->in.len;
	if (c->cd == (iconv_t)-1) {
		size_t keep = last ? 0 : utf8_incomplete_tail(s, n);
		mime_append_utf8_sanitized(out, s, n - keep);
		if (keep > 0)
			memcpy(c->carry, s + n - keep, keep);
		c->carry_len = keep;
		return;
	}
	char *in = (char *)s;
	size_t inleft = n;
	unsigned char tmp[4096];
	while (inleft > 0) {
		char *o = (char *)tmp;
		size_t oleft = sizeof tmp;
		size_t r = iconv(c->cd, &in, &inleft, &o, &oleft);
		buf_append(out, tmp, sizeof tmp - oleft);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		if (errno == EINVAL && !last && inleft < sizeof c->carry) {
			/* a sequence continued in the next chunk */
			memcpy(c->carry, in, inleft);
			c->carry_len = inleft;
			break;
		}
		/* invalid (or truncated at the very end): replace one byte and go on */
		buf_append(out, replacement, sizeof replacement);
		in++;
		inleft--;
	}
	if (last) {
		char *o = (char *)tmp;
		size_t oleft = sizeof tmp;
		iconv(c->cd, NULL, NULL, &o, &oleft); /* the final shift sequence (ISO-2022-JP) */
		buf_append(out, tmp, sizeof tmp - oleft);
	}
}

static void conv_free(struct conv *c)
{
	if (c->cd != (iconv_t)-1)
		iconv_close(c->cd);
	buf_free(&c->in);
}

/* ---- reading the message ---- */

/* Calls fn for each byte range of [offset, offset + size) read through x->rbuf, until the
 * cap is reached. Returns -1 on a read error. */
static int read_range(struct extract *x, uint64_t offset, uint64_t size,
		      void (*fn)(struct extract *x, const unsigned char *p, size_t n, void *ctx),
		      void *ctx)
{
	while (size > 0 && !x->full) {
		size_t want = size < READ_CHUNK ? (size_t)size : READ_CHUNK;
		ssize_t n = pread(x->fd, x->rbuf, want, (off_t)offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break; /* the file is shorter than the parse result says: index what is there */
		fn(x, x->rbuf, (size_t)n, ctx);
		offset += (uint64_t)n;
		size -= (uint64_t)n;
	}
	return 0;
}

/* ---- headers ---- */

struct hdr_ctx {
	struct mime_entity_hdr *h;
	bool is_message;  /* an RFC 5322 header: its fields are indexed */
	bool at_line_start;
	bool done;        /* the empty line was seen */
	uint64_t seen;
};

/* One complete field in x->field (without its final line break). */
static void header_field(struct extract *x, struct hdr_ctx *hc)
{
	const char *s = (const char *)x->field.data;
	size_t len = x->field.len;
	const char *colon = len > 0 ? memchr(s, ':', len) : NULL;
	size_t name_len = colon != NULL ? (size_t)(colon - s) : 0;
	while (name_len > 0 && (s[name_len - 1] == ' ' || s[name_len - 1] == '\t'))
		name_len--;
	if (name_len == 0)
		return; /* not a field: ignored, as the parser does */
	const char *v = colon + 1, *end = s + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	mime_entity_hdr_field(hc->h, s, name_len, v, (size_t)(end - v), hc->is_message,
			      &x->limits);
	if (!hc->is_message || x->full)
		return;
	/* Indexed as "Name: decoded value" on one line. */
	struct buf unfolded = {0};
	for (const char *p = v; p < end; p++) {
		if (*p != '\r' && *p != '\n')
			buf_append(&unfolded, p, 1);
	}
	char *value = mime_decode_header((const char *)unfolded.data, unfolded.len);
	struct buf line = {0};
	mime_append_utf8_sanitized(&line, (const unsigned char *)s, name_len);
	buf_append_str(&line, ": ");
	buf_append_str(&line, value);
	buf_append(&line, "\n", 1);
	text_add(x, line.data, line.len);
	free(value);
	buf_free(&line);
	buf_free(&unfolded);
}

static void field_append(struct extract *x, const unsigned char *p, size_t n)
{
	size_t room = x->limits.max_field_size > x->field.len ?
			      x->limits.max_field_size - x->field.len : 0;
	if (n > room)
		n = room;
	while (n > 0) {
		const unsigned char *nul = memchr(p, '\0', n);
		size_t k = nul != NULL ? (size_t)(nul - p) : n;
		buf_append(&x->field, p, k);
		if (nul == NULL)
			break;
		buf_append(&x->field, replacement, sizeof replacement);
		p += k + 1;
		n -= k + 1;
	}
}

static void field_end(struct extract *x, struct hdr_ctx *hc)
{
	size_t len = x->field.len;
	if (len > 0 && x->field.data[len - 1] == '\n')
		len--;
	if (len > 0 && x->field.data[len - 1] == '\r')
		len--;
	x->field.len = len;
	if (len > 0)
		header_field(x, hc);
	buf_clear(&x->field);
}

/* Header bytes, line by line: a line that starts with white space continues the field. */
static void header_bytes(struct extract *x, const unsigned char *p, size_t n, void *ctx)
{
	struct hdr_ctx *hc = ctx;
	size_t i = 0;
	while (i < n && !hc->done) {
		if (hc->at_line_start) {
			if (p[i] == '\r' && (i + 1 >= n || p[i + 1] == '\n')) {
				i++; /* a CR at a line start: the LF decides */
				continue;
			}
			if (p[i] == '\n') {
				field_end(x, hc);
				hc->done = true;
				break;
			}
			if (p[i] != ' ' && p[i] != '\t')
				field_end(x, hc);
			hc->at_line_start = false;
		}
		const unsigned char *lf = memchr(p + i, '\n', n - i);
		size_t k = lf != NULL ? (size_t)(lf - (p + i)) + 1 : n - i;
		field_append(x, p + i, k);
		i += k;
		if (lf != NULL)
			hc->at_line_start = true;
	}
}

/* Reads the header of part p: fills h, and indexes the fields of a message header. */
static int read_header(struct extract *x, const struct mime_part *p, bool is_message,
		       struct mime_entity_hdr *h)
{
	struct hdr_ctx hc = {.h = h, .is_message = is_message, .at_line_start = true};
	uint64_t size = p->header_size;
	if (size > x->limits.max_header_size)
		size = x->limits.max_header_size; /* what the parser looked at */
	buf_clear(&x->field);
	int r = read_range(x, p->header_offset, size, header_bytes, &hc);
	if (!hc.done)
		field_end(x, &hc);
	mime_entity_hdr_end(h, is_message);
	return r;
}

/* ---- bodies ---- */

struct body_ctx {
	struct mime_decoder dec;
	struct conv conv;
};

static void body_bytes(struct extract *x, const unsigned char *p, size_t n, void *ctx)
{
	struct body_ctx *bc = ctx;
	buf_clear(&x->dec);
	mime_decoder_feed(&bc->dec, p, n, &x->dec);
	buf_clear(&x->utf);
	conv_feed(&bc->conv, x->dec.data, x->dec.len, &x->utf, false);
	text_add(x, x->utf.data, x->utf.len);
}

static int read_text_body(struct extract *x, const struct mime_part *p, const char *charset)
{
	struct body_ctx bc;
	mime_decoder_init(&bc.dec, (enum mime_encoding)p->encoding);
	conv_init(&bc.conv, charset);
	int r = read_range(x, p->body_offset, p->body_size, body_bytes, &bc);
	if (r == 0 && !x->full) {
		buf_clear(&x->dec);
		mime_decoder_finish(&bc.dec, &x->dec);
		buf_clear(&x->utf);
		conv_feed(&bc.conv, x->dec.data, x->dec.len, &x->utf, true);
		text_add(x, x->utf.data, x->utf.len);
	}
	conv_free(&bc.conv);
	return r;
}

static bool is_text(const struct mime_entity_hdr *h)
{
	/* No Content-Type (or a message that is not MIME) is text/plain (RFC 2045 §5.2). */
	return h->type == NULL || mime_ascii_ieq(h->type, "text");
}

int mime_text_extract(const struct mime_result *res, int fd, size_t max_size,
		      struct buf *header, struct buf *body, bool *truncated_r)
{
	struct extract x = {.fd = fd, .max = max_size ? max_size : MIME_TEXT_MAX_SIZE};
	mime_limits_default(&x.limits);
	x.rbuf = xmalloc(READ_CHUNK);
	x.out = header;
	int r = 0;
	unsigned int count = mime_result_part_count(res);
	for (unsigned int i = 0; i < count && r == 0 && !x.full; i++) {
		const struct mime_part *p = mime_result_part(res, i);
		const struct mime_part *parent =
			p->parent != MIME_NO_PART ? mime_result_part(res, p->parent) : NULL;
		bool is_message = parent == NULL || parent->kind == MIME_PART_MESSAGE;
		if (!is_message && p->kind != MIME_PART_LEAF)
			continue; /* a multipart's own MIME header says nothing to search */
		struct mime_entity_hdr h;
		memset(&h, 0, sizeof h);
		if (is_message)
			text_begin(&x, i == 0 ? header : body);
		r = read_header(&x, p, is_message, &h);
		if (r == 0 && p->kind == MIME_PART_LEAF && is_text(&h)) {
			text_begin(&x, body);
			r = read_text_body(&x, p, mime_params_get(&h.type_params, "charset"));
		}
		mime_entity_hdr_free(&h);
	}
	if (r == 0)
		text_flush(&x);
	int e = errno;
	free(x.rbuf);
	buf_free(&x.pending);
	buf_free(&x.folded);
	buf_free(&x.dec);
	buf_free(&x.utf);
	buf_free(&x.field);
	if (truncated_r != NULL)
		*truncated_r = x.full;
	errno = e;
	return r;
}
