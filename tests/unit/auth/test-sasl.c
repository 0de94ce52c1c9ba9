/* Unit tests for src/auth/sasl.c: PLAIN (RFC 4616) and LOGIN decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/sasl.h"
#include "core/buf.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* Base64 of len raw bytes (which may hold NULs). */
static char *b64(const char *raw, size_t len)
{
	return base64_encode((const unsigned char *)raw, len);
}

/* Runs sasl_plain_decode on the base64 of raw[0..len). */
static int plain(const char *raw, size_t len, char **user, char **pass)
{
	char *enc = b64(raw, len);
	int r = sasl_plain_decode(enc, strlen(enc), user, pass);
	free(enc);
	return r;
}

#define PLAIN(lit, u, p) plain(lit, sizeof(lit) - 1, u, p)

static void test_mech_parse(void **state)
{
	(void)state;
	assert_int_equal(sasl_mech_parse("PLAIN", 5), SASL_PLAIN);
	assert_int_equal(sasl_mech_parse("plain", 5), SASL_PLAIN);
	assert_int_equal(sasl_mech_parse("Login", 5), SASL_LOGIN);
	assert_int_equal(sasl_mech_parse("PLAIN dGVzdA==", 5), SASL_PLAIN); /* counted */
	assert_int_equal(sasl_mech_parse("PLAINX", 6), SASL_UNKNOWN);
	assert_int_equal(sasl_mech_parse("PLAI", 4), SASL_UNKNOWN);
	assert_int_equal(sasl_mech_parse("CRAM-MD5", 8), SASL_UNKNOWN);
	assert_int_equal(sasl_mech_parse("", 0), SASL_UNKNOWN);
}

static void test_plain_valid(void **state)
{
	(void)state;
	char *user = NULL, *pass = NULL;
	assert_int_equal(PLAIN("\0alice@example.com\0s3cret pass", &user, &pass), 0);
	assert_string_equal(user, "alice@example.com");
	assert_string_equal(pass, "s3cret pass");
	free(user);
	free(pass);

	/* RFC 4616 §4 example, without authzid. */
	assert_int_equal(sasl_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, &user, &pass), 0);
	assert_string_equal(user, "tim");
	assert_string_equal(pass, "tanstaaftanstaaf");
	free(user);
	free(pass);

	/* UTF-8 passwords pass through unchanged. */
	assert_int_equal(PLAIN("\0bob@example.com\0p\xc3\xa4ss", &user, &pass), 0);
	assert_string_equal(pass, "p\xc3\xa4ss");
	free(user);
	free(pass);
}

static void test_plain_authzid(void **state)
{
	(void)state;
	char *user = NULL, *pass = NULL;
	/* authzid equal to authcid: no proxying, accepted. */
	assert_int_equal(PLAIN("alice@example.com\0alice@example.com\0pw", &user, &pass), 0);
	assert_string_equal(user, "alice@example.com");
	assert_string_equal(pass, "pw");
	free(user);
	free(pass);
	/* Same address with different case: the same account. */
	assert_int_equal(PLAIN("Alice@Example.COM\0alice@example.com\0pw", &user, &pass), 0);
	assert_string_equal(user, "alice@example.com");
	free(user);
	free(pass);

	/* A different authzid is a proxy login: refused, and nothing is returned. */
	user = pass = (char *)"unchanged";
	assert_int_equal(PLAIN("bob@example.com\0alice@example.com\0pw", &user, &pass), -1);
	assert_null(user);
	assert_null(pass);
	/* A prefix is not equal. */
	assert_int_equal(PLAIN("alice@example.co\0alice@example.com\0pw", &user, &pass), -1);
	assert_int_equal(PLAIN("alice@example.comm\0alice@example.com\0pw", &user, &pass), -1);
	/* RFC 4616 §4 example with authzid "Ursel" and authcid "Kurt". */
	assert_int_equal(sasl_plain_decode("VXJzZWwAS3VydAB4aXBmMg==", 24, &user, &pass), -1);
}

static void test_plain_missing_nuls(void **state)
{
	(void)state;
	char *user = NULL, *pass = NULL;
	assert_int_equal(PLAIN("alicepw", &user, &pass), -1);         /* no NUL */
	assert_int_equal(PLAIN("alice\0pw", &user, &pass), -1);       /* one NUL */
	assert_int_equal(PLAIN("\0alice", &user, &pass), -1);         /* one NUL */
	assert_int_equal(PLAIN("\0\0pw", &user, &pass), -1);          /* empty authcid */
	assert_int_equal(PLAIN("\0alice\0", &user, &pass), -1);       /* empty password */
	assert_int_equal(PLAIN("\0\0", &user, &pass), -1);            /* both empty */
	assert_int_equal(PLAIN("\0alice\0p\0w", &user, &pass), -1);   /* NUL in password */
	assert_int_equal(PLAIN("\0alice\0pw\0", &user, &pass), -1);   /* trailing NUL */
	assert_int_equal(PLAIN("a\0b\0c\0d", &user, &pass), -1);      /* four fields */
	assert_int_equal(sasl_plain_decode("", 0, &user, &pass), -1); /* empty response */
	assert_null(user);
	assert_null(pass);
}

