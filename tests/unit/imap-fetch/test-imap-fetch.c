/* The FETCH engine: attribute plans and the response cursor, on a real store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store-fixture.h"

#include "core/buf.h"
#include "imap/fetch/fetch.h"
#include "imap/parser.h"
#include "mime/mime.h"
#include "store/store.h"

#define ACCOUNT "alice@example.com"

static const char MULTI[] =
	"From: Alice <alice@example.com>\r\n"
	"To: bob@example.com\r\n"
	"Subject: Test\r\n"
	"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
	"Message-ID: <m1@example.com>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--outer\r\n"
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"plain text\r\n"
	"--inner\r\n"
	"Content-Type: text/html\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>caf=C3=A9 =3D ok</p>\r\n"
	"--inner--\r\n"
	"--outer\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAwQ=\r\n"
	"--outer--\r\n";

static int setup(void **state)
{
	*state = store_fixture_new();
	return 0;
}

static int teardown(void **state)
{
	store_fixture_free(*state);
	return 0;
}

static uint32_t deliver(struct store_fixture *f, const void *text, size_t len, uint32_t flags,
			int64_t date)
{
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, text, len), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	uint32_t uid = 0;
	assert_int_equal(store_deliver(f->acct, NULL, b, flags, date, &uid), STORE_OK);
	store_blob_free(&b);
	return uid;
}

/* The row of uid in INBOX (keywords freed by the caller). */
static struct store_msg_full get_msg(struct store_fixture *f, uint32_t uid)
{
	struct store_msg_full *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages_full(f->acct, NULL, &msgs, &n), STORE_OK);
	struct store_msg_full m = {0};
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].msg.uid == uid) {
			m = msgs[i];
			m.keywords = msgs[i].keywords ? xstrdup(msgs[i].keywords) : NULL;
			found = true;
		}
	}
	assert_true(found);
	store_msgs_full_free(msgs, n);
	return m;
}

/* Parses "a FETCH 1 <atts>" with the real command parser, then the attributes. */
static int parse_plan(const char *atts, unsigned flags, struct imap_fetch_plan **plan_r,
		      const char **error_r)
{
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	char *line = xasprintf("a FETCH 1 %s\r\n", atts);
	size_t used = 0, len = strlen(line), off = 0;
	enum imap_parse_result r;
	do {
		r = imap_parser_feed(p, (const unsigned char *)line + off, len - off, &used);
		off += used;
	} while (r == IMAP_PARSE_HAVE_NAME);
	assert_int_equal(r, IMAP_PARSE_COMPLETE);
	size_t count = 0;
	const struct imap_arg *args = imap_parser_args(p, &count);
	assert_true(count >= 2);
	size_t consumed = 0;
	int ret = imap_fetch_plan_parse(args + 1, count - 1, flags, plan_r, &consumed, error_r);
	if (ret == 0)
		assert_int_equal(consumed, count - 1);
	imap_parser_free(&p);
	free(line);
	return ret;
}

static struct imap_fetch_plan *plan_ok(const char *atts)
{
	struct imap_fetch_plan *plan = NULL;
	const char *err = NULL;
	if (parse_plan(atts, IMAP_FETCH_PARSE_CONDSTORE, &plan, &err) != 0)
		fail_msg("%s: %s", atts, err);
	return plan;
}

/* Runs a cursor to the end in steps of max bytes; checks no step exceeds max. */
static int run(struct store_fixture *f, const struct imap_fetch_plan *plan, uint32_t uid,
	       uint32_t seq, unsigned flags, size_t max, struct buf *out, size_t *calls_r)
{
	struct store_msg_full m = get_msg(f, uid);
	struct imap_fetch_cursor *c = NULL;
	assert_int_equal(imap_fetch_begin(plan, f->acct, NULL, &m, seq, flags, &c), 0);
	free(m.keywords);
	int r;
	size_t calls = 0;
	do {
		size_t before = out->len;
		r = imap_fetch_next(c, out, max);
		calls++;
		assert_true(out->len - before <= max);
	} while (r == 0);
	if (calls_r != NULL)
		*calls_r = calls;
	imap_fetch_end(&c);
	return r;
}

