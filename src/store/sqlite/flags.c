/* Flags, keywords and MODSEQ in the SQLite backend; listings with keywords; the change log;
 * the saved parse result. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The mailbox id of a checked name (NULL = INBOX). */
static enum store_err mailbox_id(struct store_account *a, const char *mailbox, int64_t *id_r)
{
	const char *name = store_mailbox_name(mailbox ? mailbox : "INBOX");
	if (name == NULL)
		return STORE_INVALID;
	return index_mailbox_id(a->db, name, id_r);
}

static char *column_dup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	return t != NULL && t[0] != '\0' ? xstrdup(t) : NULL;
}

/* Splits a stored keyword list into a new array of pointers into copy (a modifiable copy
 * of list). */
static size_t split_keywords(char *copy, const char ***kw_r)
{
	const char **kw = NULL;
	size_t n = 0;
	if (copy != NULL) {
		for (char *save = NULL, *k = strtok_r(copy, " ", &save); k != NULL;
		     k = strtok_r(NULL, " ", &save)) {
			kw = xrealloc(kw, (n + 1) * sizeof *kw);
			kw[n++] = k;
		}
	}
	*kw_r = kw;
	return n;
}

static bool kw_in(const char *k, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(k, set[i]) == 0)
			return true;
	}
	return false;
}

/* The keyword list after op; *ok false on a bad keyword. */
static char *apply_keywords(const char *current, enum store_flag_op op,
			    const char *const *kw, size_t nkw, bool *ok)
{
	if (op == STORE_FLAGS_REPLACE)
		return keywords_join(kw, nkw, ok);
	char *copy = current != NULL ? xstrdup(current) : NULL;
	const char **have = NULL;
	size_t nhave = split_keywords(copy, &have);
	const char **next = xcalloc(nhave + nkw + 1, sizeof *next);
	size_t n = 0;
	for (size_t i = 0; i < nhave; i++) {
		if (op == STORE_FLAGS_ADD || !kw_in(have[i], kw, nkw))
			next[n++] = have[i];
	}
	if (op == STORE_FLAGS_ADD) {
		for (size_t i = 0; i < nkw; i++)
			next[n++] = kw[i];
	}
	char *r = keywords_join(next, n, ok);
	free(next);
	free(have);
	free(copy);
	return r;
}

static bool same_text(const char *x, const char *y)
{
	if (x == NULL || y == NULL)
		return x == y;
	return strcmp(x, y) == 0;
}

