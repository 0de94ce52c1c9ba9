/* The full-text index: text extraction at delivery, folding, substring search in any
 * script, maintenance on expunge, the cap on indexed text, and check/repair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store-fixture.h"
#include <sqlite3.h>
#include <utf8proc.h>

#include "core/buf.h"
#include "mime/mime.h"
#include "store/store.h"

#define ACCOUNT "alice@example.com"

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

static uint32_t deliver_len(struct store_fixture *f, const char *mailbox, const char *text, size_t len)
{
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, text, len), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	uint32_t uid = 0;
	assert_int_equal(store_deliver(f->acct, mailbox, b, 0, 0, &uid), STORE_OK);
	store_blob_free(&b);
	return uid;
}

static uint32_t deliver(struct store_fixture *f, const char *text)
{
	return deliver_len(f, NULL, text, strlen(text));
}

/* The UIDs found, as "1,3" ("" for none). */
static char *search(struct store_fixture *f, enum store_search_field field, const char *needle)
{
	uint32_t *uids = NULL;
	size_t n = 0;
	assert_int_equal(store_search_text(f->acct, NULL, field, needle, &uids, &n), STORE_OK);
	struct buf out = {0};
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			assert_true(uids[i] > uids[i - 1]); /* ascending */
		buf_printf(&out, "%s%u", i ? "," : "", uids[i]);
	}
	free(uids);
	char *s = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return s;
}

#define assert_search(f, field, needle, expect)               \
	do {                                                   \
		char *got_ = search((f), (field), (needle));   \
		assert_string_equal(got_, (expect));           \
		free(got_);                                    \
	} while (0)

#define BODY STORE_SEARCH_BODY
#define TEXT STORE_SEARCH_TEXT
#define HEADER STORE_SEARCH_HEADER

static sqlite3 *open_index(struct store_fixture *f)
{
	char *path = xasprintf("%s/mail/example.com/alice/index.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	free(path);
	return db;
}

static long long query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, err ? err : "?");
}

static int problems;
static void count_problem(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
	problems++;
}

static void test_ascii_substring(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "From: Ann <ann@example.org>\r\nSubject: Greetings\r\n\r\nHello World\r\n");
	deliver(f, "Subject: other\r\n\r\nnothing to see\r\n");
	assert_search(f, BODY, "ELLO", "1");
	assert_search(f, BODY, "o w", "1");        /* across a space */
	assert_search(f, BODY, "hello world", "1");
	assert_search(f, BODY, "NOTHING TO", "2");
	assert_search(f, BODY, "zzz", "");
	assert_search(f, BODY, "greet", "");       /* the subject is not the body */
	assert_search(f, TEXT, "GREET", "1");
	assert_search(f, HEADER, "greet", "1");
	assert_search(f, HEADER, "hello", "");
	assert_search(f, HEADER, "ann@example", "1");
	assert_search(f, HEADER, "subject: oth", "2"); /* fields are indexed as "name: value" */
	assert_search(f, TEXT, "o", "1,2");
	/* Errors */
	uint32_t *uids = NULL;
	size_t n = 0;
	assert_int_equal(store_search_text(f->acct, "Nope", BODY, "x", &uids, &n), STORE_NOTFOUND);
	assert_int_equal(store_search_text(f->acct, NULL, (enum store_search_field)42, "x", &uids, &n),
			 STORE_INVALID);
	/* Another mailbox is not searched. */
	const char *sent = "Subject: s\r\n\r\nhello sent\r\n";
	deliver_len(f, "Sent", sent, strlen(sent));
	assert_search(f, BODY, "hello", "1");
}

static void test_empty_needle(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: a\r\n\r\none\r\n");
	deliver(f, "Subject: b\r\n\r\n");
	assert_search(f, BODY, "", "1,2");
	assert_search(f, HEADER, "", "1,2");
	/* A needle that folds to nothing (a zero-width space) is the empty needle. */
	assert_search(f, TEXT, "\xe2\x80\x8b", "1,2");
}