/* The response to atts for uid as a string (may hold NUL; length in *len_r). */
static char *fetch(struct store_fixture *f, const char *atts, uint32_t uid, unsigned flags,
		   size_t *len_r)
{
	struct imap_fetch_plan *plan = plan_ok(atts);
	struct buf out = {0};
	assert_int_equal(run(f, plan, uid, 1, flags, SIZE_MAX, &out, NULL), 1);
	imap_fetch_plan_free(&plan);
	if (len_r != NULL)
		*len_r = out.len;
	char *s = xmalloc(out.len + 1);
	memcpy(s, out.data, out.len);
	s[out.len] = '\0';
	buf_free(&out);
	return s;
}

static void expect(struct store_fixture *f, const char *atts, uint32_t uid, unsigned flags,
		   const char *want)
{
	char *got = fetch(f, atts, uid, flags, NULL);
	assert_string_equal(got, want);
	free(got);
}

/* --- plans --- */

static void check_plan(const char *atts, const char *want, bool seen)
{
	struct imap_fetch_plan *plan = plan_ok(atts);
	struct buf b = {0};
	imap_fetch_plan_format(plan, &b);
	assert_string_equal(buf_cstr(&b), want);
	assert_int_equal(imap_fetch_plan_sets_seen(plan), seen);
	buf_free(&b);
	imap_fetch_plan_free(&plan);
}

static void test_plan_parse(void **state)
{
	(void)state;
	check_plan("ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE", false);
	check_plan("fast", "FLAGS INTERNALDATE RFC822.SIZE", false);
	check_plan("FULL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY", false);
	check_plan("(uid flags Flags)", "UID FLAGS", false);
	check_plan("body.peek[1.2.mime]<5.10>", "BODY[1.2.MIME]<5>", false);
	check_plan("BODY[HEADER.FIELDS (Subject FROM)]", "BODY[HEADER.FIELDS (Subject FROM)]",
		   true);
	check_plan("(FLAGS BODY.PEEK[1.HEADER.FIELDS.NOT (X-A \"X-B\")]<0.1> UID)",
		   "FLAGS BODY[1.HEADER.FIELDS.NOT (X-A X-B)]<0> UID", false);
	check_plan("(BINARY.PEEK[1] BINARY.SIZE[2] MODSEQ)", "BINARY[1] BINARY.SIZE[2] MODSEQ",
		   false);
	check_plan("BINARY[]<0.5>", "BINARY[]<0>", true);
	check_plan("RFC822.HEADER", "RFC822.HEADER", false);
	check_plan("RFC822.TEXT", "RFC822.TEXT", true);
	check_plan("RFC822", "RFC822", true);
	check_plan("(RFC822.SIZE BODYSTRUCTURE ENVELOPE INTERNALDATE)",
		   "RFC822.SIZE BODYSTRUCTURE ENVELOPE INTERNALDATE", false);
	check_plan("BODY[]", "BODY[]", true);
	check_plan("BODY[TEXT]", "BODY[TEXT]", true);
	check_plan("BODY.PEEK[]", "BODY[]", false);
}

static void plan_bad(const char *atts, unsigned flags)
{
	struct imap_fetch_plan *plan = NULL;
	const char *err = NULL;
	if (parse_plan(atts, flags, &plan, &err) == 0)
		fail_msg("accepted: %s", atts);
	assert_null(plan);
	assert_non_null(err);
}