enum store_err store_set_flags(struct store_account *a, const char *mailbox,
			       const uint32_t *uids, size_t n, enum store_flag_op op,
			       uint32_t flags, const char *const *keywords, size_t nkw,
			       uint64_t unchangedsince, struct store_flag_result **res_r,
			       size_t *nres_r)
{
	if ((flags & ~(uint32_t)STORE_FLAGS_ALL) != 0 ||
	    (op != STORE_FLAGS_ADD && op != STORE_FLAGS_REMOVE && op != STORE_FLAGS_REPLACE))
		return STORE_INVALID;
	bool ok;
	free(keywords_join(keywords, nkw, &ok)); /* every keyword checked up front */
	if (!ok)
		return STORE_INVALID;
	int64_t mbox;
	enum store_err err = mailbox_id(a, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	err = index_begin(a->db);
	if (err != STORE_OK)
		return err;
	struct store_flag_result *res = xcalloc(n + 1, sizeof *res);
	size_t nres = 0;
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int rc = sqlite3_prepare_v2(a->db, "SELECT flags, keywords, modseq FROM message"
				    " WHERE mailbox_id = ? AND uid = ?", -1, &sel, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(a->db, "UPDATE message SET flags = ?, keywords = ?, modseq = ?"
					" WHERE mailbox_id = ? AND uid = ?", -1, &upd, NULL);
	if (rc != SQLITE_OK)
		err = index_err(a->db, rc, "set_flags");
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		sqlite3_reset(sel);
		sqlite3_bind_int64(sel, 1, mbox);
		sqlite3_bind_int64(sel, 2, uids[i]);
		rc = sqlite3_step(sel);
		if (rc == SQLITE_DONE)
			continue; /* expunged meanwhile */
		if (rc != SQLITE_ROW) {
			err = index_err(a->db, rc, "set_flags");
			break;
		}
		struct store_flag_result *r = &res[nres++];
		r->uid = uids[i];
		r->flags = (uint32_t)sqlite3_column_int64(sel, 0);
		r->keywords = column_dup(sel, 1);
		r->modseq = (uint64_t)sqlite3_column_int64(sel, 2);
		if (unchangedsince != 0 && r->modseq > unchangedsince) {
			r->status = STORE_SET_MODIFIED;
			continue;
		}
		uint32_t nflags = op == STORE_FLAGS_ADD ? r->flags | flags
			: op == STORE_FLAGS_REMOVE ? r->flags & ~flags : flags;
		char *nkws = apply_keywords(r->keywords, op, keywords, nkw, &ok);
		if (nflags == r->flags && same_text(nkws, r->keywords)) {
			r->status = STORE_SET_UNCHANGED;
			free(nkws);
			continue;
		}
		uint64_t modseq = 0;
		err = index_next_modseq(a->db, mbox, &modseq);
		if (err == STORE_OK) {
			sqlite3_reset(upd);
			sqlite3_bind_int64(upd, 1, nflags);
			if (nkws != NULL)
				sqlite3_bind_text(upd, 2, nkws, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(upd, 2);
			sqlite3_bind_int64(upd, 3, (sqlite3_int64)modseq);
			sqlite3_bind_int64(upd, 4, mbox);
			sqlite3_bind_int64(upd, 5, uids[i]);
			rc = sqlite3_step(upd);
			if (rc != SQLITE_DONE)
				err = index_err(a->db, rc, "set_flags");
		}
		r->status = STORE_SET_CHANGED;
		r->flags = nflags;
		free(r->keywords);
		r->keywords = nkws;
		r->modseq = modseq;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	if (err == STORE_OK)
		err = index_commit(a->db);
	else
		index_rollback(a->db);
	if (err != STORE_OK) {
		store_flag_results_free(res, nres);
		return err;
	}
	*res_r = res;
	*nres_r = nres;
	return STORE_OK;
}

void store_flag_results_free(struct store_flag_result *res, size_t n)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(res[i].keywords);
	free(res);
}

enum store_err store_mailbox_messages_full(struct store_account *a, const char *mailbox,
					   struct store_msg_full **msgs_r, size_t *count_r)
{
	return store_mailbox_messages_from(a, mailbox, 1, msgs_r, count_r);
}

enum store_err store_mailbox_messages_from(struct store_account *a, const char *mailbox,
					   uint32_t uid_from, struct store_msg_full **msgs_r,
					   size_t *count_r)
{
	int64_t mbox;
	enum store_err err = mailbox_id(a, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db,
		"SELECT uid, flags, size, ends_crlf, internaldate, coalesce(downloaded, 0), modseq,"
		" keywords FROM message WHERE mailbox_id = ? AND uid >= ? ORDER BY uid", -1, &st,
		NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "mailbox_messages_full");
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, uid_from);
	struct store_msg_full *msgs = NULL;
	size_t n = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			msgs = xrealloc(msgs, cap * sizeof *msgs);
		}
		struct store_msg_full *f = &msgs[n++];
		f->msg.uid = (uint32_t)sqlite3_column_int64(st, 0);
		f->msg.flags = (uint32_t)sqlite3_column_int64(st, 1);
		f->msg.size = (uint64_t)sqlite3_column_int64(st, 2);
		f->msg.ends_in_crlf = sqlite3_column_int(st, 3) != 0;
		f->msg.internaldate = sqlite3_column_int64(st, 4);
		f->msg.downloaded = sqlite3_column_int64(st, 5);
		f->msg.modseq = (uint64_t)sqlite3_column_int64(st, 6);
		f->keywords = column_dup(st, 7);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_msgs_full_free(msgs, n);
		return index_err(a->db, rc, "mailbox_messages_full");
	}
	*msgs_r = msgs;
	*count_r = n;
	return STORE_OK;
}

void store_msgs_full_free(struct store_msg_full *msgs, size_t n)
{
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(msgs[i].keywords);
	free(msgs);
}

enum store_err store_changes_since(struct store_account *a, const char *mailbox,
				   uint64_t modseq, struct store_change **changes_r,
				   size_t *nchanges_r, uint32_t **expunged_r, size_t *nexpunged_r)
{
	int64_t mbox;
	enum store_err err = mailbox_id(a, mailbox, &mbox);
	if (err != STORE_OK)
		return err;
	/* One read transaction, so both lists describe the same moment. */
	int rc = sqlite3_exec(a->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "changes_since");
	sqlite3_stmt *st;
	struct store_change *ch = NULL;
	uint32_t *ex = NULL;
	size_t nch = 0, nex = 0;
	rc = sqlite3_prepare_v2(a->db, "SELECT uid, flags, keywords, modseq FROM message"
				" WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, mbox);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			ch = xrealloc(ch, (nch + 1) * sizeof *ch);
			ch[nch].uid = (uint32_t)sqlite3_column_int64(st, 0);
			ch[nch].flags = (uint32_t)sqlite3_column_int64(st, 1);
			ch[nch].keywords = column_dup(st, 2);
			ch[nch].modseq = (uint64_t)sqlite3_column_int64(st, 3);
			nch++;
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_DONE)
		rc = sqlite3_prepare_v2(a->db, "SELECT uid FROM expunged WHERE mailbox_id = ?"
					" AND modseq > ? ORDER BY uid", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, mbox);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			ex = xrealloc(ex, (nex + 1) * sizeof *ex);
			ex[nex++] = (uint32_t)sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		err = index_err(a->db, rc, "changes_since");
	sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
	if (err != STORE_OK) {
		store_changes_free(ch, nch);
		free(ex);
		return err;
	}
	*changes_r = ch;
	*nchanges_r = nch;
	*expunged_r = ex;
	*nexpunged_r = nex;
	return STORE_OK;
}

