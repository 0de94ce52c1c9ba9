/* Unit tests for src/imap/utf7.c: modified UTF-7 both ways, strict rejection of non-canonical
 * and broken encodings, UTF-8 validation and mailbox-name validation with hostile names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "imap/utf7.h"

struct pair {
	const char *utf8;
	const char *utf7;
};

static const struct pair pairs[] = {
	{"", ""},
	{"INBOX", "INBOX"},
	{"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
	{"&", "&-"},
	{"a&b&&", "a&-b&-&-"},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-"},
	/* RFC 3501 §5.1.3 example */
	{"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	 "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"\xf0\x9f\x98\x80", "&2D3eAA-"},
	{"x\xf0\x9f\x98\x80y\xc3\xa9", "x&2D3eAA-y&AOk-"},
	{"a\tb", "a&AAk-b"},
	{"\xc3\xa9&\xc3\xa9", "&AOk-&-&AOk-"},
	{"caf\xc3\xa9 \xc3\xa9t\xc3\xa9", "caf&AOk- &AOk-t&AOk-"},
	{"\xc3\xa9\xc3\xa9\xc3\xa9", "&AOkA6QDp-"},
	{"\xef\xbf\xbd", "&,,0-"},
	{"\x7f", "&AH8-"},
};

static void test_round_trips(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char *out;
		const char *error = NULL;
		assert_int_equal(imap_utf8_to_utf7(pairs[i].utf8, strlen(pairs[i].utf8), &out, &error), 0);
		assert_string_equal(out, pairs[i].utf7);
		free(out);
		assert_int_equal(imap_utf7_to_utf8(pairs[i].utf7, strlen(pairs[i].utf7), &out, &error), 0);
		assert_string_equal(out, pairs[i].utf8);
		free(out);
	}
}

/* Every BMP character and a sample of supplementary ones survive the round trip. */
static void test_all_code_points(void **state)
{
	(void)state;
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 97) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		unsigned char u[8];
		size_t n;
		if (cp < 0x80) {
			u[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			u[0] = (unsigned char)(0xc0 | (cp >> 6));
			u[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			u[0] = (unsigned char)(0xe0 | (cp >> 12));
			u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			u[0] = (unsigned char)(0xf0 | (cp >> 18));
			u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			u[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		/* Surround it with ASCII and repeat it so shifts of 1, 2 and 3 units occur. */
		char in[32];
		size_t len = 0;
		in[len++] = 'a';
		for (int r = 0; r < 3; r++) {
			memcpy(in + len, u, n);
			len += n;
		}
		in[len++] = 'z';
		uint32_t dec;
		assert_int_equal(imap_utf8_decode(u, n, &dec), n);
		assert_int_equal(dec, cp);
		char *utf7, *back;
		const char *error;
		assert_int_equal(imap_utf8_to_utf7(in, len, &utf7, &error), 0);
		for (const char *c = utf7; *c; c++)
			assert_true(*c >= 0x20 && *c <= 0x7e);
		assert_int_equal(imap_utf7_to_utf8(utf7, strlen(utf7), &back, &error), 0);
		assert_int_equal(strlen(back), len);
		assert_memory_equal(back, in, len);
		free(utf7);
		free(back);
	}
}

static void test_utf7_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
	} bad[] = {
#define B(s) {s, sizeof(s) - 1}
		B("&AGE-"),        /* "a": printable ASCII must represent itself */
		B("&ACY-"),        /* "&" must be "&-" */
		B("&AH4-"),        /* "~" */
		B("&ACA-"),        /* " " */
		B("&"),            /* unterminated */
		B("a&"),
		B("&AOk"),         /* unterminated shift */
		B("&AOk-&AOk-"),   /* null shift "-&" */
		B("&A-"),          /* padding only */
		B("&AA-"),
		B("&AAA-"),        /* U+0000 */
		B("&AOl-"),        /* non-zero padding bits */
		B("&AOkA-"),       /* a stray sextet */
		B("&AOkA6QD-"),    /* too many bits for two units, too few for three */
		B("&2D0-"),        /* lone high surrogate */
		B("&2D0AYQ-"),     /* high surrogate then "a" */
		B("&3gA-"),        /* lone low surrogate */
		B("&AOk/-"),       /* "/" is not modified BASE64 */
		B("&AO=-"),
		B("&AOk-\xc3\xa9"),/* raw 8-bit */
		B("caf\xc3\xa9"),
		B("a\tb"),         /* raw control */
		B("a\0b"),
		B("a\x7f"),
		B("&-&"),
#undef B
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out = NULL;
		const char *error = NULL;
		if (imap_utf7_to_utf8(bad[i].in, bad[i].len, &out, &error) == 0)
			fail_msg("accepted \"%s\" as \"%s\"", bad[i].in, out);
		assert_non_null(error);
	}
	/* "&-" followed by a shift is fine: it is not a null shift. */
	char *out;
	const char *error;
	assert_int_equal(imap_utf7_to_utf8("&-&AOk-", 7, &out, &error), 0);
	assert_string_equal(out, "&\xc3\xa9");
	free(out);
}