static void test_plan_errors(void **state)
{
	(void)state;
	const char *bad[] = {
		"FOO", "(FLAGS FOO)", "()", "(ALL)", "\"FLAGS\"", "BODY[X]", "BODY[1.0]",
		"BODY[0]", "BODY[1.]", "BODY[.1]", "BODY[MIME]", "BODY[1.2.FOO]", "BODY[1HEADER]",
		"BODY[]<1>", "BODY[]<0.0>", "BODY[]<a.1>", "BODY[]<1.2", "BODY[]x", "BODY[]<1.2>x",
		"BINARY[TEXT]", "BINARY[1.MIME]", "BINARY.SIZE[1]<0.1>", "BODY[HEADER.FIELDS]",
		"BODY[HEADER.FIELDS ()]", "BODY[TEXT (A)]", "BINARY.SIZE", "BODY.PEEK",
		"BODY[1.99999999999]", "(BODY[HEADER.FIELDS (A:B)])", "RFC822.FOO", "BODY.FOO[]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		plan_bad(bad[i], IMAP_FETCH_PARSE_CONDSTORE);
	/* MODSEQ only once CONDSTORE is enabled */
	plan_bad("MODSEQ", 0);
	plan_bad("(UID MODSEQ)", 0);
}

static void test_plan_modifiers(void **state)
{
	(void)state;
	/* the attribute arguments are followed by FETCH modifiers the session handles */
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	const char *line = "a FETCH 1 BODY[HEADER.FIELDS (A)]<0.1> (CHANGEDSINCE 5)\r\n";
	size_t used = 0, off = 0;
	enum imap_parse_result r;
	do {
		r = imap_parser_feed(p, (const unsigned char *)line + off, strlen(line) - off, &used);
		off += used;
	} while (r == IMAP_PARSE_HAVE_NAME);
	assert_int_equal(r, IMAP_PARSE_COMPLETE);
	size_t count = 0;
	const struct imap_arg *args = imap_parser_args(p, &count);
	struct imap_fetch_plan *plan = NULL;
	const char *err = NULL;
	assert_int_equal(imap_fetch_plan_parse(args + 1, count - 1, 0, &plan, &used, &err), 0);
	assert_int_equal(used, 3);
	assert_int_equal(args[1 + used].type, IMAP_ARG_LIST);
	assert_false(imap_fetch_plan_has_modseq(plan));
	imap_fetch_plan_free(&plan);
	imap_parser_free(&p);
}

/* --- responses --- */

static void test_simple_items(void **state)
{
	struct store_fixture *f = *state;
	/* 1994-02-08 05:52:25 UTC */
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), STORE_FLAG_SEEN | STORE_FLAG_ANSWERED,
			       760686745);
	struct store_msg_full m = get_msg(f, uid);
	char *want = xasprintf("* 1 FETCH (FLAGS (\\Answered \\Seen) UID %u RFC822.SIZE %zu "
			       "INTERNALDATE \"08-Feb-1994 05:52:25 +0000\" MODSEQ (%llu))\r\n",
			       uid, strlen(MULTI), (unsigned long long)m.msg.modseq);
	free(m.keywords);
	expect(f, "(FLAGS UID RFC822.SIZE INTERNALDATE MODSEQ)", uid, 0, want);
	free(want);

	/* \Recent from the session; keywords after the system flags */
	const char *kw[] = {"$Label1"};
	struct store_flag_result *res = NULL;
	size_t nres = 0;
	assert_int_equal(store_set_flags(f->acct, NULL, &uid, 1, STORE_FLAGS_ADD, 0, kw, 1, 0,
					 &res, &nres),
			 STORE_OK);
	store_flag_results_free(res, nres);
	expect(f, "FLAGS", uid, IMAP_FETCH_RECENT,
	       "* 1 FETCH (FLAGS (\\Answered \\Seen $Label1 \\Recent))\r\n");

	/* UID FETCH: UID first when not asked for, in place when asked for */
	want = xasprintf("* 1 FETCH (UID %u RFC822.SIZE %zu)\r\n", uid, strlen(MULTI));
	expect(f, "RFC822.SIZE", uid, IMAP_FETCH_UID, want);
	free(want);
	want = xasprintf("* 1 FETCH (RFC822.SIZE %zu UID %u)\r\n", strlen(MULTI), uid);
	expect(f, "(RFC822.SIZE UID)", uid, IMAP_FETCH_UID, want);
	free(want);
	/* \Seen was set implicitly: FLAGS added at the end */
	want = xasprintf("* 1 FETCH (UID %u FLAGS (\\Answered \\Seen $Label1))\r\n", uid);
	expect(f, "UID", uid, IMAP_FETCH_ADD_FLAGS, want);
	free(want);
}

