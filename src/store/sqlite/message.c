/* Messages in the SQLite backend: delivery, listing, opening, expunging. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum store_err link_or_copy(const char *from, const char *to)
{
	if (link(from, to) == 0)
		return STORE_OK;
	if (errno != EXDEV && errno != EPERM)
		return errno == ENOSPC ? STORE_NOSPACE : STORE_TEMP;
	/* Spool and store on different filesystems: copy and fsync. */
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	enum store_err err = (in < 0 || out < 0) ? STORE_TEMP : STORE_OK;
	char chunk[65536];
	ssize_t n;
	while (err == STORE_OK && (n = read(in, chunk, sizeof chunk)) != 0) {
		if (n < 0 || write_full(out, chunk, (size_t)n) < 0)
			err = errno == ENOSPC ? STORE_NOSPACE : STORE_TEMP;
	}
	if (err == STORE_OK && fsync(out) < 0)
		err = errno == ENOSPC ? STORE_NOSPACE : STORE_TEMP;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (err != STORE_OK)
		unlink(to);
	return err;
}

/* Places the blob file in the account and makes the directory entry durable. */
static enum store_err place_blob(struct store_account *a, struct store_blob *b, const char *id,
				 char **path_r)
{
	char *path = blob_path(a->dir, id);
	char *sub = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	enum store_err err = STORE_OK;
	if (mkdir(sub, 0700) == 0) {
		if (fsync_parent_dir(sub) < 0)
			err = STORE_TEMP;
	} else if (errno != EEXIST) {
		err = errno == ENOSPC ? STORE_NOSPACE : STORE_TEMP;
	}
	if (err == STORE_OK)
		err = link_or_copy(b->path, path);
	if (err == STORE_OK && fsync_parent_dir(path) < 0) {
		err = STORE_TEMP;
		unlink(path);
	}
	free(sub);
	if (err != STORE_OK) {
		log_error("event=blob_place path=%s error=\"%s\"", path, strerror(errno));
		free(path);
		return err;
	}
	*path_r = path;
	return STORE_OK;
}

/* Inside the caller's transaction: the index rows of one message whose file is placed. */
static enum store_err insert_message(struct store_account *a, int64_t mbox,
				     const struct store_blob *b, const char *id, uint32_t flags,
				     const char *keywords, int64_t internaldate, uint32_t *uid_r)
{
	sqlite3_stmt *st = NULL;
	int64_t uid = 0, modseq = 0;
	enum store_err err = STORE_OK;
	int rc = sqlite3_prepare_v2(a->db, "SELECT uidnext, highestmodseq + 1 FROM mailbox WHERE id = ?",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, mbox);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		uid = sqlite3_column_int64(st, 0);
		modseq = sqlite3_column_int64(st, 1);
	} else
		err = index_err(a->db, rc, "deliver_uidnext");
	sqlite3_finalize(st);
	if (err == STORE_OK && uid > UINT32_MAX)
		err = STORE_LIMIT;
	int64_t now = (int64_t)time(NULL);
	if (err == STORE_OK) {
		rc = sqlite3_prepare_v2(a->db,
			"INSERT INTO blob(id, refs, size, parsed, header) VALUES(?, 1, ?, ?, ?)", -1, &st,
			NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)b->size);
			sqlite3_bind_blob(st, 3, b->parsed.data, (int)b->parsed.len, SQLITE_STATIC);
			if (b->header.len > 0)
				sqlite3_bind_blob(st, 4, b->header.data, (int)b->header.len,
						  SQLITE_STATIC);
			rc = sqlite3_step(st);
			sqlite3_finalize(st);
		}
		if (rc != SQLITE_DONE)
			err = index_err(a->db, rc, "deliver_blob");
	}
	if (err == STORE_OK)
		err = index_fts_insert(a->db, id, &b->fts_header, &b->fts_body);
	if (err == STORE_OK) {
		bool crlf = b->size >= 2 && b->last2[0] == '\r' && b->last2[1] == '\n';
		sqlite3_int64 args[] = {mbox, uid, (sqlite3_int64)b->size, crlf,
					internaldate ? internaldate : now, flags, modseq, now};
		err = index_exec(a->db,
			"INSERT INTO message(blob, mailbox_id, uid, size, ends_crlf, internaldate, flags,"
			" modseq, savedate) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
			"deliver_message", 8, args, id);
		if (err == STORE_OK && keywords != NULL) {
			sqlite3_int64 key[] = {mbox, uid};
			err = index_exec(a->db,
				"UPDATE message SET keywords = ? WHERE mailbox_id = ? AND uid = ?",
				"deliver_keywords", 2, key, keywords);
		}
	}
	if (err == STORE_OK) {
		sqlite3_int64 args[] = {uid + 1, modseq, mbox};
		err = index_exec(a->db, "UPDATE mailbox SET uidnext = ?, highestmodseq = ? WHERE id = ?",
				"deliver_mailbox", 3, args, NULL);
	}
	if (err == STORE_OK)
		*uid_r = (uint32_t)uid;
	return err;
}