static void test_case_folding(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: de\r\nContent-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
		   "Die Stra\xc3\x9f" "e ist lang\r\n");
	deliver(f, "Subject: el\r\nContent-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
		   "\xce\xa3\xce\x8a\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3\r\n"); /* ΣΊΣΥΦΟΣ */
	deliver(f, "Subject: tr\r\nContent-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
		   "\xc4\xb0stanbul ve ISPARTA\r\n"); /* İstanbul */
	deliver(f, "Subject: nfkc\r\nContent-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
		   "caf" "e\xcc\x81 \xef\xac\x81nance \xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3\r\n");
		   /* "café" with a combining accent, the "fi" ligature, full-width "ABC" */

	/* German: full case folding maps ß and ẞ to "ss". */
	assert_search(f, BODY, "STRASSE", "1");
	assert_search(f, BODY, "stra\xc3\x9f" "e", "1");
	assert_search(f, BODY, "STRA\xe1\xba\x9e" "E", "1"); /* capital sharp s */
	/* Greek: final sigma folds to σ; accented capitals to accented small letters. */
	assert_search(f, BODY, "\xcf\x83\xce\xaf\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x82", "2");
	assert_search(f, BODY, "\xce\xa3\xce\xa5\xce\xa6", "2"); /* ΣΥΦ */
	/* Turkish: utf8proc folds without the Turkic rules: İ becomes "i" + U+0307 and I becomes
	 * "i", while ı stays ı. So İSTANBUL finds İstanbul, but "istanbul" does not, and
	 * "ısparta" (dotless) does not find ISPARTA. */
	assert_search(f, BODY, "\xc4\xb0STANBUL", "3");
	assert_search(f, BODY, "stanbul", "3");
	assert_search(f, BODY, "istanbul", "");
	assert_search(f, BODY, "isparta", "3");
	assert_search(f, BODY, "\xc4\xb1sparta", "");
	/* NFKC: composed and decomposed accents, ligatures and full-width forms are equal. */
	assert_search(f, BODY, "CAF\xc3\x89", "4");
	assert_search(f, BODY, "finance", "4");
	assert_search(f, BODY, "abc", "4");
	assert_search(f, BODY, "\xef\xbd\x81\xef\xbd\x82\xef\xbd\x83", "4"); /* full-width abc */
	assert_search(f, BODY, "cafe", ""); /* accents are not removed */
}

static void test_scripts_without_spaces(void **state)
{
	struct store_fixture *f = *state;
	/* Thai, UTF-8 in base64: "ภาษาไทยเป็นภาษาที่สวยงาม" */
	deliver(f, "Subject: th\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: base64\r\n\r\n"
		   "4Lig4Liy4Lip4Liy4LmE4LiX4Lii4LmA4Lib4LmH4LiZ4Lig4Liy4Lip4Liy4LiX4Li14LmI4Liq4Lin\r\n"
		   "4Lii4LiH4Liy4Lih\r\n");
	/* Japanese in ISO-2022-JP: "日本語のテキストです" */
	deliver(f, "Subject: ja\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n"
		   "Content-Transfer-Encoding: 7bit\r\n\r\n"
		   "\x1b$BF|K\\8l$N%F%-%9%H$G$9\x1b(B\r\n");
	/* Japanese, UTF-8 in base64: "東京の日本語メール本文" */
	deliver(f, "Subject: ja2\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: base64\r\n\r\n"
		   "5p2x5Lqs44Gu5pel5pys6Kqe44Oh44O844Or5pys5paH\r\n");

	assert_search(f, BODY, "\xe0\xb8\xa0\xe0\xb8\xb2\xe0\xb8\xa9\xe0\xb8\xb2", "1"); /* ภาษา */
	assert_search(f, BODY, "\xe0\xb9\x84\xe0\xb8\x97\xe0\xb8\xa2", "1");             /* ไทย */
	assert_search(f, BODY, "\xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xa2\xe0\xb8\x87\xe0\xb8\xb2\xe0\xb8\xa1",
		      "1"); /* สวยงาม, the last word */
	assert_search(f, BODY, "\xe0\xb8\x8d\xe0\xb8\xb5\xe0\xb9\x88\xe0\xb8\x9b\xe0\xb8\xb8", "");
	assert_search(f, BODY, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "2,3");           /* 日本語 */
	assert_search(f, BODY, "\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88", "2"); /* テキスト */
	assert_search(f, BODY, "\xe6\x9d\xb1\xe4\xba\xac", "3"); /* 東京, 2 chars */
	assert_search(f, BODY, "\xe6\x9c\xac", "2,3");                                   /* 本, 1 char */
	/* Half-width katakana fold to full-width (NFKC): ﾃｷｽﾄ */
	assert_search(f, BODY, "\xef\xbe\x83\xef\xbd\xb7\xef\xbd\xbd\xef\xbe\x84", "2");
}

