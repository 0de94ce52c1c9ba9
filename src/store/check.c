/* Consistency check and crash recovery of the default backend. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Leftovers younger than this may belong to a delivery running in another process. */
#define ORPHAN_GRACE_SECONDS 3600

struct checker {
	bool repair;
	bool exclusive; /* no other process is writing: every leftover is an orphan */
	int problems;
	void (*report)(void *ctx, const char *line);
	void *ctx;
};

static void problem(struct checker *k, bool fixed, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct checker *k, bool fixed, const char *fmt, ...)
{
	struct buf line = {0};
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	if (fixed)
		buf_append_str(&line, " (repaired)");
	else
		k->problems++;
	k->report(k->ctx, buf_cstr(&line));
	buf_free(&line);
}

static bool is_orphan_age(struct checker *k, const struct stat *st)
{
	return k->exclusive || time(NULL) - st->st_mtime > ORPHAN_GRACE_SECONDS;
}

static bool blob_row_exists(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st;
	bool found = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM blob WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return found;
}

static void check_orphan_files(struct checker *k, const char *acct_dir, sqlite3 *db)
{
	char *blobs = xasprintf("%s/blobs", acct_dir);
	DIR *d = opendir(blobs);
	if (d == NULL) {
		problem(k, false, "%s: cannot read blob directory", blobs);
		free(blobs);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *sub = xasprintf("%s/%s", blobs, de->d_name);
		DIR *sd = opendir(sub);
		struct dirent *fe;
		while (sd != NULL && (fe = readdir(sd)) != NULL) {
			if (fe->d_name[0] == '.')
				continue;
			char *path = xasprintf("%s/%s", sub, fe->d_name);
			struct stat st;
			if (stat(path, &st) == 0 &&
			    (!blob_id_valid(fe->d_name) || !blob_row_exists(db, fe->d_name)) &&
			    is_orphan_age(k, &st)) {
				bool fixed = k->repair && unlink(path) == 0;
				problem(k, fixed, "%s: orphaned message file (no index row)", path);
			}
			free(path);
		}
		if (sd != NULL)
			closedir(sd);
		free(sub);
	}
	closedir(d);
	free(blobs);
}

static void exec_repair(struct checker *k, sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		problem(k, false, "repair failed: %s", err ? err : "?");
		sqlite3_free(err);
	}
}

