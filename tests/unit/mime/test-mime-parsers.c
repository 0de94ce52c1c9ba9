/* Unit tests for the field parsers: addresses, dates, RFC 2047 encoded-words, RFC 2231
 * parameters, Content-Transfer-Encoding decoders, base subjects. */
#include "mime-test.h"
#include "mime/mime-private.h"

#include <stdlib.h>

/* ---- addresses (RFC 5322 §3.4, §4.4) ---- */

static char *envelope_addrs(const char *value)
{
	struct mime_address *list = mime_address_parse(value, strlen(value), true);
	struct buf out = {0};
	mime_address_write_imap(&out, list);
	mime_address_free(&list);
	buf_cstr(&out);
	return (char *)out.data;
}

static void check_addr(const char *value, const char *want)
{
	char *got = envelope_addrs(value);
	assert_string_equal(got, want);
	free(got);
}

static void test_address_basic(void **state)
{
	(void)state;
	check_addr("a@b", "((NIL NIL \"a\" \"b\"))");
	check_addr("John Doe <jd@example.com>", "((\"John Doe\" NIL \"jd\" \"example.com\"))");
	check_addr("\"Doe, John\" <jd@example.com>, x@y",
		   "((\"Doe, John\" NIL \"jd\" \"example.com\")(NIL NIL \"x\" \"y\"))");
	check_addr("<jd@example.com>", "((NIL NIL \"jd\" \"example.com\"))");
	check_addr("Joe   Q.  Public <a@b>", "((\"Joe Q. Public\" NIL \"a\" \"b\"))");
	check_addr("\"quo ted\"@x", "((NIL NIL \"quo ted\" \"x\"))");
	check_addr("a@[1.2.3.4]", "((NIL NIL \"a\" \"[1.2.3.4]\"))");
	check_addr("", "NIL");
	check_addr("(only a comment)", "NIL");
}

static void test_address_groups(void **state)
{
	(void)state;
	check_addr("Undisclosed recipients:;",
		   "((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL))");
	check_addr("g: m1@x, \"N\" <m2@y>;, last@z",
		   "((NIL NIL \"g\" NIL)(NIL NIL \"m1\" \"x\")(\"N\" NIL \"m2\" \"y\")"
		   "(NIL NIL NIL NIL)(NIL NIL \"last\" \"z\"))");
}

static void test_address_obsolete(void **state)
{
	(void)state;
	/* RFC 5322 §4.4 obs-route and comments as names */
	check_addr("<@r1,@r2:u@d>", "((NIL \"@r1,@r2\" \"u\" \"d\"))");
	check_addr("u2@d (Comment Name)", "((\"Comment Name\" NIL \"u2\" \"d\"))");
	check_addr("a..b@c, a.@b", "((NIL NIL \"a..b\" \"c\")(NIL NIL \"a.\" \"b\"))");
	check_addr("a@ b . c", "((NIL NIL \"a\" \"b.c\"))");
}

