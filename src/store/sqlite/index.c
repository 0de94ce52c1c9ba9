/* The per-account SQLite index: schema and small helpers. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS mailbox("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL DEFAULT 1,"
	" special_use TEXT,"
	" subscribed INTEGER NOT NULL DEFAULT 1);"
	"CREATE TABLE IF NOT EXISTS message("
	" mailbox_id INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" blob TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" ends_crlf INTEGER NOT NULL,"
	" internaldate INTEGER NOT NULL,"
	" flags INTEGER NOT NULL DEFAULT 0,"
	" keywords TEXT,"
	" modseq INTEGER NOT NULL,"
	" savedate INTEGER NOT NULL,"
	" downloaded INTEGER,"
	" PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS blob("
	" id TEXT PRIMARY KEY,"
	" refs INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" parsed BLOB,"
	" header BLOB) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS message_blob ON message(blob);";

enum store_err index_err(sqlite3 *db, int rc, const char *what)
{
	int base = rc & 0xff;
	log_error("event=index_error what=%s rc=%d error=\"%s\"", what, rc, sqlite3_errmsg(db));
	if (base == SQLITE_FULL)
		return STORE_NOSPACE;
	if (base == SQLITE_CONSTRAINT)
		return STORE_EXISTS;
	return STORE_TEMP;
}

enum store_err index_open(const char *dir, bool create, sqlite3 **db_r)
{
	char *path = xasprintf("%s/index.db", dir);
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	free(path);
	if (rc != SQLITE_OK) {
		enum store_err err = (rc == SQLITE_CANTOPEN && !create) ? STORE_NOTFOUND : STORE_TEMP;
		if (err != STORE_NOTFOUND)
			log_error("event=index_open dir=%s error=\"%s\"", dir, sqlite3_errmsg(db));
		sqlite3_close(db);
		return err;
	}
	sqlite3_busy_timeout(db, 10000);
	/* WAL with synchronous=FULL: a commit is on disk when sqlite3_step returns. IMAP sessions
	 * keep a handle each, so its page cache is kept small (the kernel caches the file). */
	rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			  " PRAGMA cache_size=-512;", NULL, NULL, NULL);
	if (rc == SQLITE_OK && create)
		rc = sqlite3_exec(db, schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		enum store_err err = index_err(db, rc, "open");
		sqlite3_close(db);
		return err;
	}
	/* The full-text tables, also for an index made before they existed. */
	enum store_err err = index_fts_ensure(db);
	if (err == STORE_OK)
		err = index_imap_ensure(db);
	if (err != STORE_OK) {
		sqlite3_close(db);
		return err;
	}
	*db_r = db;
	return STORE_OK;
}

/* Tables and columns added for IMAP (mailbox.noselect, mailbox.recent_uid, blob.header,
 * subscription, expunged). */
static const char imap_schema[] =
	"CREATE TABLE IF NOT EXISTS subscription(name TEXT PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS expunged("
	" mailbox_id INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;";

static int imap_schema_present(sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
		"SELECT (SELECT count(*) FROM sqlite_master WHERE name IN ('subscription', 'expunged'))"
		" + (SELECT count(*) FROM pragma_table_info('mailbox') WHERE name = 'noselect')"
		" + (SELECT count(*) FROM pragma_table_info('blob') WHERE name = 'header')"
		" + (SELECT count(*) FROM pragma_table_info('mailbox') WHERE name = 'recent_uid')",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		return -1;
	int have = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return have;
}

enum store_err index_imap_ensure(sqlite3 *db)
{
	if (imap_schema_present(db) == 5)
		return STORE_OK;
	enum store_err err = index_begin(db);
	if (err != STORE_OK)
		return err;
	/* Checked again inside the transaction: another process may have just added them. */
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
		"SELECT count(*) FROM pragma_table_info('mailbox') WHERE name = 'noselect'", -1, &st,
		NULL);
	int has_col = 0, has_sub = 0;
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		has_col = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'subscription'",
				-1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		has_sub = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	int has_header = 0;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info('blob')"
					" WHERE name = 'header'", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		has_header = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_OK && !has_col)
		rc = sqlite3_exec(db, "ALTER TABLE mailbox ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0",
				  NULL, NULL, NULL);
	/* Messages stored before the header cache have none: FETCH reads their files. */
	if (rc == SQLITE_OK && !has_header)
		rc = sqlite3_exec(db, "ALTER TABLE blob ADD COLUMN header BLOB", NULL, NULL, NULL);
	int has_recent = 0;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info('mailbox')"
					" WHERE name = 'recent_uid'", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		has_recent = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_OK && !has_recent)
		rc = sqlite3_exec(db, "ALTER TABLE mailbox ADD COLUMN recent_uid INTEGER NOT NULL"
				  " DEFAULT 1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, imap_schema, NULL, NULL, NULL);
	/* The old per-mailbox flag seeds the subscription list once. */
	if (rc == SQLITE_OK && !has_sub)
		rc = sqlite3_exec(db, "INSERT OR IGNORE INTO subscription(name)"
				  " SELECT name FROM mailbox WHERE subscribed", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = index_err(db, rc, "imap_schema");
		index_rollback(db);
		return err;
	}
	return index_commit(db);
}