static void check_rows(struct checker *k, const char *acct_dir, sqlite3 *db)
{
	sqlite3_stmt *st;
	/* Every blob row has its file with the recorded size. */
	if (sqlite3_prepare_v2(db, "SELECT id, size FROM blob", -1, &st, NULL) == SQLITE_OK) {
		struct buf missing = {0};
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *id = (const char *)sqlite3_column_text(st, 0);
			int64_t size = sqlite3_column_int64(st, 1);
			if (id == NULL || !blob_id_valid(id)) {
				problem(k, false, "%s: invalid blob id in index", acct_dir);
				continue;
			}
			char *path = blob_path(acct_dir, id);
			struct stat sb;
			if (stat(path, &sb) < 0) {
				problem(k, k->repair, "%s: message file missing (its messages %s)", path,
					k->repair ? "are removed from the index" : "cannot be read");
				buf_printf(&missing, "%s'%s'", missing.len ? "," : "", id);
			} else if (sb.st_size != size) {
				problem(k, false, "%s: size %lld, index says %lld", path,
					(long long)sb.st_size, (long long)size);
			}
			free(path);
		}
		sqlite3_finalize(st);
		if (k->repair && missing.len > 0) {
			char *sql = xasprintf("BEGIN; DELETE FROM message WHERE blob IN (%s);"
					      " DELETE FROM blob WHERE id IN (%s); COMMIT;",
					      buf_cstr(&missing), buf_cstr(&missing));
			exec_repair(k, db, sql);
			free(sql);
		}
		buf_free(&missing);
	}
	/* Every message row has a blob row, and reference counts match. */
	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM message WHERE blob NOT IN (SELECT id FROM blob)", -1, &st,
		NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
			problem(k, k->repair, "%s: %lld index rows refer to no blob", acct_dir,
				(long long)sqlite3_column_int64(st, 0));
			if (k->repair)
				exec_repair(k, db, "DELETE FROM message WHERE blob NOT IN (SELECT id FROM blob)");
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(db,
		"SELECT count(*) FROM blob WHERE refs != (SELECT count(*) FROM message"
		" WHERE message.blob = blob.id)", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
			problem(k, k->repair, "%s: %lld blob reference counts are wrong", acct_dir,
				(long long)sqlite3_column_int64(st, 0));
			if (k->repair)
				exec_repair(k, db, "UPDATE blob SET refs = (SELECT count(*) FROM message"
						   " WHERE message.blob = blob.id)");
		}
		sqlite3_finalize(st);
	}
	/* UIDs strictly increasing: every UID below the mailbox's UIDNEXT. */
	if (sqlite3_prepare_v2(db,
		"SELECT name FROM mailbox WHERE uidnext <= (SELECT coalesce(max(uid), 0) FROM message"
		" WHERE mailbox_id = mailbox.id)", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			problem(k, k->repair, "%s: mailbox %s has UIDs at or above UIDNEXT", acct_dir,
				(const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (k->repair)
			exec_repair(k, db, "UPDATE mailbox SET uidnext = (SELECT max(uid) + 1 FROM message"
					   " WHERE mailbox_id = mailbox.id) WHERE uidnext <= (SELECT"
					   " coalesce(max(uid), 0) FROM message WHERE mailbox_id = mailbox.id)");
	}
}

static void check_account(struct checker *k, const char *acct_dir)
{
	sqlite3 *db = NULL;
	if (index_open(acct_dir, false, &db) != STORE_OK) {
		problem(k, false, "%s: cannot open index", acct_dir);
		return;
	}
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
			problem(k, false, "%s: index damaged: %s", acct_dir, sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	check_rows(k, acct_dir, db);
	/* After rows are repaired, files nobody refers to are orphans. */
	check_orphan_files(k, acct_dir, db);
	sqlite3_close(db);
}

static void check_spool(struct checker *k, struct store *s)
{
	char *tmp = xasprintf("%s/tmp", s->spool_dir);
	DIR *d = opendir(tmp);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *path = xasprintf("%s/%s", tmp, de->d_name);
		struct stat st;
		if (stat(path, &st) == 0 && is_orphan_age(k, &st)) {
			bool fixed = k->repair && unlink(path) == 0;
			problem(k, fixed, "%s: unfinished incoming message", path);
		}
		free(path);
	}
	if (d != NULL)
		closedir(d);
	free(tmp);
}

static void for_each_account(struct checker *k, struct store *s)
{
	DIR *dd = opendir(s->mail_dir);
	struct dirent *de;
	while (dd != NULL && (de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *domain = xasprintf("%s/%s", s->mail_dir, de->d_name);
		DIR *ud = opendir(domain);
		struct dirent *ue;
		while (ud != NULL && (ue = readdir(ud)) != NULL) {
			if (ue->d_name[0] == '.')
				continue;
			char *acct = xasprintf("%s/%s", domain, ue->d_name);
			check_account(k, acct);
			free(acct);
		}
		if (ud != NULL)
			closedir(ud);
		free(domain);
	}
	if (dd != NULL)
		closedir(dd);
}

int store_check(struct store *s, bool repair, void (*report)(void *ctx, const char *line), void *ctx)
{
	struct checker k = {.repair = repair, .report = report, .ctx = ctx};
	/* Our own shared lock converts to exclusive only if no other process holds one. */
	k.exclusive = flock(s->writers_fd, LOCK_EX | LOCK_NB) == 0;
	check_spool(&k, s);
	for_each_account(&k, s);
	/* A failed conversion drops the old lock on Linux, so take the shared one again either way. */
	flock(s->writers_fd, LOCK_SH);
	return k.problems;
}

static void log_recovery(void *ctx, const char *line)
{
	(void)ctx;
	log_warn("event=recovery detail=\"%s\"", line);
}

enum store_err store_recover(struct store *s)
{
	int remaining = store_check(s, true, log_recovery, NULL);
	if (remaining > 0)
		log_error("event=recovery problems=%d hint=\"run sarn check\"", remaining);
	return STORE_OK;
}
