/* Mailboxes in the SQLite backend: create, delete, rename, list, subscriptions. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAILBOX_NAME_MAX 1024
#define DELIM '/'

const char *store_mailbox_name(const char *name)
{
	if (name == NULL)
		return NULL;
	size_t len = strlen(name);
	if (len == 0 || len > MAILBOX_NAME_MAX || name[0] == DELIM || name[len - 1] == DELIM)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return NULL;
		if (c == DELIM && name[i + 1] == DELIM)
			return NULL;
	}
	if (strcasecmp(name, "INBOX") == 0)
		return "INBOX";
	return name;
}

/* --- Small statement helpers --- */

/* id and noselect of a mailbox by exact name; STORE_NOTFOUND if missing. */
static enum store_err mailbox_row(sqlite3 *db, const char *name, int64_t *id_r, bool *noselect_r)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT id, noselect FROM mailbox WHERE name = ?", -1, &st,
				    NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "mailbox_row");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	enum store_err err = STORE_NOTFOUND;
	if (rc == SQLITE_ROW) {
		*id_r = sqlite3_column_int64(st, 0);
		if (noselect_r != NULL)
			*noselect_r = sqlite3_column_int(st, 1) != 0;
		err = STORE_OK;
	} else if (rc != SQLITE_DONE)
		err = index_err(db, rc, "mailbox_row");
	sqlite3_finalize(st);
	return err;
}

/* Names of the inferiors of name (name/...), in octet order, appended to *names. The
 * bounds "name/" < x < "name0" select exactly the names with the prefix "name/" ('0' is
 * the octet after '/'). */
static enum store_err inferiors(sqlite3 *db, const char *name, char ***names_r, size_t *n_r)
{
	char *lo = xasprintf("%s%c", name, DELIM);
	char *hi = xasprintf("%s%c", name, DELIM + 1);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
		"SELECT name FROM mailbox WHERE name > ? AND name < ? ORDER BY name", -1, &st, NULL);
	char **names = NULL;
	size_t n = 0;
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = xstrdup((const char *)sqlite3_column_text(st, 0));
		}
		sqlite3_finalize(st);
	}
	free(lo);
	free(hi);
	if (rc != SQLITE_DONE) {
		store_names_free(names, n);
		return index_err(db, rc, "inferiors");
	}
	*names_r = names;
	*n_r = n;
	return STORE_OK;
}

/* Inside a transaction: creates every missing parent of name (as selectable mailboxes). */
static enum store_err create_parents(struct store_account *a, const char *name)
{
	enum store_err err = STORE_OK;
	for (const char *p = strchr(name, DELIM); err == STORE_OK && p != NULL;
	     p = strchr(p + 1, DELIM)) {
		char *parent = xstrndup(name, (size_t)(p - name));
		const char *norm = store_mailbox_name(parent);
		int64_t id;
		err = mailbox_row(a->db, norm, &id, NULL);
		if (err == STORE_NOTFOUND) {
			uint32_t uidvalidity = store_next_uidvalidity(a->store);
			err = uidvalidity == 0 ? STORE_TEMP
				: index_create_mailbox(a->db, norm, NULL, uidvalidity);
		}
		free(parent);
	}
	return err;
}

static enum store_err finish(sqlite3 *db, enum store_err err)
{
	if (err == STORE_OK)
		return index_commit(db);
	index_rollback(db);
	return err;
}

enum store_err store_mailbox_create(struct store_account *a, const char *name,
				    const char *special_use)
{
	name = store_mailbox_name(name);
	if (name == NULL || (special_use != NULL && (special_use[0] != '\\' ||
						     store_mailbox_name(special_use) == NULL)))
		return STORE_INVALID;
	enum store_err err = index_begin(a->db);
	if (err != STORE_OK)
		return err;
	int64_t id;
	bool noselect = false;
	err = mailbox_row(a->db, name, &id, &noselect);
	if (err == STORE_OK && !noselect) {
		err = STORE_EXISTS;
	} else if (err == STORE_OK) {
		/* A \Noselect name becomes a mailbox again, with a new UIDVALIDITY. */
		uint32_t uidvalidity = store_next_uidvalidity(a->store);
		sqlite3_int64 args[] = {uidvalidity, id};
		err = uidvalidity == 0 ? STORE_TEMP
			: index_exec(a->db, "UPDATE mailbox SET noselect = 0, special_use = NULL,"
				     " uidvalidity = ? WHERE id = ?", "create_reselect", 2, args, NULL);
		if (err == STORE_OK && special_use != NULL)
			err = index_exec(a->db, "UPDATE mailbox SET special_use = ? WHERE id = ?",
					 "create_reselect", 1, &args[1], special_use);
	} else if (err == STORE_NOTFOUND) {
		err = create_parents(a, name);
		uint32_t uidvalidity = err == STORE_OK ? store_next_uidvalidity(a->store) : 0;
		if (err == STORE_OK)
			err = uidvalidity == 0 ? STORE_TEMP
				: index_create_mailbox(a->db, name, special_use, uidvalidity);
	}
	return finish(a->db, err);
}

