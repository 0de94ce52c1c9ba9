/* The store API for IMAP: mailboxes (create, delete, rename, list, subscriptions), flags
 * and keywords with MODSEQ, copy and move sharing blobs, append, the saved parse result and
 * the change log. */
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

static struct store_blob *make_blob(struct store_fixture *f, const char *text)
{
	struct store_blob *b = NULL;
	assert_int_equal(store_blob_begin(f->store, &b), STORE_OK);
	assert_int_equal(store_blob_write(b, text, strlen(text)), STORE_OK);
	assert_int_equal(store_blob_finish(b), STORE_OK);
	return b;
}

static uint32_t deliver(struct store_fixture *f, const char *mailbox, const char *text)
{
	struct store_blob *b = make_blob(f, text);
	uint32_t uid = 0;
	assert_int_equal(store_deliver(f->acct, mailbox, b, 0, 0, &uid), STORE_OK);
	store_blob_free(&b);
	return uid;
}

static char *read_msg(struct store_fixture *f, const char *mailbox, uint32_t uid)
{
	int fd = -1;
	assert_int_equal(store_msg_open(f->acct, mailbox, uid, &fd), STORE_OK);
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

/* The entry of name in a listing, or NULL. */
static const struct store_mailbox_entry *find(const struct store_mailbox_entry *e, size_t n,
					      const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	}
	return NULL;
}

static size_t count_blob_files(struct store_fixture *f)
{
	char *cmd = xasprintf("find '%s/mail/example.com/alice/blobs' -type f | wc -l", f->dir);
	FILE *p = popen(cmd, "r");
	free(cmd);
	assert_non_null(p);
	unsigned long n = 0;
	assert_int_equal(fscanf(p, "%lu", &n), 1);
	pclose(p);
	return n;
}

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "check: %s\n", line);
}

static uint64_t highestmodseq(struct store_fixture *f, const char *mailbox)
{
	struct store_mailbox_info info;
	assert_int_equal(store_mailbox_info(f->acct, mailbox, &info), STORE_OK);
	return info.highestmodseq;
}

static void test_create_with_parents(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_mailbox_create(f->acct, "a/b/c", NULL), STORE_OK);
	struct store_mailbox_info ia, ib, ic;
	assert_int_equal(store_mailbox_info(f->acct, "a", &ia), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "a/b", &ib), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "a/b/c", &ic), STORE_OK);
	assert_true(ia.uidvalidity != ib.uidvalidity && ib.uidvalidity != ic.uidvalidity);
	assert_int_equal(store_mailbox_create(f->acct, "a/b", NULL), STORE_EXISTS);
	assert_int_equal(store_mailbox_create(f->acct, "inbox", NULL), STORE_EXISTS);
	assert_int_equal(store_mailbox_create(f->acct, "Stuff", "\\Flagged"), STORE_OK);
	/* Invalid names. */
	assert_int_equal(store_mailbox_create(f->acct, "", NULL), STORE_INVALID);
	assert_int_equal(store_mailbox_create(f->acct, "a\tb", NULL), STORE_INVALID);
	assert_int_equal(store_mailbox_create(f->acct, "a//b", NULL), STORE_INVALID);
	assert_int_equal(store_mailbox_create(f->acct, "/a", NULL), STORE_INVALID);
	char *longname = xcalloc(1, 1026);
	memset(longname, 'x', 1025);
	assert_int_equal(store_mailbox_create(f->acct, longname, NULL), STORE_INVALID);
	longname[1024] = '\0';
	assert_int_equal(store_mailbox_create(f->acct, longname, NULL), STORE_OK);
	free(longname);
	assert_int_equal(store_mailbox_create(f->acct, "Caf\xc3\xa9", NULL), STORE_OK);
}

