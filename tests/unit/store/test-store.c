/* The store's default backend: delivery, listing, reading, expunge, retention, the POP3
 * lock, the parse-once result, and check/repair after simulated crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store-fixture.h"
#include <sqlite3.h>

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

static uint32_t deliver(struct store_fixture *f, const char *mailbox, const char *text)
{
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, text, strlen(text)), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	uint32_t uid = 0;
	assert_int_equal(store_deliver(f->acct, mailbox, b, 0, 0, &uid), STORE_OK);
	store_blob_free(&b);
	return uid;
}

static char *read_msg(struct store_fixture *f, uint32_t uid)
{
	int fd = -1;
	assert_int_equal(store_msg_open(f->acct, NULL, uid, &fd), STORE_OK);
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void test_default_mailboxes(void **state)
{
	struct store_fixture *f = *state;
	const char *names[] = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"};
	uint32_t prev = 0;
	for (size_t i = 0; i < 6; i++) {
		struct store_mailbox_info info;
		assert_int_equal(store_mailbox_info(f->acct, names[i], &info), STORE_OK);
		assert_int_equal(info.uidnext, 1);
		assert_int_equal(info.messages, 0);
		assert_true(info.uidvalidity > prev); /* distinct per mailbox */
		prev = info.uidvalidity;
	}
	struct store_mailbox_info info;
	assert_int_equal(store_mailbox_info(f->acct, "Nope", &info), STORE_NOTFOUND);
}

static void test_deliver_list_read(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(deliver(f, NULL, "Subject: one\r\n\r\nbody 1\r\n"), 1);
	assert_int_equal(deliver(f, NULL, "Subject: two\r\n\r\nno final newline"), 2);
	assert_int_equal(deliver(f, "Sent", "Subject: sent\r\n\r\nx\r\n"), 1);
	struct store_msg *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &msgs, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[0].size, strlen("Subject: one\r\n\r\nbody 1\r\n"));
	assert_true(msgs[0].ends_in_crlf);
	assert_false(msgs[1].ends_in_crlf);
	assert_true(msgs[1].modseq > msgs[0].modseq);
	free(msgs);
	char *text = read_msg(f, 2);
	assert_string_equal(text, "Subject: two\r\n\r\nno final newline");
	free(text);
	int fd;
	assert_int_equal(store_msg_open(f->acct, NULL, 99, &fd), STORE_EXPUNGED);
}

static void test_one_blob_many_accounts(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_account_create(f->store, "bob@example.com"), STORE_OK);
	struct store_account *bob = NULL;
	assert_int_equal(store_account_open(f->store, "bob@example.com", &bob), STORE_OK);
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, "Subject: both\r\n\r\nhi\r\n", 21), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	assert_int_equal(store_deliver(f->acct, NULL, b, 0, 0, NULL), STORE_OK);
	assert_int_equal(store_deliver(bob, NULL, b, 0, 0, NULL), STORE_OK);
	store_blob_free(&b);
	/* Expunging one account's copy leaves the other's intact. */
	uint32_t uid = 1;
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	int fd = -1;
	assert_int_equal(store_msg_open(bob, NULL, 1, &fd), STORE_OK);
	close(fd);
	store_account_close(&bob);
}

static void test_expunge_never_reuses_uids(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "a\r\n");
	deliver(f, NULL, "b\r\n");
	uint32_t uids[] = {2, 2, 7};
	assert_int_equal(store_expunge(f->acct, NULL, uids, 3), STORE_OK);
	assert_int_equal(deliver(f, NULL, "c\r\n"), 3);
	struct store_msg *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &msgs, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[1].uid, 3);
	free(msgs);
	int fd;
	assert_int_equal(store_msg_open(f->acct, NULL, 2, &fd), STORE_EXPUNGED);
}

static void test_retention(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "a\r\n");
	deliver(f, NULL, "b\r\n");
	deliver(f, NULL, "c\r\n");
	uint32_t one = 1, two[] = {1, 2};
	assert_int_equal(store_mark_downloaded(f->acct, NULL, &one, 1, 1000), STORE_OK);
	assert_int_equal(store_mark_downloaded(f->acct, NULL, two, 2, 3000), STORE_OK); /* 1 keeps its first */
	size_t expired = 0;
	assert_int_equal(store_expire_downloaded(f->acct, NULL, 2000, &expired), STORE_OK);
	assert_int_equal(expired, 1);
	struct store_msg *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &msgs, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(msgs[0].uid, 2);
	assert_int_equal(msgs[0].downloaded, 3000);
	assert_int_equal(msgs[1].downloaded, 0); /* never downloaded: kept forever */
	free(msgs);
}

static void test_pop3_lock(void **state)
{
	struct store_fixture *f = *state;
	struct store_account *other = NULL;
	assert_int_equal(store_account_open(f->store, ACCOUNT, &other), STORE_OK);
	assert_int_equal(store_pop3_lock(f->acct), STORE_OK);
	assert_int_equal(store_pop3_lock(other), STORE_INUSE);
	store_pop3_unlock(f->acct);
	assert_int_equal(store_pop3_lock(other), STORE_OK);
	store_account_close(&other); /* closing releases it */
	assert_int_equal(store_pop3_lock(f->acct), STORE_OK);
}