static void test_transfer_encodings_and_charsets(void **state)
{
	struct store_fixture *f = *state;
	/* quoted-printable Latin-1, with a soft line break inside a word */
	deliver(f, "Subject: 1\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		   "Gr=FC=DFe aus der Stra=\r\n=DFe\r\n");
	/* base64 Latin-1: "Grüße, ÉTÉ à Paris" */
	deliver(f, "Subject: 2\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"latin1\"\r\n"
		   "Content-Transfer-Encoding: base64\r\n\r\nR3L832UsIMlUySDgIFBhcmlz\r\n");
	/* quoted-printable UTF-8 */
	deliver(f, "Subject: 3\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9t=C3=A9 =C3=A0 K=C3=B6ln\r\n");
	/* base64 UTF-8: "Straße in Köln" */
	deliver(f, "Subject: 4\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: base64\r\n\r\nU3RyYcOfZSBpbiBLw7Zsbg==\r\n");
	/* 8-bit Latin-1 without a charset: invalid UTF-8 is read as Latin-1 */
	deliver(f, "Subject: 5\r\n\r\nun caf\xe9 cr\xe8me\r\n");
	/* an unknown charset is read as UTF-8 */
	deliver(f, "Subject: 6\r\nMIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=x-nonsense\r\n\r\n"
		   "d\xc3\xa9j\xc3\xa0 vu\r\n");

	assert_search(f, BODY, "GR\xc3\x9cSSE", "1,2");   /* GRÜSSE */
	assert_search(f, BODY, "strasse", "1,4");         /* across the soft line break */
	assert_search(f, BODY, "\xc3\xa9t\xc3\xa9", "2,3"); /* été */
	assert_search(f, BODY, "K\xc3\x96LN", "3,4");     /* KÖLN */
	assert_search(f, BODY, "caf\xc3\xa9 cr\xc3\xa8me", "5");
	assert_search(f, BODY, "D\xc3\x89J\xc3\x80", "6");
	assert_search(f, BODY, "=DF", "");                /* the encoded form is not indexed */
	assert_search(f, BODY, "R3L8", "");
}

static void test_encoded_word_subject(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <jm@example.org>\r\n"
		   "Subject: =?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n\r\nplain body\r\n");
	assert_search(f, TEXT, "GR\xc3\x9cSSE AUS K\xc3\x96LN", "1");
	assert_search(f, HEADER, "k\xc3\xb6ln", "1");
	assert_search(f, BODY, "k\xc3\xb6ln", "");
	assert_search(f, HEADER, "j\xc3\xbcrgen m\xc3\xbcller", "1");
	assert_search(f, HEADER, "?utf-8?", ""); /* decoded, not as written */
}