static void test_delete(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_mailbox_delete(f->acct, "INBOX"), STORE_PERM);
	assert_int_equal(store_mailbox_delete(f->acct, "inbox"), STORE_PERM);
	assert_int_equal(store_mailbox_delete(f->acct, "Nope"), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_create(f->acct, "p/q", NULL), STORE_OK);
	deliver(f, "p", "Subject: in p\r\n\r\nx\r\n");
	size_t files = count_blob_files(f);
	assert_int_equal(files, 1);
	/* A mailbox with inferiors loses its messages and becomes \Noselect. */
	assert_int_equal(store_mailbox_delete(f->acct, "p"), STORE_OK);
	assert_int_equal(count_blob_files(f), 0);
	struct store_mailbox_entry *e = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_list(f->acct, &e, &n), STORE_OK);
	const struct store_mailbox_entry *p = find(e, n, "p");
	assert_non_null(p);
	assert_true(p->noselect);
	assert_true(p->has_children);
	store_mailbox_list_free(e, n);
	struct store_mailbox_info info;
	assert_int_equal(store_mailbox_info(f->acct, "p", &info), STORE_NOTFOUND);
	struct store_msg *msgs;
	assert_int_equal(store_mailbox_messages(f->acct, "p", &msgs, &n), STORE_NOTFOUND);
	struct store_blob *b = make_blob(f, "x\r\n");
	assert_int_equal(store_deliver(f->acct, "p", b, 0, 0, NULL), STORE_NOTFOUND);
	store_blob_free(&b);
	/* A \Noselect mailbox with inferiors cannot be deleted; once they go, it can. */
	assert_int_equal(store_mailbox_delete(f->acct, "p"), STORE_PERM);
	assert_int_equal(store_mailbox_delete(f->acct, "p/q"), STORE_OK);
	assert_int_equal(store_mailbox_delete(f->acct, "p"), STORE_OK);
	assert_int_equal(store_mailbox_list(f->acct, &e, &n), STORE_OK);
	assert_null(find(e, n, "p"));
	store_mailbox_list_free(e, n);
	/* Creating a \Noselect name makes it a mailbox again. */
	assert_int_equal(store_mailbox_create(f->acct, "r/s", NULL), STORE_OK);
	assert_int_equal(store_mailbox_delete(f->acct, "r"), STORE_OK);
	assert_int_equal(store_mailbox_create(f->acct, "r", NULL), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "r", &info), STORE_OK);
}

static void test_rename_with_children(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_mailbox_create(f->acct, "w/x/y", NULL), STORE_OK);
	assert_int_equal(store_mailbox_create(f->acct, "wz", NULL), STORE_OK); /* not inferior */
	deliver(f, "w/x", "Subject: kept\r\n\r\nx\r\n");
	struct store_mailbox_info before, after;
	assert_int_equal(store_mailbox_info(f->acct, "w/x", &before), STORE_OK);
	assert_int_equal(store_mailbox_rename(f->acct, "w", "n/m"), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "w", &after), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_info(f->acct, "w/x", &after), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_info(f->acct, "n", &after), STORE_OK); /* new parent */
	assert_int_equal(store_mailbox_info(f->acct, "n/m", &after), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "n/m/x/y", &after), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "n/m/x", &after), STORE_OK);
	assert_int_equal(after.uidvalidity, before.uidvalidity);
	assert_int_equal(after.messages, 1);
	char *text = read_msg(f, "n/m/x", 1);
	assert_string_equal(text, "Subject: kept\r\n\r\nx\r\n");
	free(text);
	assert_int_equal(store_mailbox_info(f->acct, "wz", &after), STORE_OK);
	/* Errors. */
	assert_int_equal(store_mailbox_rename(f->acct, "nope", "x"), STORE_NOTFOUND);
	assert_int_equal(store_mailbox_rename(f->acct, "wz", "Sent"), STORE_EXISTS);
	assert_int_equal(store_mailbox_rename(f->acct, "wz", "n"), STORE_EXISTS);
	assert_int_equal(store_mailbox_rename(f->acct, "wz", "wz/sub"), STORE_INVALID);
	assert_int_equal(store_mailbox_rename(f->acct, "wz", "INBOX"), STORE_EXISTS);
}

