/* Content-Type / Content-Disposition parameters (RFC 2045 §5.1) with RFC 2231
 * continuations. The list kept for BODYSTRUCTURE follows what Dovecot sends:
 * continuations name*0, name*1 ... are joined; a joined value with any extended
 * (charset'lang'%XX) segment is sent as "name*" with the value still encoded, since
 * RFC 3501 does not ask servers to decode it; names and values keep their case.
 * mime_param_decode() turns such a value into UTF-8 for callers that want the text. */
#include "core/util.h"
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct raw_param {
	char *name;
	char *value;
	unsigned int idx;
	bool extended;
	unsigned int order;
};

static void params_add(struct mime_params *params, char *name, char *value)
{
	params->items = xrealloc(params->items, (params->count + 1) * sizeof(*params->items));
	params->items[params->count].name = name;
	params->items[params->count].value = value;
	params->count++;
}

/* One ";" attribute "=" value. Returns 1 on a parameter, 0 at the end, -1 on junk. */
static int parse_param(struct rfc822_lexer *lx, struct buf *key, struct buf *value)
{
	buf_clear(key);
	buf_clear(value);
	if (lx->p >= lx->end)
		return 0;
	if (*lx->p != ';')
		return -1;
	lx->p++;
	if (!rfc822_skip_cfws(lx))
		return -1;
	if (!rfc822_parse_token(lx, key))
		return -1;
	rfc822_skip_cfws(lx);
	if (lx->p >= lx->end || *lx->p != '=')
		return -1;
	lx->p++;
	if (!rfc822_skip_cfws(lx))
		return 1; /* empty value */
	if (*lx->p == '"') {
		if (!rfc822_parse_quoted(lx, value))
			return -1; /* unterminated: the parameter is dropped */
	} else if (*lx->p == '=') {
		/* broken but common: name==?utf-8?b?...?= */
		while (lx->p < lx->end && *lx->p != ';' && *lx->p != ' ' && *lx->p != '\t' &&
		       *lx->p != '\r' && *lx->p != '\n')
			buf_append(value, lx->p++, 1);
	} else {
		rfc822_parse_token(lx, value);
	}
	rfc822_skip_cfws(lx);
	return 1;
}

static int raw_cmp(const void *a, const void *b)
{
	const struct raw_param *x = a, *y = b;
	int r = strcasecmp(x->name, y->name);
	if (r != 0)
		return r;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->order < y->order ? -1 : (x->order > y->order);
}

/* Non-extended segments joined to extended ones get '%' and 8-bit bytes escaped. */
static void escape_segment(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '%' || c >= 0x80 || c < 0x20)
			buf_printf(out, "%%%02X", c);
		else
			buf_append(out, &c, 1);
	}
}

void mime_params_parse(struct rfc822_lexer *lx, unsigned int max_params,
		       struct mime_params *params)
{
	struct buf key = {0}, value = {0};
	struct raw_param *raw = NULL;
	unsigned int raw_count = 0, seen = 0;
	int r;

