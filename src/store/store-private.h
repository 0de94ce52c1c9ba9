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
	struct mime_parser *parser; /* fed as bytes arrive: each message is parsed once */
	struct buf parsed;          /* serialized parse result, saved with every delivered copy */
};

/* DATA/mail/<domain>/<local> for a valid account name, else NULL. The name is checked here
 * again so that no client-supplied text reaches the filesystem unchecked. */
char *store_account_dir(struct store *store, const char *account);

/* Index (SQLite) of one account. */
enum store_err index_open(const char *dir, bool create, sqlite3 **db_r);
enum store_err index_create_mailbox(sqlite3 *db, const char *name, const char *special_use);
enum store_err index_err(sqlite3 *db, int rc, const char *what);
/* Mailbox id by name (NULL = INBOX); STORE_NOTFOUND if missing. */
enum store_err index_mailbox_id(sqlite3 *db, const char *name, int64_t *id_r);
enum store_err index_begin(sqlite3 *db);
enum store_err index_commit(sqlite3 *db);
void index_rollback(sqlite3 *db);

/* Blob file path of an account: <dir>/blobs/<first two chars>/<id>. */
char *blob_path(const char *account_dir, const char *blob_id);
/* A blob id is 32 lowercase hex digits. */
bool blob_id_valid(const char *id);

#endif