/* Inside a transaction: removes every message of the mailbox (without logging them as
 * expunged: the mailbox's UIDs end with it) and its expunge log. */
static enum store_err remove_messages(struct store_account *a, int64_t mbox,
				      struct blob_unlinks *u)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, "SELECT uid FROM message WHERE mailbox_id = ?", -1, &st,
				    NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "remove_messages");
	sqlite3_bind_int64(st, 1, mbox);
	uint32_t *uids = NULL;
	size_t n = 0;
	enum store_err err = index_collect_uids(a->db, st, "remove_messages", &uids, &n);
	if (err == STORE_OK)
		err = index_expunge_uids(a, mbox, uids, n, 0, u, NULL);
	free(uids);
	sqlite3_int64 args[] = {mbox};
	if (err == STORE_OK)
		err = index_exec(a->db, "DELETE FROM expunged WHERE mailbox_id = ?", "remove_log", 1,
				 args, NULL);
	return err;
}

enum store_err store_mailbox_delete(struct store_account *a, const char *name)
{
	name = store_mailbox_name(name);
	if (name == NULL)
		return STORE_INVALID;
	if (strcmp(name, "INBOX") == 0)
		return STORE_PERM;
	enum store_err err = index_begin(a->db);
	if (err != STORE_OK)
		return err;
	struct blob_unlinks u = {0};
	int64_t id;
	bool noselect = false;
	char **kids = NULL;
	size_t nkids = 0;
	err = mailbox_row(a->db, name, &id, &noselect);
	if (err == STORE_OK)
		err = inferiors(a->db, name, &kids, &nkids);
	if (err == STORE_OK && noselect && nkids > 0)
		err = STORE_PERM; /* RFC 9051 §6.3.5: a \Noselect mailbox with inferiors stays */
	if (err == STORE_OK)
		err = remove_messages(a, id, &u);
	sqlite3_int64 args[] = {id};
	if (err == STORE_OK && nkids > 0)
		err = index_exec(a->db, "UPDATE mailbox SET noselect = 1, special_use = NULL,"
				 " highestmodseq = highestmodseq + 1 WHERE id = ?", "delete_noselect",
				 1, args, NULL);
	else if (err == STORE_OK)
		err = index_exec(a->db, "DELETE FROM mailbox WHERE id = ?", "delete_mailbox", 1, args,
				 NULL);
	store_names_free(kids, nkids);
	err = finish(a->db, err);
	blob_unlinks_finish(a, &u, err == STORE_OK);
	return err;
}

static enum store_err set_name(sqlite3 *db, const char *from, const char *to)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "UPDATE mailbox SET name = ? WHERE name = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "rename");
	sqlite3_bind_text(st, 1, to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return STORE_EXISTS;
	return rc == SQLITE_DONE ? STORE_OK : index_err(db, rc, "rename");
}

/* RFC 9051 §6.3.6: INBOX's messages go to a new mailbox; INBOX stays, empty. The UIDs are
 * kept (the new mailbox has its own UIDVALIDITY) and INBOX logs them as expunged. */