static void test_address_broken(void **state)
{
	(void)state;
	check_addr("them", "((NIL NIL \"them\" \"MISSING_DOMAIN\"))");
	check_addr("upi at papat.org (Pasi)",
		   "((\"upi at papat.org\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	check_addr("<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	check_addr("\"x\" <a@b>, <c@d", "((\"x\" NIL \"a\" \"b\")(NIL NIL \"c\" \"SYNTAX_ERROR\"))");
	check_addr("a@b junk, c@d", "((NIL NIL \"a\" \"b\"))");
	check_addr(",,a@b", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
			    "(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"a\" \"b\"))");
	check_addr("@x, a@", "((NIL NIL \"MISSING_MAILBOX\" \"x\")(NIL NIL \"a\" \"MISSING_DOMAIN\"))");
	check_addr("\"unterminated <a@b>", "((NIL NIL \"unterminated <a@b>\" \"MISSING_DOMAIN\"))");
	check_addr("((((", "NIL");
	/* names needing a literal: quotes, 8-bit, folding */
	check_addr("\"a\\\"b\" <x@y>", "(({3}\r\na\"b NIL \"x\" \"y\"))");
	check_addr("\"J\xc3\xb8ran\" <j@x>", "(({6}\r\nJ\xc3\xb8ran NIL \"j\" \"x\"))");
	check_addr("\"a\r\n b\" <x@y>", "((\"a b\" NIL \"x\" \"y\"))");
}

/* ---- dates (RFC 5322 §3.3, §4.3) ---- */

static void check_date(const char *s, bool ok, int64_t t, int tz)
{
	int64_t got = 0;
	int gtz = 0;
	assert_int_equal(mime_date_parse(s, strlen(s), &got, &gtz), ok);
	if (ok) {
		assert_int_equal(got, t);
		assert_int_equal(gtz, tz);
	}
}

static void test_dates(void **state)
{
	(void)state;
	check_date("Thu, 13 Feb 1969 23:32:54 -0330", true, -27723426, -210);
	check_date("Fri, 21 Nov 1997 09:55:06 -0600", true, 880127706, -360);
	check_date("21 Nov 97 09:55:06 GMT", true, 880106106, 0);       /* 2-digit year */
	check_date("1 Jan 101 00:00:00 +0000", true, 978307200, 0);      /* 3-digit year: +1900 */
	check_date("Mon, 1 Jan 2001 00:00 +0000", true, 978307200, 0);  /* no seconds */
	check_date("1 Aug 2006 13:58:02 EDT", true, 1154455082, -240);
	check_date("Fri Feb  3 00:31:43 2006", true, 1138926703, 0);    /* asctime */
	check_date("Sun, 25-Dec-2011 21:33:37 +0800", true, 1324820017, 480);
	check_date("Mon (Monday), 1 (day) Jan 2001 00:00:00 (UT) +0100", true, 978303600, 60);
	check_date("Thu, 1 Jan 1970 00:00:00 Z", true, 0, 0);
	check_date("garbage", false, 0, 0);
	check_date("", false, 0, 0);
	check_date("32 Foo 2001", false, 0, 0);
	check_date("1 Jan 2001 25:00:00 +0000", false, 0, 0);
}

/* ---- RFC 2047 encoded-words ---- */

static void check_2047(const char *in, const char *want)
{
	char *got = mime_decode_header(in, strlen(in));
	assert_string_equal(got, want);
	free(got);
}

static void test_rfc2047(void **state)
{
	(void)state;
	check_2047("=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9");
	check_2047("=?ISO-8859-1?Q?a_b?=", "a b");
	check_2047("=?iso-8859-1?b?5Q==?=", "\xc3\xa5");
	/* RFC 2047 §6.2: whitespace between adjacent encoded-words is dropped */
	check_2047("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
	check_2047("=?utf-8?q?a?=\r\n =?iso-8859-1?q?b?=", "ab");
	/* but not between an encoded-word and text */
	check_2047("x =?utf-8?q?a?= y", "x a y");
	/* a UTF-8 character split over two words survives */
	check_2047("=?utf-8?b?w6k=?= =?utf-8?b?w6k=?=", "\xc3\xa9\xc3\xa9");
	check_2047("=?utf-8?b?ww==?= =?utf-8?b?qQ==?=", "\xc3\xa9");
	/* unknown charset: left as written */
	check_2047("=?x-no-such?q?abc?=", "=?x-no-such?q?abc?=");
	check_2047("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");
	check_2047("=?utf-8?q?abc", "=?utf-8?q?abc");
	/* RFC 2231 §5 language suffix */
	check_2047("=?US-ASCII*EN?Q?Keith?=", "Keith");
	check_2047("=?koi8-r?B?8sXL0sXB1MnXzs/F?=", "\xd0\xa0\xd0\xb5\xd0\xba\xd1\x80\xd0\xb5\xd0\xb0\xd1\x82\xd0\xb8\xd0\xb2\xd0\xbd\xd0\xbe\xd0\xb5");
	check_2047("=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=", "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88");
	/* raw 8-bit that is not UTF-8 is read as Latin-1 */
	check_2047("caf\xe9", "caf\xc3\xa9");
	check_2047("", "");
}

/* ---- RFC 2231 parameters ---- */

static char *params_str(const char *s)
{
	struct rfc822_lexer lx;
	struct mime_params params = {0};
	struct buf out = {0};
	rfc822_lexer_init(&lx, s, strlen(s));
	mime_params_parse(&lx, 64, &params);
	for (unsigned int i = 0; i < params.count; i++)
		buf_printf(&out, "%s%s=%s", i ? "|" : "", params.items[i].name, params.items[i].value);
	mime_params_free(&params);
	buf_cstr(&out);
	return (char *)out.data;
}

static void check_params(const char *in, const char *want)
{
	char *got = params_str(in);
	assert_string_equal(got, want);
	free(got);
}

static void test_rfc2231(void **state)
{
	(void)state;
	check_params("; a=1; B=\"two words\"", "a=1|B=two words");
	check_params("; name*0=\"a\"; name*2=\"c\"; name*1=\"b\"", "name=abc");
	check_params("; title*0*=us-ascii'en'This%20is; title*1*=%20fun; title*2=\" isn't it\"",
		     "title*=us-ascii'en'This%20is%20fun isn't it");
	check_params("; x*=utf-8''%E2%82%AC", "x*=utf-8''%E2%82%AC");
	check_params("; z*1=q", "z*1=q");                      /* gap: kept as written */
	check_params("; a=\"unterminated", "");                /* dropped */
	check_params("; x=a/b; y=2", "x=a|y=2");               /* junk skipped to ';' */
	check_params("; a= ; b=\"\"", "a=|b=");
	check_params(";;; =x; d", "");
	check_params("; n==?utf-8?q?x?=", "n==?utf-8?q?x?=");

	char *v = mime_param_decode("x*", "utf-8''%E2%82%AC%20x");
	assert_string_equal(v, "\xe2\x82\xac x");
	free(v);
	v = mime_param_decode("title*", "iso-8859-1'fr'caf%E9");
	assert_string_equal(v, "caf\xc3\xa9");
	free(v);
	v = mime_param_decode("name", "=?utf-8?q?a=C3=A9?=");
	assert_string_equal(v, "a\xc3\xa9");
	free(v);
	v = mime_param_decode("x*", "bogus-charset''abc");
	assert_string_equal(v, "abc");
	free(v);
}

/* ---- Content-Transfer-Encoding decoders ---- */

static char *decode_chunked(enum mime_encoding enc, const char *in, size_t chunk)
{
	struct mime_decoder dec;
	struct buf out = {0};
	size_t len = strlen(in);
	mime_decoder_init(&dec, enc);
	for (size_t i = 0; i < len; i += chunk)
		mime_decoder_feed(&dec, (const unsigned char *)in + i, len - i < chunk ? len - i : chunk,
				  &out);
	mime_decoder_finish(&dec, &out);
	buf_cstr(&out);
	return (char *)out.data;
}

static void check_decode(enum mime_encoding enc, const char *in, const char *want)
{
	for (size_t chunk = 1; chunk <= strlen(in) + 1; chunk++) {
		char *got = decode_chunked(enc, in, chunk);
		assert_string_equal(got, want);
		free(got);
		/* the counting decoder agrees */
		struct mime_decoder dec;
		mime_decoder_init(&dec, enc);
		uint64_t n = mime_decoder_count(&dec, (const unsigned char *)in, strlen(in));
		n += mime_decoder_count_finish(&dec);
		assert_int_equal(n, strlen(want));
	}
}

static void test_decoders(void **state)
{
	(void)state;
	check_decode(MIME_ENC_BASE64, "aGVsbG8gd29ybGQ=", "hello world");
	check_decode(MIME_ENC_BASE64, "aGVs\r\nbG8g\r\nd29y bGQ=\r\n", "hello world");
	check_decode(MIME_ENC_BASE64, "aGVsbG8*!gd29ybGQ", "hello world");
	check_decode(MIME_ENC_QP, "a=3Db=\r\nc", "a=bc");
	check_decode(MIME_ENC_QP, "soft=  \r\nbreak", "softbreak");
	check_decode(MIME_ENC_QP, "trail   \r\nx\t\r\n", "trail\r\nx\r\n");
	check_decode(MIME_ENC_QP, "bare=\nlf\n", "barelf\n");
	check_decode(MIME_ENC_QP, "bad=ZZ=4", "bad=ZZ=4");
	check_decode(MIME_ENC_QP, "lower=c3=a9", "lower\xc3\xa9");
	check_decode(MIME_ENC_QP, "end=", "end=");
	check_decode(MIME_ENC_7BIT, "as is\r\n", "as is\r\n");
	assert_int_equal(mime_encoding_parse("Base64", 6), MIME_ENC_BASE64);
	assert_int_equal(mime_encoding_parse("QUOTED-PRINTABLE", 16), MIME_ENC_QP);
	assert_int_equal(mime_encoding_parse("x-uuencode", 10), MIME_ENC_UNKNOWN);
	assert_int_equal(mime_encoding_parse("", 0), MIME_ENC_7BIT);
}

/* ---- RFC 5256 base subject ---- */

static void check_subject(const char *in, const char *want, bool reply)
{
	bool r = false;
	char *got = mime_base_subject(in, &r);
	assert_string_equal(got, want);
	assert_int_equal(r, reply);
	free(got);
}

static void test_base_subject(void **state)
{
	(void)state;
	check_subject("Hello", "Hello", false);
	check_subject("Re: Hello", "Hello", true);
	check_subject("RE: Fwd: re[2]: Hello (fwd)", "Hello", true);
	check_subject("[list] Re: Hello", "Hello", true);
	check_subject("[fwd: Re: Hello]", "Hello", true);
	check_subject("  Hello \t  world  ", "Hello world", false);
	check_subject("[only a blob]", "[only a blob]", false);
	check_subject("Re:", "", true);
	check_subject("", "", false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_basic),
		cmocka_unit_test(test_address_groups),
		cmocka_unit_test(test_address_obsolete),
		cmocka_unit_test(test_address_broken),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_rfc2047),
		cmocka_unit_test(test_rfc2231),
		cmocka_unit_test(test_decoders),
		cmocka_unit_test(test_base_subject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