static void test_short_needles(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: 7\r\n\r\nqz\r\n");
	deliver(f, "Subject: 8\r\n\r\nzq\r\n");
	deliver(f, "Subject: 9\r\n\r\nnone\r\n");
	assert_search(f, BODY, "QZ", "1");
	assert_search(f, BODY, "zq", "2");
	assert_search(f, BODY, "Q", "1,2");
	assert_search(f, BODY, "z", "1,2");
	assert_search(f, BODY, "x", "");
	assert_search(f, HEADER, "9", "3");
	assert_search(f, TEXT, "8", "2");
	assert_search(f, BODY, "8", "");
	assert_search(f, HEADER, ": 7", "1");
	/* "ß" is one character that folds to two: "ss" */
	assert_search(f, BODY, "\xc3\x9f", "");
}

static void test_special_characters(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: q\r\n\r\nHe said \"hi\" 100% of_the time; a*b?[c] it's\r\n");
	deliver(f, "Subject: r\r\n\r\n1000 ofXthe 1a0\r\n");
	assert_search(f, BODY, "\"hi\"", "1");
	assert_search(f, BODY, "said \"", "1");
	assert_search(f, BODY, "\"", "1");
	assert_search(f, BODY, "\"\"", "");
	assert_search(f, BODY, "100%", "1");
	assert_search(f, BODY, "%", "1");
	assert_search(f, BODY, "1%", "");    /* % is not a wildcard */
	assert_search(f, BODY, "0% ", "1");
	assert_search(f, BODY, "_", "1");
	assert_search(f, BODY, "of_the", "1");
	assert_search(f, BODY, "1_0", "");   /* _ is not a wildcard */
	assert_search(f, BODY, "a*b?[c]", "1");
	assert_search(f, BODY, "*", "1");
	assert_search(f, BODY, "it's", "1");
	assert_search(f, BODY, "'", "1");
	assert_search(f, BODY, "AND", "");   /* no FTS5 query syntax either */
	assert_search(f, BODY, "a NOT", "");
	assert_search(f, BODY, "(c", "");
}

static uint32_t lcg_state = 12345;
static uint32_t lcg(void)
{
	lcg_state = lcg_state * 1103515245u + 12345u;
	return lcg_state >> 16;
}

/* Random texts over a small alphabet (so trigrams repeat a lot) and random needles: the
 * index finds a needle exactly when strstr() does. */
static void test_random_substrings(void **state)
{
	struct store_fixture *f = *state;
	static const char *const alphabet[] = {"a", "b", "c", " ", "\xc3\xa9", "\xe6\x97\xa5",
					       "\xe0\xb8\x81", "\n"};
	const size_t nalpha = sizeof alphabet / sizeof alphabet[0];
	struct buf text[3] = {{0}};
	for (int m = 0; m < 3; m++) {
		for (int i = 0; i < 2000 + 1000 * m; i++)
			buf_append_str(&text[m], alphabet[lcg() % (nalpha - m)]);
		char *msg = xasprintf("Subject: r\r\nMIME-Version: 1.0\r\n"
				      "Content-Type: text/plain; charset=utf-8\r\n\r\n%s",
				      buf_cstr(&text[m]));
		deliver(f, msg);
		free(msg);
	}
	for (int k = 0; k < 400; k++) {
		struct buf needle = {0};
		if (k % 2 == 0) {
			/* a substring of one of the texts, on character boundaries */
			const struct buf *t = &text[k % 3];
			size_t at = lcg() % (t->len - 40);
			while ((t->data[at] & 0xc0) == 0x80)
				at++;
			size_t end = at, chars = 1 + lcg() % 12;
			for (size_t c = 0; c < chars; c++) {
				end++;
				while ((t->data[end] & 0xc0) == 0x80)
					end++;
			}
			buf_append(&needle, t->data + at, end - at);
		} else {
			for (size_t c = 0, n = 3 + lcg() % 6; c < n; c++)
				buf_append_str(&needle, alphabet[lcg() % nalpha]);
		}
		const char *nd = buf_cstr(&needle);
		struct buf want = {0};
		for (int m = 0; m < 3; m++) {
			if (strstr(buf_cstr(&text[m]), nd) != NULL)
				buf_printf(&want, "%s%d", want.len ? "," : "", m + 1);
		}
		if (k % 2 == 0)
			assert_true(want.len > 0);
		assert_search(f, BODY, nd, buf_cstr(&want));
		buf_free(&want);
		buf_free(&needle);
	}
	for (int m = 0; m < 3; m++)
		buf_free(&text[m]);
}

