/* The IMAP command parser (src/imap/parser.c) fed the same input in two chunkings: the results,
 * their input positions and the bytes the literal sink gets must be identical. Every parsed
 * argument also goes through the sequence-set, modified UTF-7, mailbox-name and quoting code,
 * checking their round trips.
 *
 * Input: byte 0 chooses the options (bits 0-1 literal mode, 2 UTF-8, 3 literal8, 4 literal sink
 * for APPEND, 5 tiny limits), byte 1 seeds the second chunking, the rest is the client's
 * input. Seeds in fuzz/seeds/fuzz-imap-parser start with two printable bytes for these. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/quote.h"
#include "imap/seqset.h"
#include "imap/utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct opts {
	enum imap_literal_mode mode;
	bool utf8;
	bool literal8;
	bool sink;
	bool tiny;
};

struct sink_state {
	struct buf *log;
	size_t expect; /* bytes of the current literal still to come */
};

static int sink_fn(void *ctx, enum imap_literal_event ev, const struct imap_literal_info *info,
		   const unsigned char *data, size_t len)
{
	struct sink_state *s = ctx;
	switch (ev) {
	case IMAP_LITERAL_BEGIN:
		buf_printf(s->log, "BEGIN %llu %u.%zu %d%d\n", (unsigned long long)info->size,
			   info->depth, info->index, info->nonsync, info->literal8);
		s->expect = (size_t)info->size;
		/* Refuse some, to run that path too. */
		return info->size % 5 == 4 ? -1 : 0;
	case IMAP_LITERAL_DATA:
		if (len == 0 || len > s->expect)
			abort();
		s->expect -= len;
		buf_append(s->log, data, len);
		return 0;
	case IMAP_LITERAL_END:
		if (s->expect != 0)
			abort();
		buf_append_str(s->log, "\nEND\n");
		return 0;
	case IMAP_LITERAL_ABORT:
		buf_append_str(s->log, "\nABORT\n");
		return 0;
	}
	return 0;
}

/* Sequence sets: the formatted set parses back to the same set, and membership agrees with the
 * resolved form. */
static void check_seqset(const struct imap_arg *a)
{
	struct imap_seqset set, again, r;
	const char *error;
	unsigned flags = IMAP_SEQSET_ALLOW_STAR | IMAP_SEQSET_ALLOW_LAST;
	if (imap_seqset_parse(&set, (const char *)a->data, a->len, 64, flags, &error) < 0)
		return;
	struct buf f1 = {0}, f2 = {0};
	imap_seqset_format(&set, &f1);
	if (imap_seqset_parse(&again, (const char *)f1.data, f1.len, 64, flags, &error) < 0)
		abort();
	imap_seqset_format(&again, &f2);
	if (f1.len != f2.len || memcmp(f1.data, f2.data, f1.len) != 0)
		abort();
	uint32_t star = a->len > 0 ? a->data[0] % 50 : 0;
	if (imap_seqset_resolve(&set, star, &r) == 0) {
		for (uint32_t n = 1; n < 60; n++)
			if (imap_seqset_contains(&set, n, star) != imap_seqset_contains(&r, n, 0))
				abort();
		struct imap_seqset_iter it;
		uint32_t n, prev = 0, count = 0;
		imap_seqset_iter_init(&it, &r);
		while (count < 1000 && imap_seqset_iter_next(&it, &n)) {
			if (n <= prev || !imap_seqset_contains(&r, n, 0))
				abort();
			prev = n;
			count++;
		}
		imap_seqset_free(&r);
	}
	buf_free(&f1);
	buf_free(&f2);
	imap_seqset_free(&set);
	imap_seqset_free(&again);
}

/* Modified UTF-7 is canonical: what decodes re-encodes to the same bytes. Mailbox
 * normalisation is idempotent. Quoting reads back through the parser. */
static void check_string(const struct imap_arg *a)
{
	const char *s = (const char *)a->data;
	char *utf8, *utf7, *canon, *canon2;
	const char *error;

	if (imap_utf7_to_utf8(s, a->len, &utf8, &error) == 0) {
		if (imap_utf8_to_utf7(utf8, strlen(utf8), &utf7, &error) < 0)
			abort();
		if (strlen(utf7) != a->len || memcmp(utf7, s, a->len) != 0)
			abort();
		free(utf7);
		free(utf8);
	}
	if (imap_utf8_to_utf7(s, a->len, &utf7, &error) == 0) {
		if (imap_utf7_to_utf8(utf7, strlen(utf7), &utf8, &error) < 0)
			abort();
		if (strlen(utf8) != a->len || memcmp(utf8, s, a->len) != 0)
			abort();
		free(utf7);
		free(utf8);
	}
	if (imap_mailbox_normalize(s, a->len, &canon, &error) == 0) {
		if (imap_mailbox_normalize(canon, strlen(canon), &canon2, &error) < 0)
			abort();
		if (strcmp(canon, canon2) != 0)
			abort();
		free(canon);
		free(canon2);
	}

	struct buf cmd = {0};
	buf_append_str(&cmd, "q X ");
	if (imap_write_astring(&cmd, a->data, a->len, IMAP_QUOTE_BINARY | IMAP_QUOTE_UTF8) < 0)
		abort();
	buf_append_str(&cmd, "\r\n");
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	imap_parser_set_utf8(p, true);
	imap_parser_set_literal8(p, true);
	size_t pos = 0, used;
	enum imap_parse_result r;
	do {
		r = imap_parser_feed(p, cmd.data + pos, cmd.len - pos, &used);
		pos += used;
	} while (r == IMAP_PARSE_HAVE_NAME || r == IMAP_PARSE_NEED_CONTINUATION);
	size_t n;
	const struct imap_arg *args = imap_parser_args(p, &n);
	if (r != IMAP_PARSE_COMPLETE || pos != cmd.len || n != 1 || args[0].len != a->len ||
	    memcmp(args[0].data, a->data, a->len) != 0)
		abort();
	imap_parser_free(&p);
	buf_free(&cmd);
}

