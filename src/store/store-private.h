/* Shared between the store's files; never included outside src/store. */
#ifndef SARN_STORE_PRIVATE_H
#define SARN_STORE_PRIVATE_H

#include "core/buf.h"
#include "mime/mime.h"
#include "store/store.h"

#include <sqlite3.h>

struct store {
	char *data_dir;
	char *mail_dir;  /* DATA/mail */
	char *spool_dir; /* DATA/spool */
	int writers_fd;  /* shared flock on DATA/writers.lock while this process may write */
};

struct store_account {
	struct store *store;
	char *name;      /* canonical address */
	char *dir;       /* DATA/mail/<domain>/<local> */
	sqlite3 *db;
	int pop3_lock_fd;
};

struct store_blob {
	struct store *store;
	char *path;
	int fd;
	uint64_t size;
	unsigned char last2[2]; /* the final two octets, to know if the message ends in CRLF */
	bool finished;
	struct buf wbuf;            /* written data not yet passed to write(2) */
	enum store_err write_err;   /* the first write error (sticky) */
	struct mime_parser *parser; /* fed as bytes arrive: each message is parsed once */
	struct buf parsed;          /* serialized parse result, saved with every delivered copy */
	/* Folded text for the full-text index, extracted once in store_blob_finish. */
	struct buf fts_header;
	struct buf fts_body;
};

/* DATA/mail/<domain>/<local> for a valid account name, else NULL. The name is checked here
 * again so that no client-supplied text reaches the filesystem unchecked. */
char *store_account_dir(struct store *store, const char *account);

/* Index (SQLite) of one account. */
enum store_err index_open(const char *dir, bool create, sqlite3 **db_r);
enum store_err index_create_mailbox(sqlite3 *db, const char *name, const char *special_use,
				    uint32_t uidvalidity);
/* A UIDVALIDITY never handed out before in this store (a deleted and re-created account or
 * mailbox never repeats one, so POP3 UIDLs and IMAP UIDs are never reused). 0 on error. */
uint32_t store_next_uidvalidity(struct store *store);
enum store_err index_err(sqlite3 *db, int rc, const char *what);
/* Mailbox id by name (NULL = INBOX); STORE_NOTFOUND if missing. */
enum store_err index_mailbox_id(sqlite3 *db, const char *name, int64_t *id_r);
enum store_err index_begin(sqlite3 *db);
enum store_err index_commit(sqlite3 *db);
void index_rollback(sqlite3 *db);

/* Full-text index (sqlite/fts.c): `fts_text(docid, blob, header, body)` holds the folded
 * text of each blob (one row per blob, shared by every message of the account that refers
 * to it) and the FTS5 table `fts(grams)` (rowid = docid) indexes its trigrams. */
/* Creates the tables when missing (indexes made before the full-text index). */
enum store_err index_fts_ensure(sqlite3 *db);
/* Inside the caller's transaction. */
enum store_err index_fts_insert(sqlite3 *db, const char *blob_id, const struct buf *header,
				const struct buf *body);
enum store_err index_fts_delete(sqlite3 *db, const char *blob_id);
/* Extracts the folded text of a stored message file (re-indexing); parsed is the saved
 * parse result (NULL or unreadable: the file is parsed again). */
enum store_err fts_extract_file(const char *path, const void *parsed, size_t parsed_len,
				struct buf *header, struct buf *body);

/* Blob file path of an account: <dir>/blobs/<first two chars>/<id>. */
char *blob_path(const char *account_dir, const char *blob_id);
/* A blob id is 32 lowercase hex digits. */
bool blob_id_valid(const char *id);

#endif