static enum store_err rename_inbox(struct store_account *a, int64_t inbox, const char *to)
{
	uint32_t uidvalidity = store_next_uidvalidity(a->store);
	enum store_err err = uidvalidity == 0 ? STORE_TEMP
		: index_create_mailbox(a->db, to, NULL, uidvalidity);
	int64_t id = 0;
	if (err == STORE_OK)
		err = mailbox_row(a->db, to, &id, NULL);
	uint64_t modseq = 0;
	if (err == STORE_OK)
		err = index_next_modseq(a->db, inbox, &modseq);
	sqlite3_int64 args[] = {(sqlite3_int64)modseq, inbox, id};
	if (err == STORE_OK)
		err = index_exec(a->db, "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq)"
				 " SELECT mailbox_id, uid, ?1 FROM message WHERE mailbox_id = ?2",
				 "rename_inbox_log", 2, args, NULL);
	if (err == STORE_OK)
		err = index_exec(a->db, "UPDATE mailbox SET uidnext = (SELECT uidnext FROM mailbox"
				 " WHERE id = ?2), highestmodseq = ?1 WHERE id = ?3",
				 "rename_inbox_box", 3, args, NULL);
	if (err == STORE_OK)
		err = index_exec(a->db, "UPDATE message SET mailbox_id = ?3 WHERE mailbox_id = ?2",
				 "rename_inbox_move", 3, args, NULL);
	return err;
}

enum store_err store_mailbox_rename(struct store_account *a, const char *old_name,
				    const char *new_name)
{
	const char *from = store_mailbox_name(old_name);
	const char *to = store_mailbox_name(new_name);
	if (from == NULL || to == NULL)
		return STORE_INVALID;
	size_t flen = strlen(from);
	/* Into its own inferior: only INBOX, whose inferiors stay where they are. */
	if (strcmp(from, to) == 0 || (strcmp(from, "INBOX") != 0 && strncmp(to, from, flen) == 0 &&
				      to[flen] == DELIM))
		return STORE_INVALID;
	if (strcmp(to, "INBOX") == 0)
		return STORE_EXISTS;
	enum store_err err = index_begin(a->db);
	if (err != STORE_OK)
		return err;
	int64_t id, other;
	bool noselect = false;
	char **kids = NULL, **target_kids = NULL;
	size_t nkids = 0, ntarget = 0;
	err = mailbox_row(a->db, from, &id, &noselect);
	if (err == STORE_OK) {
		enum store_err e = mailbox_row(a->db, to, &other, NULL);
		if (e == STORE_OK)
			err = STORE_EXISTS;
		else if (e != STORE_NOTFOUND)
			err = e;
	}
	if (err == STORE_OK)
		err = inferiors(a->db, to, &target_kids, &ntarget);
	if (err == STORE_OK && ntarget > 0)
		err = STORE_EXISTS;
	if (err == STORE_OK)
		err = create_parents(a, to);
	if (err == STORE_OK && strcmp(from, "INBOX") == 0) {
		err = rename_inbox(a, id, to);
	} else if (err == STORE_OK) {
		err = inferiors(a->db, from, &kids, &nkids);
		if (err == STORE_OK)
			err = set_name(a->db, from, to);
		for (size_t i = 0; err == STORE_OK && i < nkids; i++) {
			char *renamed = xasprintf("%s%s", to, kids[i] + flen);
			err = set_name(a->db, kids[i], renamed);
			free(renamed);
		}
	}
	store_names_free(kids, nkids);
	store_names_free(target_kids, ntarget);
	return finish(a->db, err);
}

enum store_err store_mailbox_list(struct store_account *a, struct store_mailbox_entry **r,
				  size_t *count_r)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db,
		"SELECT m.name, m.special_use, m.noselect,"
		" EXISTS(SELECT 1 FROM subscription s WHERE s.name = m.name),"
		" EXISTS(SELECT 1 FROM mailbox c WHERE c.name > m.name || '/'"
		"  AND c.name < m.name || '0')"
		" FROM mailbox m ORDER BY m.name", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(a->db, rc, "mailbox_list");
	struct store_mailbox_entry *e = NULL;
	size_t n = 0, cap = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			e = xrealloc(e, cap * sizeof *e);
		}
		const char *su = (const char *)sqlite3_column_text(st, 1);
		e[n].name = xstrdup((const char *)sqlite3_column_text(st, 0));
		e[n].special_use = su != NULL ? xstrdup(su) : NULL;
		e[n].noselect = sqlite3_column_int(st, 2) != 0;
		e[n].subscribed = sqlite3_column_int(st, 3) != 0;
		e[n].has_children = sqlite3_column_int(st, 4) != 0;
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_mailbox_list_free(e, n);
		return index_err(a->db, rc, "mailbox_list");
	}
	*r = e;
	*count_r = n;
	return STORE_OK;
}

