/* Unit tests for the message parser: structure and offsets, ENVELOPE / BODY /
 * BODYSTRUCTURE strings (expected values are what Dovecot 2.3 sends for the same
 * messages), section lookup, chunk-split invariance, serialisation, limits and broken
 * input. */
#include "mime-test.h"

#include <stdio.h>
#include <stdlib.h>

static const char msg1[] =
	"From: A <a@x>\r\n"
	"To: b@y, \"C D\" <c@z>\r\n"
	"Cc: list: e@f;\r\n"
	"Subject: =?utf-8?q?caf=C3=A9?= test\r\n"
	"Date: Mon, 1 Jan 2001 00:00:00 +0100\r\n"
	"Message-ID: <m1@x>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--XX\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"caf=C3=A9\r\n"
	"--XX\r\n"
	"Content-Type: message/rfc822\r\n"
	"Content-Disposition: attachment; filename=\"m.eml\"\r\n"
	"\r\n"
	"Subject: inner\r\n"
	"From: i@j\r\n"
	"Content-Type: multipart/alternative; boundary=YY\r\n"
	"\r\n"
	"--YY\r\n"
	"\r\n"
	"one\r\n"
	"--YY\r\n"
	"Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.bin\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"Content-ID: <id@x>\r\n"
	"Content-Language: en, fr\r\n"
	"\r\n"
	"aGVsbG8=\r\n"
	"--YY--\r\n"
	"--XX--\r\n"
	"epilogue\r\n";

static const char msg1_envelope[] =
	"(\"Mon, 1 Jan 2001 00:00:00 +0100\" \"=?utf-8?q?caf=C3=A9?= test\" ((\"A\" NIL \"a\" \"x\")) "
	"((\"A\" NIL \"a\" \"x\")) ((\"A\" NIL \"a\" \"x\")) ((NIL NIL \"b\" \"y\")(\"C D\" NIL \"c\" \"z\")) ((NIL "
	"NIL \"list\" NIL)(NIL NIL \"e\" \"f\")(NIL NIL NIL NIL)) NIL NIL \"<m1@x>\")";
static const char msg1_bodystructure[] =
	"((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0 NIL NIL NIL "
	"NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 267 (NIL \"inner\" ((NIL NIL \"i\" \"j\")) "
	"((NIL NIL \"i\" \"j\")) ((NIL NIL \"i\" \"j\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" "
	"\"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)(\"application\" \"octet-stream\" (\"name*\" "
	"\"utf-8''%E2%82%AC.bin\") \"<id@x>\" NIL \"base64\" 8 NIL NIL (\"en\" \"fr\") NIL) \"alternative\" "
	"(\"boundary\" \"YY\") NIL NIL NIL) 15 NIL (\"attachment\" (\"filename\" \"m.eml\")) NIL NIL) "
	"\"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)";
static const char msg1_body[] =
	"((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0)(\"message\" \"rfc822\" "
	"NIL NIL NIL \"7bit\" 267 (NIL \"inner\" ((NIL NIL \"i\" \"j\")) ((NIL NIL \"i\" \"j\")) ((NIL "
	"NIL \"i\" \"j\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
	"\"7bit\" 3 0)(\"application\" \"octet-stream\" (\"name*\" \"utf-8''%E2%82%AC.bin\") \"<id@x>\" "
	"NIL \"base64\" 8) \"alternative\") 15) \"mixed\")";

/* Offset of the first byte after the n-th occurrence of needle. */
static uint64_t after(const char *msg, const char *needle, int n)
{
	const char *p = msg;
	for (int i = 0; i < n; i++) {
		p = strstr(p, needle);
		assert_non_null(p);
		p += strlen(needle);
	}
	return (uint64_t)(p - msg);
}

static uint64_t find(const char *msg, const char *needle)
{
	const char *p = strstr(msg, needle);
	assert_non_null(p);
	return (uint64_t)(p - msg);
}

static void test_msg1_strings(void **state)
{
	(void)state;
	struct mime_result *res = parse_str(msg1);
	assert_string_equal(mime_result_envelope(res), msg1_envelope);
	assert_string_equal(mime_result_bodystructure(res), msg1_bodystructure);
	assert_string_equal(mime_result_body(res), msg1_body);
	assert_int_equal(mime_result_size(res), strlen(msg1));
	assert_false(mime_result_truncated(res));
	mime_result_free(&res);
	assert_null(res);
}