static void test_plain_bad_base64(void **state)
{
	(void)state;
	char *user = NULL, *pass = NULL;
	static const char *const bad[] = {
		"AGFsaWNlAHB",   /* truncated */
		"AGFsaWNl AHB3", /* space */
		"AGFsaWNlAHB3!", /* bad character */
		"*",             /* SASL cancel is the protocol's business */
		"=",
		"AGFsaWNlAHB3\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(sasl_plain_decode(bad[i], strlen(bad[i]), &user, &pass), -1);
	/* The length is honoured: a valid prefix of a longer string decodes alone. */
	char *ok = b64("\0alice\0pw", 9);
	char *joined = xasprintf("%s%s", ok, "garbage!");
	assert_int_equal(sasl_plain_decode(joined, strlen(ok), &user, &pass), 0);
	assert_string_equal(user, "alice");
	assert_string_equal(pass, "pw");
	free(user);
	free(pass);
	free(joined);
	free(ok);
}

/* PLAIN with an authzid of zlen, authcid of clen and password of plen octets (the authzid
 * repeats the authcid's letter so that equal lengths mean equal names). */
static int plain_sizes(size_t zlen, size_t clen, size_t plen, char **user, char **pass)
{
	size_t len = zlen + clen + plen + 2;
	char *raw = xmalloc(len);
	memset(raw, 'u', zlen);
	raw[zlen] = '\0';
	memset(raw + zlen + 1, 'u', clen);
	raw[zlen + 1 + clen] = '\0';
	memset(raw + zlen + clen + 2, 'p', plen);
	int r = plain(raw, len, user, pass);
	free(raw);
	return r;
}

static void test_plain_oversize(void **state)
{
	(void)state;
	char *user = NULL, *pass = NULL;
	/* Fields of exactly 1024 octets are accepted. */
	assert_int_equal(plain_sizes(1024, 1024, 1024, &user, &pass), 0);
	assert_int_equal(strlen(user), 1024);
	assert_int_equal(strlen(pass), 1024);
	free(user);
	free(pass);
	assert_int_equal(plain_sizes(0, 1024, 1024, &user, &pass), 0);
	free(user);
	free(pass);
	/* 1025-octet user name, password or authzid: refused. */
	assert_int_equal(plain_sizes(0, 1025, 1, &user, &pass), -1);
	assert_int_equal(plain_sizes(0, 1, 1025, &user, &pass), -1);
	assert_int_equal(plain_sizes(1025, 1025, 1, &user, &pass), -1);
	assert_int_equal(plain_sizes(1025, 1025, 1025, &user, &pass), -1);
	assert_null(user);
	assert_null(pass);

	/* A huge response is refused before decoding. */
	size_t big = 1 << 20;
	char *huge = xmalloc(big + 1);
	memset(huge, 'A', big);
	huge[big] = '\0';
	assert_int_equal(sasl_plain_decode(huge, big, &user, &pass), -1);
	assert_null(sasl_login_decode(huge, big));
	free(huge);
	assert_null(user);
	assert_null(pass);
}

static void test_login(void **state)
{
	(void)state;
	char *s = sasl_login_decode("YWxpY2VAZXhhbXBsZS5jb20=", 24);
	assert_non_null(s);
	assert_string_equal(s, "alice@example.com");
	free(s);
	s = sasl_login_decode("cGFzcyB3b3Jk", 12);
	assert_string_equal(s, "pass word");
	free(s);

	/* The prompts are base64 of what they say. */
	s = sasl_login_decode(SASL_LOGIN_PROMPT_USER, strlen(SASL_LOGIN_PROMPT_USER));
	assert_string_equal(s, "Username:");
	free(s);
	s = sasl_login_decode(SASL_LOGIN_PROMPT_PASS, strlen(SASL_LOGIN_PROMPT_PASS));
	assert_string_equal(s, "Password:");
	free(s);

	assert_null(sasl_login_decode("", 0));               /* empty */
	assert_null(sasl_login_decode("YWxpY2U", 7));        /* truncated */
	assert_null(sasl_login_decode("YW!pY2U=", 8));       /* bad character */
	assert_null(sasl_login_decode("YQBi", 4));           /* "a\0b": embedded NUL */
	assert_null(sasl_login_decode("AA==", 4));           /* a lone NUL */

	char raw[1025];
	memset(raw, 'x', sizeof raw);
	char *enc = b64(raw, 1024);
	s = sasl_login_decode(enc, strlen(enc));
	assert_non_null(s);
	assert_int_equal(strlen(s), 1024);
	free(s);
	free(enc);
	enc = b64(raw, 1025);
	assert_null(sasl_login_decode(enc, strlen(enc)));
	free(enc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mech_parse),
		cmocka_unit_test(test_plain_valid),
		cmocka_unit_test(test_plain_authzid),
		cmocka_unit_test(test_plain_missing_nuls),
		cmocka_unit_test(test_plain_bad_base64),
		cmocka_unit_test(test_plain_oversize),
		cmocka_unit_test(test_login),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