void store_mailbox_list_free(struct store_mailbox_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].special_use);
	}
	free(e);
}

enum store_err store_subscribe(struct store_account *a, const char *name, bool on)
{
	name = store_mailbox_name(name);
	if (name == NULL)
		return STORE_INVALID;
	return index_exec(a->db, on ? "INSERT OR IGNORE INTO subscription(name) VALUES(?)"
				    : "DELETE FROM subscription WHERE name = ?",
			  "subscribe", 0, NULL, name);
}

/* The text column 0 of every row of sql (which binds text, if not NULL, to ?1). */
static enum store_err select_names(sqlite3 *db, const char *sql, int64_t arg, char ***names_r,
				   size_t *count_r)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "select_names");
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, arg);
	char **names = NULL;
	size_t n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_names_free(names, n);
		return index_err(db, rc, "select_names");
	}
	*names_r = names;
	*count_r = n;
	return STORE_OK;
}

enum store_err store_subscriptions(struct store_account *a, char ***names_r, size_t *count_r)
{
	return select_names(a->db, "SELECT name FROM subscription ORDER BY name", 0, names_r,
			    count_r);
}

void store_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static bool keyword_ok(const char *k)
{
	if (k[0] == '\0' || k[0] == '\\' || strlen(k) > 255)
		return false;
	for (const char *p = k; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int cmp_keyword(const void *x, const void *y)
{
	const char *const *a = x, *const *b = y;
	int r = strcasecmp(*a, *b);
	return r != 0 ? r : strcmp(*a, *b);
}

char *keywords_join(const char *const *kw, size_t n, bool *ok)
{
	*ok = true;
	if (n == 0)
		return NULL;
	const char **sorted = xcalloc(n, sizeof *sorted);
	for (size_t i = 0; i < n; i++) {
		if (kw[i] == NULL || !keyword_ok(kw[i])) {
			free(sorted);
			*ok = false;
			return NULL;
		}
		sorted[i] = kw[i];
	}
	qsort(sorted, n, sizeof *sorted, cmp_keyword);
	struct buf b = {0};
	const char *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		if (prev != NULL && strcasecmp(prev, sorted[i]) == 0)
			continue;
		if (prev != NULL)
			buf_append(&b, " ", 1);
		buf_append(&b, sorted[i], strlen(sorted[i]));
		prev = sorted[i];
	}
	free(sorted);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

enum store_err store_mailbox_keywords(struct store_account *a, const char *mailbox,
				      char ***keywords_r, size_t *count_r)
{
	const char *name = store_mailbox_name(mailbox ? mailbox : "INBOX");
	if (name == NULL)
		return STORE_INVALID;
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, name, &mbox);
	char **lists = NULL;
	size_t nlists = 0;
	if (err == STORE_OK)
		err = select_names(a->db, "SELECT DISTINCT keywords FROM message WHERE mailbox_id = ?1"
				   " AND keywords IS NOT NULL", mbox, &lists, &nlists);
	if (err != STORE_OK)
		return err;
	/* Split every list and join them again: sorted, each once. */
	const char **all = NULL;
	size_t n = 0;
	for (size_t i = 0; i < nlists; i++) {
		for (char *save = NULL, *k = strtok_r(lists[i], " ", &save); k != NULL;
		     k = strtok_r(NULL, " ", &save)) {
			all = xrealloc(all, (n + 1) * sizeof *all);
			all[n++] = k;
		}
	}
	if (n > 0)
		qsort(all, n, sizeof *all, cmp_keyword);
	char **out = NULL;
	size_t nout = 0;
	for (size_t i = 0; i < n; i++) {
		if (nout > 0 && strcasecmp(out[nout - 1], all[i]) == 0)
			continue;
		out = xrealloc(out, (nout + 1) * sizeof *out);
		out[nout++] = xstrdup(all[i]);
	}
	free(all);
	store_names_free(lists, nlists);
	*keywords_r = out;
	*count_r = nout;
	return STORE_OK;
}