static void test_msg1_offsets(void **state)
{
	(void)state;
	struct mime_result *res = parse_str(msg1);
	assert_int_equal(mime_result_part_count(res), 6);

	const struct mime_part *p = mime_result_part(res, 0);
	assert_int_equal(p->kind, MIME_PART_MULTIPART);
	assert_int_equal(p->header_offset, 0);
	assert_int_equal(p->body_offset, after(msg1, "\r\n\r\n", 1));
	assert_int_equal(p->header_size, p->body_offset);
	assert_int_equal(p->body_size, strlen(msg1) - p->body_offset);
	assert_int_equal(p->child_count, 2);

	/* 1: quoted-printable text; the CRLF before "--XX" belongs to the boundary */
	p = mime_result_part(res, 1);
	assert_int_equal(p->kind, MIME_PART_LEAF);
	assert_int_equal(p->encoding, MIME_ENC_QP);
	assert_int_equal(p->header_offset, after(msg1, "--XX\r\n", 1));
	assert_int_equal(p->body_offset, after(msg1, "quoted-printable\r\n\r\n", 1));
	assert_int_equal(p->body_size, 9);
	assert_int_equal(p->body_lines, 0);
	assert_int_equal(p->decoded_size, 5); /* "café" in UTF-8 */

	/* 2: message/rfc822 and 3: the message inside it */
	p = mime_result_part(res, 2);
	assert_int_equal(p->kind, MIME_PART_MESSAGE);
	assert_int_equal(p->body_offset, find(msg1, "Subject: inner"));
	assert_int_equal(p->body_size, 267);
	assert_int_equal(p->body_lines, 15);
	const struct mime_part *m = mime_result_part(res, 3);
	assert_int_equal(m->parent, 2);
	assert_int_equal(m->kind, MIME_PART_MULTIPART);
	assert_int_equal(m->header_offset, p->body_offset);
	assert_int_equal(m->body_offset + m->body_size, p->body_offset + p->body_size);

	/* 5: base64 leaf */
	p = mime_result_part(res, 5);
	assert_int_equal(p->encoding, MIME_ENC_BASE64);
	assert_int_equal(p->body_offset, find(msg1, "aGVsbG8="));
	assert_int_equal(p->body_size, 8);
	assert_int_equal(p->decoded_size, 5);
	assert_int_equal(p->depth, 3);

	char sec[32];
	mime_result_part_section(res, 0, sec, sizeof(sec));
	assert_string_equal(sec, "");
	mime_result_part_section(res, 3, sec, sizeof(sec));
	assert_string_equal(sec, "2");
	mime_result_part_section(res, 5, sec, sizeof(sec));
	assert_string_equal(sec, "2.2");
	mime_result_free(&res);
}

static void check_section(const struct mime_result *res, const char *sec,
			  enum mime_section_text text, const char *want)
{
	uint32_t path[16];
	int n = mime_section_parse(sec, path, 16);
	assert_true(n >= 0);
	uint64_t off, size;
	if (want == NULL) {
		assert_false(mime_result_section(res, path, (size_t)n, text, &off, &size));
		return;
	}
	assert_true(mime_result_section(res, path, (size_t)n, text, &off, &size));
	assert_int_equal(size, strlen(want));
	assert_memory_equal(msg1 + off, want, size);
}

