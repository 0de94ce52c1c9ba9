/* Content-Transfer-Encoding decoders (RFC 2045 §6.7 quoted-printable, §6.8 base64) that
 * take the body in chunks of any size, for BINARY[] and BINARY.SIZE (RFC 3516). */
#include "core/util.h"
#include "mime/mime-private.h"

#include <string.h>
#include <strings.h>

enum qp_state {
	QP_TEXT = 0,
	QP_EQ,       /* after '=' */
	QP_EQ_HEX,   /* after '=' and one hex digit (kept in bits) */
	QP_EQ_WS,    /* after '=' and whitespace (kept in pending): maybe a soft break */
	QP_EQ_CR,    /* after '=' [ws] CR */
};

struct sink {
	struct buf *out;
	uint64_t count;
};

static void emit(struct sink *s, const unsigned char *p, size_t n)
{
	s->count += n;
	if (s->out != NULL)
		buf_append(s->out, p, n);
}

enum mime_encoding mime_encoding_parse(const char *value, size_t len)
{
	static const struct {
		const char *name;
		enum mime_encoding enc;
	} names[] = {
		{"7bit", MIME_ENC_7BIT}, {"8bit", MIME_ENC_8BIT}, {"binary", MIME_ENC_BINARY},
		{"base64", MIME_ENC_BASE64}, {"quoted-printable", MIME_ENC_QP},
	};
	if (len == 0)
		return MIME_ENC_7BIT;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == len && strncasecmp(value, names[i].name, len) == 0)
			return names[i].enc;
	}
	return MIME_ENC_UNKNOWN;
}

void mime_decoder_init(struct mime_decoder *dec, enum mime_encoding encoding)
{
	memset(dec, 0, sizeof(*dec));
	dec->encoding = encoding;
}

