/* COPY and MOVE in the SQLite backend: new rows sharing the blob (refs + 1), no file copy. */
#include "store/store-private.h"

#include "core/buf.h"

#include <stdlib.h>
#include <time.h>

/* Inside a transaction: copies into dst, new_uids[i] = 0 for a UID not in src. */
static enum store_err copy_rows(struct store_account *a, int64_t src, int64_t dst,
				const uint32_t *uids, size_t n, uint32_t *new_uids)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, "SELECT uidnext FROM mailbox WHERE id = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "copy");
	sqlite3_bind_int64(st, 1, dst);
	rc = sqlite3_step(st);
	int64_t uidnext = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? STORE_NOTFOUND : index_err(a->db, rc, "copy");
	enum store_err err = STORE_OK;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		new_uids[i] = 0;
		if (uidnext > UINT32_MAX) {
			err = STORE_LIMIT;
			break;
		}
		/* The row takes HIGHESTMODSEQ + 1, which is then reserved if the row exists. */
		sqlite3_int64 args[] = {dst, uidnext, now, src, uids[i]};
		err = index_exec(a->db,
			"INSERT INTO message(mailbox_id, uid, blob, size, ends_crlf, internaldate,"
			" flags, keywords, modseq, savedate) SELECT ?1, ?2, blob, size, ends_crlf,"
			" internaldate, flags, keywords, (SELECT highestmodseq + 1 FROM mailbox"
			" WHERE id = ?1), ?3 FROM message WHERE mailbox_id = ?4 AND uid = ?5",
			"copy_message", 5, args, NULL);
		if (err != STORE_OK || sqlite3_changes(a->db) == 0)
			continue; /* not in src (expunged meanwhile) */
		uint64_t modseq = 0;
		err = index_next_modseq(a->db, dst, &modseq);
		if (err == STORE_OK)
			err = index_exec(a->db, "UPDATE blob SET refs = refs + 1 WHERE id ="
					 " (SELECT blob FROM message WHERE mailbox_id = ?1 AND uid = ?2)",
					 "copy_blob", 2, args, NULL);
		new_uids[i] = (uint32_t)uidnext++;
	}
	sqlite3_int64 args[] = {uidnext, dst};
	if (err == STORE_OK)
		err = index_exec(a->db, "UPDATE mailbox SET uidnext = ? WHERE id = ?", "copy_uidnext",
				 2, args, NULL);
	return err;
}

static enum store_err copy_or_move(struct store_account *a, const char *src, const char *dst,
				   const uint32_t *uids, size_t n, uint32_t **new_uids_r,
				   bool move)
{
	const char *sname = store_mailbox_name(src ? src : "INBOX");
	const char *dname = store_mailbox_name(dst ? dst : "INBOX");
	if (sname == NULL || dname == NULL)
		return STORE_INVALID;
	int64_t sid, did;
	enum store_err err = index_begin(a->db);
	if (err != STORE_OK)
		return err;
	err = index_mailbox_id(a->db, sname, &sid);
	if (err == STORE_OK)
		err = index_mailbox_id(a->db, dname, &did);
	uint32_t *new_uids = xcalloc(n + 1, sizeof *new_uids);
	struct blob_unlinks u = {0};
	if (err == STORE_OK)
		err = copy_rows(a, sid, did, uids, n, new_uids);
	if (err == STORE_OK && move) {
		uint64_t modseq = 0;
		err = index_next_modseq(a->db, sid, &modseq);
		if (err == STORE_OK)
			err = index_expunge_uids(a, sid, uids, n, modseq, &u, NULL);
	}
	if (err == STORE_OK)
		err = index_commit(a->db);
	else
		index_rollback(a->db);
	/* Empty after a move (the copies hold the blobs); kept for symmetry with expunge. */
	blob_unlinks_finish(a, &u, err == STORE_OK);
	if (err != STORE_OK || new_uids_r == NULL)
		free(new_uids);
	else
		*new_uids_r = new_uids;
	return err;
}

enum store_err store_copy(struct store_account *a, const char *src, const char *dst,
			  const uint32_t *uids, size_t n, uint32_t **new_uids_r)
{
	return copy_or_move(a, src, dst, uids, n, new_uids_r, false);
}

enum store_err store_move(struct store_account *a, const char *src, const char *dst,
			  const uint32_t *uids, size_t n, uint32_t **new_uids_r)
{
	return copy_or_move(a, src, dst, uids, n, new_uids_r, true);
}
