/* Unit tests for src/imap/parser.c: table-driven commands, every split of every input gives the
 * same transcript as one-shot feeding, literal flows (sync, LITERAL+, LITERAL-, literal8), limits
 * and the streaming literal sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "imap/parser.h"

/* ---- driver ---- */

struct cfg {
	enum imap_literal_mode mode;
	bool utf8;
	bool literal8;
	/* 0 means the default limits' value */
	size_t max_line;
	uint64_t max_literal;
	uint64_t max_total;
	uint64_t max_discard;
	size_t max_args;
	unsigned max_depth;
	/* APPEND literals bigger than sink_threshold go to the sink when sink is set */
	bool sink;
	uint64_t sink_threshold;
	uint64_t sink_refuse_above; /* 0: accept everything */
};

struct sink_rec {
	struct buf *log;
	struct buf data;
	const struct cfg *cfg;
	bool positions;
	size_t begins;
};

static const char *code_name(enum imap_parse_error_code c)
{
	switch (c) {
	case IMAP_PARSE_ERR_SYNTAX:
		return "SYNTAX";
	case IMAP_PARSE_ERR_EMPTY_LINE:
		return "EMPTY";
	case IMAP_PARSE_ERR_LINE_TOO_LONG:
		return "LONG";
	case IMAP_PARSE_ERR_TOO_MANY_ARGS:
		return "ARGS";
	case IMAP_PARSE_ERR_TOO_DEEP:
		return "DEEP";
	case IMAP_PARSE_ERR_LITERAL_TOO_BIG:
		return "TOOBIG";
	case IMAP_PARSE_ERR_LITERAL_REFUSED:
		return "REFUSED";
	}
	return "?";
}

static void dump_data(struct buf *out, const unsigned char *d, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (d[i] >= 0x20 && d[i] < 0x7f)
			buf_append(out, &d[i], 1);
		else
			buf_printf(out, "\\x%02X", d[i]);
	}
}

static int sink_fn(void *ctx, enum imap_literal_event ev, const struct imap_literal_info *info,
		   const unsigned char *data, size_t len)
{
	struct sink_rec *s = ctx;
	switch (ev) {
	case IMAP_LITERAL_BEGIN:
		s->begins++;
		buf_printf(s->log, "BEGIN %llu %u.%zu%s%s\n", (unsigned long long)info->size,
			   info->depth, info->index, info->nonsync ? " +" : "",
			   info->literal8 ? " ~" : "");
		buf_clear(&s->data);
		if (s->cfg->sink_refuse_above && info->size > s->cfg->sink_refuse_above)
			return -1;
		return 0;
	case IMAP_LITERAL_DATA:
		assert_true(len > 0);
		buf_append(&s->data, data, len);
		return 0;
	case IMAP_LITERAL_END:
		assert_int_equal(s->data.len, info->size);
		buf_append_str(s->log, "DATA ");
		dump_data(s->log, s->data.data, s->data.len);
		buf_append_str(s->log, "\nEND\n");
		return 0;
	case IMAP_LITERAL_ABORT:
		buf_append_str(s->log, "ABORT ");
		dump_data(s->log, s->data.data, s->data.len);
		buf_append_str(s->log, "\n");
		return 0;
	}
	return 0;
}

static struct imap_parser *make_parser(const struct cfg *c)
{
	struct imap_parser_limits l = imap_parser_limits_default;
	if (c->max_line)
		l.max_line_length = c->max_line;
	if (c->max_literal)
		l.max_literal_size = c->max_literal;
	if (c->max_total)
		l.max_literal_total = c->max_total;
	if (c->max_discard)
		l.max_literal_discard = c->max_discard;
	if (c->max_args)
		l.max_args = c->max_args;
	if (c->max_depth)
		l.max_list_depth = c->max_depth;
	struct imap_parser *p = imap_parser_new(&l);
	imap_parser_set_literal_mode(p, c->mode);
	imap_parser_set_utf8(p, c->utf8);
	imap_parser_set_literal8(p, c->literal8);
	return p;
}

/* Feeds data to a parser in chunks: the first of at most `first` bytes, then chunks of at most
 * `step` bytes (0: all the rest at once). Returns the transcript; with positions each event
 * also says how much input had been consumed. */