static void test_expunge_removes_row(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: one\r\n\r\nunique words here\r\n");
	sqlite3 *db = open_index(f);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts"), 1);
	/* A second message sharing the blob (as IMAP COPY makes them). */
	exec_sql(db, "BEGIN;"
		     " INSERT INTO message(mailbox_id, uid, blob, size, ends_crlf, internaldate, flags,"
		     " modseq, savedate) SELECT mailbox_id, 2, blob, size, ends_crlf, internaldate, flags,"
		     " modseq + 1, savedate FROM message WHERE uid = 1;"
		     " UPDATE blob SET refs = 2;"
		     " UPDATE mailbox SET uidnext = 3 WHERE name = 'INBOX'; COMMIT;");
	assert_search(f, BODY, "unique", "1,2");
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts"), 1); /* one row for both */
	uint32_t uid = 1;
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts"), 1);
	assert_search(f, BODY, "unique", "2");
	uid = 2;
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts"), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts_text"), 0);
	assert_search(f, BODY, "unique", "");
	assert_search(f, BODY, "u", "");
	sqlite3_close(db);
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
}

static void test_one_blob_two_accounts(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_account_create(f->store, "bob@example.com"), STORE_OK);
	struct store_account *bob = NULL;
	assert_int_equal(store_account_open(f->store, "bob@example.com", &bob), STORE_OK);
	struct store_blob *b = NULL;
	const char *msg = "Subject: both\r\n\r\nshared text\r\n";
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, msg, strlen(msg)), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	assert_int_equal(store_deliver(f->acct, NULL, b, 0, 0, NULL), STORE_OK);
	assert_int_equal(store_deliver(bob, NULL, b, 0, 0, NULL), STORE_OK);
	store_blob_free(&b);
	uint32_t uid = 1;
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	assert_search(f, BODY, "shared", "");
	uint32_t *uids = NULL;
	size_t n = 0;
	assert_int_equal(store_search_text(bob, NULL, BODY, "SHARED", &uids, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(uids[0], 1);
	free(uids);
	store_account_close(&bob);
}

static const char multipart[] =
	"Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
	"preamble words\r\n"
	"--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
	"--YY\r\nContent-Type: text/plain\r\n\r\nplain alternative\r\n"
	"--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
	"<html><body><b>Bold</b> &amp; markup</body></html>\r\n"
	"--YY--\r\n"
	"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
	"Content-Disposition: attachment; filename=secret.bin\r\n\r\n"
	"c2VjcmV0IGF0dGFjaG1lbnQgd29yZHM=\r\n"
	"--XX\r\nContent-Type: image/png\r\n\r\npixelwords\r\n"
	"--XX\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n"
	"attached notes\r\n"
	"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
	"From: inner@example.org\r\nSubject: =?utf-8?q?inner_s=C3=BCbject?=\r\n\r\ninner body\r\n"
	"--XX--\r\nepilogue words\r\n";

static void test_parts(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, multipart);
	assert_search(f, BODY, "plain alternative", "1");
	/* HTML is indexed as it is: the text, and also the tags and entities. */
	assert_search(f, BODY, "bold", "1");
	assert_search(f, BODY, "<b>bold</b>", "1");
	assert_search(f, BODY, "&amp;", "1");
	/* Parts that are not text are not indexed; a text attachment is. */
	assert_search(f, TEXT, "secret attachment", "");
	assert_search(f, TEXT, "pixelwords", "");
	assert_search(f, BODY, "attached notes", "1");
	/* Neither are the preamble, the epilogue and MIME part headers. */
	assert_search(f, TEXT, "preamble", "");
	assert_search(f, TEXT, "epilogue", "");
	assert_search(f, TEXT, "notes.txt", "");
	/* An attached message: its header and text are part of the body. */
	assert_search(f, BODY, "inner body", "1");
	assert_search(f, BODY, "INNER S\xc3\x9c" "BJECT", "1");
	assert_search(f, BODY, "inner@example", "1");
	assert_search(f, HEADER, "inner", "");
	assert_search(f, HEADER, "parts", "1");
}

