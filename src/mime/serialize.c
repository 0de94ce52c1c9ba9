/* Compact serialised form of a parse result, stored by the store as a BLOB.
 *
 * Layout (version 1), integers as LEB128 varints, signed ones zigzag-encoded:
 *   "SMR" version(1 byte) flags size
 *   envelope bodystructure body                    strings
 *   part_count, then per part in pre-order:
 *     depth kind|encoding<<4 header_offset_delta header_size body_size body_lines
 *     decoded_size
 *   sort fields: base_subject subject is_reply from{addr mailbox display} to{...} cc{...}
 *     has_date date tz_offset message_id in_reply_to references
 * A string is varint(len + 1) + bytes, or varint 0 for NULL. Tree links and body
 * offsets are rebuilt from depths and sizes (body_offset = header_offset + header_size).
 */
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "SMR"
#define VERSION 1

enum { F_TRUNCATED = 1, F_8BIT = 2, F_NUL = 4 };

static void put_u64(struct buf *out, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;
	do {
		unsigned char b = v & 0x7f;
		v >>= 7;
		tmp[n++] = v != 0 ? (unsigned char)(b | 0x80) : b;
	} while (v != 0);
	buf_append(out, tmp, n);
}

static void put_s64(struct buf *out, int64_t v)
{
	put_u64(out, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_str(struct buf *out, const char *s)
{
	if (s == NULL) {
		put_u64(out, 0);
		return;
	}
	size_t len = strlen(s);
	put_u64(out, (uint64_t)len + 1);
	buf_append(out, s, len);
}

static void put_addr(struct buf *out, const struct mime_sort_addr *a)
{
	put_str(out, a->addr);
	put_str(out, a->mailbox);
	put_str(out, a->display);
}

void mime_result_serialize(const struct mime_result *res, struct buf *out)
{
	buf_append(out, MAGIC, 3);
	unsigned char v = VERSION;
	buf_append(out, &v, 1);
	put_u64(out, (res->truncated ? F_TRUNCATED : 0) | (res->has_8bit ? F_8BIT : 0) |
			     (res->has_nul ? F_NUL : 0));
	put_u64(out, res->size);
	put_str(out, res->envelope);
	put_str(out, res->bodystructure);
	put_str(out, res->body);
	put_u64(out, res->part_count);
	uint64_t prev = 0;
	for (unsigned int i = 0; i < res->part_count; i++) {
		const struct mime_part *p = &res->parts[i];
		put_u64(out, p->depth);
		put_u64(out, (uint64_t)p->kind | ((uint64_t)p->encoding << 4));
		put_u64(out, p->header_offset - prev);
		prev = p->header_offset;
		put_u64(out, p->header_size);
		put_u64(out, p->body_size);
		put_u64(out, p->body_lines);
		put_u64(out, p->decoded_size);
	}
	const struct mime_sort_fields *sf = &res->sort;
	put_str(out, sf->base_subject);
	put_str(out, sf->subject);
	put_u64(out, sf->subject_is_reply);
	put_addr(out, &sf->from);
	put_addr(out, &sf->to);
	put_addr(out, &sf->cc);
	put_u64(out, sf->has_date);
	put_s64(out, sf->date);
	put_s64(out, sf->tz_offset);
	put_str(out, sf->message_id);
	put_str(out, sf->in_reply_to);
	put_str(out, sf->references);
}

struct reader {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t get_u64(struct reader *r)
{
	uint64_t v = 0;
	for (unsigned int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return v;
	}
	r->bad = true;
	return 0;
}

static int64_t get_s64(struct reader *r)
{
	uint64_t v = get_u64(r);
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static char *get_str(struct reader *r)
{
	uint64_t n = get_u64(r);
	if (r->bad || n == 0)
		return NULL;
	n--;
	if (n > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return NULL;
	}
	char *s = xstrndup((const char *)r->p, (size_t)n);
	r->p += n;
	return s;
}

static void get_addr(struct reader *r, struct mime_sort_addr *a)
{
	a->addr = get_str(r);
	a->mailbox = get_str(r);
	a->display = get_str(r);
}

struct mime_result *mime_result_deserialize(const unsigned char *data, size_t len)
{
	if (len < 4 || memcmp(data, MAGIC, 3) != 0 || data[3] != VERSION)
		return NULL;
	struct reader r = {data + 4, data + len, false};
	struct mime_result *res = mime_result_new();
	uint64_t flags = get_u64(&r);
	res->truncated = (flags & F_TRUNCATED) != 0;
	res->has_8bit = (flags & F_8BIT) != 0;
	res->has_nul = (flags & F_NUL) != 0;
	res->size = get_u64(&r);
	res->envelope = get_str(&r);
	res->bodystructure = get_str(&r);
	res->body = get_str(&r);
	uint64_t count = get_u64(&r);
	/* each part takes at least 7 bytes: a bound that needs no trust in count */
	if (r.bad || count == 0 || count > (uint64_t)(r.end - r.p) / 7 || count > UINT32_MAX - 1) {
		mime_result_free(&res);
		return NULL;
	}
	uint32_t *last_at_depth = xcalloc((size_t)count + 1, sizeof(uint32_t));
	uint64_t prev = 0;
	for (uint64_t i = 0; i < count && !r.bad; i++) {
		uint64_t depth = get_u64(&r);
		uint64_t ke = get_u64(&r);
		uint32_t idx = mime_result_add_part(res);
		struct mime_part *p = &res->parts[idx];
		p->header_offset = prev + get_u64(&r);
		prev = p->header_offset;
		p->header_size = get_u64(&r);
		p->body_offset = p->header_offset + p->header_size;
		p->body_size = get_u64(&r);
		p->body_lines = get_u64(&r);
		p->decoded_size = get_u64(&r);
		if ((i == 0) != (depth == 0) || (i > 0 && depth > (uint64_t)res->parts[idx - 1].depth + 1) ||
		    depth > UINT16_MAX || (ke & 0xf) > MIME_PART_MESSAGE ||
		    (ke >> 4) > MIME_ENC_UNKNOWN || p->body_offset < p->header_offset) {
			r.bad = true;
			break;
		}
		p->depth = (uint16_t)depth;
		p->kind = (uint8_t)(ke & 0xf);
		p->encoding = (uint8_t)(ke >> 4);
		if (depth > 0) {
			uint32_t parent = last_at_depth[depth - 1];
			struct mime_part *pp = &res->parts[parent];
			p->parent = parent;
			if (pp->first_child == MIME_NO_PART) {
				pp->first_child = idx;
			} else {
				uint32_t c = last_at_depth[depth];
				res->parts[c].next_sibling = idx;
			}
			pp->child_count++;
		}
		last_at_depth[depth] = idx;
	}
	free(last_at_depth);
	struct mime_sort_fields *sf = &res->sort;
	sf->base_subject = get_str(&r);
	sf->subject = get_str(&r);
	sf->subject_is_reply = get_u64(&r) != 0;
	get_addr(&r, &sf->from);
	get_addr(&r, &sf->to);
	get_addr(&r, &sf->cc);
	sf->has_date = get_u64(&r) != 0;
	sf->date = get_s64(&r);
	sf->tz_offset = (int)get_s64(&r);
	sf->message_id = get_str(&r);
	sf->in_reply_to = get_str(&r);
	sf->references = get_str(&r);
	if (r.bad || r.p != r.end || res->envelope == NULL || res->bodystructure == NULL ||
	    res->body == NULL) {
		mime_result_free(&res);
		return NULL;
	}
	return res;
}