	while ((r = parse_param(lx, &key, &value)) != 0) {
		if (r < 0) {
			/* skip junk up to the next ';' */
			if (lx->p >= lx->end)
				break;
			lx->p++;
			continue;
		}
		if (++seen > max_params)
			continue;
		const char *k = buf_cstr(&key);
		const char *star = strchr(k, '*');
		bool is2231 = false;
		struct raw_param rp = {0};
		if (star != NULL) {
			/* name* | name*N | name*N* (RFC 2231 §3, §4) */
			const char *p = star + 1;
			if (*p == '\0') {
				is2231 = true;
				rp.extended = true;
			} else if (*p >= '0' && *p <= '9') {
				unsigned long idx = 0;
				for (; *p >= '0' && *p <= '9'; p++) {
					if (idx < 100000)
						idx = idx * 10 + (unsigned long)(*p - '0');
				}
				rp.idx = (unsigned int)idx;
				if (*p == '*') {
					rp.extended = true;
					p++;
				}
				is2231 = *p == '\0';
			}
		}
		if (!is2231) {
			params_add(params, xstrdup(k), xstrdup(buf_cstr(&value)));
			continue;
		}
		rp.name = xstrndup(k, (size_t)(star - k));
		rp.value = xstrdup(buf_cstr(&value));
		rp.order = raw_count;
		raw = xrealloc(raw, (raw_count + 1) * sizeof(*raw));
		raw[raw_count++] = rp;
	}
	if (raw_count > 0) {
		qsort(raw, raw_count, sizeof(*raw), raw_cmp);
		struct buf v = {0};
		unsigned int next;
		for (unsigned int i = 0; i < raw_count; i = next) {
			bool ok = true, have_ext = false;
			unsigned int want = 0, j;
			for (j = i; j < raw_count && strcasecmp(raw[i].name, raw[j].name) == 0; j++) {
				if (raw[j].idx != want)
					ok = false;
				if (raw[j].extended)
					have_ext = true;
				want++;
			}
			next = j;
			if (!ok) {
				/* gaps: give them back as they were written */
				for (j = i; j < next; j++) {
					params_add(params,
						   xasprintf(raw[j].extended ? "%s*%u*" : "%s*%u",
							     raw[j].name, raw[j].idx),
						   xstrdup(raw[j].value));
				}
				continue;
			}
			buf_clear(&v);
			if (!raw[i].extended && have_ext)
				buf_append_str(&v, "''");
			for (j = i; j < next; j++) {
				if (!raw[j].extended && have_ext && j != i)
					escape_segment(&v, raw[j].value);
				else
					buf_append_str(&v, raw[j].value);
			}
			params_add(params,
				   have_ext ? xasprintf("%s*", raw[i].name) : xstrdup(raw[i].name),
				   xstrdup(buf_cstr(&v)));
		}
		buf_free(&v);
		for (unsigned int i = 0; i < raw_count; i++) {
			free(raw[i].name);
			free(raw[i].value);
		}
		free(raw);
	}
	buf_free(&key);
	buf_free(&value);
}

void mime_params_free(struct mime_params *params)
{
	for (unsigned int i = 0; i < params->count; i++) {
		free(params->items[i].name);
		free(params->items[i].value);
	}
	free(params->items);
	params->items = NULL;
	params->count = 0;
}

const char *mime_params_get(const struct mime_params *params, const char *name)
{
	for (unsigned int i = 0; i < params->count; i++) {
		if (strcasecmp(params->items[i].name, name) == 0)
			return params->items[i].value;
	}
	return NULL;
}

char *mime_param_decode(const char *name, const char *value)
{
	size_t nlen = strlen(name);
	struct buf out = {0};

	if (nlen == 0 || name[nlen - 1] != '*') {
		/* Not RFC 2231; RFC 2047 words in quoted values are common (RFC 2047 §5
		 * forbids them there, but mailers send them). */
		mime_rfc2047_decode(value, strlen(value), &out);
		buf_cstr(&out);
		return (char *)out.data;
	}
	/* RFC 2231 §4: charset "'" [language] "'" %-encoded octets */
	const char *q1 = strchr(value, '\'');
	const char *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;
	char charset[64] = "us-ascii";
	const char *text = value;
	if (q2 != NULL) {
		size_t cl = (size_t)(q1 - value);
		if (cl > 0 && cl < sizeof(charset)) {
			memcpy(charset, value, cl);
			charset[cl] = '\0';
		}
		text = q2 + 1;
	}
	struct buf raw = {0};
	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '%' && hex_value((unsigned char)p[1]) >= 0 && hex_value((unsigned char)p[2]) >= 0) {
			c = (unsigned char)(hex_value((unsigned char)p[1]) * 16 +
					    hex_value((unsigned char)p[2]));
			p += 2;
		}
		buf_append(&raw, &c, 1);
	}
	if (!mime_charset_to_utf8(charset, raw.data, raw.len, &out))
		mime_append_utf8_sanitized(&out, raw.data, raw.len);
	buf_free(&raw);
	buf_cstr(&out);
	return (char *)out.data;
}