/* Adds messages to mailbox in one transaction: all or none. keywords[i] is a joined list
 * or NULL. */
static enum store_err deliver_all(struct store_account *a, const char *mailbox,
				  const struct store_append_msg *msgs, char *const *keywords,
				  size_t n, uint32_t *uids_r)
{
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].blob->finished)
			return STORE_INVALID;
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	char **ids = xcalloc(n, sizeof *ids), **paths = xcalloc(n, sizeof *paths);
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		ids[i] = random_hex(16);
		err = place_blob(a, msgs[i].blob, ids[i], &paths[i]);
	}
	bool in_transaction = false;
	if (err == STORE_OK)
		in_transaction = (err = index_begin(a->db)) == STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < n; i++)
		err = insert_message(a, mbox, msgs[i].blob, ids[i], msgs[i].flags, keywords[i],
				     msgs[i].internaldate, &uids_r[i]);
	if (err == STORE_OK)
		err = index_commit(a->db);
	else if (in_transaction)
		index_rollback(a->db);
	for (size_t i = 0; i < n; i++) {
		if (err != STORE_OK && paths[i] != NULL)
			unlink(paths[i]);
		free(paths[i]);
		free(ids[i]);
	}
	free(paths);
	free(ids);
	return err;
}

enum store_err store_deliver(struct store_account *a, const char *mailbox, struct store_blob *b,
			     uint32_t flags, int64_t internaldate, uint32_t *uid_r)
{
	struct store_append_msg m = {.blob = b, .flags = flags, .internaldate = internaldate};
	char *kw = NULL;
	uint32_t uid = 0;
	enum store_err err = deliver_all(a, mailbox, &m, &kw, 1, &uid);
	if (err == STORE_OK && uid_r != NULL)
		*uid_r = uid;
	return err;
}

enum store_err store_append_many(struct store_account *a, const char *mailbox,
				 const struct store_append_msg *msgs, size_t n, uint32_t *uids_r)
{
	const char *name = store_mailbox_name(mailbox ? mailbox : "INBOX");
	if (name == NULL || n == 0)
		return STORE_INVALID;
	char **kw = xcalloc(n, sizeof *kw);
	enum store_err err = STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		bool ok;
		kw[i] = keywords_join(msgs[i].keywords, msgs[i].nkw, &ok);
		if (!ok || (msgs[i].flags & ~(uint32_t)STORE_FLAGS_ALL) != 0)
			err = STORE_INVALID;
	}
	if (err == STORE_OK)
		err = deliver_all(a, name, msgs, kw, n, uids_r);
	for (size_t i = 0; i < n; i++)
		free(kw[i]);
	free(kw);
	return err;
}

enum store_err store_append(struct store_account *a, const char *mailbox, struct store_blob *b,
			    uint32_t flags, const char *const *keywords, size_t nkw,
			    int64_t internaldate, uint32_t *uid_r)
{
	struct store_append_msg m = {.blob = b, .flags = flags, .keywords = keywords, .nkw = nkw,
				     .internaldate = internaldate};
	uint32_t uid = 0;
	enum store_err err = store_append_many(a, mailbox, &m, 1, &uid);
	if (err == STORE_OK && uid_r != NULL)
		*uid_r = uid;
	return err;
}