static void test_sections(void **state)
{
	(void)state;
	struct mime_result *res = parse_str(msg1);
	/* RFC 3501 §6.4.5 */
	check_section(res, "1", MIME_SECTION_NONE, "caf=C3=A9");
	check_section(res, "1", MIME_SECTION_MIME,
		      "Content-Type: text/plain; charset=utf-8\r\n"
		      "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	check_section(res, "2", MIME_SECTION_HEADER,
		      "Subject: inner\r\nFrom: i@j\r\n"
		      "Content-Type: multipart/alternative; boundary=YY\r\n\r\n");
	check_section(res, "2.1", MIME_SECTION_NONE, "one");
	check_section(res, "2.2", MIME_SECTION_NONE, "aGVsbG8=");
	check_section(res, "2.2", MIME_SECTION_MIME,
		      "Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.bin\r\n"
		      "Content-Transfer-Encoding: base64\r\nContent-ID: <id@x>\r\n"
		      "Content-Language: en, fr\r\n\r\n");
	check_section(res, "1", MIME_SECTION_HEADER, NULL); /* not a message/rfc822 */
	check_section(res, "3", MIME_SECTION_NONE, NULL);
	check_section(res, "2.3", MIME_SECTION_NONE, NULL);
	check_section(res, "1.1", MIME_SECTION_NONE, NULL);
	check_section(res, "", MIME_SECTION_MIME, NULL);
	uint32_t path[4];
	uint64_t off, size;
	assert_true(mime_result_section(res, path, 0, MIME_SECTION_TEXT, &off, &size));
	assert_int_equal(off, after(msg1, "\r\n\r\n", 1));
	assert_true(mime_result_section(res, path, 0, MIME_SECTION_NONE, &off, &size));
	assert_int_equal(size, strlen(msg1));
	assert_int_equal(mime_section_parse("1.x", path, 4), -1);
	assert_int_equal(mime_section_parse("0", path, 4), -1);
	assert_int_equal(mime_section_parse("1.2.3.4.5", path, 4), -1);
	mime_result_free(&res);

	/* a single-part message: part 1 is its body */
	res = parse_str("Subject: x\r\n\r\nbody\r\n");
	uint32_t one = 1;
	assert_true(mime_result_section(res, &one, 1, MIME_SECTION_NONE, &off, &size));
	assert_int_equal(off, 14);
	assert_int_equal(size, 6);
	mime_result_free(&res);
}

static void test_sort_fields(void **state)
{
	(void)state;
	struct mime_result *res = parse_str(msg1);
	const struct mime_sort_fields *sf = mime_result_sort_fields(res);
	assert_string_equal(sf->subject, "caf\xc3\xa9 test");
	assert_string_equal(sf->base_subject, "caf\xc3\xa9 test");
	assert_string_equal(sf->from.addr, "a@x");
	assert_string_equal(sf->from.mailbox, "a");
	assert_string_equal(sf->from.display, "A");
	assert_string_equal(sf->to.addr, "b@y");
	assert_string_equal(sf->to.display, "b@y");
	assert_string_equal(sf->cc.addr, "e@f"); /* first address inside the group */
	assert_true(sf->has_date);
	assert_int_equal(sf->date, 978303600);
	assert_int_equal(sf->tz_offset, 60);
	assert_string_equal(sf->message_id, "<m1@x>");
	assert_null(sf->in_reply_to);
	mime_result_free(&res);

	res = parse_str("From: =?utf-8?q?J=C3=B6rg?= <JOERG@Example.COM>\r\n"
			"Subject: Re: [list] Fwd: hello (fwd)\r\n"
			"In-Reply-To: <a@b> (comment) <c@d>\r\nReferences: <1@x>\r\n <2@x>\r\n"
			"Date: bogus\r\n\r\n");
	sf = mime_result_sort_fields(res);
	assert_string_equal(sf->from.addr, "joerg@example.com");
	assert_string_equal(sf->from.display, "J\xc3\xb6rg");
	assert_string_equal(sf->base_subject, "hello");
	assert_true(sf->subject_is_reply);
	assert_false(sf->has_date);
	assert_string_equal(sf->in_reply_to, "<a@b> <c@d>");
	assert_string_equal(sf->references, "<1@x> <2@x>");
	assert_null(sf->to.addr);
	mime_result_free(&res);
}

/* Serialised forms are equal exactly when results are equal. */
static void assert_same(const struct mime_result *a, const struct mime_result *b)
{
	struct buf x = {0}, y = {0};
	serialize(a, &x);
	serialize(b, &y);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len);
	buf_free(&x);
	buf_free(&y);
}

static const char *const split_msgs[] = {
	msg1,
	"From: x@y\nSubject: bare LF\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nline\n"
	"--b\r\nContent-Type: text/html\r\n\r\n<p>\r\r\n--b--\n",
	"Content-Type: multipart/mixed; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: multipart/mixed;"
	" boundary=\"ab\"\r\n\r\n--ab\r\n\r\nx\r\n--a\r\n\r\ny\r\n--ab--\r\n--a--",
	"Subject: no end\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r",
	"Subject: header only",
	"",
	"\r\n",
};

