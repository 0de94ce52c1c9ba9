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
	int changes_fd; /* DATA/mail/<account>/changes, opened at the first commit */
	/* Inside store_read_batch_begin/end: one read transaction, and the last mailbox looked
	 * up (which cannot change meanwhile). */
	bool in_batch;
	char *batch_mailbox;
	int64_t batch_mailbox_id;
};

struct store_blob {
	struct store *store;
	char *path;
	int fd;
	uint64_t size;
	unsigned char last2[2]; /* the final two octets, to know if the message ends in CRLF */
	bool pending_cr;            /* store_blob_write_lines: a CR held back */
	bool finished;
	struct buf wbuf;            /* written data not yet passed to write(2) */
	enum store_err write_err;   /* the first write error (sticky) */
	struct mime_parser *parser; /* fed as bytes arrive: each message is parsed once */
	struct buf parsed;          /* serialized parse result, saved with every delivered copy */
	struct buf header;          /* the message header if at most STORE_HEADER_CACHE_MAX */
	/* Folded text for the full-text index, extracted once in store_blob_finish. */
	struct buf fts_header;
	struct buf fts_body;
};

/* Message headers up to this size are kept in the index too, so header lists (FETCH
 * BODY.PEEK[HEADER.FIELDS (...)]) never open message files. */
#define STORE_HEADER_CACHE_MAX (32 * 1024)

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
/* index_mailbox_id for a message read: remembered within a read batch. */
enum store_err index_read_mailbox_id(struct store_account *a, const char *name, int64_t *id_r);
/* Creates mailbox.noselect and the subscription and expunged tables when missing. */
enum store_err index_imap_ensure(sqlite3 *db);
/* Runs sql binding text (if not NULL) then the nargs integers; expects no rows. */
/* Steps a prepared and bound statement whose first column is a UID, collecting them into a
 * new array (caller frees; NULL when empty), and finalizes it. */
enum store_err index_collect_uids(sqlite3 *db, sqlite3_stmt *st, const char *what,
				  uint32_t **uids_r, size_t *count_r);
enum store_err index_exec(sqlite3 *db, const char *sql, const char *what, int nargs,
			  const sqlite3_int64 *args, const char *text);
enum store_err index_begin(sqlite3 *db);
enum store_err index_commit(sqlite3 *db);
void index_rollback(sqlite3 *db);

/* Blob files whose last reference went inside a transaction: unlinked after the commit. */
struct blob_unlinks {
	char **ids;
	size_t n, cap;
};
/* Unlinks the files if committed, then frees the list. */
void blob_unlinks_finish(struct store_account *a, struct blob_unlinks *u, bool committed);
/* Inside the caller's transaction: deletes the messages (UIDs not present are skipped),
 * drops a reference to each blob (the last one also drops the blob and full-text rows and
 * queues the file in u). modseq > 0 records each in the expunged table with that MODSEQ.
 * *removed_r (if not NULL) counts the messages removed. */
enum store_err index_expunge_uids(struct store_account *a, int64_t mbox, const uint32_t *uids,
				  size_t count, uint64_t modseq, struct blob_unlinks *u,
				  size_t *removed_r);
/* The mailbox's HIGHESTMODSEQ + 1, reserved by storing it (inside the caller's transaction). */
enum store_err index_next_modseq(sqlite3 *db, int64_t mbox, uint64_t *modseq_r);
/* Mailbox name check (non-empty, at most 1024 octets, no control characters, no empty
 * hierarchy level); "INBOX" in any case becomes "INBOX". NULL if invalid; else name or a
 * static "INBOX". */
const char *store_mailbox_name(const char *name);
/* The normalised, sorted keyword list ("a b c", NULL if none) or NULL with *ok false. */
char *keywords_join(const char *const *kw, size_t n, bool *ok);

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
