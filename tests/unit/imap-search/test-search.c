/* IMAP SEARCH engine: every key over a small mailbox in a real store, NOT/OR nesting,
 * sequence and UID sets, "$", CHARSET, RETURN options and parse errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/search/search.h"
#include "store/store.h"

#define ACCOUNT "alice@example.com"
#define NMSG 5

struct fixture {
	char dir[64];
	struct store *store;
	struct store_account *acct;
	struct store_msg_full *msgs;
	size_t count;
	struct imap_seqset saved;
	bool have_saved;
	struct imap_seqset recent;
};

/* Message n (1-based sequence number) gets UID n + 1: a first message is expunged. */
static const char *const texts[NMSG] = {
	/* 1: encoded-word subject, display name with a comma, two recipients; the Date is
	 * 2 Jan 04:30 UTC but 1 Jan in its own zone. */
	"From: \"M\xc3\xbcller, Hans\" <hans@example.org>\r\n"
	"To: alice@example.com, Bob <bob@example.net>\r\n"
	"Subject: =?UTF-8?Q?=C3=84pfel_und_Birnen?=\r\n"
	"Date: Mon, 1 Jan 2024 23:30:00 -0500\r\n"
	"\r\n"
	"I like \xc3\xa4pfel.\r\n",
	/* 2: Cc with two addresses, Bcc, an extra field; the Date is 1 Jan 23:30 UTC but
	 * 2 Jan in its own zone. */
	"From: carol@example.com\r\n"
	"To: alice@example.com\r\n"
	"Cc: \"Dave\" <dave@example.com>,\r\n"
	" eve@example.com\r\n"
	"Bcc: secret@example.com\r\n"
	"Subject: Meeting notes\r\n"
	"X-Priority: 1\r\n"
	"Date: Tue, 2 Jan 2024 00:30:00 +0100\r\n"
	"\r\n"
	"Agenda: budget review\r\n",
	/* 3: Latin-1 encoded subject, base64 encoded display name. */
	"From: =?UTF-8?B?w4RwZmVsbWFubg==?= <ap@example.org>\r\n"
	"To: alice@example.com\r\n"
	"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
	"Date: Wed, 3 Jan 2024 10:00:00 +0000\r\n"
	"\r\n"
	"Notes from the meeting.\r\n",
	/* 4: no Date; a large body (filled in by setup). */
	NULL,
	/* 5: no Subject, no Date. */
	"From: x@y.example\r\n"
	"\r\n"
	"x\r\n",
};

static const int64_t internaldates[NMSG] = {
	1704110400, /* 2024-01-01 12:00:00 */
	1704153600, /* 2024-01-02 00:00:00 */
	1704326399, /* 2024-01-03 23:59:59 */
	1704369600, /* 2024-01-04 12:00:00 */
	1704067199, /* 2023-12-31 23:59:59 */
};

static const uint32_t flags[NMSG] = {
	0,
	STORE_FLAG_SEEN | STORE_FLAG_FLAGGED,
	STORE_FLAG_ANSWERED | STORE_FLAG_DELETED,
	STORE_FLAG_DRAFT,
	0,
};

static uint32_t deliver(struct fixture *f, const char *text, uint32_t fl, int64_t date)
{
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, text, strlen(text)), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	uint32_t uid = 0;
	assert_int_equal(store_deliver(f->acct, "INBOX", b, fl, date, &uid), STORE_OK);
	store_blob_free(&b);
	return uid;
}

static void add_keyword(struct fixture *f, uint32_t uid, const char *kw)
{
	struct store_flag_result *res = NULL;
	size_t n = 0;
	const char *kws[] = {kw};
	assert_int_equal(store_set_flags(f->acct, "INBOX", &uid, 1, STORE_FLAGS_ADD, 0, kws, 1, 0,
					 &res, &n),
			 STORE_OK);
	assert_int_equal(n, 1);
	store_flag_results_free(res, n);
}