static void test_chunk_invariance(void **state)
{
	(void)state;
	for (size_t m = 0; m < sizeof(split_msgs) / sizeof(split_msgs[0]); m++) {
		const unsigned char *msg = (const unsigned char *)split_msgs[m];
		size_t len = strlen(split_msgs[m]);
		struct mime_result *whole = mime_parse_buffer(msg, len, NULL);
		for (size_t chunk = 1; chunk <= 17; chunk++) {
			struct mime_result *res = parse_chunked(msg, len, chunk);
			assert_same(whole, res);
			mime_result_free(&res);
		}
		/* every split in two */
		for (size_t cut = 0; cut <= len; cut++) {
			struct mime_parser *mp = mime_parser_new(NULL);
			mime_parser_feed(mp, msg, cut);
			mime_parser_feed(mp, msg + cut, len - cut);
			struct mime_result *res = mime_parser_finish(mp);
			mime_parser_free(&mp);
			assert_same(whole, res);
			mime_result_free(&res);
		}
		mime_result_free(&whole);
	}
}

static void test_serialize(void **state)
{
	(void)state;
	for (size_t m = 0; m < sizeof(split_msgs) / sizeof(split_msgs[0]); m++) {
		struct mime_result *res = parse_str(split_msgs[m]);
		struct buf s = {0};
		serialize(res, &s);
		struct mime_result *back = mime_result_deserialize(s.data, s.len);
		assert_non_null(back);
		assert_same(res, back);
		assert_string_equal(mime_result_bodystructure(res), mime_result_bodystructure(back));
		assert_int_equal(mime_result_part_count(res), mime_result_part_count(back));
		for (unsigned int i = 0; i < mime_result_part_count(res); i++) {
			const struct mime_part *a = mime_result_part(res, i);
			const struct mime_part *b = mime_result_part(back, i);
			assert_memory_equal(a, b, sizeof(*a));
		}
		/* every truncation and a flipped version byte are rejected */
		for (size_t cut = 0; cut < s.len; cut++)
			assert_null(mime_result_deserialize(s.data, cut));
		s.data[3] ^= 0x40;
		assert_null(mime_result_deserialize(s.data, s.len));
		/* random corruption never crashes */
		s.data[3] ^= 0x40;
		srand(1);
		for (int k = 0; k < 200; k++) {
			size_t pos = (size_t)rand() % s.len;
			unsigned char old = s.data[pos];
			s.data[pos] = (unsigned char)rand();
			struct mime_result *r = mime_result_deserialize(s.data, s.len);
			mime_result_free(&r);
			s.data[pos] = old;
		}
		buf_free(&s);
		mime_result_free(&res);
		mime_result_free(&back);
	}
}

static void test_bare_lf_and_nul(void **state)
{
	(void)state;
	static const char m[] = "Subject: a\0b\nContent-Type: multipart/mixed; boundary=b\n\n"
				"--b\n\nx\0y\n--b--\n";
	struct mime_result *res = mime_parse_buffer((const unsigned char *)m, sizeof(m) - 1, NULL);
	assert_true(mime_result_has_nul(res));
	assert_string_equal(mime_result_envelope(res),
			    "(NIL {5}\r\na\xef\xbf\xbd" "b NIL NIL NIL NIL NIL NIL NIL NIL)");
	const struct mime_part *p = mime_result_part(res, 1);
	assert_int_equal(p->body_size, 3);
	assert_int_equal(p->body_offset, sizeof(m) - 1 - strlen("x0y\n--b--\n"));
	assert_int_equal(mime_result_size(res), sizeof(m) - 1);
	mime_result_free(&res);
}

