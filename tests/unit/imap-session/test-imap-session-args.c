/* The IMAP session's argument helpers: LIST wildcards, flags, date-time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "imap/session/imap-private.h"

static void test_list_match(void **state)
{
	(void)state;
	assert_true(imap_list_match("*", "INBOX"));
	assert_true(imap_list_match("*", "a/b/c"));
	assert_true(imap_list_match("%", "Sent"));
	assert_false(imap_list_match("%", "a/b"));
	assert_true(imap_list_match("a/%", "a/b"));
	assert_false(imap_list_match("a/%", "a/b/c"));
	assert_true(imap_list_match("a/*", "a/b/c"));
	assert_false(imap_list_match("a/*", "a"));
	assert_true(imap_list_match("a*c", "abc"));
	assert_true(imap_list_match("a*c", "a/x/c"));
	assert_false(imap_list_match("a%c", "a/c"));
	assert_true(imap_list_match("INBOX", "INBOX"));
	assert_false(imap_list_match("INBOX", "INBOX/x"));
	assert_false(imap_list_match("", "x"));
	assert_true(imap_list_match("%/%", "a/b"));
	assert_true(imap_list_match("**%%*", "x"));
	/* Many wildcards against a long name stay cheap (no backtracking blow-up). */
	char pat[201], name[1001];
	memset(pat, '*', 200);
	pat[199] = 'b';
	pat[200] = '\0';
	memset(name, 'a', 1000);
	name[1000] = '\0';
	assert_false(imap_list_match(pat, name));
}

static struct imap_arg atom(const char *s)
{
	struct imap_arg a = {.type = IMAP_ARG_ATOM, .data = (const unsigned char *)s, .len = strlen(s)};
	return a;
}

static void test_parse_flags(void **state)
{
	(void)state;
	struct imap_arg members[] = {atom("\\Seen"), atom("\\FLAGGED"), atom("$Label1"), atom("work")};
	struct imap_arg list = {.type = IMAP_ARG_LIST, .list = members, .list_count = 4};
	uint32_t flags = 0;
	const char *kw[4];
	size_t nkw = 0;
	const char *error = NULL;
	assert_int_equal(imap_parse_flags(&list, 1, &flags, kw, 4, &nkw, &error), 0);
	assert_int_equal(flags, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	assert_int_equal(nkw, 2);
	assert_string_equal(kw[0], "$Label1");
	assert_string_equal(kw[1], "work");
	/* Bare flags after STORE's item, without parentheses. */
	assert_int_equal(imap_parse_flags(members, 2, &flags, kw, 4, &nkw, &error), 0);
	assert_int_equal(nkw, 0);
	struct imap_arg recent = atom("\\Recent");
	assert_int_equal(imap_parse_flags(&recent, 1, &flags, kw, 4, &nkw, &error), -1);
	struct imap_arg unknown = atom("\\Bogus");
	assert_int_equal(imap_parse_flags(&unknown, 1, &flags, kw, 4, &nkw, &error), -1);
	assert_int_equal(imap_parse_flags(&list, 1, &flags, kw, 1, &nkw, &error), -1);
	struct imap_arg str = {.type = IMAP_ARG_STRING, .data = (const unsigned char *)"x", .len = 1};
	assert_int_equal(imap_parse_flags(&str, 1, &flags, kw, 4, &nkw, &error), -1);
	struct imap_arg empty = {.type = IMAP_ARG_LIST, .list_count = 0};
	assert_int_equal(imap_parse_flags(&empty, 1, &flags, kw, 4, &nkw, &error), 0);
	assert_int_equal(flags, 0);
}

static void test_format_flags(void **state)
{
	(void)state;
	struct buf b = {0};
	imap_format_flags(&b, 0, NULL, false);
	assert_string_equal(buf_cstr(&b), "()");
	buf_clear(&b);
	imap_format_flags(&b, STORE_FLAG_SEEN | STORE_FLAG_DRAFT | STORE_FLAG_ANSWERED, "$a b", true);
	assert_string_equal(buf_cstr(&b), "(\\Answered \\Seen \\Draft $a b \\Recent)");
	buf_clear(&b);
	imap_format_flags(&b, 0, "kw", false);
	assert_string_equal(buf_cstr(&b), "(kw)");
	buf_free(&b);
}

static void test_datetime(void **state)
{
	(void)state;
	assert_int_equal(imap_parse_datetime("01-Jan-1970 00:00:00 +0000"), 0);
	assert_int_equal(imap_parse_datetime(" 1-Jan-1970 01:00:00 +0100"), 0);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 -0700"), 837596665);
	assert_int_equal(imap_parse_datetime("17-jul-1996 09:44:25 +0000"), 837596665);
	assert_int_equal(imap_parse_datetime("32-Jul-1996 02:44:25 -0700"), -1);
	assert_int_equal(imap_parse_datetime("17-Jux-1996 02:44:25 -0700"), -1);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 24:44:25 -0700"), -1);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25 0700"), -1);
	assert_int_equal(imap_parse_datetime("17-Jul-1996 02:44:25"), -1);
	assert_int_equal(imap_parse_datetime(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_match),
		cmocka_unit_test(test_parse_flags),
		cmocka_unit_test(test_format_flags),
		cmocka_unit_test(test_datetime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