enum store_err store_mailbox_info(struct store_account *a, const char *mailbox,
				  struct store_mailbox_info *info)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db,
		"SELECT uidvalidity, uidnext, highestmodseq,"
		" (SELECT count(*) FROM message WHERE mailbox_id = mailbox.id)"
		" FROM mailbox WHERE name = ? AND NOT noselect", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "mailbox_info");
	sqlite3_bind_text(st, 1, mailbox ? mailbox : "INBOX", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	enum store_err err = STORE_NOTFOUND;
	if (rc == SQLITE_ROW) {
		info->uidvalidity = (uint32_t)sqlite3_column_int64(st, 0);
		info->uidnext = (uint32_t)sqlite3_column_int64(st, 1);
		info->highestmodseq = (uint64_t)sqlite3_column_int64(st, 2);
		info->messages = (uint32_t)sqlite3_column_int64(st, 3);
		err = STORE_OK;
	} else if (rc != SQLITE_DONE)
		err = index_err(a->db, rc, "mailbox_info");
	sqlite3_finalize(st);
	return err;
}

enum store_err store_mailbox_messages(struct store_account *a, const char *mailbox,
				      struct store_msg **msgs_r, size_t *count_r)
{
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db,
		"SELECT uid, flags, size, ends_crlf, internaldate, coalesce(downloaded, 0), modseq"
		" FROM message WHERE mailbox_id = ? ORDER BY uid", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "mailbox_messages");
	sqlite3_bind_int64(st, 1, mbox);
	struct store_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			msgs = xrealloc(msgs, cap * sizeof *msgs);
		}
		struct store_msg *m = &msgs[n++];
		m->uid = (uint32_t)sqlite3_column_int64(st, 0);
		m->flags = (uint32_t)sqlite3_column_int64(st, 1);
		m->size = (uint64_t)sqlite3_column_int64(st, 2);
		m->ends_in_crlf = sqlite3_column_int(st, 3) != 0;
		m->internaldate = sqlite3_column_int64(st, 4);
		m->downloaded = sqlite3_column_int64(st, 5);
		m->modseq = (uint64_t)sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(msgs);
		return index_err(a->db, rc, "mailbox_messages");
	}
	*msgs_r = msgs;
	*count_r = n;
	return STORE_OK;
}

/* The blob id of a message, or STORE_EXPUNGED. */
static enum store_err message_blob(struct store_account *a, int64_t mbox, uint32_t uid,
				   char **id_r)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, "SELECT blob FROM message WHERE mailbox_id = ? AND uid = ?",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "message_blob");
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, uid);
	rc = sqlite3_step(st);
	enum store_err err = STORE_EXPUNGED;
	if (rc == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (id != NULL && blob_id_valid(id)) {
			*id_r = xstrdup(id);
			err = STORE_OK;
		} else
			err = STORE_TEMP;
	} else if (rc != SQLITE_DONE)
		err = index_err(a->db, rc, "message_blob");
	sqlite3_finalize(st);
	return err;
}

enum store_err store_msg_open(struct store_account *a, const char *mailbox, uint32_t uid, int *fd_r)
{
	int64_t mbox;
	enum store_err err = index_read_mailbox_id(a, mailbox, &mbox);
	char *id = NULL;
	if (err == STORE_OK)
		err = message_blob(a, mbox, uid, &id);
	if (err != STORE_OK)
		return err;
	char *path = blob_path(a->dir, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("event=msg_open_error path=%s error=\"%s\"", path, strerror(errno));
		err = errno == ENOENT ? STORE_EXPUNGED : STORE_TEMP;
	} else {
		/* Tests count these to prove which commands read message files. */
		log_debug("event=msg_open uid=%u", uid);
	}
	free(path);
	free(id);
	*fd_r = fd;
	return err;
}

void blob_unlinks_finish(struct store_account *a, struct blob_unlinks *u, bool committed)
{
	for (size_t i = 0; i < u->n; i++) {
		if (committed) {
			char *path = blob_path(a->dir, u->ids[i]);
			unlink(path);
			free(path);
		}
		free(u->ids[i]);
	}
	free(u->ids);
	u->ids = NULL;
	u->n = u->cap = 0;
}

enum store_err index_next_modseq(sqlite3 *db, int64_t mbox, uint64_t *modseq_r)
{
	sqlite3_int64 args[] = {mbox};
	enum store_err err = index_exec(db,
		"UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = ?",
		"next_modseq", 1, args, NULL);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT highestmodseq FROM mailbox WHERE id = ?", -1, &st,
				    NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "next_modseq");
	sqlite3_bind_int64(st, 1, mbox);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*modseq_r = (uint64_t)sqlite3_column_int64(st, 0);
	else
		err = rc == SQLITE_DONE ? STORE_NOTFOUND : index_err(db, rc, "next_modseq");
	sqlite3_finalize(st);
	return err;
}

