/* The store API: the only way protocols reach mail. Handles are opaque and no path or SQL
 * leaves this module, so a second backend (e.g. PostgreSQL) can implement the same functions.
 *
 * Durability rule: a function that returns STORE_OK after adding a message has written the
 * file, fsync'ed it and its directory, and committed the index transaction. */
#ifndef SARN_STORE_STORE_H
#define SARN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum store_err {
	STORE_OK = 0,
	STORE_TEMP,      /* transient failure (I/O, busy database): try again later */
	STORE_NOTFOUND,  /* no such account, mailbox or message */
	STORE_EXISTS,    /* already exists */
	STORE_PERM,      /* not permitted (e.g. deleting INBOX) */
	STORE_OVERQUOTA, /* quota exceeded */
	STORE_NOSPACE,   /* disk full */
	STORE_LIMIT,     /* a configured limit (message size, mailbox count) */
	STORE_EXPUNGED,  /* the message was expunged meanwhile */
	STORE_INUSE,     /* locked by another session (POP3 maildrop lock) */
	STORE_INVALID,   /* bad name or argument from the client */
};

const char *store_strerror(enum store_err err);

/* System flags as a bit mask (keywords are kept separately). */
enum {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
};

struct store;
struct store_account;
struct store_blob;

/* Opens the store rooted at data_dir (creates DATA/mail and DATA/spool). */
enum store_err store_open(const char *data_dir, struct store **store_r);
void store_close(struct store **store);

/* Start-up recovery: removes orphaned temp files and blobs without index rows,
 * in the spool and in every account. Safe while no server runs. */
enum store_err store_recover(struct store *store);

/* For a running server (e.g. hourly): removes crash leftovers older than an hour, which
 * start-up recovery had to leave because another process was writing at the time. */
void store_cleanup_leftovers(struct store *store);

/* Consistency check used by `sarn check`. Prints one line per problem to report(ctx,...).
 * Returns the number of problems found (after repair, those that remain). */
int store_check(struct store *store, bool repair, void (*report)(void *ctx, const char *line),
		void *ctx);

/* Accounts: created with INBOX and the special-use folders Sent, Drafts, Trash, Junk,
 * Archive. account is the canonical address from auth. */
enum store_err store_account_create(struct store *store, const char *account);
enum store_err store_account_delete(struct store *store, const char *account);
enum store_err store_account_open(struct store *store, const char *account,
				  struct store_account **acct_r);
void store_account_close(struct store_account **acct);

/* --- Writing a message once, then adding it to one or more accounts --- */

/* A blob is a message being received: a temp file in the spool. */
enum store_err store_blob_begin(struct store *store, struct store_blob **blob_r);
enum store_err store_blob_write(struct store_blob *blob, const void *data, size_t len);
/* fsyncs the file; after this the blob can be delivered. */
enum store_err store_blob_finish(struct store_blob *blob);
uint64_t store_blob_size(const struct store_blob *blob);
/* Removes the temp file (delivered copies are hard links and stay). */
void store_blob_free(struct store_blob **blob);

/* Adds a finished blob to mailbox (NULL = INBOX) with flags and internal date (0 = now).
 * Durable on STORE_OK. */
enum store_err store_deliver(struct store_account *acct, const char *mailbox,
			     struct store_blob *blob, uint32_t flags, int64_t internaldate,
			     uint32_t *uid_r);

/* --- Reading --- */

struct store_msg {
	uint32_t uid;
	uint32_t flags;
	uint64_t size;      /* octets of the stored message */
	bool ends_in_crlf;  /* whether the last line is terminated */
	int64_t internaldate;
	int64_t downloaded; /* first POP3 download time (unix seconds), 0 = never */
	uint64_t modseq;
};

struct store_mailbox_info {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
};

enum store_err store_mailbox_info(struct store_account *acct, const char *mailbox,
				  struct store_mailbox_info *info_r);
/* All messages of a mailbox in UID order; *msgs_r is the caller's to free(). */
enum store_err store_mailbox_messages(struct store_account *acct, const char *mailbox,
				      struct store_msg **msgs_r, size_t *count_r);
/* Opens the message file read-only; caller closes the fd. STORE_EXPUNGED if gone. */
enum store_err store_msg_open(struct store_account *acct, const char *mailbox, uint32_t uid,
			      int *fd_r);

/* --- Searching --- */

enum store_search_field {
	STORE_SEARCH_BODY,   /* the text parts (and attached messages) */
	STORE_SEARCH_TEXT,   /* header + body */
	STORE_SEARCH_HEADER, /* the message header (decoded fields) */
};

/* UIDs (ascending) of messages in mailbox whose folded text contains the folded needle as a
 * substring (IMAP SEARCH semantics, RFC 9051 §6.4.4): case-insensitive (Unicode case
 * folding), NFKC-normalised, in any script, including those written without spaces. The
 * empty needle matches every message. *uids_r is the caller's to free(). */
enum store_err store_search_text(struct store_account *acct, const char *mailbox,
				 enum store_search_field field, const char *needle_utf8,
				 uint32_t **uids_r, size_t *count_r);

/* --- Changing --- */

/* Removes messages; their files go when no mailbox refers to them any more. */
enum store_err store_expunge(struct store_account *acct, const char *mailbox,
			     const uint32_t *uids, size_t count);
/* Records the first POP3 download time of a message (kept if already set). */
enum store_err store_mark_downloaded(struct store_account *acct, const char *mailbox,
				     uint32_t uid, int64_t when);
/* Expunges messages whose first download is older than before (retention). Returns how many
 * in *count_r. */
enum store_err store_expire_downloaded(struct store_account *acct, const char *mailbox,
				       int64_t before, size_t *count_r);

/* POP3 maildrop lock (RFC 1939 §8): exclusive per account across threads and processes.
 * STORE_INUSE if another session holds it. Released by store_pop3_unlock or close. */
enum store_err store_pop3_lock(struct store_account *acct);
void store_pop3_unlock(struct store_account *acct);

#endif