void store_changes_free(struct store_change *ch, size_t n)
{
	if (ch == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(ch[i].keywords);
	free(ch);
}

static unsigned char *column_copy(sqlite3_stmt *st, int col, size_t *len_r)
{
	const void *data = sqlite3_column_blob(st, col);
	int len = sqlite3_column_bytes(st, col);
	*len_r = 0;
	if (data == NULL || len <= 0)
		return NULL;
	unsigned char *copy = xmalloc((size_t)len);
	memcpy(copy, data, (size_t)len);
	*len_r = (size_t)len;
	return copy;
}

enum store_err store_msg_parsed_header(struct store_account *a, const char *mailbox,
				       uint32_t uid, unsigned char **data_r, size_t *len_r,
				       unsigned char **header_r, size_t *header_len_r)
{
	int64_t mbox;
	const char *name = store_mailbox_name(mailbox ? mailbox : "INBOX");
	enum store_err err = name ? index_read_mailbox_id(a, name, &mbox) : STORE_INVALID;
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, "SELECT b.parsed, b.header FROM message m JOIN blob b"
				    " ON b.id = m.blob WHERE m.mailbox_id = ? AND m.uid = ?", -1,
				    &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "msg_parsed");
	sqlite3_bind_int64(st, 1, mbox);
	sqlite3_bind_int64(st, 2, uid);
	rc = sqlite3_step(st);
	err = STORE_EXPUNGED;
	if (rc == SQLITE_ROW) {
		*data_r = column_copy(st, 0, len_r);
		if (header_r != NULL)
			*header_r = column_copy(st, 1, header_len_r);
		err = STORE_OK;
	} else if (rc != SQLITE_DONE)
		err = index_err(a->db, rc, "msg_parsed");
	sqlite3_finalize(st);
	return err;
}

enum store_err store_msg_parsed(struct store_account *a, const char *mailbox, uint32_t uid,
				unsigned char **data_r, size_t *len_r)
{
	return store_msg_parsed_header(a, mailbox, uid, data_r, len_r, NULL, NULL);
}

static enum store_err recent_range(sqlite3 *db, int64_t mbox, int64_t *from_r, int64_t *to_r)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT recent_uid, uidnext FROM mailbox WHERE id = ?", -1,
				    &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, mbox);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*to_r = sqlite3_column_int64(st, 1);
			int64_t from = sqlite3_column_int64(st, 0);
			*from_r = from < *to_r ? from : *to_r;
		}
		sqlite3_finalize(st);
	}
	return rc == SQLITE_ROW ? STORE_OK : index_err(db, rc, "recent");
}

enum store_err store_recent(struct store_account *a, const char *mailbox, bool claim,
			    uint32_t *from_r, uint32_t *to_r)
{
	int64_t mbox, from = 0, to = 0;
	enum store_err err = mailbox_id(a, mailbox, &mbox);
	if (err == STORE_OK)
		err = recent_range(a->db, mbox, &from, &to);
	/* Only a claim of something writes (and so wakes the account's watchers). */
	if (err == STORE_OK && claim && from < to && (err = index_begin(a->db)) == STORE_OK) {
		err = recent_range(a->db, mbox, &from, &to); /* again, under the write lock */
		if (err == STORE_OK && from < to) {
			sqlite3_int64 args[] = {to, mbox};
			err = index_exec(a->db, "UPDATE mailbox SET recent_uid = ? WHERE id = ?",
					 "recent", 2, args, NULL);
		}
		if (err == STORE_OK)
			err = index_commit(a->db);
		else
			index_rollback(a->db);
	}
	if (err == STORE_OK) {
		*from_r = (uint32_t)from;
		*to_r = (uint32_t)to;
	}
	return err;
}