static const signed char b64[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7,
	['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
	['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
	['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
	['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33,
	['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47,
	['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52,
	['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59,
	['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static void base64_feed(struct mime_decoder *dec, const unsigned char *p, size_t len,
			struct sink *s)
{
	unsigned char tmp[256];
	size_t n = 0;
	unsigned int bits = dec->bits, nbits = dec->state;

	for (size_t i = 0; i < len; i++) {
		int v = b64[p[i]];
		if (v == 0) {
			if (p[i] == '=') {
				/* padding ends the quantum; leftover bits are dropped */
				bits = 0;
				nbits = 0;
			}
			continue; /* RFC 2045 §6.8: ignore characters outside the alphabet */
		}
		bits = (bits << 6) | (unsigned int)(v - 1);
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			tmp[n++] = (unsigned char)(bits >> nbits);
			bits &= (1u << nbits) - 1;
			if (n == sizeof(tmp)) {
				emit(s, tmp, n);
				n = 0;
			}
		}
	}
	emit(s, tmp, n);
	dec->bits = bits;
	dec->state = nbits;
}

static void qp_flush_pending(struct mime_decoder *dec, struct sink *s)
{
	emit(s, dec->pending, dec->pending_len);
	dec->pending_len = 0;
}

static void qp_feed(struct mime_decoder *dec, const unsigned char *p, size_t len,
		    struct sink *s)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		switch ((enum qp_state)dec->state) {
		case QP_TEXT: {
			if (c == '=') {
				qp_flush_pending(dec, s);
				dec->state = QP_EQ;
				i++;
				break;
			}
			if (c == ' ' || c == '\t') {
				/* trailing whitespace is dropped (RFC 2045 §6.7 rule 3) */
				if (dec->pending_len == sizeof(dec->pending))
					qp_flush_pending(dec, s);
				dec->pending[dec->pending_len++] = c;
				i++;
				break;
			}
			if (c == '\r' || c == '\n') {
				dec->pending_len = 0;
				emit(s, &c, 1);
				i++;
				break;
			}
			qp_flush_pending(dec, s);
			size_t start = i;
			while (i < len && p[i] != '=' && p[i] != ' ' && p[i] != '\t' &&
			       p[i] != '\r' && p[i] != '\n')
				i++;
			emit(s, p + start, i - start);
			break;
		}
		case QP_EQ:
			if (hex_value(c) >= 0) {
				dec->bits = (unsigned int)hex_value(c);
				dec->state = QP_EQ_HEX;
				i++;
			} else if (c == ' ' || c == '\t') {
				dec->pending[dec->pending_len++] = c;
				dec->state = QP_EQ_WS;
				i++;
			} else if (c == '\r') {
				dec->state = QP_EQ_CR;
				i++;
			} else if (c == '\n') {
				dec->state = QP_TEXT; /* soft line break */
				i++;
			} else {
				emit(s, (const unsigned char *)"=", 1);
				dec->state = QP_TEXT;
			}
			break;
		case QP_EQ_HEX:
			if (hex_value(c) >= 0) {
				unsigned char b = (unsigned char)(dec->bits * 16 + (unsigned int)hex_value(c));
				emit(s, &b, 1);
				i++;
			} else {
				/* "=X" not followed by a hex digit: keep it as written */
				unsigned char t[2] = {'=', 0};
				static const char hex[] = "0123456789ABCDEF";
				t[1] = (unsigned char)hex[dec->bits & 15];
				emit(s, t, 2);
			}
			dec->state = QP_TEXT;
			break;
		case QP_EQ_WS:
			if (c == ' ' || c == '\t') {
				if (dec->pending_len == sizeof(dec->pending)) {
					emit(s, (const unsigned char *)"=", 1);
					qp_flush_pending(dec, s);
					dec->state = QP_TEXT;
					break;
				}
				dec->pending[dec->pending_len++] = c;
				i++;
			} else if (c == '\r') {
				dec->pending_len = 0;
				dec->state = QP_EQ_CR;
				i++;
			} else if (c == '\n') {
				dec->pending_len = 0;
				dec->state = QP_TEXT;
				i++;
			} else {
				emit(s, (const unsigned char *)"=", 1);
				qp_flush_pending(dec, s);
				dec->state = QP_TEXT;
			}
			break;
		case QP_EQ_CR:
			dec->state = QP_TEXT;
			if (c == '\n')
				i++;
			break;
		}
	}
}

static void feed(struct mime_decoder *dec, const unsigned char *p, size_t len, struct sink *s)
{
	switch (dec->encoding) {
	case MIME_ENC_BASE64:
		base64_feed(dec, p, len, s);
		break;
	case MIME_ENC_QP:
		qp_feed(dec, p, len, s);
		break;
	default:
		emit(s, p, len);
		break;
	}
}

static void finish(struct mime_decoder *dec, struct sink *s)
{
	if (dec->encoding != MIME_ENC_QP)
		return;
	switch ((enum qp_state)dec->state) {
	case QP_EQ:
		emit(s, (const unsigned char *)"=", 1);
		break;
	case QP_EQ_HEX: {
		static const char hex[] = "0123456789ABCDEF";
		unsigned char t[2] = {'=', (unsigned char)hex[dec->bits & 15]};
		emit(s, t, 2);
		break;
	}
	case QP_EQ_WS:
		/* "=" and whitespace at the very end: a soft break without its newline */
		break;
	default:
		/* trailing whitespace at the end of the body is dropped too */
		break;
	}
	dec->pending_len = 0;
	dec->state = QP_TEXT;
}

void mime_decoder_feed(struct mime_decoder *dec, const unsigned char *data, size_t len,
		       struct buf *out)
{
	struct sink s = {out, 0};
	feed(dec, data, len, &s);
}

void mime_decoder_finish(struct mime_decoder *dec, struct buf *out)
{
	struct sink s = {out, 0};
	finish(dec, &s);
}

uint64_t mime_decoder_count(struct mime_decoder *dec, const unsigned char *data, size_t len)
{
	struct sink s = {NULL, 0};
	feed(dec, data, len, &s);
	return s.count;
}

uint64_t mime_decoder_count_finish(struct mime_decoder *dec)
{
	struct sink s = {NULL, 0};
	finish(dec, &s);
	return s.count;
}