static void test_rename_inbox(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_mailbox_create(f->acct, "INBOX/child", NULL), STORE_OK);
	deliver(f, NULL, "Subject: one\r\n\r\n1\r\n");
	deliver(f, NULL, "Subject: two\r\n\r\n2\r\n");
	struct store_mailbox_info inbox0, inbox1, old;
	assert_int_equal(store_mailbox_info(f->acct, NULL, &inbox0), STORE_OK);
	assert_int_equal(store_mailbox_rename(f->acct, "INBOX", "Old"), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, NULL, &inbox1), STORE_OK);
	assert_int_equal(inbox1.messages, 0);
	assert_int_equal(inbox1.uidvalidity, inbox0.uidvalidity);
	assert_int_equal(inbox1.uidnext, 3);
	assert_int_equal(store_mailbox_info(f->acct, "Old", &old), STORE_OK);
	assert_int_equal(old.messages, 2);
	assert_int_equal(old.uidnext, 3);
	assert_true(old.uidvalidity != inbox0.uidvalidity);
	char *text = read_msg(f, "Old", 2);
	assert_string_equal(text, "Subject: two\r\n\r\n2\r\n");
	free(text);
	assert_int_equal(store_mailbox_info(f->acct, "INBOX/child", &old), STORE_OK);
	/* INBOX logs the moved messages as expunged. */
	struct store_change *ch = NULL;
	uint32_t *ex = NULL;
	size_t nch = 0, nex = 0;
	assert_int_equal(store_changes_since(f->acct, NULL, inbox0.highestmodseq, &ch, &nch, &ex,
					     &nex), STORE_OK);
	assert_int_equal(nch, 0);
	assert_int_equal(nex, 2);
	store_changes_free(ch, nch);
	free(ex);
	/* New deliveries to INBOX continue after the old UIDs. */
	assert_int_equal(deliver(f, NULL, "x\r\n"), 3);
	/* INBOX may go to one of its own inferiors. */
	assert_int_equal(store_mailbox_rename(f->acct, "inbox", "INBOX/old"), STORE_OK);
	assert_int_equal(store_mailbox_info(f->acct, "INBOX/old", &old), STORE_OK);
	assert_int_equal(old.messages, 1);
	assert_int_equal(store_mailbox_info(f->acct, "INBOX", &inbox1), STORE_OK);
	assert_int_equal(inbox1.messages, 0);
	assert_int_equal(store_check(f->store, false, print_line, NULL), 0);
}

static void test_list_and_subscriptions(void **state)
{
	struct store_fixture *f = *state;
	assert_int_equal(store_mailbox_create(f->acct, "Work/Projects", NULL), STORE_OK);
	assert_int_equal(store_mailbox_create(f->acct, "Work-old", NULL), STORE_OK);
	struct store_mailbox_entry *e = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_list(f->acct, &e, &n), STORE_OK);
	assert_int_equal(n, 9);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(e[i - 1].name, e[i].name) < 0);
	const struct store_mailbox_entry *w = find(e, n, "Work");
	assert_non_null(w);
	assert_true(w->has_children);
	assert_false(w->noselect);
	assert_false(w->subscribed);
	assert_null(w->special_use);
	assert_false(find(e, n, "Work-old")->has_children);
	assert_false(find(e, n, "Work/Projects")->has_children);
	const struct store_mailbox_entry *sent = find(e, n, "Sent");
	assert_string_equal(sent->special_use, "\\Sent");
	assert_true(sent->subscribed); /* defaults are subscribed */
	store_mailbox_list_free(e, n);

	assert_int_equal(store_subscribe(f->acct, "Ghost/Box", true), STORE_OK);
	assert_int_equal(store_subscribe(f->acct, "Ghost/Box", true), STORE_OK);
	assert_int_equal(store_subscribe(f->acct, "Work", true), STORE_OK);
	assert_int_equal(store_subscribe(f->acct, "Junk", false), STORE_OK);
	assert_int_equal(store_subscribe(f->acct, "Never", false), STORE_OK);
	assert_int_equal(store_subscribe(f->acct, "", true), STORE_INVALID);
	char **names = NULL;
	assert_int_equal(store_subscriptions(f->acct, &names, &n), STORE_OK);
	const char *want[] = {"Archive", "Drafts", "Ghost/Box", "INBOX", "Sent", "Trash", "Work"};
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(names[i], want[i]);
	store_names_free(names, n);
	assert_int_equal(store_mailbox_list(f->acct, &e, &n), STORE_OK);
	assert_true(find(e, n, "Work")->subscribed);
	assert_false(find(e, n, "Junk")->subscribed);
	assert_null(find(e, n, "Ghost/Box"));
	store_mailbox_list_free(e, n);
}

