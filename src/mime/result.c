/* The parse result: accessors, IMAP section lookup (RFC 3501 §6.4.5, RFC 9051 §6.4.5),
 * and whole-message helpers. */
#include "mime/mime-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MIME_RESULT_VERSION 1

void mime_limits_default(struct mime_limits *limits)
{
	limits->max_depth = MIME_DEFAULT_MAX_DEPTH;
	limits->max_parts = MIME_DEFAULT_MAX_PARTS;
	limits->max_header_size = MIME_DEFAULT_MAX_HEADER_SIZE;
	limits->max_field_size = MIME_DEFAULT_MAX_FIELD_SIZE;
	limits->max_params = MIME_DEFAULT_MAX_PARAMS;
}

struct mime_result *mime_result_new(void)
{
	struct mime_result *res = xcalloc(1, sizeof(*res));
	res->version = MIME_RESULT_VERSION;
	return res;
}

uint32_t mime_result_add_part(struct mime_result *res)
{
	if (res->part_count == res->part_alloc) {
		res->part_alloc = res->part_alloc ? res->part_alloc * 2 : 4;
		res->parts = xrealloc(res->parts, res->part_alloc * sizeof(*res->parts));
	}
	struct mime_part *p = &res->parts[res->part_count];
	memset(p, 0, sizeof(*p));
	p->parent = MIME_NO_PART;
	p->first_child = MIME_NO_PART;
	p->next_sibling = MIME_NO_PART;
	return res->part_count++;
}

void mime_result_free(struct mime_result **resp)
{
	struct mime_result *res = *resp;
	if (res == NULL)
		return;
	free(res->envelope);
	free(res->bodystructure);
	free(res->body);
	free(res->parts);
	mime_sort_fields_free(&res->sort);
	free(res);
	*resp = NULL;
}

const char *mime_result_envelope(const struct mime_result *res)
{
	return res->envelope;
}

const char *mime_result_bodystructure(const struct mime_result *res)
{
	return res->bodystructure;
}

const char *mime_result_body(const struct mime_result *res)
{
	return res->body;
}

uint64_t mime_result_size(const struct mime_result *res)
{
	return res->size;
}

bool mime_result_truncated(const struct mime_result *res)
{
	return res->truncated;
}

bool mime_result_has_8bit(const struct mime_result *res)
{
	return res->has_8bit;
}

bool mime_result_has_nul(const struct mime_result *res)
{
	return res->has_nul;
}

const struct mime_sort_fields *mime_result_sort_fields(const struct mime_result *res)
{
	return &res->sort;
}

unsigned int mime_result_part_count(const struct mime_result *res)
{
	return res->part_count;
}

const struct mime_part *mime_result_part(const struct mime_result *res, unsigned int idx)
{
	return idx < res->part_count ? &res->parts[idx] : NULL;
}