static char *run(const struct cfg *c, const unsigned char *data, size_t len, size_t first,
		 size_t step, bool positions)
{
	struct imap_parser *p = make_parser(c);
	struct buf log = {0};
	struct sink_rec sink = {.log = &log, .cfg = c, .positions = positions};
	size_t pos = 0, limit = first && first < len ? first : len;

	while (pos < len) {
		size_t avail = limit > pos ? limit - pos : 0;
		if (avail == 0) {
			limit = step ? pos + step : len;
			if (limit > len)
				limit = len;
			continue;
		}
		size_t used;
		enum imap_parse_result r = imap_parser_feed(p, data + pos, avail, &used);
		assert_true(used <= avail);
		pos += used;
		if (positions && r != IMAP_PARSE_NEED_MORE)
			buf_printf(&log, "@%zu ", pos);
		if (r == IMAP_PARSE_NEED_MORE) {
			assert_int_equal(used, avail);
			continue;
		}
		if (r == IMAP_PARSE_HAVE_NAME) {
			if (positions)
				buf_printf(&log, "NAME %s %s\n", imap_parser_tag(p), imap_parser_name(p));
			if (c->sink && strcasecmp(imap_parser_name(p), "APPEND") == 0)
				imap_parser_set_literal_sink(p, c->sink_threshold, sink_fn, &sink);
			continue;
		}
		if (r == IMAP_PARSE_NEED_CONTINUATION) {
			buf_append_str(&log, "CONT\n");
			continue;
		}
		if (r == IMAP_PARSE_COMPLETE) {
			size_t n;
			const struct imap_arg *args = imap_parser_args(p, &n);
			buf_printf(&log, "OK %s %s", imap_parser_tag(p), imap_parser_name(p));
			if (n > 0) {
				buf_append_str(&log, " ");
				imap_args_dump(args, n, &log);
			}
			buf_append_str(&log, "\n");
			/* Repeats without consuming until reset. */
			assert_int_equal(imap_parser_feed(p, data + pos, len - pos, &used),
					 IMAP_PARSE_COMPLETE);
			assert_int_equal(used, 0);
			imap_parser_reset(p);
			continue;
		}
		assert_int_equal(r, IMAP_PARSE_ERROR);
		const struct imap_parse_error *e = imap_parser_error(p);
		const char *tag = imap_parser_tag(p);
		buf_printf(&log, "ERR %s skip=%d fatal=%d tag=%s %s\n", code_name(e->code),
			   e->skip_line, e->fatal, tag ? tag : "-", e->reason);
		if (e->fatal)
			break;
		imap_parser_reset(p);
	}
	buf_free(&sink.data);
	imap_parser_free(&p);
	assert_null(p);
	buf_cstr(&log);
	return (char *)log.data;
}

/* The expected transcript for one-shot feeding, and the same positional transcript for
 * byte-by-byte feeding, every two-chunk split and a few chunk sizes. */
static void check_all_splits(const struct cfg *c, const unsigned char *in, size_t len,
			     const char *expect, size_t stride)
{
	char *got = run(c, in, len, 0, 0, false);
	if (expect != NULL && strcmp(got, expect) != 0) {
		fprintf(stderr, "input: ");
		fwrite(in, 1, len > 200 ? 200 : len, stderr);
		fprintf(stderr, "\nexpected:\n%s\ngot:\n%s\n", expect, got);
		fail();
	}
	free(got);

	char *ref = run(c, in, len, 0, 0, true);
	char *bytewise = run(c, in, len, 1, 1, true);
	assert_string_equal(ref, bytewise);
	free(bytewise);
	for (size_t k = 1; k < len; k += stride) {
		char *split = run(c, in, len, k, 0, true);
		if (strcmp(ref, split) != 0) {
			fprintf(stderr, "split at %zu:\n%s\nvs one-shot:\n%s\n", k, split, ref);
			fail();
		}
		free(split);
	}
	for (size_t step = 2; step <= 7; step++) {
		char *chunked = run(c, in, len, step, step, true);
		assert_string_equal(ref, chunked);
		free(chunked);
	}
	free(ref);
}

#define IN(s) (const unsigned char *)(s), sizeof(s) - 1

/* ---- the table ---- */

struct parse_case {
	const char *name;
	const unsigned char *in;
	size_t len;
	struct cfg cfg;
	const char *expect;
};

#define PLUS {.mode = IMAP_LITERAL_PLUS}
#define MINUS {.mode = IMAP_LITERAL_MINUS}

