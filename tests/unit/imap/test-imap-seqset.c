/* Unit tests for src/imap/seqset.c: parsing, normalising, "*" and "$", membership, iteration
 * and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/seqset.h"

#define ALL (IMAP_SEQSET_ALLOW_STAR | IMAP_SEQSET_ALLOW_LAST)

static char *fmt(const struct imap_seqset *set)
{
	struct buf b = {0};
	imap_seqset_format(set, &b);
	char *s = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* Parses in and checks its normalised form. */
static void check_parse(const char *in, const char *expect)
{
	struct imap_seqset set;
	const char *error = NULL;
	int ret = imap_seqset_parse(&set, in, strlen(in), 100, ALL, &error);
	if (ret != 0)
		print_error("\"%s\": %s\n", in, error);
	assert_int_equal(ret, 0);
	char *got = fmt(&set);
	assert_string_equal(got, expect);
	/* The formatted set parses back to itself. */
	struct imap_seqset again;
	assert_int_equal(imap_seqset_parse(&again, got, strlen(got), 100, ALL, &error), 0);
	char *got2 = fmt(&again);
	assert_string_equal(got, got2);
	free(got);
	free(got2);
	imap_seqset_free(&set);
	imap_seqset_free(&again);
}

static void test_parse_valid(void **state)
{
	(void)state;
	check_parse("1:5,7,9:*", "1:5,7,9:*");
	check_parse("1", "1");
	check_parse("5:1", "1:5");
	check_parse("3,2,1", "1:3");
	check_parse("1:3,4:6", "1:6");
	check_parse("1:3,5:6", "1:3,5:6");
	check_parse("10:20,1:15,30,21", "1:21,30");
	check_parse("7,7,7", "7");
	check_parse("*", "*");
	check_parse("*:*", "*");
	check_parse("*:4", "4:*");
	check_parse("4:*,*:4,*", "*,4:*");
	check_parse("2:*,1", "1,2:*");
	check_parse("4294967295", "4294967295");
	check_parse("1:4294967295", "1:4294967295");
	check_parse("4294967295:4294967294,1", "1,4294967294:4294967295");
	check_parse("$", "$");
	/* RFC 9051 §9 example: 2,4:7,9,12:* */
	check_parse("2,4:7,9,12:*", "2,4:7,9,12:*");
}