static void check_args(const struct imap_arg *args, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		switch (a->type) {
		case IMAP_ARG_ATOM:
			check_seqset(a);
			check_string(a);
			break;
		case IMAP_ARG_STRING:
		case IMAP_ARG_NIL:
			if (a->len <= 4096)
				check_string(a);
			break;
		case IMAP_ARG_LIST:
			check_args(a->list, a->list_count);
			break;
		case IMAP_ARG_STREAMED:
			break;
		}
	}
}

/* Parses data fed in chunks: next_chunk gives each chunk's size. Returns the transcript. */
static void run(const struct opts *o, const uint8_t *data, size_t size, uint32_t seed,
		bool deep_checks, struct buf *log)
{
	struct imap_parser_limits l = imap_parser_limits_default;
	if (o->tiny) {
		l.max_line_length = 64;
		l.max_literal_size = 32;
		l.max_literal_total = 48;
		l.max_literal_discard = 100;
		l.max_args = 12;
		l.max_list_depth = 3;
	}
	struct imap_parser *p = imap_parser_new(&l);
	imap_parser_set_literal_mode(p, o->mode);
	imap_parser_set_utf8(p, o->utf8);
	imap_parser_set_literal8(p, o->literal8);
	struct sink_state sink = {.log = log};
	size_t pos = 0, chunk_end = 0;

	while (pos < size) {
		if (pos >= chunk_end) {
			size_t step = size;
			if (seed != 0) {
				seed = seed * 1103515245u + 12345u;
				step = 1 + (seed >> 16) % 13;
			}
			chunk_end = pos + step < size ? pos + step : size;
		}
		size_t used;
		enum imap_parse_result r = imap_parser_feed(p, data + pos, chunk_end - pos, &used);
		if (used > chunk_end - pos)
			abort();
		pos += used;
		if (r == IMAP_PARSE_NEED_MORE) {
			if (pos != chunk_end)
				abort();
			continue;
		}
		buf_printf(log, "@%zu ", pos);
		switch (r) {
		case IMAP_PARSE_HAVE_NAME:
			buf_printf(log, "NAME %s %s\n", imap_parser_tag(p), imap_parser_name(p));
			if (o->sink && strcasecmp(imap_parser_name(p), "APPEND") == 0)
				imap_parser_set_literal_sink(p, 3, sink_fn, &sink);
			break;
		case IMAP_PARSE_NEED_CONTINUATION:
			buf_append_str(log, "CONT\n");
			break;
		case IMAP_PARSE_COMPLETE: {
			size_t n;
			const struct imap_arg *args = imap_parser_args(p, &n);
			buf_printf(log, "OK %s %s ", imap_parser_tag(p), imap_parser_name(p));
			imap_args_dump(args, n, log);
			buf_append_str(log, "\n");
			if (deep_checks)
				check_args(args, n);
			imap_parser_reset(p);
			break;
		}
		case IMAP_PARSE_ERROR: {
			const struct imap_parse_error *e = imap_parser_error(p);
			const char *tag = imap_parser_tag(p);
			buf_printf(log, "ERR %d %d %d %s %s\n", (int)e->code, e->skip_line, e->fatal,
				   tag ? tag : "-", e->reason);
			if (e->fatal) {
				imap_parser_free(&p);
				return;
			}
			imap_parser_reset(p);
			break;
		}
		default:
			abort();
		}
	}
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct opts o = {
		.mode = (enum imap_literal_mode)((data[0] & 3) % 3),
		.utf8 = (data[0] & 4) != 0,
		.literal8 = (data[0] & 8) != 0,
		.sink = (data[0] & 16) != 0,
		.tiny = (data[0] & 32) != 0,
	};
	uint32_t seed = data[1] | 0x100u;
	struct buf a = {0}, b = {0};
	run(&o, data + 2, size - 2, 0, true, &a);
	run(&o, data + 2, size - 2, seed, false, &b);
	if (a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