static void test_structure_items(void **state)
{
	struct store_fixture *f = *state;
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), 0, 0);
	struct mime_result *res =
		mime_parse_buffer((const unsigned char *)MULTI, strlen(MULTI), NULL);
	char *want = xasprintf("* 1 FETCH (ENVELOPE %s BODYSTRUCTURE %s BODY %s)\r\n",
			       mime_result_envelope(res), mime_result_bodystructure(res),
			       mime_result_body(res));
	expect(f, "(ENVELOPE BODYSTRUCTURE BODY)", uid, 0, want);
	free(want);
	mime_result_free(&res);
	/* the envelope starts as RFC 9051 says: date, subject, from */
	char *got = fetch(f, "ENVELOPE", uid, 0, NULL);
	assert_non_null(strstr(got, "ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Test\" "
				    "((\"Alice\" NIL \"alice\" \"example.com\"))"));
	free(got);
}

static void test_sections(void **state)
{
	struct store_fixture *f = *state;
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), 0, 0);
	expect(f, "BODY.PEEK[1.2]", uid, 0,
	       "* 1 FETCH (BODY[1.2] {23}\r\n<p>caf=C3=A9 =3D ok</p>)\r\n");
	expect(f, "BODY.PEEK[1.1]", uid, 0, "* 1 FETCH (BODY[1.1] {10}\r\nplain text)\r\n");
	expect(f, "BODY.PEEK[1.MIME]", uid, 0,
	       "* 1 FETCH (BODY[1.MIME] {57}\r\n"
	       "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n)\r\n");
	expect(f, "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]", uid, 0,
	       "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {50}\r\n"
	       "From: Alice <alice@example.com>\r\nSubject: Test\r\n\r\n)\r\n");
	expect(f, "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<6.5>", uid, 0,
	       "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)]<6> {5}\r\nAlice)\r\n");
	expect(f, "BODY[TEXT]<0.10>", uid, 0, "* 1 FETCH (BODY[TEXT]<0> {10}\r\npreamble\r\n)\r\n");
	/* a partial past the end is empty; a missing section is "" */
	expect(f, "BODY[TEXT]<100000.10>", uid, 0, "* 1 FETCH (BODY[TEXT]<100000> {0}\r\n)\r\n");
	expect(f, "BODY[7]", uid, 0, "* 1 FETCH (BODY[7] \"\")\r\n");
	expect(f, "BODY[1.HEADER]", uid, 0, "* 1 FETCH (BODY[1.HEADER] \"\")\r\n");

	/* BODY[] and RFC822 send the whole message, RFC822.SIZE bytes of it */
	char *want = xasprintf("* 1 FETCH (RFC822.SIZE %zu BODY[] {%zu}\r\n%s)\r\n",
			       strlen(MULTI), strlen(MULTI), MULTI);
	expect(f, "(RFC822.SIZE BODY[])", uid, 0, want);
	free(want);
	want = xasprintf("* 1 FETCH (RFC822 {%zu}\r\n%s)\r\n", strlen(MULTI), MULTI);
	expect(f, "RFC822", uid, 0, want);
	free(want);
	const char *hdr_end = strstr(MULTI, "\r\n\r\n") + 4;
	size_t hlen = (size_t)(hdr_end - MULTI);
	want = xasprintf("* 1 FETCH (RFC822.HEADER {%zu}\r\n%.*s RFC822.TEXT {%zu}\r\n%s)\r\n",
			 hlen, (int)hlen, MULTI, strlen(hdr_end), hdr_end);
	expect(f, "(RFC822.HEADER RFC822.TEXT)", uid, 0, want);
	free(want);
}