static void check_invalid(const char *in, size_t max, unsigned flags)
{
	struct imap_seqset set;
	const char *error = NULL;
	if (imap_seqset_parse(&set, in, strlen(in), max, flags, &error) == 0)
		fail_msg("\"%s\" parsed", in);
	assert_non_null(error);
	assert_null(set.ranges);
	assert_int_equal(set.count, 0);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *bad[] = {
		"", "0", "01", "1:0", "0:1", "4294967296", "99999999999999999999", "1,", ",1",
		"1,,2", "1::2", "1:2:3", ":", "1:", ":1", "a", "1 2", "1;2", "-1", "+1", "1.5",
		"**", "*1", "1*", "$,1", "1,$", "$$", "$:1", "1:$", " 1", "1 ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_invalid(bad[i], 100, ALL);
	/* Without the flags "*" and "$" are refused (uid-set, RFC 4315). */
	check_invalid("*", 100, 0);
	check_invalid("1:*", 100, IMAP_SEQSET_ALLOW_LAST);
	check_invalid("$", 100, IMAP_SEQSET_ALLOW_STAR);
	/* The number of ranges is limited before merging. */
	check_invalid("1,2,3", 2, ALL);
	check_invalid("1,1,1", 2, ALL);
	struct imap_seqset set;
	const char *error;
	assert_int_equal(imap_seqset_parse(&set, "1,2,3", 5, 3, ALL, &error), 0);
	imap_seqset_free(&set);

	/* A huge set made of many elements is refused early, without work per element. */
	struct buf big = {0};
	for (int i = 0; i < 200000; i++)
		buf_printf(&big, "%s%d", i ? "," : "", i * 2 + 1);
	assert_int_equal(imap_seqset_parse(&set, (char *)big.data, big.len,
					   IMAP_SEQSET_MAX_RANGES_DEFAULT, ALL, &error), -1);
	assert_int_equal(imap_seqset_parse(&set, (char *)big.data, big.len, 200000, ALL, &error), 0);
	assert_int_equal(set.count, 200000);
	assert_true(imap_seqset_contains(&set, 399999, 0));
	assert_false(imap_seqset_contains(&set, 399998, 0));
	imap_seqset_free(&set);
	buf_free(&big);
}

static void test_star(void **state)
{
	(void)state;
	struct imap_seqset set, r;
	const char *error;

	/* "4:*" with 2 messages is 2:4 (RFC 9051 §9 seq-range: "regardless of order"). */
	assert_int_equal(imap_seqset_parse(&set, "4:*", 3, 10, ALL, &error), 0);
	assert_true(imap_seqset_has_star(&set));
	assert_false(imap_seqset_contains(&set, 1, 2));
	assert_true(imap_seqset_contains(&set, 2, 2));
	assert_true(imap_seqset_contains(&set, 3, 2));
	assert_true(imap_seqset_contains(&set, 4, 2));
	assert_false(imap_seqset_contains(&set, 5, 2));
	assert_true(imap_seqset_contains(&set, 10, 10));
	assert_false(imap_seqset_contains(&set, 11, 10));
	/* No value for "*": nothing matches and resolving fails (BAD for an empty mailbox). */
	assert_false(imap_seqset_contains(&set, 4, IMAP_SEQ_STAR));
	assert_int_equal(imap_seqset_resolve(&set, IMAP_SEQ_STAR, &r), -1);
	assert_null(r.ranges);
	assert_int_equal(imap_seqset_resolve(&set, 2, &r), 0);
	char *s = fmt(&r);
	assert_string_equal(s, "2:4");
	free(s);
	imap_seqset_free(&r);
	imap_seqset_free(&set);

	/* RFC 9051 §9 example: "*:4,5:7" with 10 messages is 4:10. */
	assert_int_equal(imap_seqset_parse(&set, "*:4,5:7", 7, 10, ALL, &error), 0);
	assert_int_equal(imap_seqset_resolve(&set, 10, &r), 0);
	s = fmt(&r);
	assert_string_equal(s, "4:10");
	free(s);
	assert_int_equal(imap_seqset_count(&r), 7);
	assert_int_equal(imap_seqset_last(&r), 10);
	imap_seqset_free(&r);
	imap_seqset_free(&set);

	/* UID "*" in an empty mailbox is UIDNEXT: the caller passes it. */
	assert_int_equal(imap_seqset_parse(&set, "*", 1, 10, ALL, &error), 0);
	assert_true(imap_seqset_contains(&set, 42, 42));
	assert_false(imap_seqset_contains(&set, 41, 42));
	assert_int_equal(imap_seqset_resolve(&set, 42, &r), 0);
	s = fmt(&r);
	assert_string_equal(s, "42");
	free(s);
	imap_seqset_free(&r);
	imap_seqset_free(&set);

	/* A set without "*" resolves whatever star is. */
	assert_int_equal(imap_seqset_parse(&set, "1:3", 3, 10, ALL, &error), 0);
	assert_false(imap_seqset_has_star(&set));
	assert_int_equal(imap_seqset_resolve(&set, IMAP_SEQ_STAR, &r), 0);
	assert_int_equal(imap_seqset_count(&r), 3);
	imap_seqset_free(&r);
	imap_seqset_free(&set);

	/* "$" is neither resolved nor matched here: the session holds the saved result. */
	assert_int_equal(imap_seqset_parse(&set, "$", 1, 10, ALL, &error), 0);
	assert_true(set.last_result);
	assert_false(imap_seqset_contains(&set, 1, 10));
	assert_int_equal(imap_seqset_resolve(&set, 10, &r), -1);
	imap_seqset_free(&set);
}

static void test_huge_and_iterate(void **state)
{
	(void)state;
	struct imap_seqset set, r;
	const char *error;
	assert_int_equal(imap_seqset_parse(&set, "1:4294967295", 12, 10, ALL, &error), 0);
	assert_int_equal(imap_seqset_count(&set), 4294967295ULL);
	assert_true(imap_seqset_contains(&set, 1, 0));
	assert_true(imap_seqset_contains(&set, 4294967295U, 0));
	assert_false(imap_seqset_contains(&set, 0, 0));
	imap_seqset_free(&set);

	/* Iteration ends at the top of the number space without wrapping. */
	assert_int_equal(imap_seqset_parse(&set, "4294967294:*,1:2,7", 18, 10, ALL, &error), 0);
	assert_int_equal(imap_seqset_resolve(&set, 4294967295U, &r), 0);
	struct imap_seqset_iter it;
	uint32_t n, seen[8];
	size_t count = 0;
	imap_seqset_iter_init(&it, &r);
	while (imap_seqset_iter_next(&it, &n)) {
		assert_true(count < 8);
		seen[count++] = n;
	}
	assert_int_equal(count, 5);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 2);
	assert_int_equal(seen[2], 7);
	assert_int_equal(seen[3], 4294967294U);
	assert_int_equal(seen[4], 4294967295U);
	assert_false(imap_seqset_iter_next(&it, &n));
	imap_seqset_free(&r);
	imap_seqset_free(&set);

	/* An empty set iterates nothing. */
	struct imap_seqset empty = {0};
	imap_seqset_iter_init(&it, &empty);
	assert_false(imap_seqset_iter_next(&it, &n));
	assert_int_equal(imap_seqset_count(&empty), 0);
	assert_int_equal(imap_seqset_last(&empty), 0);
	char *s = fmt(&empty);
	assert_string_equal(s, "");
	free(s);
}