static void reload(struct fixture *f)
{
	store_msgs_full_free(f->msgs, f->count);
	assert_int_equal(store_mailbox_messages_full(f->acct, "INBOX", &f->msgs, &f->count),
			 STORE_OK);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	strcpy(f->dir, "/tmp/sarn-search-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, &f->store), STORE_OK);
	assert_int_equal(store_account_create(f->store, ACCOUNT), STORE_OK);
	assert_int_equal(store_account_open(f->store, ACCOUNT, &f->acct), STORE_OK);

	uint32_t gone = deliver(f, "Subject: gone\r\n\r\nMeeting\r\n", 0, 0);
	assert_int_equal(store_expunge(f->acct, "INBOX", &gone, 1), STORE_OK);

	struct buf big = {0};
	buf_append_str(&big, "From: dora@example.com\r\nTo: alice@example.com\r\n"
			     "Subject: plain\r\n\r\n");
	for (int i = 0; i < 40; i++)
		buf_append_str(&big, "filler filler filler filler filler filler filler\r\n");
	for (size_t i = 0; i < NMSG; i++) {
		const char *t = texts[i] != NULL ? texts[i] : buf_cstr(&big);
		assert_int_equal(deliver(f, t, flags[i], internaldates[i]), gone + 1 + i);
	}
	buf_free(&big);
	add_keyword(f, 4, "$Important");
	add_keyword(f, 5, "Work");
	reload(f);
	assert_int_equal(f->count, NMSG);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_msgs_full_free(f->msgs, f->count);
	imap_seqset_free(&f->saved);
	imap_seqset_free(&f->recent);
	store_account_close(&f->acct);
	store_close(&f->store);
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

/* Parses "A1 SEARCH criteria" with the real command parser, then the criteria. */
static int parse(const char *criteria, bool rev1, struct imap_search_query **q_r,
		 struct imap_search_error *err_r)
{
	struct imap_parser *p = imap_parser_new(&imap_parser_limits_default);
	imap_parser_set_utf8(p, true);
	char *line = *criteria != '\0' ? xasprintf("A1 SEARCH %s\r\n", criteria)
				       : xstrdup("A1 SEARCH\r\n");
	size_t len = strlen(line), off = 0;
	enum imap_parse_result r;
	do {
		size_t used = 0;
		r = imap_parser_feed(p, (const unsigned char *)line + off, len - off, &used);
		off += used;
	} while (r == IMAP_PARSE_HAVE_NAME || r == IMAP_PARSE_NEED_CONTINUATION);
	assert_int_equal(r, IMAP_PARSE_COMPLETE);
	size_t n = 0;
	const struct imap_arg *args = imap_parser_args(p, &n);
	int ret = imap_search_parse(args, n, rev1, q_r, err_r);
	imap_parser_free(&p);
	free(line);
	return ret;
}

static struct imap_search_query *parse_ok(const char *criteria, bool rev1)
{
	struct imap_search_query *q = NULL;
	struct imap_search_error err;
	if (parse(criteria, rev1, &q, &err) < 0)
		fail_msg("parse of '%s' failed: %s", criteria, err.reason);
	return q;
}

static void run(struct fixture *f, const struct imap_search_query *q,
		struct imap_search_result *res)
{
	struct imap_search_ctx ctx = {
		.acct = f->acct,
		.mailbox = "INBOX",
		.msgs = f->msgs,
		.count = f->count,
		.saved = f->have_saved ? &f->saved : NULL,
		.recent = &f->recent,
	};
	assert_int_equal(imap_search_run(q, &ctx, res), STORE_OK);
}

/* The "* SEARCH ..." line without CRLF. */
static char *search_line(struct fixture *f, const char *criteria, bool uid, bool rev1)
{
	struct imap_search_query *q = parse_ok(criteria, rev1);
	struct imap_search_result res;
	run(f, q, &res);
	struct buf out = {0};
	imap_search_format_search(q, &res, uid, &out);
	assert_true(out.len >= 2 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
	char *s = xstrndup((const char *)out.data, out.len - 2);
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
	return s;
}

/* Sequence numbers matched, as "1 3" ("" for none). */
static char *seqs(struct fixture *f, const char *criteria)
{
	char *s = search_line(f, criteria, false, false);
	char *r = xstrdup(strlen(s) > 9 ? s + 9 : "");
	free(s);
	return r;
}

#define assert_search(f, criteria, expected)                                              \
	do {                                                                                 \
		char *got_ = seqs(f, criteria);                                              \
		if (strcmp(got_, expected) != 0)                                             \
			fail_msg("SEARCH %s: got '%s', want '%s'", criteria, got_, expected); \
		free(got_);                                                                  \
	} while (0)

static void assert_bad(const char *criteria, bool rev1)
{
	struct imap_search_query *q = NULL;
	struct imap_search_error err;
	if (parse(criteria, rev1, &q, &err) == 0)
		fail_msg("'%s' parsed", criteria);
	assert_null(q);
	assert_false(err.badcharset);
	assert_non_null(err.reason);
}

static void test_flags(void **state)
{
	struct fixture *f = *state;
	assert_search(f, "ALL", "1 2 3 4 5");
	assert_search(f, "ANSWERED", "3");
	assert_search(f, "UNANSWERED", "1 2 4 5");
	assert_search(f, "DELETED", "3");
	assert_search(f, "UNDELETED", "1 2 4 5");
	assert_search(f, "DRAFT", "4");
	assert_search(f, "UNDRAFT", "1 2 3 5");
	assert_search(f, "FLAGGED", "2");
	assert_search(f, "UNFLAGGED", "1 3 4 5");
	assert_search(f, "SEEN", "2");
	assert_search(f, "unseen", "1 3 4 5");
	assert_search(f, "KEYWORD $Important", "3");
	assert_search(f, "KEYWORD $important", "3");
	assert_search(f, "KEYWORD Work", "4");
	assert_search(f, "KEYWORD Nothing", "");
	assert_search(f, "UNKEYWORD Work", "1 2 3 5");
	assert_search(f, "SEEN FLAGGED", "2");
	assert_search(f, "SEEN DRAFT", "");
}

static void test_sizes(void **state)
{
	struct fixture *f = *state;
	uint64_t s2 = f->msgs[1].msg.size;
	char *c = xasprintf("LARGER %llu", (unsigned long long)(s2 - 1));
	char *got = seqs(f, c);
	assert_non_null(strstr(got, "2"));
	assert_non_null(strstr(got, "4"));
	free(got);
	free(c);
	c = xasprintf("LARGER %llu", (unsigned long long)s2);
	got = seqs(f, c);
	assert_null(strstr(got, "2"));
	free(got);
	free(c);
	c = xasprintf("SMALLER %llu", (unsigned long long)s2);
	got = seqs(f, c);
	assert_null(strstr(got, "2"));
	free(got);
	free(c);
	assert_search(f, "LARGER 1500", "4");
	assert_search(f, "SMALLER 1500", "1 2 3 5");
	assert_search(f, "LARGER 0", "1 2 3 4 5");
	assert_search(f, "SMALLER 1", "");
}

static void test_dates(void **state)
{
	struct fixture *f = *state;
	/* INTERNALDATE days (UTC). */
	assert_search(f, "ON 1-Jan-2024", "1");
	assert_search(f, "ON 01-jan-2024", "1");
	assert_search(f, "ON 2-Jan-2024", "2");
	assert_search(f, "ON 31-Dec-2023", "5");
	assert_search(f, "ON 3-Jan-2024", "3"); /* 23:59:59 UTC */
	assert_search(f, "BEFORE 2-Jan-2024", "1 5");
	assert_search(f, "BEFORE 1-Jan-2024", "5");
	assert_search(f, "SINCE 3-Jan-2024", "3 4");
	assert_search(f, "SINCE \"2-Jan-2024\" BEFORE 4-Jan-2024", "2 3");
	/* Date header days in the header's own zone; messages without Date never match. */
	assert_search(f, "SENTON 1-Jan-2024", "1");
	assert_search(f, "SENTON 2-Jan-2024", "2");
	assert_search(f, "SENTBEFORE 2-Jan-2024", "1");
	assert_search(f, "SENTSINCE 2-Jan-2024", "2 3");
	assert_search(f, "SENTSINCE 1-Jan-2000", "1 2 3");
	assert_search(f, "NOT SENTSINCE 1-Jan-2000", "4 5");
	assert_search(f, "SENTON 29-Feb-2024", "");
}

static void test_headers(void **state)
{
	struct fixture *f = *state;
	assert_search(f, "SUBJECT \"\xc3\x84PFEL\"", "1");
	assert_search(f, "SUBJECT \"\xc3\xa4pfel und\"", "1");
	assert_search(f, "SUBJECT \"GR\xc3\x9c\x53SE\"", "3"); /* ß folds to ss */
	assert_search(f, "SUBJECT meeting", "2");
	assert_search(f, "SUBJECT \"\"", "1 2 3 4");
	assert_search(f, "FROM \"m\xc3\xbcller, hans\"", "1");
	assert_search(f, "FROM HANS@EXAMPLE.ORG", "1");
	assert_search(f, "FROM \"\xc3\xa4pfelmann\"", "3");
	assert_search(f, "FROM example.com", "2 4");
	assert_search(f, "TO bob", "1");
	assert_search(f, "TO alice@example.com", "1 2 3 4");
	assert_search(f, "CC dave", "2");
	assert_search(f, "CC eve@example.com", "2"); /* on a continuation line */
	assert_search(f, "CC alice", "");
	assert_search(f, "BCC secret", "2");
	assert_search(f, "HEADER X-Priority \"\"", "2");
	assert_search(f, "HEADER x-priority 1", "2");
	assert_search(f, "HEADER X-Priority 2", "");
	assert_search(f, "HEADER X-Missing \"\"", "");
	assert_search(f, "HEADER Subject birnen", "1");
	assert_search(f, "HEADER Date -0500", "1");
	/* Strings may come as literals, as rev1 clients send 8-bit text. */
	assert_search(f, "CHARSET UTF-8 SUBJECT {6}\r\n\xc3\x84PFEL", "1");
	assert_search(f, "FROM {7}\r\nM\xc3\x9cLLER TO bob", "1");
}

static void test_body_text_header(void **state)
{
	struct fixture *f = *state;
	/* "meeting" is in 2's Subject and in 3's body (and in the expunged message). */
	assert_search(f, "BODY meeting", "3");
	assert_search(f, "TEXT meeting", "2 3");
	assert_search(f, "HEADER Subject meeting", "2");
	assert_search(f, "BODY \"\xc3\x84PFEL\"", "1");
	assert_search(f, "TEXT \"\xc3\x84PFEL\"", "1 3");
	assert_search(f, "BODY budget TEXT agenda", "2");
	assert_search(f, "BODY budget BODY nothing-like-this", "");
	assert_search(f, "OR BODY budget BODY filler", "2 4");
	assert_search(f, "NOT TEXT meeting", "1 4 5");
}

static void test_not_or(void **state)
{
	struct fixture *f = *state;
	assert_search(f, "NOT SEEN", "1 3 4 5");
	assert_search(f, "NOT NOT SEEN", "2");
	assert_search(f, "OR SEEN DRAFT", "2 4");
	assert_search(f, "NOT OR SEEN DRAFT", "1 3 5");
	assert_search(f, "OR SEEN (DELETED ANSWERED)", "2 3");
	assert_search(f, "NOT OR SEEN (DELETED ANSWERED)", "1 4 5");
	assert_search(f, "OR (OR SEEN DRAFT) OR ANSWERED KEYWORD Work", "2 3 4");
	assert_search(f, "(OR SEEN DRAFT) SMALLER 1500", "2");
	assert_search(f, "((SEEN))", "2");
	assert_search(f, "OR NOT SEEN NOT UNSEEN", "1 2 3 4 5");
	assert_search(f, "NOT (FROM example.org SUBJECT birnen)", "2 3 4 5");
	assert_search(f, "OR SUBJECT plain FROM carol", "2 4");
}

static void test_sets(void **state)
{
	struct fixture *f = *state;
	assert_search(f, "1", "1");
	assert_search(f, "2:*", "2 3 4 5");
	assert_search(f, "*", "5");
	assert_search(f, "*:4", "4 5");
	assert_search(f, "1,3:4", "1 3 4");
	assert_search(f, "9", "");
	assert_search(f, "UID 3:*", "2 3 4 5");
	assert_search(f, "UID *", "5");
	assert_search(f, "UID 1", ""); /* expunged */
	assert_search(f, "UID 2,4", "1 3");
	assert_search(f, "UID 100:*", "5"); /* "100:*" is "6:100" */
	assert_search(f, "NOT 2:4", "1 5");
	assert_search(f, "1:3 UID 3:6", "2 3");

	char *s = search_line(f, "UID 3:5", true, false);
	assert_string_equal(s, "* SEARCH 3 4 5");
	free(s);
	s = search_line(f, "2:3", true, false);
	assert_string_equal(s, "* SEARCH 3 4");
	free(s);
	s = search_line(f, "SEEN DRAFT", true, false);
	assert_string_equal(s, "* SEARCH");
	free(s);
}

static void test_saved(void **state)
{
	struct fixture *f = *state;
	/* No saved result: "$" is empty. */
	assert_search(f, "$", "");
	assert_search(f, "NOT $", "1 2 3 4 5");

	struct imap_search_query *q = parse_ok("RETURN (SAVE) OR SEEN DRAFT", false);
	assert_true(q->esearch);
	struct imap_search_result res;
	run(f, q, &res);
	struct buf out = {0};
	imap_search_format_esearch(q, &res, "A1", true, &out);
	assert_int_equal(out.len, 0); /* SAVE alone: no ESEARCH response */
	imap_search_saved_result(q, &res, &f->saved);
	f->have_saved = true;
	imap_seqset_format(&f->saved, &out);
	assert_string_equal(buf_cstr(&out), "3,5");
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);

	assert_search(f, "$", "2 4");
	assert_search(f, "UID $", "2 4");
	assert_search(f, "NOT $ UNSEEN", "1 3 5");
	struct imap_search_error err;
	assert_int_equal(parse("$", false, &q, &err), 0);
	assert_true(q->uses_saved);
	imap_search_query_free(&q);
	assert_null(q);

	/* SAVE with MIN and MAX only saves those two. */
	q = parse_ok("RETURN (SAVE MIN MAX) UNSEEN", false);
	run(f, q, &res);
	imap_seqset_free(&f->saved);
	imap_search_saved_result(q, &res, &f->saved);
	imap_seqset_format(&f->saved, &out);
	assert_string_equal(buf_cstr(&out), "2,6");
	buf_free(&out);
	imap_search_format_esearch(q, &res, "A2", false, &out);
	assert_string_equal(buf_cstr(&out), "* ESEARCH (TAG \"A2\") MIN 1 MAX 5\r\n");
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);

	/* SAVE with COUNT saves everything. */
	q = parse_ok("RETURN (MIN SAVE COUNT) UNSEEN", false);
	run(f, q, &res);
	imap_seqset_free(&f->saved);
	imap_search_saved_result(q, &res, &f->saved);
	imap_seqset_format(&f->saved, &out);
	assert_string_equal(buf_cstr(&out), "2,4:6");
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
}

static void test_recent(void **state)
{
	struct fixture *f = *state;
	imap_seqset_add(&f->recent, 5, 6); /* messages 4 (\Draft, unseen) and 5 */
	char *s = search_line(f, "RECENT", false, true);
	assert_string_equal(s, "* SEARCH 4 5");
	free(s);
	s = search_line(f, "NEW", false, true);
	assert_string_equal(s, "* SEARCH 4 5");
	free(s);
	s = search_line(f, "OLD", false, true);
	assert_string_equal(s, "* SEARCH 1 2 3");
	free(s);
	s = search_line(f, "NEW DRAFT", false, true);
	assert_string_equal(s, "* SEARCH 4");
	free(s);
	/* IMAP4rev2 has no \Recent. */
	assert_bad("RECENT", false);
	assert_bad("NEW", false);
	assert_bad("OLD", false);
}

static void test_charset(void **state)
{
	struct fixture *f = *state;
	assert_search(f, "CHARSET UTF-8 SUBJECT \"\xc3\x84PFEL\"", "1");
	assert_search(f, "CHARSET us-ascii SEEN", "2");
	assert_search(f, "CHARSET \"UTF-8\" SEEN", "2");
	assert_search(f, "RETURN () CHARSET UTF-8 SEEN", "2");

	struct imap_search_query *q = NULL;
	struct imap_search_error err;
	assert_int_equal(parse("CHARSET ISO-8859-1 SUBJECT x", false, &q, &err), -1);
	assert_true(err.badcharset);
	assert_non_null(err.reason);
	assert_null(q);
	assert_string_equal(IMAP_SEARCH_CHARSETS, "(UTF-8 US-ASCII)");
	assert_bad("CHARSET", false);
	assert_bad("CHARSET UTF-8", false);
	assert_bad("SEEN CHARSET UTF-8", false);
}

static char *esearch(struct fixture *f, const char *criteria, const char *tag, bool uid)
{
	struct imap_search_query *q = parse_ok(criteria, false);
	assert_true(q->esearch);
	struct imap_search_result res;
	run(f, q, &res);
	struct buf out = {0};
	imap_search_format_esearch(q, &res, tag, uid, &out);
	char *s = xstrdup(buf_cstr(&out));
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
	return s;
}

#define assert_esearch(f, criteria, tag, uid, expected)                                   \
	do {                                                                                 \
		char *got_ = esearch(f, criteria, tag, uid);                                 \
		assert_string_equal(got_, expected);                                         \
		free(got_);                                                                  \
	} while (0)

static void test_return(void **state)
{
	struct fixture *f = *state;
	assert_esearch(f, "RETURN (MIN MAX COUNT ALL) UNSEEN", "A1", false,
		       "* ESEARCH (TAG \"A1\") MIN 1 MAX 5 COUNT 4 ALL 1,3:5\r\n");
	assert_esearch(f, "RETURN (ALL COUNT MAX MIN) UNSEEN", "A1", true,
		       "* ESEARCH (TAG \"A1\") UID MIN 2 MAX 6 COUNT 4 ALL 2,4:6\r\n");
	assert_esearch(f, "RETURN () ALL", "t", false, "* ESEARCH (TAG \"t\") ALL 1:5\r\n");
	assert_esearch(f, "RETURN (COUNT) SEEN DRAFT", "A3", false,
		       "* ESEARCH (TAG \"A3\") COUNT 0\r\n");
	assert_esearch(f, "RETURN (MIN MAX ALL) SEEN DRAFT", "A4", true,
		       "* ESEARCH (TAG \"A4\") UID\r\n");
	assert_esearch(f, "return (min) FLAGGED", "A5", false, "* ESEARCH (TAG \"A5\") MIN 2\r\n");
	assert_esearch(f, "RETURN (COUNT) ALL", NULL, false, "* ESEARCH COUNT 5\r\n");

	/* IMAP4rev2 answers a SEARCH without RETURN with ESEARCH ALL. */
	struct imap_search_query *q = parse_ok("UNSEEN", false);
	assert_false(q->esearch);
	assert_int_equal(q->ret, 0);
	struct imap_search_result res;
	run(f, q, &res);
	struct buf out = {0};
	imap_search_format_esearch(q, &res, "B1", true, &out);
	assert_string_equal(buf_cstr(&out), "* ESEARCH (TAG \"B1\") UID ALL 2,4:6\r\n");
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
	assert_bad("RETURN (BOGUS) ALL", false);
	assert_bad("RETURN ALL", false);
	assert_bad("RETURN (MIN)", false);
}

static void test_modseq(void **state)
{
	struct fixture *f = *state;
	/* Adding keywords gave messages 3 and 4 the newest MODSEQs. */
	uint64_t m3 = f->msgs[2].msg.modseq, m4 = f->msgs[3].msg.modseq;
	assert_true(m4 > m3);
	char *c = xasprintf("MODSEQ %llu", (unsigned long long)m3);
	char *s = search_line(f, c, false, false);
	char *want = xasprintf("* SEARCH 3 4 (MODSEQ %llu)", (unsigned long long)m4);
	assert_string_equal(s, want);
	free(s);
	free(want);
	free(c);
	c = xasprintf("RETURN (COUNT) MODSEQ \"/flags/\\\\draft\" all %llu",
		      (unsigned long long)m4);
	s = esearch(f, c, "A1", false);
	want = xasprintf("* ESEARCH (TAG \"A1\") COUNT 1 MODSEQ %llu\r\n", (unsigned long long)m4);
	assert_string_equal(s, want);
	free(s);
	free(want);
	free(c);
	/* MIN alone: the MODSEQ of that message (RFC 4731 §3.2). */
	c = xasprintf("RETURN (MIN) MODSEQ %llu", (unsigned long long)m3);
	s = esearch(f, c, "A2", false);
	want = xasprintf("* ESEARCH (TAG \"A2\") MIN 3 MODSEQ %llu\r\n", (unsigned long long)m3);
	assert_string_equal(s, want);
	free(s);
	free(want);
	free(c);
	c = xasprintf("RETURN (MIN MAX) MODSEQ %llu", (unsigned long long)m3);
	s = esearch(f, c, "A3", true);
	want = xasprintf("* ESEARCH (TAG \"A3\") UID MIN 4 MAX 5 MODSEQ %llu\r\n",
			 (unsigned long long)m4);
	assert_string_equal(s, want);
	free(s);
	free(want);
	free(c);
	s = search_line(f, "MODSEQ 99999999", false, false);
	assert_string_equal(s, "* SEARCH");
	free(s);
	assert_bad("MODSEQ", false);
	assert_bad("MODSEQ x", false);
	assert_bad("MODSEQ \"/flags/x\" bogus 1", false);
}

static void test_parse_errors(void **state)
{
	(void)state;
	assert_bad("", false);
	assert_bad("SUBJECT", false);
	assert_bad("HEADER X-Priority", false);
	assert_bad("HEADER", false);
	assert_bad("BEFORE", false);
	assert_bad("BEFORE 32-Jan-2024", false);
	assert_bad("BEFORE 29-Feb-2023", false);
	assert_bad("BEFORE 1-Foo-2024", false);
	assert_bad("BEFORE 2024-01-01", false);
	assert_bad("BEFORE 1-Jan-24", false);
	assert_bad("SINCE 1-Jan-2024x", false);
	assert_bad("FOO", false);
	assert_bad("SEEN FOO", false);
	assert_bad("()", false);
	assert_bad("LARGER abc", false);
	assert_bad("LARGER -1", false);
	assert_bad("SMALLER", false);
	assert_bad("OR SEEN", false);
	assert_bad("NOT", false);
	assert_bad("UID abc", false);
	assert_bad("UID", false);
	assert_bad("0", false);
	assert_bad("1:0x", false);
	assert_bad("KEYWORD", false);
	assert_bad("KEYWORD \"a b\"", false);
	assert_bad("\"SEEN\"", false);
	assert_bad("(SEEN (FOO))", false);

	struct buf deep = {0};
	for (int i = 0; i < IMAP_SEARCH_MAX_DEPTH + 1; i++)
		buf_append_str(&deep, "NOT ");
	buf_append_str(&deep, "SEEN");
	assert_bad(buf_cstr(&deep), false);
	buf_free(&deep);

	struct imap_search_query *q = NULL;
	struct imap_search_error err;
	assert_int_equal(parse("BEFORE 1-Foo-2024", false, &q, &err), -1);
	assert_string_equal(err.reason, "Invalid date (expected d-Mon-yyyy)");
	assert_int_equal(parse("FOO", false, &q, &err), -1);
	assert_string_equal(err.reason, "Unknown search key");
	assert_int_equal(parse("SUBJECT", false, &q, &err), -1);
	assert_string_equal(err.reason, "Missing search string");
}

static void test_store_errors(void **state)
{
	struct fixture *f = *state;
	struct imap_search_query *q = parse_ok("BODY x", false);
	struct imap_search_ctx ctx = {.acct = f->acct, .mailbox = "Missing", .msgs = f->msgs,
				      .count = f->count};
	struct imap_search_result res;
	assert_int_equal(imap_search_run(q, &ctx, &res), STORE_NOTFOUND);
	assert_int_equal(res.count, 0);
	assert_null(res.uids);
	imap_search_query_free(&q);
	/* Flag keys need nothing from the store. */
	q = parse_ok("SEEN", false);
	assert_int_equal(imap_search_run(q, &ctx, &res), STORE_OK);
	assert_int_equal(res.count, 1);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
}

static void test_empty_mailbox(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_mailbox_create(f->acct, "Empty", NULL), STORE_OK);
	struct imap_search_query *q = parse_ok("OR * BODY x", false);
	struct imap_search_ctx ctx = {.acct = f->acct, .mailbox = "Empty"};
	struct imap_search_result res;
	assert_int_equal(imap_search_run(q, &ctx, &res), STORE_OK);
	assert_int_equal(res.count, 0);
	struct buf out = {0};
	imap_search_format_search(q, &res, false, &out);
	assert_string_equal(buf_cstr(&out), "* SEARCH\r\n");
	buf_free(&out);
	imap_search_result_free(&res);
	imap_search_query_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_text_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_or, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_saved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_charset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_return, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modseq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_mailbox, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