static void test_attached_message(void **state)
{
	struct store_fixture *f = *state;
	const char msg[] = "Subject: outer\r\nMIME-Version: 1.0\r\n"
			   "Content-Type: multipart/mixed; boundary=o\r\n\r\n"
			   "--o\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
			   "--o\r\nContent-Type: message/rfc822\r\n\r\n"
			   "Subject: inner\r\nX-A: 1\r\nX-B: 2\r\n\r\ninner body\r\n"
			   "--o--\r\n";
	uint32_t uid = deliver(f, msg, sizeof msg - 1, 0, 0);
	expect(f, "BODY.PEEK[2.HEADER]", uid, 0,
	       "* 1 FETCH (BODY[2.HEADER] {34}\r\nSubject: inner\r\nX-A: 1\r\nX-B: 2\r\n\r\n)\r\n");
	expect(f, "BODY.PEEK[2.TEXT]", uid, 0, "* 1 FETCH (BODY[2.TEXT] {10}\r\ninner body)\r\n");
	expect(f, "BODY.PEEK[2.HEADER.FIELDS.NOT (x-a SUBJECT)]", uid, 0,
	       "* 1 FETCH (BODY[2.HEADER.FIELDS.NOT (x-a SUBJECT)] {10}\r\nX-B: 2\r\n\r\n)\r\n");
	expect(f, "BODY.PEEK[2.MIME]", uid, 0,
	       "* 1 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)\r\n");
	expect(f, "BODY.PEEK[1]<4.8>", uid, 0, "* 1 FETCH (BODY[1]<4> {8}\r\nattached)\r\n");
	expect(f, "BODY.PEEK[1.TEXT]", uid, 0, "* 1 FETCH (BODY[1.TEXT] \"\")\r\n");
	/* a part the attached message does not have */
	expect(f, "BODY.PEEK[2.2]", uid, 0, "* 1 FETCH (BODY[2.2] \"\")\r\n");
}

static void test_binary(void **state)
{
	struct store_fixture *f = *state;
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), 0, 0);
	expect(f, "BINARY.PEEK[1.2]", uid, 0,
	       "* 1 FETCH (BINARY[1.2] {17}\r\n<p>caf\xc3\xa9 = ok</p>)\r\n");
	expect(f, "BINARY.PEEK[1.2]<3.5>", uid, 0, "* 1 FETCH (BINARY[1.2]<3> {5}\r\ncaf\xc3\xa9)\r\n");
	expect(f, "(BINARY.SIZE[1.2] BINARY.SIZE[2] BINARY.SIZE[9])", uid, 0,
	       "* 1 FETCH (BINARY.SIZE[1.2] 17 BINARY.SIZE[2] 5 BINARY.SIZE[9] 0)\r\n");
	size_t len = 0;
	char *got = fetch(f, "BINARY[2]", uid, 0, &len);
	const char want[] = "* 1 FETCH (BINARY[2] ~{5}\r\n\0\1\2\3\4)\r\n";
	assert_int_equal(len, sizeof want - 1);
	assert_memory_equal(got, want, len);
	free(got);
	/* a slice without the NUL is a plain literal */
	got = fetch(f, "BINARY[2]<1.3>", uid, 0, &len);
	const char want2[] = "* 1 FETCH (BINARY[2]<1> {3}\r\n\1\2\3)\r\n";
	assert_int_equal(len, sizeof want2 - 1);
	assert_memory_equal(got, want2, len);
	free(got);
	expect(f, "BINARY[5]", uid, 0, "* 1 FETCH (BINARY[5] NIL)\r\n");
	char *w = xasprintf("* 1 FETCH (BINARY[] {%zu}\r\n%s)\r\n", strlen(MULTI), MULTI);
	expect(f, "BINARY[]", uid, 0, w);
	free(w);

	/* an unknown encoding: UNKNOWN-CTE before anything is written */
	const char odd[] = "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-foo\r\n\r\nhi\r\n";
	uint32_t uid2 = deliver(f, odd, strlen(odd), 0, 0);
	struct imap_fetch_plan *plan = plan_ok("BINARY[1]");
	struct store_msg_full m = get_msg(f, uid2);
	struct imap_fetch_cursor *c = NULL;
	assert_int_equal(imap_fetch_begin(plan, f->acct, NULL, &m, 2, 0, &c), 0);
	struct buf out = {0};
	assert_int_equal(imap_fetch_next(c, &out, 4096), -1);
	assert_int_equal(imap_fetch_error(c), IMAP_FETCH_ERR_UNKNOWN_CTE);
	assert_int_equal(out.len, 0);
	imap_fetch_end(&c);
	free(m.keywords);
	imap_fetch_plan_free(&plan);
}