static void test_flags(void **state)
{
	struct store_fixture *f = *state;
	for (int i = 0; i < 3; i++)
		deliver(f, NULL, "Subject: f\r\n\r\nx\r\n");
	uint64_t m0 = highestmodseq(f, NULL);
	uint32_t uids[] = {1, 2, 9};
	const char *kw[] = {"$Forwarded", "work", "Work"};
	struct store_flag_result *r = NULL;
	size_t nr = 0;
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 3, STORE_FLAGS_ADD, STORE_FLAG_SEEN,
					 kw, 3, 0, &r, &nr), STORE_OK);
	assert_int_equal(nr, 2); /* UID 9 does not exist */
	assert_int_equal(r[0].uid, 1);
	assert_int_equal(r[0].status, STORE_SET_CHANGED);
	assert_int_equal(r[0].flags, STORE_FLAG_SEEN);
	assert_string_equal(r[0].keywords, "$Forwarded Work");
	assert_int_equal(r[0].modseq, m0 + 1);
	assert_int_equal(r[1].modseq, m0 + 2);
	store_flag_results_free(r, nr);
	assert_int_equal(highestmodseq(f, NULL), m0 + 2);

	/* No change: MODSEQ kept, HIGHESTMODSEQ not bumped. */
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN,
					 kw, 1, 0, &r, &nr), STORE_OK);
	assert_int_equal(r[0].status, STORE_SET_UNCHANGED);
	assert_int_equal(r[0].modseq, m0 + 1);
	store_flag_results_free(r, nr);
	assert_int_equal(highestmodseq(f, NULL), m0 + 2);

	/* Remove, case-insensitively for keywords. */
	const char *rm[] = {"WORK"};
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 1, STORE_FLAGS_REMOVE,
					 STORE_FLAG_SEEN, rm, 1, 0, &r, &nr), STORE_OK);
	assert_int_equal(r[0].flags, 0);
	assert_string_equal(r[0].keywords, "$Forwarded");
	assert_int_equal(r[0].modseq, m0 + 3);
	store_flag_results_free(r, nr);

	/* Replace. */
	const char *rep[] = {"b", "a"};
	assert_int_equal(store_set_flags(f->acct, NULL, &uids[1], 1, STORE_FLAGS_REPLACE,
					 STORE_FLAG_FLAGGED | STORE_FLAG_DELETED, rep, 2, 0, &r, &nr),
			 STORE_OK);
	assert_int_equal(r[0].flags, STORE_FLAG_FLAGGED | STORE_FLAG_DELETED);
	assert_string_equal(r[0].keywords, "a b");
	store_flag_results_free(r, nr);
	assert_int_equal(store_set_flags(f->acct, NULL, &uids[1], 1, STORE_FLAGS_REPLACE, 0, NULL,
					 0, 0, &r, &nr), STORE_OK);
	assert_null(r[0].keywords);
	assert_int_equal(r[0].flags, 0);
	uint64_t m2 = r[0].modseq;
	store_flag_results_free(r, nr);

	/* UNCHANGEDSINCE: message 2 changed after m0 + 1, message 1 after too; 3 not. */
	uint32_t all[] = {1, 2, 3};
	assert_int_equal(store_set_flags(f->acct, NULL, all, 3, STORE_FLAGS_ADD,
					 STORE_FLAG_ANSWERED, NULL, 0, m0, &r, &nr), STORE_OK);
	assert_int_equal(nr, 3);
	assert_int_equal(r[0].status, STORE_SET_MODIFIED);
	assert_int_equal(r[1].status, STORE_SET_MODIFIED);
	assert_int_equal(r[1].modseq, m2);
	assert_int_equal(r[2].status, STORE_SET_CHANGED);
	store_flag_results_free(r, nr);

	/* Invalid input. */
	const char *bad[] = {"\\Seen"};
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 1, STORE_FLAGS_ADD, 0, bad, 1, 0,
					 &r, &nr), STORE_INVALID);
	const char *bad2[] = {"two words"};
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 1, STORE_FLAGS_ADD, 0, bad2, 1, 0,
					 &r, &nr), STORE_INVALID);
	assert_int_equal(store_set_flags(f->acct, NULL, uids, 1, STORE_FLAGS_ADD, 1u << 10, NULL,
					 0, 0, &r, &nr), STORE_INVALID);
	assert_int_equal(store_set_flags(f->acct, "Nope", uids, 1, STORE_FLAGS_ADD, 0, NULL, 0, 0,
					 &r, &nr), STORE_NOTFOUND);

	/* Listing with keywords, and the mailbox keyword list. */
	struct store_msg_full *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages_full(f->acct, NULL, &msgs, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(msgs[0].keywords, "$Forwarded");
	assert_null(msgs[1].keywords);
	assert_int_equal(msgs[2].msg.flags, STORE_FLAG_ANSWERED);
	store_msgs_full_free(msgs, n);
	const char *more[] = {"zeta", "$forwarded"};
	assert_int_equal(store_set_flags(f->acct, NULL, &uids[1], 1, STORE_FLAGS_ADD, 0, more, 2,
					 0, &r, &nr), STORE_OK);
	store_flag_results_free(r, nr);
	char **kws = NULL;
	assert_int_equal(store_mailbox_keywords(f->acct, NULL, &kws, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(kws[0], "$Forwarded");
	assert_string_equal(kws[1], "zeta");
	store_names_free(kws, n);
	/* The old listing still works. */
	struct store_msg *plain = NULL;
	assert_int_equal(store_mailbox_messages(f->acct, NULL, &plain, &n), STORE_OK);
	assert_int_equal(n, 3);
	free(plain);
}

static void test_copy_shares_blobs(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "Subject: a\r\n\r\nA\r\n");
	deliver(f, NULL, "Subject: b\r\n\r\nB\r\n");
	deliver(f, "Archive", "Subject: z\r\n\r\nZ\r\n");
	const char *kw[] = {"kept"};
	uint32_t one = 2;
	struct store_flag_result *r = NULL;
	size_t nr = 0;
	assert_int_equal(store_set_flags(f->acct, NULL, &one, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN,
					 kw, 1, 0, &r, &nr), STORE_OK);
	store_flag_results_free(r, nr);
	assert_int_equal(count_blob_files(f), 3);
	uint32_t uids[] = {2, 5, 1};
	uint32_t *new_uids = NULL;
	uint64_t m0 = highestmodseq(f, "Archive");
	assert_int_equal(store_copy(f->acct, NULL, "Archive", uids, 3, &new_uids), STORE_OK);
	assert_int_equal(highestmodseq(f, "Archive"), m0 + 2); /* one per copy made */
	assert_int_equal(store_check(f->store, false, print_line, NULL), 0);
	assert_int_equal(new_uids[0], 2);
	assert_int_equal(new_uids[1], 0);
	assert_int_equal(new_uids[2], 3);
	free(new_uids);
	assert_int_equal(count_blob_files(f), 3); /* no file copied */
	struct store_msg_full *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages_full(f->acct, "Archive", &msgs, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(msgs[1].msg.flags, STORE_FLAG_SEEN);
	assert_string_equal(msgs[1].keywords, "kept");
	store_msgs_full_free(msgs, n);
	/* Expunging the sources keeps the copies readable. */
	uint32_t src[] = {1, 2};
	assert_int_equal(store_expunge(f->acct, NULL, src, 2), STORE_OK);
	assert_int_equal(count_blob_files(f), 3);
	char *text = read_msg(f, "Archive", 2);
	assert_string_equal(text, "Subject: b\r\n\r\nB\r\n");
	free(text);
	/* The file goes with its last reference. */
	uint32_t copies[] = {2, 3};
	assert_int_equal(store_expunge(f->acct, "Archive", copies, 2), STORE_OK);
	assert_int_equal(count_blob_files(f), 1);
	/* Missing mailboxes. */
	assert_int_equal(store_copy(f->acct, NULL, "Nope", src, 1, &new_uids), STORE_NOTFOUND);
	assert_int_equal(store_copy(f->acct, "Nope", NULL, src, 1, &new_uids), STORE_NOTFOUND);
	assert_int_equal(store_move(f->acct, NULL, "Nope", src, 1, &new_uids), STORE_NOTFOUND);
}

static void test_move(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "Subject: a\r\n\r\nA\r\n");
	deliver(f, NULL, "Subject: b\r\n\r\nB\r\n");
	uint64_t m0 = highestmodseq(f, NULL);
	uint32_t uids[] = {1, 2};
	uint32_t *new_uids = NULL;
	assert_int_equal(store_move(f->acct, NULL, "Trash", uids, 2, &new_uids), STORE_OK);
	assert_int_equal(new_uids[0], 1);
	assert_int_equal(new_uids[1], 2);
	free(new_uids);
	struct store_mailbox_info info;
	assert_int_equal(store_mailbox_info(f->acct, NULL, &info), STORE_OK);
	assert_int_equal(info.messages, 0);
	assert_int_equal(store_mailbox_info(f->acct, "Trash", &info), STORE_OK);
	assert_int_equal(info.messages, 2);
	assert_int_equal(count_blob_files(f), 2);
	char *text = read_msg(f, "Trash", 1);
	assert_string_equal(text, "Subject: a\r\n\r\nA\r\n");
	free(text);
	/* The source logs the UIDs as expunged. */
	struct store_change *ch = NULL;
	uint32_t *ex = NULL;
	size_t nch = 0, nex = 0;
	assert_int_equal(store_changes_since(f->acct, NULL, m0, &ch, &nch, &ex, &nex), STORE_OK);
	assert_int_equal(nch, 0);
	assert_int_equal(nex, 2);
	assert_int_equal(ex[0], 1);
	assert_int_equal(ex[1], 2);
	store_changes_free(ch, nch);
	free(ex);
	/* Reference counts stay right: `sarn check` finds nothing. */
	assert_int_equal(store_check(f->store, false, print_line, NULL), 0);
}

static void test_append(void **state)
{
	struct store_fixture *f = *state;
	struct store_blob *b = make_blob(f, "Subject: appended\r\n\r\nx\r\n");
	const char *kw[] = {"$MDNSent", "$Junk"};
	uint32_t uid = 0;
	assert_int_equal(store_append(f->acct, "Drafts", b, STORE_FLAG_DRAFT | STORE_FLAG_SEEN, kw,
				      2, 1700000000, &uid), STORE_OK);
	assert_int_equal(uid, 1);
	const char *bad[] = {"a(b"};
	assert_int_equal(store_append(f->acct, "Drafts", b, 0, bad, 1, 0, &uid), STORE_INVALID);
	assert_int_equal(store_append(f->acct, "Nope", b, 0, NULL, 0, 0, &uid), STORE_NOTFOUND);
	store_blob_free(&b);
	struct store_msg_full *msgs = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_messages_full(f->acct, "Drafts", &msgs, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(msgs[0].msg.internaldate, 1700000000);
	assert_int_equal(msgs[0].msg.flags, STORE_FLAG_DRAFT | STORE_FLAG_SEEN);
	assert_string_equal(msgs[0].keywords, "$Junk $MDNSent");
	store_msgs_full_free(msgs, n);
}

static void test_parsed(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "From: a@b.example\r\nSubject: round trip\r\n\r\nhello\r\n");
	unsigned char *data = NULL;
	size_t len = 0;
	assert_int_equal(store_msg_parsed(f->acct, NULL, 1, &data, &len), STORE_OK);
	assert_non_null(data);
	struct mime_result *r = mime_result_deserialize(data, len);
	assert_non_null(r);
	assert_non_null(strstr(mime_result_envelope(r), "\"round trip\""));
	mime_result_free(&r);
	free(data);
	/* Also through a copy (the same blob). */
	uint32_t one = 1, *new_uids = NULL;
	assert_int_equal(store_copy(f->acct, NULL, "Archive", &one, 1, &new_uids), STORE_OK);
	assert_int_equal(store_msg_parsed(f->acct, "Archive", new_uids[0], &data, &len),
			 STORE_OK);
	assert_true(len > 0);
	free(data);
	free(new_uids);
	assert_int_equal(store_msg_parsed(f->acct, NULL, 7, &data, &len), STORE_EXPUNGED);
}

static void test_changes_since(void **state)
{
	struct store_fixture *f = *state;
	for (int i = 0; i < 4; i++)
		deliver(f, NULL, "x\r\n");
	uint64_t m0 = highestmodseq(f, NULL);
	struct store_change *ch = NULL;
	uint32_t *ex = NULL;
	size_t nch = 0, nex = 0;
	assert_int_equal(store_changes_since(f->acct, NULL, m0, &ch, &nch, &ex, &nex), STORE_OK);
	assert_int_equal(nch + nex, 0);
	uint32_t set[] = {3, 1};
	const char *kw[] = {"k"};
	struct store_flag_result *r = NULL;
	size_t nr = 0;
	assert_int_equal(store_set_flags(f->acct, NULL, set, 2, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED,
					 kw, 1, 0, &r, &nr), STORE_OK);
	store_flag_results_free(r, nr);
	uint64_t m1 = highestmodseq(f, NULL);
	uint32_t gone = 2;
	assert_int_equal(store_expunge(f->acct, NULL, &gone, 1), STORE_OK);
	assert_int_equal(store_changes_since(f->acct, NULL, m0, &ch, &nch, &ex, &nex), STORE_OK);
	assert_int_equal(nch, 2);
	assert_int_equal(ch[0].uid, 1);
	assert_int_equal(ch[0].flags, STORE_FLAG_FLAGGED);
	assert_string_equal(ch[0].keywords, "k");
	assert_int_equal(ch[1].uid, 3);
	assert_true(ch[0].modseq > ch[1].modseq); /* 3 was changed first */
	assert_int_equal(nex, 1);
	assert_int_equal(ex[0], 2);
	store_changes_free(ch, nch);
	free(ex);
	/* Since m1: only the expunge. */
	assert_int_equal(store_changes_since(f->acct, NULL, m1, &ch, &nch, &ex, &nex), STORE_OK);
	assert_int_equal(nch, 0);
	assert_int_equal(nex, 1);
	store_changes_free(ch, nch);
	free(ex);
	assert_int_equal(store_changes_since(f->acct, NULL, highestmodseq(f, NULL), &ch, &nch, &ex,
					     &nex), STORE_OK);
	assert_int_equal(nch + nex, 0);
	store_changes_free(ch, nch);
	free(ex);
}

/* An index made before the IMAP columns and tables gets them at open. */
static void test_old_index_upgraded(void **state)
{
	struct store_fixture *f = *state;
	store_account_close(&f->acct);
	char *path = xasprintf("%s/mail/example.com/alice/index.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE subscription; DROP TABLE expunged;"
				      " ALTER TABLE mailbox DROP COLUMN noselect;"
				      " UPDATE mailbox SET subscribed = 0 WHERE name = 'Junk'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(path);
	assert_int_equal(store_account_open(f->store, ACCOUNT, &f->acct), STORE_OK);
	struct store_mailbox_entry *e = NULL;
	size_t n = 0;
	assert_int_equal(store_mailbox_list(f->acct, &e, &n), STORE_OK);
	assert_int_equal(n, 6);
	assert_false(find(e, n, "Junk")->subscribed);
	assert_true(find(e, n, "Sent")->subscribed);
	assert_false(find(e, n, "Sent")->noselect);
	store_mailbox_list_free(e, n);
}

static void count_line(void *ctx, const char *line)
{
	(void)line;
	(*(int *)ctx)++;
}

/* `sarn check --repair` puts HIGHESTMODSEQ back above every MODSEQ. */
static void test_check_modseq(void **state)
{
	struct store_fixture *f = *state;
	deliver(f, NULL, "x\r\n");
	uint32_t uid = 1;
	assert_int_equal(store_expunge(f->acct, "Sent", &uid, 1), STORE_OK);
	deliver(f, NULL, "y\r\n");
	assert_int_equal(store_expunge(f->acct, NULL, &uid, 1), STORE_OK);
	uint64_t m = highestmodseq(f, NULL);
	char *path = xasprintf("%s/mail/example.com/alice/index.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE mailbox SET highestmodseq = 1", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	free(path);
	int lines = 0;
	assert_true(store_check(f->store, false, count_line, &lines) > 0);
	assert_int_equal(lines, 1); /* only INBOX has MODSEQs above 1 */
	assert_int_equal(store_check(f->store, true, print_line, NULL), 0);
	assert_int_equal(highestmodseq(f, NULL), m);
	assert_int_equal(store_check(f->store, false, print_line, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_with_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_with_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_shares_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_since, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_index_upgraded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_modseq, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