static void test_parsed_once_at_delivery(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "From: a@b.example\r\nSubject: parsed\r\n\r\nhello\r\n");
	char *path = xasprintf("%s/mail/example.com/alice/index.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT parsed FROM blob", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *data = sqlite3_column_blob(st, 0);
	int len = sqlite3_column_bytes(st, 0);
	assert_true(len > 0);
	struct mime_result *r = mime_result_deserialize(data, (size_t)len);
	assert_non_null(r);
	assert_non_null(strstr(mime_result_envelope(r), "\"parsed\""));
	mime_result_free(&r);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1;
}

static int woken_wd;
static int wakes;

static void on_wake(void *ctx, int wd)
{
	(void)ctx;
	woken_wd = wd;
	wakes++;
}

/* A watcher wakes after commits by any handle on the account (here: a second one, as another
 * session or process would have), and only then; one watch per account however often added. */
static void test_watch(void **state)
{
	struct store_fixture *f = *state;
	struct store_account *other = NULL;
	assert_int_equal(store_account_open(f->store, ACCOUNT, &other), STORE_OK);
	struct store_watcher *w = NULL;
	assert_int_equal(store_watcher_new(&w), STORE_OK);
	int fd = store_watcher_fd(w);
	int wd = -1, wd2 = -1;
	assert_int_equal(store_watcher_add(w, f->acct, &wd), STORE_OK);
	assert_int_equal(store_watcher_add(w, other, &wd2), STORE_OK);
	assert_int_equal(wd, wd2);
	assert_false(readable(fd));
	struct store_mailbox_info info;
	assert_int_equal(store_mailbox_info(other, NULL, &info), STORE_OK);
	assert_false(readable(fd)); /* reading commits nothing */
	uint32_t uid = deliver(f, NULL, "Subject: w\r\n\r\nx\r\n");
	assert_true(readable(fd));
	wakes = 0;
	store_watcher_read(w, on_wake, NULL);
	assert_true(wakes >= 1);
	assert_int_equal(woken_wd, wd);
	assert_false(readable(fd));
	struct store_flag_result *res = NULL;
	size_t nres = 0;
	assert_int_equal(store_set_flags(other, NULL, &uid, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL,
					 0, 0, &res, &nres), STORE_OK);
	store_flag_results_free(res, nres);
	assert_true(readable(fd));
	store_watcher_read(w, on_wake, NULL);
	assert_int_equal(store_expunge(other, NULL, &uid, 1), STORE_OK);
	assert_true(readable(fd));
	store_watcher_read(w, on_wake, NULL);
	store_watcher_remove(w, wd);
	deliver(f, NULL, "Subject: w2\r\n\r\nx\r\n");
	wakes = 0;
	store_watcher_read(w, on_wake, NULL);
	assert_int_equal(wakes, 0);
	store_watcher_free(&w);
	store_account_close(&other);
}

static int problems;
static void count_problem(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
	problems++;
}

static void test_check_and_repair(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "a\r\n");
	deliver(f, NULL, "b\r\n");
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
	/* A crash between writing and committing leaves an unfinished spool file and an
	 * orphaned blob; a lost file leaves a row without its message. */
	char *tmp = xasprintf("%s/spool/tmp/leftover", f->dir);
	FILE *fp = fopen(tmp, "w");
	fputs("partial", fp);
	fclose(fp);
	char *orphan_dir = xasprintf("%s/mail/example.com/alice/blobs/00", f->dir);
	mkdir(orphan_dir, 0700);
	char *orphan = xasprintf("%s/0000000000000000000000000000beef", orphan_dir);
	fp = fopen(orphan, "w");
	fputs("orphan", fp);
	fclose(fp);
	int fd;
	assert_int_equal(store_msg_open(f->acct, NULL, 1, &fd), STORE_OK);
	close(fd);
	/* Delete message 1's file behind the store's back. */
	char *find = xasprintf("cd '%s/mail/example.com/alice/blobs' && ls */* | grep -v beef | head -1 | xargs rm", f->dir);
	assert_int_equal(system(find), 0);
	problems = 0;
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 3);
	assert_int_equal(store_check(f->store, true, count_problem, NULL), 0);
	assert_int_equal(store_check(f->store, false, count_problem, NULL), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(access(orphan, F_OK), -1);
	struct store_msg *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &msgs, &n), STORE_OK);
	assert_int_equal(n, 1); /* the message whose file was lost is dropped from the index */
	free(msgs);
	free(tmp);
	free(orphan);
	free(orphan_dir);
	free(find);
}

static void test_invalid_account_names(void **state)
{
	struct store_fixture *f = *state;
	const char *bad[] = {"../x@example.com", "a/b@example.com", "a@..", "a@.hidden", "noat",
			     "a@b@c", "a@exa mple.com", "@example.com", "a@"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct store_account *a = NULL;
		assert_int_equal(store_account_create(f->store, bad[i]), STORE_INVALID);
		assert_int_equal(store_account_open(f->store, bad[i], &a), STORE_INVALID);
	}
	struct store_account *a = NULL;
	assert_int_equal(store_account_open(f->store, "ghost@example.com", &a), STORE_NOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_mailboxes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_list_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_blob_many_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expunge_never_reuses_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop3_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parsed_once_at_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_and_repair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_account_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