static void test_nul_in_body(void **state)
{
	struct store_fixture *f = *state;
	const char msg[] = "Subject: z\r\n\r\na\0b\r\n";
	uint32_t uid = deliver(f, msg, sizeof msg - 1, 0, 0);
	size_t len = 0;
	char *got = fetch(f, "BODY.PEEK[TEXT]", uid, 0, &len);
	assert_string_equal(got, "* 1 FETCH (BODY[TEXT] {5}\r\na\x80" "b\r\n)\r\n");
	free(got);
}

static void test_large_message(void **state)
{
	struct store_fixture *f = *state;
	/* a 5 MB message with a base64 attachment */
	struct buf m = {0};
	buf_append_str(&m, "Subject: big\r\nMIME-Version: 1.0\r\n"
			   "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
			   "Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
			   "Content-Type: application/octet-stream\r\n"
			   "Content-Transfer-Encoding: base64\r\n\r\n");
	unsigned seed = 1;
	while (m.len < 5 * 1024 * 1024) {
		static const char b64[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		char line[78];
		for (int i = 0; i < 76; i++) {
			seed = seed * 1103515245 + 12345;
			line[i] = b64[(seed >> 16) & 63];
		}
		line[76] = '\r';
		line[77] = '\n';
		buf_append(&m, line, sizeof line);
	}
	buf_append_str(&m, "--b--\r\n");
	uint32_t uid = deliver(f, m.data, m.len, 0, 0);

	const char *atts[] = {"(UID BODY.PEEK[] RFC822.SIZE)", "BINARY.PEEK[2]",
			      "(BODY.PEEK[2]<1000.3000000> BINARY.SIZE[2] BINARY[2]<7.2000000>)"};
	for (size_t k = 0; k < sizeof atts / sizeof atts[0]; k++) {
		struct imap_fetch_plan *plan = plan_ok(atts[k]);
		struct buf whole = {0}, pieces = {0};
		size_t calls = 0;
		assert_int_equal(run(f, plan, uid, 1, 0, SIZE_MAX, &whole, &calls), 1);
		assert_int_equal(calls, 1);
		/* in pieces: each call adds at most max_bytes; the caller drains between calls */
		struct buf step = {0};
		struct store_msg_full row = get_msg(f, uid);
		struct imap_fetch_cursor *c = NULL;
		assert_int_equal(imap_fetch_begin(plan, f->acct, NULL, &row, 1, 0, &c), 0);
		free(row.keywords);
		int r;
		calls = 0;
		do {
			buf_clear(&step);
			r = imap_fetch_next(c, &step, 16 * 1024);
			assert_true(r >= 0);
			assert_true(step.len <= 16 * 1024);
			if (r == 0)
				assert_int_equal(step.len, 16 * 1024);
			buf_append(&pieces, step.data, step.len);
			calls++;
		} while (r == 0);
		imap_fetch_end(&c);
		assert_true(calls > 100 || k == 1);
		assert_int_equal(pieces.len, whole.len);
		assert_memory_equal(pieces.data, whole.data, whole.len);
		if (k == 0) {
			char *head = xasprintf("* 1 FETCH (UID %u BODY[] {%zu}\r\n", uid, m.len);
			assert_memory_equal(whole.data, head, strlen(head));
			assert_memory_equal(whole.data + strlen(head), m.data, m.len);
			char *tail = xasprintf(" RFC822.SIZE %zu)\r\n", m.len);
			assert_string_equal(buf_cstr(&whole) + strlen(head) + m.len, tail);
			free(head);
			free(tail);
		}
		buf_free(&step);
		buf_free(&whole);
		buf_free(&pieces);
		imap_fetch_plan_free(&plan);
	}
	buf_free(&m);
}

static void test_binary_size_matches(void **state)
{
	struct store_fixture *f = *state;
	const char msg[] = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
			   "--q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
			   "a=3Db=\r\nc soft=20\r\nend=\r\n--q\r\n"
			   "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--q--\r\n";
	uint32_t uid = deliver(f, msg, sizeof msg - 1, 0, 0);
	for (int part = 1; part <= 2; part++) {
		char *atts = xasprintf("(BINARY.SIZE[%d] BINARY.PEEK[%d])", part, part);
		char *got = fetch(f, atts, uid, 0, NULL);
		unsigned long size = 0, lit = 0;
		char *p = strstr(got, "BINARY.SIZE[");
		assert_non_null(p);
		assert_int_equal(sscanf(strchr(p, ']') + 1, " %lu", &size), 1);
		p = strstr(got, "BINARY[");
		assert_non_null(p);
		assert_int_equal(sscanf(strchr(p, ']') + 1, " {%lu}", &lit), 1);
		assert_int_equal(size, lit);
		if (part == 2)
			assert_non_null(strstr(got, "{5}\r\nhello)"));
		else
			assert_non_null(strstr(got, "\r\na=bc soft \r\nend"));
		free(got);
		free(atts);
	}
}

static void test_expunged(void **state)
{
	struct store_fixture *f = *state;
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), 0, 0);
	struct store_msg_full m = get_msg(f, uid);
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	const char *atts[] = {"BODY[]", "ENVELOPE", "BINARY.SIZE[1]"};
	for (size_t i = 0; i < 3; i++) {
		struct imap_fetch_plan *plan = plan_ok(atts[i]);
		struct imap_fetch_cursor *c = NULL;
		assert_int_equal(imap_fetch_begin(plan, f->acct, NULL, &m, 1, 0, &c), 0);
		struct buf out = {0};
		assert_int_equal(imap_fetch_next(c, &out, 4096), -1);
		assert_int_equal(imap_fetch_error(c), IMAP_FETCH_ERR_EXPUNGED);
		assert_int_equal(out.len, 0);
		assert_int_equal(imap_fetch_next(c, &out, 4096), -1);
		imap_fetch_end(&c);
		imap_fetch_plan_free(&plan);
	}
	free(m.keywords);
}

static void test_tiny_steps(void **state)
{
	struct store_fixture *f = *state;
	uint32_t uid = deliver(f, MULTI, strlen(MULTI), 0, 0);
	struct imap_fetch_plan *plan =
		plan_ok("(FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (TO)] BINARY.PEEK[2] "
			"BODYSTRUCTURE BODY.PEEK[1])");
	struct buf whole = {0}, small = {0};
	assert_int_equal(run(f, plan, uid, 3, 0, SIZE_MAX, &whole, NULL), 1);
	size_t calls = 0;
	assert_int_equal(run(f, plan, uid, 3, 0, 1, &small, &calls), 1);
	assert_int_equal(small.len, whole.len);
	assert_memory_equal(small.data, whole.data, whole.len);
	assert_true(calls >= whole.len);
	buf_free(&whole);
	buf_free(&small);
	imap_fetch_plan_free(&plan);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_parse),
		cmocka_unit_test(test_plan_errors),
		cmocka_unit_test(test_plan_modifiers),
		cmocka_unit_test_setup_teardown(test_simple_items, setup, teardown),
		cmocka_unit_test_setup_teardown(test_structure_items, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attached_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_size_matches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiny_steps, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