static void test_utf8_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t len;
	} bad[] = {
#define B(s) {s, sizeof(s) - 1}
		B("\xff"), B("\xc3"), B("\xc0\xaf"), B("\xe0\x80\xaf"), B("\xed\xa0\x80"),
		B("\xf4\x90\x80\x80"), B("\xf8\x88\x80\x80\x80"), B("a\x80"), B("\xe6\x97"),
		B("a\0b"),
#undef B
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out;
		const char *error = NULL;
		assert_int_equal(imap_utf8_to_utf7(bad[i].in, bad[i].len, &out, &error), -1);
		assert_non_null(error);
		if (bad[i].in[0] != 'a' || bad[i].in[1] != '\0')
			assert_false(imap_utf8_valid((const unsigned char *)bad[i].in, bad[i].len));
	}
	assert_true(imap_utf8_valid((const unsigned char *)"", 0));
	assert_true(imap_utf8_valid((const unsigned char *)"\xf4\x8f\xbf\xbf", 4));
	assert_true(imap_utf8_valid((const unsigned char *)"\xed\x9f\xbf", 3));
	assert_true(imap_utf8_valid((const unsigned char *)"a\0b", 3));
}

static void check_mailbox(const char *in, size_t len, const char *expect)
{
	char *canon = NULL;
	const char *error = NULL;
	int ret = imap_mailbox_normalize(in, len, &canon, &error);
	if (expect == NULL) {
		if (ret == 0)
			fail_msg("accepted mailbox \"%s\" as \"%s\"", in, canon);
		assert_non_null(error);
		return;
	}
	if (ret != 0)
		fail_msg("refused mailbox \"%s\": %s", in, error);
	assert_string_equal(canon, expect);
	free(canon);
}

#define MB(s, e) check_mailbox(s, sizeof(s) - 1, e)