enum store_err index_exec(sqlite3 *db, const char *sql, const char *what, int nargs,
			  const sqlite3_int64 *args, const char *text)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, what);
	int i = 1;
	if (text != NULL)
		sqlite3_bind_text(st, i++, text, -1, SQLITE_STATIC);
	for (int k = 0; k < nargs; k++)
		sqlite3_bind_int64(st, i++, args[k]);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? STORE_OK : index_err(db, rc, what);
}

enum store_err index_collect_uids(sqlite3 *db, sqlite3_stmt *st, const char *what,
				  uint32_t **uids_r, size_t *count_r)
{
	uint32_t *uids = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uids = xrealloc(uids, cap * sizeof *uids);
		}
		uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(uids);
		return index_err(db, rc, what);
	}
	*uids_r = uids;
	*count_r = n;
	return STORE_OK;
}

enum store_err index_begin(sqlite3 *db)
{
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	return rc == SQLITE_OK ? STORE_OK : index_err(db, rc, "begin");
}

enum store_err index_commit(sqlite3 *db)
{
	int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return STORE_OK;
	enum store_err err = index_err(db, rc, "commit");
	index_rollback(db);
	return err;
}

void index_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

enum store_err index_create_mailbox(sqlite3 *db, const char *name, const char *special_use,
				    uint32_t uidvalidity)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
		"INSERT INTO mailbox(name, uidvalidity, special_use) VALUES(?, ?, ?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "create_mailbox");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, uidvalidity);
	if (special_use != NULL)
		sqlite3_bind_text(st, 3, special_use, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return STORE_EXISTS;
	return rc == SQLITE_DONE ? STORE_OK : index_err(db, rc, "create_mailbox");
}

enum store_err index_read_mailbox_id(struct store_account *a, const char *name, int64_t *id_r)
{
	if (name == NULL)
		name = "INBOX";
	if (a->in_batch && a->batch_mailbox != NULL && strcmp(a->batch_mailbox, name) == 0) {
		*id_r = a->batch_mailbox_id;
		return STORE_OK;
	}
	enum store_err err = index_mailbox_id(a->db, name, id_r);
	if (err == STORE_OK && a->in_batch) {
		free(a->batch_mailbox);
		a->batch_mailbox = xstrdup(name);
		a->batch_mailbox_id = *id_r;
	}
	return err;
}

void store_read_batch_begin(struct store_account *a)
{
	if (a->in_batch || sqlite3_exec(a->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return;
	a->in_batch = true;
}

void store_read_batch_end(struct store_account *a)
{
	if (!a->in_batch)
		return;
	sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);
	a->in_batch = false;
	free(a->batch_mailbox);
	a->batch_mailbox = NULL;
}

enum store_err index_mailbox_id(sqlite3 *db, const char *name, int64_t *id_r)
{
	sqlite3_stmt *st;
	/* A \Noselect mailbox holds no messages: for reading and writing it does not exist. */
	int rc = sqlite3_prepare_v2(db, "SELECT id FROM mailbox WHERE name = ? AND NOT noselect",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "mailbox_id");
	sqlite3_bind_text(st, 1, name ? name : "INBOX", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	enum store_err err = STORE_NOTFOUND;
	if (rc == SQLITE_ROW) {
		*id_r = sqlite3_column_int64(st, 0);
		err = STORE_OK;
	} else if (rc != SQLITE_DONE)
		err = index_err(db, rc, "mailbox_id");
	sqlite3_finalize(st);
	return err;
}
