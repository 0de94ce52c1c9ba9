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
			const char *ids = buf_cstr(&missing);
			char *sql = xasprintf("BEGIN; DELETE FROM message WHERE blob IN (%s);"
					      " DELETE FROM blob WHERE id IN (%s);"
					      " DELETE FROM fts WHERE rowid IN"
					      " (SELECT docid FROM fts_text WHERE blob IN (%s));"
					      " DELETE FROM fts_text WHERE blob IN (%s); COMMIT;",
					      ids, ids, ids, ids);
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
	/* CONDSTORE: no message or expunge record has a MODSEQ above HIGHESTMODSEQ. */
	static const char top_modseq[] =
		"max((SELECT coalesce(max(modseq), 0) FROM message WHERE mailbox_id = mailbox.id),"
		" (SELECT coalesce(max(modseq), 0) FROM expunged WHERE mailbox_id = mailbox.id))";
	char *sql = xasprintf("SELECT name FROM mailbox WHERE highestmodseq < %s", top_modseq);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			problem(k, k->repair, "%s: mailbox %s has MODSEQs above HIGHESTMODSEQ", acct_dir,
				(const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (k->repair) {
			char *fix = xasprintf("UPDATE mailbox SET highestmodseq = %s WHERE highestmodseq < %s",
					      top_modseq, top_modseq);
			exec_repair(k, db, fix);
			free(fix);
		}
	}
	free(sql);
	/* Messages and expunge records of mailboxes that are gone (or \Noselect). */
	if (sqlite3_prepare_v2(db,
		"SELECT (SELECT count(*) FROM message WHERE mailbox_id NOT IN"
		" (SELECT id FROM mailbox WHERE NOT noselect)) + (SELECT count(*) FROM expunged"
		" WHERE mailbox_id NOT IN (SELECT id FROM mailbox))", -1, &st, NULL) == SQLITE_OK) {
		long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_finalize(st);
		if (n > 0) /* not repaired: their blob references need a look first */
			problem(k, false, "%s: %lld index rows belong to no mailbox", acct_dir, n);
	}
}

/* Full-text rows whose blob is gone: fts_content (the FTS5 table's own content table)
 * is read for the row ids so that the text itself is not loaded. */
static void check_fts_orphans(struct checker *k, const char *acct_dir, sqlite3 *db)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
		"SELECT id FROM fts_content WHERE id NOT IN (SELECT docid FROM fts_text"
		" WHERE blob IN (SELECT id FROM blob))", -1, &st, NULL) != SQLITE_OK) {
		problem(k, false, "%s: cannot read the full-text index: %s", acct_dir,
			sqlite3_errmsg(db));
		return;
	}
	int64_t *rows = NULL;
	size_t n = 0, cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			rows = xrealloc(rows, cap * sizeof *rows);
		}
		rows[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	int64_t stale = 0;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM fts_text WHERE blob NOT IN (SELECT id FROM blob)",
			       -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			stale = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (n == 0 && stale == 0) {
		free(rows);
		return;
	}
	bool fixed = false;
	if (k->repair && index_begin(db) == STORE_OK) {
		fixed = true;
		for (size_t i = 0; fixed && i < n; i++) {
			fixed = sqlite3_prepare_v2(db, "DELETE FROM fts WHERE rowid = ?", -1, &st,
						   NULL) == SQLITE_OK;
			if (fixed) {
				sqlite3_bind_int64(st, 1, rows[i]);
				fixed = sqlite3_step(st) == SQLITE_DONE;
				sqlite3_finalize(st);
			}
		}
		if (fixed)
			fixed = sqlite3_exec(db, "DELETE FROM fts_text WHERE blob NOT IN (SELECT id FROM blob)",
					     NULL, NULL, NULL) == SQLITE_OK;
		if (fixed)
			fixed = index_commit(db) == STORE_OK;
		else
			index_rollback(db);
	}
	problem(k, fixed, "%s: %lld full-text index rows refer to no message", acct_dir,
		(long long)(n > (size_t)stale ? (int64_t)n : stale));
	free(rows);
}

struct fts_pending {
	char *id;
	struct buf header, body;
};