static void test_limits(void **state)
{
	(void)state;
	struct buf m = {0};
	/* nesting deeper than max_depth: the rest is one opaque part */
	for (int i = 0; i < 150; i++)
		buf_printf(&m, "Content-Type: multipart/mixed; boundary=\"b%03d\"\r\n\r\n--b%03d\r\n", i, i);
	buf_append_str(&m, "\r\ndeep\r\n");
	struct mime_result *res = mime_parse_buffer(m.data, m.len, NULL);
	assert_true(mime_result_truncated(res));
	unsigned int max = 0;
	for (unsigned int i = 0; i < mime_result_part_count(res); i++) {
		if (mime_result_part(res, i)->depth > max)
			max = mime_result_part(res, i)->depth;
	}
	assert_true(max <= MIME_DEFAULT_MAX_DEPTH);
	assert_non_null(strstr(mime_result_bodystructure(res), "\"application\" \"octet-stream\""));
	mime_result_free(&res);

	/* more parts than max_parts */
	struct mime_limits lim;
	mime_limits_default(&lim);
	lim.max_parts = 50;
	buf_clear(&m);
	buf_append_str(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < 1000; i++)
		buf_append_str(&m, "--b\r\n\r\npart\r\n");
	buf_append_str(&m, "--b--\r\n");
	res = mime_parse_buffer(m.data, m.len, &lim);
	assert_int_equal(mime_result_part_count(res), 50);
	assert_true(mime_result_truncated(res));
	mime_result_free(&res);

	/* a huge header block and a huge field */
	lim.max_header_size = 4096;
	lim.max_field_size = 1024;
	buf_clear(&m);
	buf_append_str(&m, "Subject: ");
	for (int i = 0; i < 5000; i++)
		buf_append_str(&m, "long ");
	buf_append_str(&m, "\r\n");
	for (int i = 0; i < 2000; i++)
		buf_printf(&m, "X-Field-%d: value\r\n", i);
	buf_append_str(&m, "From: late@x\r\n\r\nbody\r\n");
	res = mime_parse_buffer(m.data, m.len, &lim);
	const struct mime_part *p = mime_result_part(res, 0);
	assert_int_equal(p->body_size, 6);
	assert_int_equal(p->header_size, m.len - 6);
	assert_true(mime_result_truncated(res));
	assert_true(strlen(mime_result_envelope(res)) < 2048);
	mime_result_free(&res);
	buf_free(&m);
}

static void test_broken(void **state)
{
	(void)state;
	static const char *const msgs[] = {
		/* boundary never seen */
		"Content-Type: multipart/mixed; boundary=nope\r\n\r\ntext\r\n",
		/* unclosed multipart */
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n",
		/* boundary inside a header */
		("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n"
		 "--b\r\n\r\ny\r\n--b--\r\n"),
		/* unterminated quotes and comments everywhere */
		"From: \"a <b@c\r\nTo: (x\r\nSubject: \"\r\nContent-Type: text/plain; charset=\"x\r\n\r\n",
		/* lines without colon, 8-bit header */
		"no colon\r\nSubject: \xff\xfe\r\n\r\n",
		/* message/rfc822 with base64 body */
		"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct mime_result *res = parse_str(msgs[i]);
		assert_non_null(mime_result_envelope(res));
		assert_non_null(mime_result_bodystructure(res));
		assert_int_equal(mime_result_size(res), strlen(msgs[i]));
		const struct mime_part *root = mime_result_part(res, 0);
		assert_true(root->body_offset + root->body_size <= strlen(msgs[i]));
		mime_result_free(&res);
	}
	struct mime_result *res = parse_str(msgs[2]);
	assert_string_equal(mime_result_body(res),
			    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
			    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"mixed\")");
	mime_result_free(&res);
}

static void test_header_filter(void **state)
{
	(void)state;
	static const char h[] = "Subject: a\r\n b\r\nFrom: x@y\r\nTO : z@w\r\n\r\n";
	const char *names[] = {"subject", "to"};
	struct buf out = {0};
	mime_header_filter((const unsigned char *)h, strlen(h), names, 2, false, &out);
	assert_string_equal(buf_cstr(&out), "Subject: a\r\n b\r\nTO : z@w\r\n\r\n");
	buf_clear(&out);
	mime_header_filter((const unsigned char *)h, strlen(h), names, 2, true, &out);
	assert_string_equal(buf_cstr(&out), "From: x@y\r\n\r\n");
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg1_strings),
		cmocka_unit_test(test_msg1_offsets),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_sort_fields),
		cmocka_unit_test(test_chunk_invariance),
		cmocka_unit_test(test_serialize),
		cmocka_unit_test(test_bare_lf_and_nul),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_header_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