static const struct parse_case cases[] = {
	{"login quoted", IN("a1 LOGIN \"user\" \"pa\\\"ss\\\\\"\r\n"), {0},
	 "OK a1 LOGIN \"user\" \"pa\\\"ss\\\\\"\n"},
	{"login atoms", IN("a1 login joe secret\r\n"), {0}, "OK a1 login joe secret\n"},
	{"noop, bare LF, pipelined", IN("a NOOP\r\nb CAPABILITY\nc LOGOUT\r\n"), {0},
	 "OK a NOOP\nOK b CAPABILITY\nOK c LOGOUT\n"},
	{"append flags date literal",
	 IN("a2 APPEND INBOX (\\Seen \\Flagged) \"07-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n"),
	 {0},
	 "CONT\nOK a2 APPEND INBOX (\\Seen \\Flagged) \"07-Feb-1994 21:52:25 -0800\" {5}\"hello\"\n"},
	{"append with literal mailbox", IN("a APPEND {6}\r\nDrafts () {2}\r\nhi\r\n"), {0},
	 "CONT\nCONT\nOK a APPEND {6}\"Drafts\" () {2}\"hi\"\n"},
	{"fetch nested and section",
	 IN("a3 FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> BODY[1.2] "
	    "BINARY.SIZE[1] (X (Y ())))\r\n"),
	 {0},
	 "OK a3 FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO) ]<0.100> BODY[1.2] "
	 "BINARY.SIZE[1] (X (Y ())))\n"},
	{"fetch section at top level with quoted and literal names",
	 IN("a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X-A\" {3}\r\nX-B)] UID\r\n"), {0},
	 "CONT\nOK a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X-A\" {3}\"X-B\") ] UID\n"},
	{"atoms with brackets", IN("a FETCH 1 BODY[HEADER.FIELDS\r\nb APPEND a[b (\\Seen) {1+}\r\nx\r\n"),
	 PLUS, "OK a FETCH 1 BODY[HEADER.FIELDS\nOK b APPEND a[b (\\Seen) {1}\"x\"\n"},
	{"bracket atom after a list", IN("a X (a)]b ((c))] d (e) ]\r\n"), {0},
	 "OK a X (a) ]b ((c)) ] d (e) ]\n"},
	{"only ] may follow a list", IN("a X (a)[b\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Missing space between arguments\n"},
	{"search charset literal",
	 IN("a4 SEARCH CHARSET UTF-8 TEXT {5}\r\ncaf\xc3\xa9 SUBJECT \"x y\" NOT (SEEN)\r\n"), {0},
	 "CONT\nOK a4 SEARCH CHARSET UTF-8 TEXT {5}\"caf\\xC3\\xA9\" SUBJECT \"x y\" NOT (SEEN)\n"},
	{"uid commands",
	 IN("a5 UID FETCH 1:5,7 (UID FLAGS)\r\na6 UID STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
	    "a7 UID EXPUNGE 3:4\r\na8 UID SEARCH RETURN (SAVE) UID $\r\n"),
	 {0},
	 "OK a5 UID FETCH 1:5,7 (UID FLAGS)\nOK a6 UID STORE 1 +FLAGS.SILENT (\\Deleted)\n"
	 "OK a7 UID EXPUNGE 3:4\nOK a8 UID SEARCH RETURN (SAVE) UID $\n"},
	{"list patterns and wildcards", IN("a LIST \"\" %/*]x\r\n"), {0},
	 "OK a LIST \"\" %/*]x\n"},
	{"nil and empty", IN("a ID NIL nil (NIL \"\") () \"NIL\"\r\n"), {0},
	 "OK a ID NIL nil (NIL \"\") () \"NIL\"\n"},
	{"tilde atom", IN("a X ~foo ~\r\n"), {0}, "OK a X ~foo ~\n"},
	{"sync literal flow", IN("a LOGIN {4}\r\nuser {4}\r\npass\r\n"), {0},
	 "CONT\nCONT\nOK a LOGIN {4}\"user\" {4}\"pass\"\n"},
	{"empty sync literals", IN("a LOGIN {0}\r\n {0}\r\n\r\n"), {0},
	 "CONT\nCONT\nOK a LOGIN {0}\"\" {0}\"\"\n"},
	{"literal in list", IN("a X ({3}\r\nabc (\"d\" {1}\r\ne))\r\n"), {0},
	 "CONT\nCONT\nOK a X ({3}\"abc\" (\"d\" {1}\"e\"))\n"},
	{"literal+", IN("a LOGIN {4+}\r\nuser {4+}\r\npass\r\n"), PLUS,
	 "OK a LOGIN {4}\"user\" {4}\"pass\"\n"},
	{"literal+ not advertised", IN("a LOGIN {4+}\r\nuser pass\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Non-synchronizing literals are not supported\n"
	 "OK b NOOP\n"},
	{"literal+ not advertised, empty", IN("a X {0+}\r\n y\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Non-synchronizing literals are not supported\n"
	 "OK b NOOP\n"},
	{"literal- small", IN("a LOGIN {4+}\r\nuser x\r\n"), MINUS,
	 "OK a LOGIN {4}\"user\" x\n"},
	{"sync literal too big", IN("a LOGIN {11}\r\nb NOOP\r\n"), {.max_literal = 10},
	 "ERR TOOBIG skip=0 fatal=0 tag=a Literal too big\nOK b NOOP\n"},
	{"nonsync literal too big is swallowed",
	 IN("a LOGIN {11+}\r\nhello world {3+}\r\nabc x\r\nb NOOP\r\n"),
	 {.mode = IMAP_LITERAL_PLUS, .max_literal = 10},
	 "ERR TOOBIG skip=1 fatal=0 tag=a Literal too big\nOK b NOOP\n"},
	{"nonsync literal over discard limit is fatal", IN("a LOGIN {100+}\r\nxxxx\r\nb NOOP\r\n"),
	 {.mode = IMAP_LITERAL_PLUS, .max_literal = 10, .max_discard = 50},
	 "ERR TOOBIG skip=0 fatal=1 tag=a Literal too big\n"},
	{"literal size overflow, sync", IN("a X {99999999999999999999999}\r\nb NOOP\r\n"), PLUS,
	 "ERR TOOBIG skip=0 fatal=0 tag=a Literal too big\nOK b NOOP\n"},
	{"literal size overflow, nonsync", IN("a X {99999999999999999999999+}\r\nb NOOP\r\n"), PLUS,
	 "ERR TOOBIG skip=0 fatal=1 tag=a Literal too big\n"},
	{"literal total", IN("a X {6}\r\nabcdef {6}\r\nb NOOP\r\n"), {.max_total = 10},
	 "CONT\nERR TOOBIG skip=0 fatal=0 tag=a Literals of the command too big\nOK b NOOP\n"},
	{"literal8", IN("a APPEND INBOX ~{3}\r\na\0b\r\n"), {.literal8 = true},
	 "CONT\nOK a APPEND INBOX ~{3}\"a\\x00b\"\n"},
	{"literal8 nonsync", IN("a APPEND INBOX (\\Seen) ~{3+}\r\n\0\0\0\r\n"),
	 {.literal8 = true, .mode = IMAP_LITERAL_PLUS},
	 "OK a APPEND INBOX (\\Seen) ~{3}\"\\x00\\x00\\x00\"\n"},
	{"literal8 not allowed", IN("a APPEND INBOX ~{3}\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=0 fatal=0 tag=a literal8 not allowed here\nOK b NOOP\n"},
	{"NUL in literal", IN("a LOGIN {3}\r\na\0b x\r\nb NOOP\r\n"), {0},
	 "CONT\nERR SYNTAX skip=1 fatal=0 tag=a NUL byte in literal\nOK b NOOP\n"},
	{"NUL at literal end", IN("a LOGIN {3}\r\nab\0\r\nb NOOP\r\n"), {0},
	 "CONT\nERR SYNTAX skip=1 fatal=0 tag=a NUL byte in literal\nOK b NOOP\n"},
	{"overlong line", IN("a NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nb NOOP\r\n"),
	 {.max_line = 20}, "ERR LONG skip=1 fatal=0 tag=a Command line too long\nOK b NOOP\n"},
	{"line exactly at the limit", IN("a NOOP x\r\n"), {.max_line = 10}, "OK a NOOP x\n"},
	{"line one over the limit", IN("a NOOP xy\r\n"), {.max_line = 10},
	 "ERR LONG skip=1 fatal=0 tag=a Command line too long\n"},
	{"overlong line does not count literal data", IN("a X {20}\r\n01234567890123456789 y\r\n"),
	 {.max_line = 20}, "CONT\nOK a X {20}\"01234567890123456789\" y\n"},
	/* The limit strikes inside "{10+}": the skipper must still skip the literal's bytes
	 * rather than read them as a command. */
	{"overlong line inside literal size",
	 IN("a APPEND x {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"), {.max_line = 13, .mode = IMAP_LITERAL_PLUS},
	 "ERR LONG skip=1 fatal=0 tag=a Command line too long\nOK b NOOP\n"},
	{"literal in tag position", IN("{10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"), PLUS,
	 "ERR SYNTAX skip=1 fatal=0 tag=- Invalid character in tag\nOK b NOOP\n"},
	{"literal glued to atom", IN("a X abc{10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n"), PLUS,
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid character in atom\nOK b NOOP\n"},
	{"sync literal in a skipped line ends it", IN("a X ) {3}\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Unexpected space before \")\"\nOK b NOOP\n"},
	{"too deep", IN("a X (((a)))\r\nb X ((a))\r\n"), {.max_depth = 2},
	 "ERR DEEP skip=1 fatal=0 tag=a Lists nested too deep\nOK b X ((a))\n"},
	{"too many args", IN("a X a b c d\r\nb X a (b)\r\n"), {.max_args = 3},
	 "ERR ARGS skip=1 fatal=0 tag=a Too many arguments\nOK b X a (b)\n"},
	{"too many args with a literal", IN("a X a b c {1+}\r\nd\r\nb NOOP\r\n"),
	 {.max_args = 3, .mode = IMAP_LITERAL_PLUS},
	 "ERR ARGS skip=1 fatal=0 tag=a Too many arguments\nOK b NOOP\n"},
	{"empty tag", IN(" NOOP\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=- Empty tag\nOK b NOOP\n"},
	{"empty line", IN("\r\nb NOOP\r\n\n"), {0},
	 "ERR EMPTY skip=1 fatal=0 tag=- Empty line\nOK b NOOP\nERR EMPTY skip=1 fatal=0 tag=- Empty line\n"},
	{"bad tag chars", IN("a+b NOOP\r\na*b NOOP\r\n\"a\" NOOP\r\na(b NOOP\r\na]b NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=- Invalid character in tag\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=- Invalid character in tag\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=- Invalid character in tag\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=- Invalid character in tag\n"
	 "OK a]b NOOP\n"},
	{"tag only", IN("abc\r\n"), {0}, "ERR SYNTAX skip=1 fatal=0 tag=- Missing command name\n"},
	{"missing name", IN("abc \r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=abc Missing command name\n"},
	{"bad name", IN("a NO\"OP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid character in command name\n"},
	{"8-bit in quoted, rev1", IN("a SELECT \"caf\xc3\xa9\"\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a 8-bit character in quoted string\nOK b NOOP\n"},
	{"8-bit in quoted, rev2", IN("a SELECT \"caf\xc3\xa9\"\r\n"), {.utf8 = true},
	 "OK a SELECT \"caf\\xC3\\xA9\"\n"},
	{"bad UTF-8 in quoted, rev2", IN("a SELECT \"caf\xc3\"\r\nb NOOP\r\n"), {.utf8 = true},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid UTF-8 in quoted string\nOK b NOOP\n"},
	{"overlong UTF-8 in quoted, rev2", IN("a SELECT \"\xc0\xaf\"\r\n"), {.utf8 = true},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid UTF-8 in quoted string\n"},
	{"8-bit in atom", IN("a SELECT caf\xc3\xa9\r\n"), {.utf8 = true},
	 "ERR SYNTAX skip=1 fatal=0 tag=a 8-bit character in atom\n"},
	{"NUL in line", IN("a NO\0OP\r\nb LOGIN a\0 b\r\nc LOGIN \"a\0\"\r\nd NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid character in command name\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=b Invalid character in atom\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=c NUL byte in quoted string\n"
	 "OK d NOOP\n"},
	{"unterminated quoted", IN("a LOGIN \"abc\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Unterminated quoted string\nOK b NOOP\n"},
	{"bad escape", IN("a LOGIN \"a\\b\"\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid escape in quoted string\n"},
	{"missing space", IN("a X (a)(b)\r\nb X \"a\"\"b\"\r\nc X (a)b\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Missing space between arguments\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=b Missing space between arguments\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=c Missing space between arguments\n"},
	{"spaces", IN("a NOOP \r\nb X  y\r\nc X ( a)\r\nd X (a )\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Unexpected space at end of line\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=b Unexpected double space\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=c Unexpected double space\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=d Unexpected space before \")\"\n"},
	{"unbalanced parens", IN("a X a)\r\nb X (a\r\nc X (\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Unexpected \")\"\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=b Unterminated list\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=c Unterminated list\n"},
	{"CR without LF", IN("a NOOP\rX\r\nb NOOP\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a CR without LF\nOK b NOOP\n"},
	{"bad literal sizes", IN("a X {}\r\nb X {1x}\r\nc X {+}\r\nd X {1}x\r\ne X {1++}\r\nf NOOP\r\n"),
	 {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid literal size\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=b Invalid literal size\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=c Invalid literal size\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=d Literal size must end the line\n"
	 "ERR SYNTAX skip=1 fatal=0 tag=e Invalid literal size\n"
	 "OK f NOOP\n"},
	{"backslash only first", IN("a STORE 1 FLAGS (\\Seen a\\b)\r\n"), {0},
	 "ERR SYNTAX skip=1 fatal=0 tag=a Invalid character in atom\n"},
	{"streamed append", IN("a APPEND INBOX {20}\r\n01234567890123456789\r\n"),
	 {.sink = true, .sink_threshold = 8},
	 "BEGIN 20 0.1\nCONT\nDATA 01234567890123456789\nEND\nOK a APPEND INBOX {20}<streamed>\n"},
	{"small append literal stays in memory", IN("a APPEND {5}\r\nINBOX {3}\r\nabc\r\n"),
	 {.sink = true, .sink_threshold = 8},
	 "CONT\nCONT\nOK a APPEND {5}\"INBOX\" {3}\"abc\"\n"},
	{"streamed literal is not limited by max_literal",
	 IN("a APPEND INBOX (\\Seen) {12+}\r\nhello\r\nworld x\r\n"),
	 {.sink = true, .sink_threshold = 4, .max_literal = 5, .mode = IMAP_LITERAL_PLUS},
	 "BEGIN 12 0.2 +\nDATA hello\\x0D\\x0Aworld\nEND\nOK a APPEND INBOX (\\Seen) {12}<streamed> x\n"},
	{"catenate streamed in list",
	 IN("a APPEND INBOX CATENATE (URL \"/a;UID=1\" TEXT {10+}\r\n0123456789 TEXT ~{9+}\r\nab\0cdefgh)\r\n"),
	 {.sink = true, .sink_threshold = 4, .mode = IMAP_LITERAL_PLUS, .literal8 = true},
	 "BEGIN 10 1.3 +\nDATA 0123456789\nEND\nBEGIN 9 1.5 + ~\nDATA ab\\x00cdefgh\nEND\n"
	 "OK a APPEND INBOX CATENATE (URL \"/a;UID=1\" TEXT {10}<streamed> TEXT ~{9}<streamed>)\n"},
	{"sink refuses sync literal", IN("a APPEND INBOX {200}\r\nb NOOP\r\n"),
	 {.sink = true, .sink_threshold = 4, .sink_refuse_above = 100},
	 "BEGIN 200 0.1\nERR REFUSED skip=0 fatal=0 tag=a Literal refused\nOK b NOOP\n"},
	{"sink refuses nonsync literal", IN("a APPEND INBOX {12+}\r\nhello world! x\r\nb NOOP\r\n"),
	 {.sink = true, .sink_threshold = 4, .sink_refuse_above = 10, .mode = IMAP_LITERAL_PLUS},
	 "BEGIN 12 0.1 +\nERR REFUSED skip=1 fatal=0 tag=a Literal refused\nOK b NOOP\n"},
	{"NUL in streamed literal", IN("a APPEND INBOX {10}\r\n01234\0"
				       "6789\r\nb NOOP\r\n"),
	 {.sink = true, .sink_threshold = 4},
	 "BEGIN 10 0.1\nCONT\nABORT 01234\nERR SYNTAX skip=1 fatal=0 tag=a NUL byte in literal\nOK b NOOP\n"},
	{"sink only for APPEND", IN("a LOGIN {10}\r\n0123456789 x\r\n"),
	 {.sink = true, .sink_threshold = 4}, "CONT\nOK a LOGIN {10}\"0123456789\" x\n"},
};

static void test_case(void **state)
{
	const struct parse_case *t = *state;
	check_all_splits(&t->cfg, t->in, t->len, t->expect, 1);
}

/* LITERAL-: a non-synchronising literal of 4096 bytes is fine, 4097 is [TOOBIG] and its bytes
 * are swallowed (RFC 7888 §4). */
static void test_literal_minus(void **state)
{
	(void)state;
	struct cfg c = {.mode = IMAP_LITERAL_MINUS};
	for (size_t n = 4096; n <= 4097; n++) {
		struct buf in = {0};
		buf_printf(&in, "a APPEND INBOX {%zu+}\r\n", n);
		for (size_t i = 0; i < n; i++)
			buf_append(&in, "x", 1);
		buf_append_str(&in, "\r\nb NOOP\r\n");
		char *got = run(&c, in.data, in.len, 0, 0, false);
		if (n == 4096)
			assert_non_null(strstr(got, "OK a APPEND INBOX {4096}\"xxxx"));
		else
			assert_string_equal(got, "ERR TOOBIG skip=1 fatal=0 tag=a Non-synchronizing "
						 "literal over 4096 bytes (LITERAL-)\nOK b NOOP\n");
		free(got);
		check_all_splits(&c, in.data, in.len, NULL, 97);
		buf_free(&in);
	}
	/* A synchronising literal of any allowed size is fine with LITERAL-. */
	struct buf in = {0};
	buf_append_str(&in, "a X {5000}\r\n");
	for (size_t i = 0; i < 5000; i++)
		buf_append(&in, "y", 1);
	buf_append_str(&in, "\r\n");
	char *got = run(&c, in.data, in.len, 0, 0, false);
	assert_non_null(strstr(got, "CONT\nOK a X {5000}\"yyy"));
	free(got);
	buf_free(&in);
}

/* A big streamed APPEND: the sink gets exactly the literal's bytes, whatever the chunking, and
 * memory use does not follow the announced size. */
static void test_stream_big(void **state)
{
	(void)state;
	struct cfg c = {.sink = true, .sink_threshold = IMAP_LITERAL_STREAM_THRESHOLD,
			.mode = IMAP_LITERAL_PLUS, .literal8 = true};
	const size_t n = 300000;
	struct buf in = {0};
	buf_printf(&in, "A001 APPEND Sent (\\Seen) ~{%zu+}\r\n", n);
	size_t body = in.len;
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)(i * 7 + i / 251);
		buf_append(&in, &b, 1);
	}
	buf_append_str(&in, "\r\n");

	for (size_t step = 1; step <= 65536; step *= 4) {
		struct imap_parser *p = make_parser(&c);
		struct buf log = {0};
		struct sink_rec sink = {.log = &log, .cfg = &c};
		size_t pos = 0;
		bool done = false;
		while (!done && pos < in.len) {
			size_t avail = in.len - pos < step ? in.len - pos : step;
			size_t used;
			enum imap_parse_result r = imap_parser_feed(p, in.data + pos, avail, &used);
			pos += used;
			switch (r) {
			case IMAP_PARSE_HAVE_NAME:
				imap_parser_set_literal_sink(p, c.sink_threshold, sink_fn, &sink);
				break;
			case IMAP_PARSE_COMPLETE:
				done = true;
				break;
			case IMAP_PARSE_NEED_MORE:
				break;
			default:
				fail();
			}
		}
		assert_true(done);
		assert_int_equal(pos, in.len);
		assert_int_equal(sink.begins, 1);
		assert_int_equal(sink.data.len, n);
		assert_memory_equal(sink.data.data, in.data + body, n);
		size_t count;
		const struct imap_arg *args = imap_parser_args(p, &count);
		assert_int_equal(count, 3);
		assert_int_equal(args[2].type, IMAP_ARG_STREAMED);
		assert_int_equal(args[2].len, n);
		assert_true(args[2].literal8);
		assert_null(args[2].data);
		buf_free(&sink.data);
		buf_free(&log);
		imap_parser_free(&p);
	}
	buf_free(&in);
}

/* The argument tree and the helpers. */
static void test_accessors(void **state)
{
	(void)state;
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	static const char in[] = "t1 uid FETCH 1:3 (FLAGS nil \"q\\\"\" {2}\r\nab) NIL \"NIL\"\r\nnext";
	size_t used, off = 0;
	assert_null(imap_parser_tag(p));
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)in, 3, &used), IMAP_PARSE_NEED_MORE);
	assert_string_equal(imap_parser_tag(p), "t1");
	assert_null(imap_parser_name(p));
	off += used;
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)in + off, sizeof(in) - 1 - off, &used),
			 IMAP_PARSE_HAVE_NAME);
	off += used;
	assert_string_equal(imap_parser_name(p), "uid");
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)in + off, sizeof(in) - 1 - off, &used),
			 IMAP_PARSE_NEED_CONTINUATION);
	off += used;
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)in + off, sizeof(in) - 1 - off, &used),
			 IMAP_PARSE_COMPLETE);
	off += used;
	assert_string_equal(in + off, "next");

	size_t n;
	const struct imap_arg *a = imap_parser_args(p, &n);
	assert_int_equal(n, 5);
	assert_true(imap_arg_atom_eq(&a[0], "fetch"));
	assert_false(imap_arg_atom_eq(&a[0], "fetc"));
	assert_false(imap_arg_atom_eq(&a[0], "fetchx"));
	assert_string_equal(imap_arg_atom(&a[1]), "1:3");
	assert_int_equal(a[2].type, IMAP_ARG_LIST);
	assert_int_equal(a[2].list_count, 4);
	assert_string_equal(imap_arg_atom(&a[2].list[0]), "FLAGS");
	assert_int_equal(a[2].list[1].type, IMAP_ARG_NIL);
	assert_string_equal(imap_arg_astring(&a[2].list[1]), "nil");
	assert_int_equal(a[2].list[2].type, IMAP_ARG_STRING);
	assert_false(a[2].list[2].literal);
	assert_string_equal(imap_arg_astring(&a[2].list[2]), "q\"");
	assert_null(imap_arg_atom(&a[2].list[2]));
	assert_true(a[2].list[3].literal);
	assert_int_equal(a[2].list[3].len, 2);
	const char *s = "x";
	assert_true(imap_arg_nstring(&a[3], &s));
	assert_null(s);
	assert_true(imap_arg_nstring(&a[4], &s));
	assert_string_equal(s, "NIL");
	assert_int_equal(a[4].type, IMAP_ARG_STRING);
	assert_false(imap_arg_nstring(&a[1], &s));
	assert_null(imap_arg_astring(&a[2]));

	imap_parser_reset(p);
	assert_null(imap_parser_tag(p));
	a = imap_parser_args(p, &n);
	assert_null(a);
	assert_int_equal(n, 0);

	/* A literal8 with NUL is a string but not an astring. */
	imap_parser_set_literal8(p, true);
	imap_parser_set_literal_mode(p, IMAP_LITERAL_PLUS);
	static const char bin[] = "t2 X ~{2+}\r\na\0\r\n";
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)bin, 5, &used), IMAP_PARSE_HAVE_NAME);
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)bin + used, sizeof(bin) - 1 - used, &off),
			 IMAP_PARSE_COMPLETE);
	a = imap_parser_args(p, &n);
	assert_int_equal(n, 1);
	assert_null(imap_arg_astring(&a[0]));
	assert_false(imap_arg_nstring(&a[0], &s));
	assert_memory_equal(a[0].data, "a\0", 2);
	imap_parser_free(&p);
	imap_parser_free(&p); /* NULL is fine */
}

/* After a fatal error the parser stays failed, even across a reset. */
static void test_fatal_sticks(void **state)
{
	(void)state;
	struct imap_parser_limits l = imap_parser_limits_preauth;
	struct imap_parser *p = imap_parser_new(&l);
	imap_parser_set_literal_mode(p, IMAP_LITERAL_PLUS);
	static const char in[] = "a LOGIN {1000000+}\r\n";
	size_t used;
	enum imap_parse_result r;
	do
		r = imap_parser_feed(p, (const unsigned char *)in, sizeof(in) - 1, &used);
	while (r == IMAP_PARSE_HAVE_NAME);
	assert_int_equal(r, IMAP_PARSE_ERROR);
	assert_true(imap_parser_error(p)->fatal);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)"b NOOP\r\n", 8, &used),
			 IMAP_PARSE_ERROR);
	assert_int_equal(used, 0);
	assert_true(imap_parser_error(p)->fatal);
	imap_parser_free(&p);
}