enum store_err index_expunge_uids(struct store_account *a, int64_t mbox, const uint32_t *uids,
				  size_t count, uint64_t modseq, struct blob_unlinks *u,
				  size_t *removed_r)
{
	enum store_err err = STORE_OK;
	size_t removed = 0;
	for (size_t i = 0; err == STORE_OK && i < count; i++) {
		char *id = NULL;
		enum store_err e = message_blob(a, mbox, uids[i], &id);
		if (e == STORE_EXPUNGED)
			continue; /* already gone: expunging twice is not an error */
		err = e;
		if (err != STORE_OK)
			break;
		removed++;
		sqlite3_int64 key[] = {mbox, uids[i], (sqlite3_int64)modseq};
		err = index_exec(a->db, "DELETE FROM message WHERE mailbox_id = ? AND uid = ?",
				 "expunge_message", 2, key, NULL);
		if (err == STORE_OK && modseq > 0)
			err = index_exec(a->db, "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq)"
					 " VALUES(?, ?, ?)", "expunge_log", 3, key, NULL);
		if (err == STORE_OK)
			err = index_exec(a->db, "UPDATE blob SET refs = refs - 1 WHERE id = ?",
					 "expunge_blob", 0, NULL, id);
		if (err == STORE_OK)
			err = index_exec(a->db, "DELETE FROM blob WHERE id = ? AND refs <= 0",
					 "expunge_blob_free", 0, NULL, id);
		if (err == STORE_OK && sqlite3_changes(a->db) > 0) {
			/* the last reference: the blob's full-text row goes with it */
			err = index_fts_delete(a->db, id);
			if (u->n == u->cap) {
				u->cap = u->cap ? u->cap * 2 : 16;
				u->ids = xrealloc(u->ids, u->cap * sizeof *u->ids);
			}
			u->ids[u->n++] = id;
		} else
			free(id);
	}
	if (removed_r != NULL)
		*removed_r = removed;
	return err;
}

enum store_err store_expunge(struct store_account *a, const char *mailbox, const uint32_t *uids,
			     size_t count)
{
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	err = index_begin(a->db);
	struct blob_unlinks u = {0};
	uint64_t modseq = 0;
	if (err == STORE_OK)
		err = index_next_modseq(a->db, mbox, &modseq);
	if (err == STORE_OK)
		err = index_expunge_uids(a, mbox, uids, count, modseq, &u, NULL);
	if (err == STORE_OK)
		err = index_commit(a->db);
	else
		index_rollback(a->db);
	/* Files go after the commit; a crash in between leaves orphans that recovery removes. */
	blob_unlinks_finish(a, &u, err == STORE_OK);
	return err;
}

enum store_err store_mark_downloaded(struct store_account *a, const char *mailbox,
				     const uint32_t *uids, size_t count, int64_t when)
{
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK || count == 0)
		return err;
	err = index_begin(a->db);
	for (size_t i = 0; err == STORE_OK && i < count; i++) {
		sqlite3_int64 args[] = {when, mbox, uids[i]};
		err = index_exec(a->db,
			"UPDATE message SET downloaded = ? WHERE mailbox_id = ? AND uid = ?"
			" AND coalesce(downloaded, 0) = 0", "mark_downloaded", 3, args, NULL);
	}
	if (err == STORE_OK)
		err = index_commit(a->db);
	else
		index_rollback(a->db);
	return err;
}

enum store_err store_expire_downloaded(struct store_account *a, const char *mailbox, int64_t before,
				       size_t *count_r)
{
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db,
		"SELECT uid FROM message WHERE mailbox_id = ? AND downloaded > 0 AND downloaded < ?",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "expire");
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, before);
	uint32_t *uids = NULL;
	size_t n = 0;
	err = index_collect_uids(a->db, st, "expire", &uids, &n);
	if (err == STORE_OK && n > 0)
		err = store_expunge(a, mailbox, uids, n);
	free(uids);
	*count_r = err == STORE_OK ? n : 0;
	return err;
}