static void test_build_and_format(void **state)
{
	(void)state;
	struct imap_seqset set = {0};
	imap_seqset_add(&set, 1, 1);
	imap_seqset_add(&set, 2, 2);
	imap_seqset_add(&set, 3, 3);
	imap_seqset_add(&set, 5, 5);
	imap_seqset_add(&set, 12, 10);
	imap_seqset_add(&set, 11, 13);
	char *s = fmt(&set);
	assert_string_equal(s, "1:3,5,10:13");
	free(s);
	assert_true(set.sorted);
	assert_true(imap_seqset_contains(&set, 11, 0));
	assert_false(imap_seqset_contains(&set, 4, 0));

	/* COPYUID keeps the order sets are built in. */
	imap_seqset_add(&set, 4, 4);
	assert_false(set.sorted);
	s = fmt(&set);
	assert_string_equal(s, "1:3,5,10:13,4");
	free(s);
	assert_true(imap_seqset_contains(&set, 4, 0));
	assert_false(imap_seqset_contains(&set, 6, 0));
	imap_seqset_normalize(&set);
	s = fmt(&set);
	assert_string_equal(s, "1:5,10:13");
	free(s);
	imap_seqset_free(&set);

	imap_seqset_add(&set, 4294967295U, 4294967295U);
	imap_seqset_add(&set, 4294967294U, 4294967295U);
	s = fmt(&set);
	assert_string_equal(s, "4294967295,4294967294:4294967295");
	free(s);
	imap_seqset_normalize(&set);
	s = fmt(&set);
	assert_string_equal(s, "4294967294:4294967295");
	free(s);
	imap_seqset_free(&set);
}

/* Random sets: membership after parsing matches a brute-force model. */
static void test_random_model(void **state)
{
	(void)state;
	srand(12345);
	for (int round = 0; round < 300; round++) {
		bool model[65] = {false};
		struct buf in = {0};
		int elements = 1 + rand() % 8;
		uint32_t star = (uint32_t)(rand() % 64);
		bool uses_star = false;
		for (int e = 0; e < elements; e++) {
			int a = 1 + rand() % 64, b = 1 + rand() % 64;
			bool sa = rand() % 10 == 0, sb = rand() % 6 == 0;
			if (e)
				buf_append(&in, ",", 1);
			if (sa)
				buf_append(&in, "*", 1);
			else
				buf_printf(&in, "%d", a);
			if (rand() % 2) {
				if (sb)
					buf_append_str(&in, ":*");
				else
					buf_printf(&in, ":%d", b);
			} else {
				sb = sa;
				b = a;
			}
			uses_star |= sa || sb;
			if (star == 0 && (sa || sb))
				continue;
			int x = sa ? (int)star : a, y = sb ? (int)star : b;
			for (int i = x < y ? x : y; i <= (x < y ? y : x); i++)
				model[i] = true;
		}
		struct imap_seqset set, r;
		const char *error;
		assert_int_equal(imap_seqset_parse(&set, (char *)in.data, in.len, 8, ALL, &error), 0);
		for (uint32_t n = 1; n <= 64; n++)
			assert_int_equal(imap_seqset_contains(&set, n, star), model[n]);
		int ret = imap_seqset_resolve(&set, star, &r);
		if (uses_star && star == 0) {
			assert_int_equal(ret, -1);
		} else {
			assert_int_equal(ret, 0);
			uint64_t members = 0;
			for (uint32_t n = 1; n <= 64; n++) {
				assert_int_equal(imap_seqset_contains(&r, n, 0), model[n]);
				members += model[n];
			}
			assert_int_equal(imap_seqset_count(&r), members);
			/* Resolved ranges are sorted, disjoint and not adjacent. */
			for (size_t i = 1; i < r.count; i++)
				assert_true((uint64_t)r.ranges[i - 1].hi + 1 < r.ranges[i].lo);
			imap_seqset_free(&r);
		}
		imap_seqset_free(&set);
		buf_free(&in);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_huge_and_iterate),
		cmocka_unit_test(test_build_and_format),
		cmocka_unit_test(test_random_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
