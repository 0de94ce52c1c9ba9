/* SMTP DATA unstuffing and POP3 dot-stuffing: table-driven, and every input fed in every
 * two-way split (and byte by byte) must give the same result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "pop3/pop3-private.h"
#include "smtp/unstuff.h"

static void emit(void *ctx, const unsigned char *data, size_t len)
{
	buf_append(ctx, data, len);
}

/* Feeds input in pieces of the given sizes (0 = the rest), keeping unconsumed bytes like the
 * connection's input buffer does. Returns whether the end was seen; out gets the message,
 * *rest_r the bytes left after the terminator. */
static bool feed_split(const char *input, size_t split, struct buf *out, size_t *rest_r)
{
	struct unstuff u;
	unstuff_init(&u);
	struct buf pending = {0};
	size_t len = strlen(input), pos = 0;
	bool end = false;
	while (!end && pos < len) {
		size_t n = split == 0 ? len - pos : (split < len - pos ? split : len - pos);
		buf_append(&pending, input + pos, n);
		pos += n;
		size_t used = unstuff_feed(&u, pending.data, pending.len, emit, out, &end);
		buf_consume(&pending, used);
	}
	*rest_r = pending.len + (len - pos);
	buf_free(&pending);
	return end;
}

static const struct {
	const char *in;
	const char *out;
	bool end;
	size_t rest;
} unstuff_cases[] = {
	{".\r\n", "", true, 0},
	{"a\r\n.\r\n", "a\r\n", true, 0},
	{"a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", true, 0},
	{"..\r\n.\r\nQUIT\r\n", ".\r\n", true, 6},
	{"a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", true, 0},          /* bare LF never ends data */
	{"a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", true, 0},       /* ".\n" is an unstuffed line */
	{"a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", true, 0},      /* LF "." CRLF is not the end */
	{"x.\r\n.\r\n", "x.\r\n", true, 0},
	{"a\r\n", "a\r\n", false, 0},
	{"a\r\n.", "a\r\n", false, 1},
	{"a\r\n.\r", "a\r\n", false, 2},
	{"\r\n.\r\n", "\r\n", true, 0},
	{"a\r\r\n.\r\n", "a\r\r\n", true, 0},
};

static void test_unstuff_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof unstuff_cases / sizeof unstuff_cases[0]; i++) {
		size_t len = strlen(unstuff_cases[i].in);
		for (size_t split = 0; split <= len; split++) {
			struct buf out = {0};
			size_t rest = 0;
			bool end = feed_split(unstuff_cases[i].in, split, &out, &rest);
			assert_int_equal(end, unstuff_cases[i].end);
			assert_int_equal(out.len, strlen(unstuff_cases[i].out));
			assert_memory_equal(out.data ? out.data : (unsigned char *)"",
					    unstuff_cases[i].out, out.len);
			if (end)
				assert_int_equal(rest, unstuff_cases[i].rest);
			buf_free(&out);
		}
	}
}

static void stuff_all(const char *in, size_t split, bool whole, uint64_t lines, struct buf *out)
{
	struct pop3_retr r = {.active = true, .whole = whole, .bol = true, .in_header = true,
			      .last_was_crlf = true, .header_blank = true, .body_lines = lines};
	size_t len = strlen(in);
	for (size_t pos = 0; pos < len;) {
		size_t n = split == 0 ? len - pos : (split < len - pos ? split : len - pos);
		if (!pop3_stuff(&r, (const unsigned char *)in + pos, n, out))
			break;
		pos += n;
	}
}

static const struct {
	const char *in;
	bool whole;
	uint64_t lines;
	const char *out;
} stuff_cases[] = {
	{"A: b\r\n\r\n.x\r\n.\r\n", true, 0, "A: b\r\n\r\n..x\r\n..\r\n"},
	{".A: b\r\n\r\nbody\r\n", true, 0, "..A: b\r\n\r\nbody\r\n"},
	{"A: b\r\n\r\n1\r\n2\r\n3\r\n", false, 0, "A: b\r\n\r\n"},
	{"A: b\r\n\r\n1\r\n.2\r\n3\r\n", false, 2, "A: b\r\n\r\n1\r\n..2\r\n"},
	{"A: b\r\n\r\n1\r\n", false, 10, "A: b\r\n\r\n1\r\n"},
	{"A: b\r\nC: d\r\n", false, 0, "A: b\r\nC: d\r\n"},
	{"A: b\n\n1\n2\n", false, 1, "A: b\n\n1\n"},
};

static void test_pop3_stuff_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof stuff_cases / sizeof stuff_cases[0]; i++) {
		size_t len = strlen(stuff_cases[i].in);
		for (size_t split = 0; split <= len; split++) {
			struct buf out = {0};
			stuff_all(stuff_cases[i].in, split, stuff_cases[i].whole, stuff_cases[i].lines,
				  &out);
			assert_int_equal(out.len, strlen(stuff_cases[i].out));
			assert_memory_equal(out.data, stuff_cases[i].out, out.len);
			buf_free(&out);
		}
	}
}

/* Stuffing then unstuffing gives back the original, whatever the content. */
static void test_round_trip(void **state)
{
	(void)state;
	const char *msgs[] = {"a\r\n.\r\n..\r\n...x\r\n", ".\r\n", "\r\n.\r\n.", "x\r\n.y"};
	for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		struct buf stuffed = {0}, back = {0};
		stuff_all(msgs[i], 0, true, 0, &stuffed);
		if (stuffed.len < 2 || memcmp(stuffed.data + stuffed.len - 2, "\r\n", 2) != 0)
			buf_append_str(&stuffed, "\r\n");
		buf_append_str(&stuffed, ".\r\n");
		size_t rest = 0;
		assert_true(feed_split(buf_cstr(&stuffed), 1, &back, &rest));
		assert_int_equal(rest, 0);
		assert_true(back.len >= strlen(msgs[i]));
		assert_memory_equal(back.data, msgs[i], strlen(msgs[i]));
		buf_free(&stuffed);
		buf_free(&back);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unstuff_table),
		cmocka_unit_test(test_pop3_stuff_table),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