void mime_result_part_section(const struct mime_result *res, unsigned int idx, char *buf,
			      size_t size)
{
	uint32_t nums[MIME_DEFAULT_MAX_DEPTH + 2];
	size_t n = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (idx >= res->part_count)
		return;
	/* Walk up: a child of a multipart adds its position; the message inside a
	 * message/rfc822 part adds nothing (it shares the part's number). */
	uint32_t cur = idx;
	while (cur != 0 && n < sizeof(nums) / sizeof(nums[0])) {
		const struct mime_part *p = &res->parts[cur];
		const struct mime_part *parent = &res->parts[p->parent];
		if (parent->kind == MIME_PART_MULTIPART) {
			uint32_t pos = 1;
			for (uint32_t c = parent->first_child; c != cur && c != MIME_NO_PART;
			     c = res->parts[c].next_sibling)
				pos++;
			nums[n++] = pos;
		} else if (p->parent == 0 && parent->kind == MIME_PART_MESSAGE) {
			/* the message inside a top-level message/rfc822 is part 1 */
			nums[n++] = 1;
		}
		cur = p->parent;
	}
	size_t off = 0;
	for (size_t i = n; i > 0; i--) {
		int w = snprintf(buf + off, size - off, i == n ? "%u" : ".%u", nums[i - 1]);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
}

static uint32_t nth_child(const struct mime_result *res, const struct mime_part *p, uint32_t n)
{
	uint32_t c = p->first_child;
	while (c != MIME_NO_PART && --n > 0)
		c = res->parts[c].next_sibling;
	return c;
}

const struct mime_part *mime_result_find(const struct mime_result *res, const uint32_t *path,
					 size_t n)
{
	if (res->part_count == 0)
		return NULL;
	uint32_t cur = 0;
	for (size_t i = 0; i < n; i++) {
		if (path[i] == 0)
			return NULL;
		const struct mime_part *p = &res->parts[cur];
		bool in_message = i == 0;
		if (i > 0 && p->kind == MIME_PART_MESSAGE) {
			/* into the message of a message/rfc822 part */
			cur = p->first_child;
			if (cur == MIME_NO_PART)
				return NULL;
			p = &res->parts[cur];
			in_message = true;
		}
		if (p->kind == MIME_PART_MULTIPART) {
			cur = nth_child(res, p, path[i]);
			if (cur == MIME_NO_PART)
				return NULL;
		} else if (path[i] != 1 || !in_message) {
			/* a message that is not multipart has only part 1: its body */
			return NULL;
		}
	}
	return &res->parts[cur];
}

bool mime_result_section(const struct mime_result *res, const uint32_t *path, size_t n,
			 enum mime_section_text text, uint64_t *offset_r, uint64_t *size_r)
{
	const struct mime_part *p = mime_result_find(res, path, n);
	if (p == NULL)
		return false;
	switch (text) {
	case MIME_SECTION_NONE:
		if (n == 0) {
			*offset_r = 0;
			*size_r = res->size;
		} else {
			*offset_r = p->body_offset;
			*size_r = p->body_size;
		}
		return true;
	case MIME_SECTION_MIME:
		if (n == 0)
			return false; /* RFC 3501: MIME needs a part number */
		*offset_r = p->header_offset;
		*size_r = p->header_size;
		return true;
	case MIME_SECTION_HEADER:
	case MIME_SECTION_TEXT:
		if (n > 0) {
			/* only a message/rfc822 part has a HEADER and TEXT */
			if (p->kind != MIME_PART_MESSAGE || p->first_child == MIME_NO_PART)
				return false;
			p = &res->parts[p->first_child];
		}
		if (text == MIME_SECTION_HEADER) {
			*offset_r = p->header_offset;
			*size_r = p->header_size;
		} else {
			*offset_r = p->body_offset;
			*size_r = p->body_size;
		}
		return true;
	}
	return false;
}

int mime_section_parse(const char *s, uint32_t *path, size_t max)
{
	size_t n = 0;
	if (*s == '\0')
		return 0;
	for (;;) {
		if (*s < '1' || *s > '9')
			return -1;
		uint64_t v = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t)(*s - '0');
			if (v > UINT32_MAX)
				return -1;
			s++;
		}
		if (n == max)
			return -1;
		path[n++] = (uint32_t)v;
		if (*s == '\0')
			return (int)n;
		if (*s != '.')
			return -1;
		s++;
	}
}

void mime_header_filter(const unsigned char *header, size_t len, const char *const *names,
			size_t count, bool not, struct buf *out)
{
	size_t i = 0;
	bool keep = false;
	while (i < len) {
		const unsigned char *lf = memchr(header + i, '\n', len - i);
		size_t end = lf != NULL ? (size_t)(lf - header) + 1 : len;
		const unsigned char *line = header + i;
		size_t ll = end - i;
		if (ll == 1 || (ll == 2 && line[0] == '\r')) {
			break; /* the empty line */
		}
		if (line[0] != ' ' && line[0] != '\t') {
			const unsigned char *colon = memchr(line, ':', ll);
			keep = false;
			if (colon != NULL) {
				size_t nl = (size_t)(colon - line);
				while (nl > 0 && (line[nl - 1] == ' ' || line[nl - 1] == '\t'))
					nl--;
				bool match = false;
				for (size_t k = 0; k < count && !match; k++) {
					match = strlen(names[k]) == nl &&
						strncasecmp((const char *)line, names[k], nl) == 0;
				}
				keep = match != not;
			}
		}
		if (keep)
			buf_append(out, line, ll);
		i = end;
	}
	/* RFC 3501 §6.4.5: the result includes the blank line */
	buf_append(out, "\r\n", 2);
}

struct mime_result *mime_parse_buffer(const unsigned char *data, size_t len,
				      const struct mime_limits *limits)
{
	struct mime_parser *mp = mime_parser_new(limits);
	mime_parser_feed(mp, data, len);
	struct mime_result *res = mime_parser_finish(mp);
	mime_parser_free(&mp);
	return res;
}

struct mime_result *mime_parse_fd(int fd, const struct mime_limits *limits)
{
	struct mime_parser *mp = mime_parser_new(limits);
	unsigned char *chunk = xmalloc(65536);
	for (;;) {
		ssize_t r = read(fd, chunk, 65536);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			free(chunk);
			mime_parser_free(&mp);
			errno = err;
			return NULL;
		}
		if (r == 0)
			break;
		mime_parser_feed(mp, chunk, (size_t)r);
	}
	free(chunk);
	struct mime_result *res = mime_parser_finish(mp);
	mime_parser_free(&mp);
	return res;
}
