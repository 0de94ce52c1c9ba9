/* Unit tests for src/imap/quote.c, including a round trip through the command parser: what
 * quote.c writes, parser.c reads back byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/quote.h"

enum kind { ASTRING, STRING, NSTRING };

static void check(enum kind k, const char *in, size_t len, unsigned flags, const char *expect,
		  size_t expect_len)
{
	struct buf out = {0};
	buf_append_str(&out, ">");
	int ret = k == ASTRING ? imap_write_astring(&out, in, len, flags)
		  : k == STRING ? imap_write_string(&out, in, len, flags)
				: imap_write_nstring(&out, in, len, flags);
	if (expect == NULL) {
		assert_int_equal(ret, -1);
		assert_int_equal(out.len, 1); /* nothing written */
	} else {
		assert_int_equal(ret, 0);
		assert_int_equal(out.len - 1, expect_len);
		assert_memory_equal(out.data + 1, expect, expect_len);
	}
	buf_free(&out);
}

#define CHK(k, in, flags, expect) check(k, in, sizeof(in) - 1, flags, expect, sizeof(expect) - 1)
#define CHK_FAIL(k, in, flags) check(k, in, sizeof(in) - 1, flags, NULL, 0)

static void test_quote(void **state)
{
	(void)state;
	CHK(ASTRING, "INBOX", 0, "INBOX");
	CHK(ASTRING, "foo]", 0, "foo]");
	CHK(ASTRING, "", 0, "\"\"");
	CHK(ASTRING, "NIL", 0, "\"NIL\"");
	CHK(ASTRING, "nil", 0, "\"nil\"");
	CHK(ASTRING, "NILS", 0, "NILS");
	CHK(ASTRING, "a b", 0, "\"a b\"");
	CHK(ASTRING, "a\"b", 0, "\"a\\\"b\"");
	CHK(ASTRING, "a\\b", 0, "\"a\\\\b\"");
	CHK(ASTRING, "\\Seen", 0, "\"\\\\Seen\"");
	CHK(ASTRING, "a(b", 0, "\"a(b\"");
	CHK(ASTRING, "a{b", 0, "\"a{b\"");
	CHK(ASTRING, "50%", 0, "\"50%\"");
	CHK(ASTRING, "a*", 0, "\"a*\"");
	CHK(ASTRING, "caf\xc3\xa9", 0, "{5}\r\ncaf\xc3\xa9");
	CHK(ASTRING, "caf\xc3\xa9", IMAP_QUOTE_UTF8, "\"caf\xc3\xa9\"");
	CHK(ASTRING, "caf\xc3", IMAP_QUOTE_UTF8, "{4}\r\ncaf\xc3");
	CHK(ASTRING, "a\r\nb", 0, "{4}\r\na\r\nb");
	CHK(ASTRING, "a\tb", 0, "\"a\tb\"");
	CHK_FAIL(ASTRING, "a\0b", 0);
	CHK(ASTRING, "a\0b", IMAP_QUOTE_BINARY, "~{3}\r\na\0b");
	CHK(STRING, "INBOX", 0, "\"INBOX\"");
	CHK(STRING, "", 0, "\"\"");
	CHK_FAIL(STRING, "\0", IMAP_QUOTE_UTF8);
	CHK(NSTRING, "x", 0, "\"x\"");
	check(NSTRING, NULL, 0, 0, "NIL", 3);

	/* Long strings go out as literals. */
	char big[IMAP_QUOTED_MAX + 1];
	memset(big, 'q', sizeof(big));
	struct buf out = {0};
	assert_int_equal(imap_write_string(&out, big, IMAP_QUOTED_MAX, 0), 0);
	assert_int_equal(out.data[0], '"');
	assert_int_equal(out.len, IMAP_QUOTED_MAX + 2);
	buf_clear(&out);
	assert_int_equal(imap_write_string(&out, big, IMAP_QUOTED_MAX + 1, 0), 0);
	assert_memory_equal(out.data, "{1025}\r\nqqq", 11);
	buf_free(&out);

	assert_true(imap_is_atom("FLAGS", 5));
	assert_true(imap_is_atom("$Junk", 5));
	assert_false(imap_is_atom("", 0));
	assert_false(imap_is_atom("a]", 2));
	assert_false(imap_is_atom("\\Seen", 5));
	assert_false(imap_is_atom("a b", 3));
	assert_false(imap_is_atom("\xc3\xa9", 2));
}

/* Whatever quote.c writes, the parser reads back as the same bytes. */
static void round_trip(const unsigned char *s, size_t len, unsigned flags)
{
	struct buf cmd = {0};
	buf_append_str(&cmd, "t X ");
	int ret = imap_write_astring(&cmd, s, len, flags);
	if (memchr(s, '\0', len) != NULL && !(flags & IMAP_QUOTE_BINARY)) {
		assert_int_equal(ret, -1);
		buf_free(&cmd);
		return;
	}
	assert_int_equal(ret, 0);
	buf_append_str(&cmd, "\r\n");

	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	imap_parser_set_utf8(p, (flags & IMAP_QUOTE_UTF8) != 0);
	imap_parser_set_literal8(p, true);
	size_t pos = 0, used;
	enum imap_parse_result r;
	do {
		r = imap_parser_feed(p, cmd.data + pos, cmd.len - pos, &used);
		pos += used;
	} while (r == IMAP_PARSE_HAVE_NAME || r == IMAP_PARSE_NEED_CONTINUATION);
	if (r != IMAP_PARSE_COMPLETE)
		fail_msg("flags %u, %s: %.*s", flags, imap_parser_error(p)->reason, (int)cmd.len,
			 (const char *)cmd.data);
	assert_int_equal(pos, cmd.len);
	size_t n;
	const struct imap_arg *a = imap_parser_args(p, &n);
	assert_int_equal(n, 1);
	assert_true(a[0].type == IMAP_ARG_ATOM || a[0].type == IMAP_ARG_STRING);
	assert_int_equal(a[0].len, len);
	assert_memory_equal(a[0].data, s, len);
	imap_parser_free(&p);
	buf_free(&cmd);
}

static void test_round_trip(void **state)
{
	(void)state;
	static const char *fixed[] = {"", "INBOX", "NIL", "a b", "\"", "\\", "\\\\\"", "]",
				      "caf\xc3\xa9", "\x01\x7f", "a\r", "\n", "(", ")", "{3}",
				      "~{1}", "%*"};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		for (unsigned f = 0; f < 4; f++)
			round_trip((const unsigned char *)fixed[i], strlen(fixed[i]), f);
	srand(99);
	for (int i = 0; i < 2000; i++) {
		unsigned char s[64];
		size_t len = (size_t)(rand() % 64);
		for (size_t j = 0; j < len; j++) {
			/* mostly printable ASCII, sometimes anything */
			s[j] = rand() % 8 ? (unsigned char)(0x20 + rand() % 95)
					  : (unsigned char)(rand() % 256);
		}
		round_trip(s, len, (unsigned)(rand() % 4));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