static void test_extract_directly(void **state)
{
	(void)state;
	char path[] = "/tmp/sarn-fts-extract-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	struct buf msg = {0};
	buf_append_str(&msg, "Subject: Cap\r\n\r\n");
	for (int i = 0; i < 1000; i++)
		buf_append_str(&msg, "Line of TEXT\r\n");
	assert_int_equal(write(fd, msg.data, msg.len), (ssize_t)msg.len);
	struct mime_result *r = mime_parse_buffer(msg.data, msg.len, NULL);
	struct buf header = {0}, body = {0};
	bool truncated = true;
	assert_int_equal(mime_text_extract(r, fd, 0, &header, &body, &truncated), 0);
	assert_false(truncated);
	assert_string_equal(buf_cstr(&header), "subject: cap\n");
	assert_int_equal(body.len, 1000 * strlen("line of text\n"));
	/* A small cap: header and body share it, and it ends on a character. */
	buf_clear(&header);
	buf_clear(&body);
	assert_int_equal(mime_text_extract(r, fd, 100, &header, &body, &truncated), 0);
	assert_true(truncated);
	assert_int_equal(header.len + body.len, 100);
	mime_result_free(&r);
	close(fd);
	buf_free(&header);
	buf_free(&body);
	buf_free(&msg);

	/* The ASCII fast path gives what utf8proc gives for the whole string. */
	static const char *const samples[] = {
		"Hello World\r\nLine two\r\n", "e\xcc\x81 and E\xcc\x81\n", "tab\there\x0c\x7f\x01ok",
		"CR\ralone\n\r\n\n", "A\xcc\x8a\xcc\x81Z", ("\xef\xbc\xa1" "BC\xef\xac\x81" "x"),
		("Stra\xc3\x9f" "E \xc4\xb0I\xc4\xb1"), "<\xcc\xb8 =\xcc\xb8", "\r", "\n", "x\r", "",
	};
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		struct buf got = {0};
		mime_text_fold(samples[i], strlen(samples[i]), &got);
		utf8proc_uint8_t *ref = NULL;
		utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)samples[i],
			(utf8proc_ssize_t)strlen(samples[i]), &ref,
			UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
			UTF8PROC_IGNORE | UTF8PROC_STRIPCC | UTF8PROC_NLF2LF);
		assert_true(n >= 0);
		assert_int_equal(got.len, (size_t)n);
		assert_memory_equal(got.len ? got.data : (unsigned char *)"", ref, (size_t)n);
		free(ref);
		buf_free(&got);
	}

	struct buf out = {0};
	const char *in = "Stra\xc3\x9f" "e\r\nNEXT\tTAB \xc2\xad" "X\xff";
	mime_text_fold(in, strlen(in), &out);
	/* ß → ss, CRLF → LF, tab → space, soft hyphen dropped, 0xff read as ÿ */
	assert_string_equal(buf_cstr(&out), "strasse\nnext tab x\xc3\xbf");
	buf_free(&out);
}

/* Extracts the body text of msg (written to a temporary file). */
static char *extract_body(const struct buf *msg)
{
	char path[] = "/tmp/sarn-fts-extract-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, msg->data, msg->len), (ssize_t)msg->len);
	struct mime_result *r = mime_parse_buffer(msg->data, msg->len, NULL);
	struct buf header = {0}, body = {0};
	assert_int_equal(mime_text_extract(r, fd, 0, &header, &body, NULL), 0);
	mime_result_free(&r);
	close(fd);
	buf_free(&header);
	char *s = xstrdup(buf_cstr(&body));
	buf_free(&body);
	return s;
}