/* Buffers of a big command are released at reset (idle connections keep little). */
static void test_many_args_and_reuse(void **state)
{
	(void)state;
	struct cfg c = {0};
	struct buf in = {0};
	buf_append_str(&in, "a SEARCH");
	for (int i = 0; i < 4000; i++)
		buf_printf(&in, " (OR %d SEEN)", i);
	buf_append_str(&in, "\r\nb NOOP\r\n");
	c.max_args = 16000;
	char *got = run(&c, in.data, in.len, 0, 0, false);
	assert_non_null(strstr(got, "OK a SEARCH (OR 0 SEEN) (OR 1 SEEN)"));
	assert_non_null(strstr(got, "(OR 3999 SEEN)\nOK b NOOP\n"));
	free(got);
	/* 4000 lists of 3 = 16000 arguments: over the default limit of 4096. */
	c.max_args = 0;
	got = run(&c, in.data, in.len, 0, 0, false);
	assert_string_equal(got, "ERR ARGS skip=1 fatal=0 tag=a Too many arguments\nOK b NOOP\n");
	free(got);
	c.max_line = 1000;
	got = run(&c, in.data, in.len, 0, 0, false);
	assert_string_equal(got, "ERR LONG skip=1 fatal=0 tag=a Command line too long\nOK b NOOP\n");
	free(got);
	check_all_splits(&c, in.data, in.len, NULL, 1009);
	buf_free(&in);
}

int main(void)
{
	const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_literal_minus),
		cmocka_unit_test(test_stream_big),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_fatal_sticks),
		cmocka_unit_test(test_many_args_and_reuse),
	};
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	/* One cmocka test per table row, so a failure names its case. */
	struct CMUnitTest *tests = calloc(ncases + nfixed, sizeof(*tests));
	for (size_t i = 0; i < ncases; i++) {
		tests[i].name = cases[i].name;
		tests[i].test_func = test_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	memcpy(tests + ncases, fixed, sizeof(fixed));
	int rc = _cmocka_run_group_tests("imap-parser", tests, ncases + nfixed, NULL, NULL);
	free(tests);
	return rc;
}