static void test_mailbox_names(void **state)
{
	(void)state;
	MB("INBOX", "INBOX");
	MB("inbox", "INBOX");
	MB("InBoX/Sub", "INBOX/Sub");
	MB("inbox/inbox", "INBOX/inbox");
	MB("INBOXES", "INBOXES");
	MB("Inboxy/x", "Inboxy/x");
	MB("My INBOX", "My INBOX");
	MB("a/b/c", "a/b/c");
	MB("Entw\xc3\xbcrfe", "Entw\xc3\xbcrfe");
	MB("...", "...");
	MB(".hidden/x.", ".hidden/x.");
	MB("a b", "a b");
	MB("~peter", "~peter");
	MB("a\\b", "a\\b");

	/* hostile */
	MB("", NULL);
	MB("../x", NULL);
	MB("INBOX/../", NULL);
	MB("INBOX/..", NULL);
	MB("a/../b", NULL);
	MB("a/./b", NULL);
	MB(".", NULL);
	MB("..", NULL);
	MB("a//b", NULL);
	MB("/abs", NULL);
	MB("/", NULL);
	MB("a/", NULL);
	MB("//", NULL);
	MB("a\0b", NULL);
	MB("a\rb", NULL);
	MB("a\nb", NULL);
	MB("a\tb", NULL);
	MB("\x7f", NULL);
	MB("a\xc2\x85", NULL); /* C1 NEL */
	MB("\xff", NULL);
	MB("\xc0\xaf", NULL); /* overlong "/" */
	MB("a%", NULL);
	MB("*", NULL);

	char name[IMAP_MAILBOX_NAME_MAX + 2];
	memset(name, 'x', sizeof(name));
	for (size_t i = 200; i < IMAP_MAILBOX_NAME_MAX; i += 201)
		name[i] = '/';
	char copy[IMAP_MAILBOX_NAME_MAX + 1];
	memcpy(copy, name, IMAP_MAILBOX_NAME_MAX);
	copy[IMAP_MAILBOX_NAME_MAX] = '\0';
	check_mailbox(name, IMAP_MAILBOX_NAME_MAX, copy);
	check_mailbox(name, IMAP_MAILBOX_NAME_MAX + 1, NULL);

	memset(name, 'y', sizeof(name));
	char *canon;
	const char *error;
	assert_int_equal(imap_mailbox_normalize(name, IMAP_MAILBOX_COMPONENT_MAX, &canon, &error), 0);
	free(canon);
	check_mailbox(name, IMAP_MAILBOX_COMPONENT_MAX + 1, NULL);

	struct buf deep = {0};
	for (int i = 0; i < IMAP_MAILBOX_DEPTH_MAX; i++)
		buf_append_str(&deep, i ? "/d" : "d");
	assert_int_equal(imap_mailbox_normalize((char *)deep.data, deep.len, &canon, &error), 0);
	free(canon);
	buf_append_str(&deep, "/d");
	check_mailbox((char *)deep.data, deep.len, NULL);
	buf_free(&deep);

	assert_true(imap_mailbox_is_inbox("iNbOx", 5));
	assert_false(imap_mailbox_is_inbox("INBOX/", 6));
	assert_false(imap_mailbox_is_inbox("INBO", 4));
}

static void test_mailbox_from_client(void **state)
{
	(void)state;
	char *canon;
	const char *error;
	assert_int_equal(imap_mailbox_from_client("Entw&APw-rfe", 12, false, &canon, &error), 0);
	assert_string_equal(canon, "Entw\xc3\xbcrfe");
	free(canon);
	assert_int_equal(imap_mailbox_from_client("inbox/&AOk-", 11, false, &canon, &error), 0);
	assert_string_equal(canon, "INBOX/\xc3\xa9");
	free(canon);
	/* With UTF-8 enabled "&" is an ordinary character. */
	assert_int_equal(imap_mailbox_from_client("Entw&APw-rfe", 12, true, &canon, &error), 0);
	assert_string_equal(canon, "Entw&APw-rfe");
	free(canon);
	assert_int_equal(imap_mailbox_from_client("caf\xc3\xa9", 5, true, &canon, &error), 0);
	free(canon);
	/* Raw 8-bit from a UTF-7 client, bad UTF-7, and a name that decodes to something hostile. */
	assert_int_equal(imap_mailbox_from_client("caf\xc3\xa9", 5, false, &canon, &error), -1);
	assert_int_equal(imap_mailbox_from_client("&AGE-", 5, false, &canon, &error), -1);
	assert_int_equal(imap_mailbox_from_client("a&AAo-b", 7, false, &canon, &error), -1);
	assert_int_equal(imap_mailbox_from_client("a&AAA-b", 7, false, &canon, &error), -1);
	assert_int_equal(imap_mailbox_from_client("&-/../x", 7, false, &canon, &error), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_all_code_points),
		cmocka_unit_test(test_utf7_invalid),
		cmocka_unit_test(test_utf8_invalid),
		cmocka_unit_test(test_mailbox_names),
		cmocka_unit_test(test_mailbox_from_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