static void repeat(struct buf *b, const char *s, size_t times)
{
	for (size_t i = 0; i < times; i++)
		buf_append_str(b, s);
}

/* Long runs without ASCII or line breaks: multi-byte characters, ISO-2022-JP pairs and
 * combining sequences fall across the 64 KiB read and fold pieces at every alignment. */
static void test_extract_chunk_boundaries(void **state)
{
	(void)state;
	static const struct {
		const char *charset, *unit, *folded;
	} cases[] = {
		/* 日本語テキスト */
		{"utf-8", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9"
			  "\xe3\x83\x88",
		 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88"},
		/* the same in ISO-2022-JP (the escape sequences are added below) */
		{"iso-2022-jp", "F|K\\8l%F%-%9%H",
		 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88"},
		/* か + combining voiced mark composes to が */
		{"utf-8", "\xe3\x81\x8b\xe3\x82\x99", "\xe3\x81\x8c"},
		/* Hangul jamo ᄀ + ᅡ compose to 가 */
		{"utf-8", "\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80"},
		/* Latin-1 é is 1 byte in, 2 out */
		{"iso-8859-15", "\xe9", "\xc3\xa9"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (size_t pad = 0; pad < 3; pad++) {
			struct buf msg = {0}, want = {0};
			buf_printf(&msg, "Subject: x%.*s\r\nMIME-Version: 1.0\r\n"
				   "Content-Type: text/plain; charset=%s\r\n\r\n", (int)pad, "yy",
				   cases[c].charset);
			bool jis = strcmp(cases[c].charset, "iso-2022-jp") == 0;
			if (jis)
				buf_append_str(&msg, "\x1b$B");
			size_t times = 200000 / strlen(cases[c].unit);
			repeat(&msg, cases[c].unit, times);
			if (jis)
				buf_append_str(&msg, "\x1b(B");
			buf_append_str(&msg, "\r\n");
			repeat(&want, cases[c].folded, times);
			buf_append_str(&want, "\n");
			char *got = extract_body(&msg);
			assert_null(strstr(got, "\xef\xbf\xbd")); /* no U+FFFD */
			assert_int_equal(strlen(got), want.len);
			assert_string_equal(got, buf_cstr(&want));
			free(got);
			buf_free(&msg);
			buf_free(&want);
		}
	}
}

/* Writes in pieces of 1..7 bytes (as line-by-line callers do) reach the file intact. */
static void test_small_writes(void **state)
{
	struct store_fixture *f = *state;
	struct buf msg = {0};
	buf_append_str(&msg, "Subject: pieces\r\n\r\n");
	for (int i = 0; i < 20000; i++)
		buf_printf(&msg, "line %d\r\n", i);
	buf_append_str(&msg, "lastword\r\n");
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	for (size_t at = 0, k = 0; at < msg.len; k++) {
		size_t n = 1 + k % 7;
		if (n > msg.len - at)
			n = msg.len - at;
		assert_int_equal(store_blob_write(b, msg.data + at, n), STORE_OK);
		at += n;
	}
	assert_int_equal(store_blob_size(b), msg.len);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	assert_int_equal(store_blob_write(b, "x", 1), STORE_INVALID);
	assert_int_equal(store_deliver(f->acct, NULL, b, 0, 0, NULL), STORE_OK);
	store_blob_free(&b);
	int fd = -1;
	assert_int_equal(store_msg_open(f->acct, NULL, 1, &fd), STORE_OK);
	unsigned char *got = xmalloc(msg.len + 1);
	size_t have = 0;
	ssize_t r;
	while ((r = read(fd, got + have, msg.len + 1 - have)) > 0)
		have += (size_t)r;
	close(fd);
	assert_int_equal(have, msg.len);
	assert_memory_equal(got, msg.data, msg.len);
	free(got);
	struct store_msg *msgs = NULL;
	size_t count = 0;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &msgs, &count), STORE_OK);
	assert_int_equal(count, 1);
	assert_true(msgs[0].ends_in_crlf);
	assert_int_equal(msgs[0].size, msg.len);
	free(msgs);
	assert_search(f, BODY, "LASTWORD", "1");
	assert_search(f, BODY, "line 19999\nlast", "1");
	buf_free(&msg);
}

static void test_cap_on_indexed_text(void **state)
{
	struct store_fixture *f = *state;
	/* 5 MiB of text: what lies past MIME_TEXT_MAX_SIZE is not indexed. */
	struct buf msg = {0};
	buf_append_str(&msg, "Subject: big\r\n\r\nstartmarker\r\n");
	while (msg.len < MIME_TEXT_MAX_SIZE + 1024 * 1024)
		buf_append_str(&msg, "filler filler filler filler filler filler filler filler\r\n");
	buf_append_str(&msg, "endmarker\r\n");
	deliver_len(f, NULL, (const char *)msg.data, msg.len);
	buf_free(&msg);
	assert_search(f, BODY, "startmarker", "1");
	assert_search(f, BODY, "endmarker", "");
	sqlite3 *db = open_index(f);
	assert_true(query_int(db, "SELECT length(CAST(header AS BLOB)) + length(CAST(body AS BLOB))"
				  " FROM fts_text") <= MIME_TEXT_MAX_SIZE);
	sqlite3_close(db);
}

static void test_check_reindexes_old_index(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, "Subject: old\r\n\r\nmessage from before the index\r\n");
	deliver(f, "Subject: old2\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n");
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
	/* An index made before the full-text index: no tables (and no parse result). */
	store_account_close(&f->acct);
	sqlite3 *db = open_index(f);
	exec_sql(db, "DROP TABLE fts; DROP TABLE fts_text; UPDATE blob SET parsed = NULL;");
	sqlite3_close(db);
	/* Opening it creates the tables; searching finds nothing yet. */
	assert_int_equal(store_account_open(f->store, ACCOUNT, &f->acct), STORE_OK);
	assert_search(f, BODY, "before", "");
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 1);
	assert_int_equal(store_check(f->store, true, count_problem, NULL), 0);
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
	assert_search(f, BODY, "before the INDEX", "1");
	assert_search(f, BODY, "gr\xc3\xbcsse", "2");
	assert_search(f, HEADER, "old", "1,2");

	/* A full-text row whose blob is gone, and a mapping to nothing. */
	db = open_index(f);
	exec_sql(db, "BEGIN; INSERT INTO fts(rowid, grams) VALUES(1000, 'orphan text');"
		     " INSERT INTO fts_text(docid, blob, header, body)"
		     " VALUES(1000, '0000000000000000000000000000dead', '', 'orphan text');"
		     " INSERT INTO fts(rowid, grams) VALUES(1001, 'unmapped text'); COMMIT;");
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 1);
	assert_int_equal(store_check(f->store, true, count_problem, NULL), 0);
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts"), 2);
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts_text"), 2);
	/* A mapping whose FTS row was lost: the message is indexed again. */
	exec_sql(db, "DELETE FROM fts WHERE rowid = (SELECT docid FROM fts_text WHERE blob ="
		     " (SELECT blob FROM message WHERE uid = 1))");
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 1);
	assert_int_equal(store_check(f->store, true, count_problem, NULL), 0);
	assert_search(f, BODY, "before the index", "1");
	assert_int_equal(query_int(db, "SELECT count(*) FROM fts_text"), 2);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ascii_substring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_needle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_case_folding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scripts_without_spaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transfer_encodings_and_charsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encoded_word_subject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_needles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_characters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_substrings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_removes_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_blob_two_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parts, setup, teardown),
		cmocka_unit_test(test_extract_directly),
		cmocka_unit_test(test_extract_chunk_boundaries),
		cmocka_unit_test_setup_teardown(test_small_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_on_indexed_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_reindexes_old_index, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