/* Writes re-extracted text in one transaction; returns how many rows failed. */
static size_t fts_write_batch(sqlite3 *db, struct fts_pending *p, size_t n)
{
	if (n == 0)
		return 0;
	if (index_begin(db) != STORE_OK)
		return n;
	enum store_err err = STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		/* Still a blob without its row? (an expunge may have run meanwhile) */
		sqlite3_stmt *st;
		bool needed = false;
		if (sqlite3_prepare_v2(db,
			"SELECT 1 FROM blob WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM fts_text b"
			" JOIN fts_content c ON c.id = b.docid WHERE b.blob = ?1)", -1, &st,
			NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, p[i].id, -1, SQLITE_STATIC);
			needed = sqlite3_step(st) == SQLITE_ROW;
			sqlite3_finalize(st);
		}
		if (!needed)
			continue;
		err = index_fts_delete(db, p[i].id); /* a mapping to a lost row */
		if (err == STORE_OK)
			err = index_fts_insert(db, p[i].id, &p[i].header, &p[i].body);
	}
	if (err == STORE_OK)
		err = index_commit(db);
	else
		index_rollback(db);
	return err == STORE_OK ? 0 : n;
}

/* Re-indexing writes in batches of this many messages or this much text. */
#define FTS_BATCH_COUNT 64
#define FTS_BATCH_BYTES (16 * 1024 * 1024)

/* Blobs without a full-text row (e.g. delivered before the index existed): the text is
 * extracted again from the message file. */
static void check_fts_missing(struct checker *k, const char *acct_dir, sqlite3 *db)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
		"SELECT id FROM blob WHERE id NOT IN (SELECT b.blob FROM fts_text b"
		" JOIN fts_content c ON c.id = b.docid)", -1, &st, NULL) != SQLITE_OK)
		return; /* reported by check_fts_orphans */
	char **ids = NULL;
	size_t n = 0, cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (id == NULL || !blob_id_valid(id))
			continue; /* reported by check_rows */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xrealloc(ids, cap * sizeof *ids);
		}
		ids[n++] = xstrdup(id);
	}
	sqlite3_finalize(st);
	if (n == 0) {
		free(ids);
		return;
	}
	size_t failed = 0;
	if (k->repair) {
		struct fts_pending batch[FTS_BATCH_COUNT];
		size_t nb = 0, bytes = 0;
		for (size_t i = 0; i < n; i++) {
			struct fts_pending *p = &batch[nb];
			memset(p, 0, sizeof *p);
			p->id = ids[i];
			enum store_err err = STORE_TEMP;
			if (sqlite3_prepare_v2(db, "SELECT parsed FROM blob WHERE id = ?", -1, &st,
					       NULL) == SQLITE_OK) {
				sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
				if (sqlite3_step(st) == SQLITE_ROW) {
					char *path = blob_path(acct_dir, ids[i]);
					err = fts_extract_file(path, sqlite3_column_blob(st, 0),
							       (size_t)sqlite3_column_bytes(st, 0),
							       &p->header, &p->body);
					free(path);
				}
				sqlite3_finalize(st);
			}
			if (err != STORE_OK) {
				failed++;
				buf_free(&p->header);
				buf_free(&p->body);
				continue;
			}
			nb++;
			bytes += p->header.len + p->body.len;
			if (nb == FTS_BATCH_COUNT || bytes >= FTS_BATCH_BYTES || i + 1 == n) {
				failed += fts_write_batch(db, batch, nb);
				for (size_t j = 0; j < nb; j++) {
					buf_free(&batch[j].header);
					buf_free(&batch[j].body);
				}
				nb = 0;
				bytes = 0;
			}
		}
		if (nb > 0) {
			failed += fts_write_batch(db, batch, nb);
			for (size_t j = 0; j < nb; j++) {
				buf_free(&batch[j].header);
				buf_free(&batch[j].body);
			}
		}
	}
	if (failed > 0)
		problem(k, false, "%s: %zu of %zu messages not in the full-text index could not be"
			" indexed", acct_dir, failed, n);
	else
		problem(k, k->repair, "%s: %zu messages are not in the full-text index", acct_dir, n);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
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
	check_fts_orphans(k, acct_dir, db);
	check_fts_missing(k, acct_dir, db);
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

static int run_check(struct store *s, bool repair, bool may_be_exclusive,
		     void (*report)(void *ctx, const char *line), void *ctx)
{
	struct checker k = {.repair = repair, .report = report, .ctx = ctx};
	/* Our own shared lock converts to exclusive only if no other process holds one. */
	k.exclusive = may_be_exclusive && flock(s->writers_fd, LOCK_EX | LOCK_NB) == 0;
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

int store_check(struct store *s, bool repair, void (*report)(void *ctx, const char *line), void *ctx)
{
	return run_check(s, repair, true, report, ctx);
}

void store_cleanup_leftovers(struct store *s)
{
	/* This process's own deliveries may be in flight: only old leftovers are orphans. */
	run_check(s, true, false, log_recovery, NULL);
}

enum store_err store_recover(struct store *s)
{
	int remaining = store_check(s, true, log_recovery, NULL);
	if (remaining > 0)
		log_error("event=recovery problems=%d hint=\"run sarn check\"", remaining);
	return STORE_OK;
}
