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
/* Gives back the memory the account's handle caches (e.g. before a long IDLE). */
void store_account_trim(struct store_account *acct);

/* --- Writing a message once, then adding it to one or more accounts --- */

/* A blob is a message being received: a temp file in the spool. */
enum store_err store_blob_begin(struct store *store, struct store_blob **blob_r);
enum store_err store_blob_write(struct store_blob *blob, const void *data, size_t len);
/* The same with line endings normalised: every bare LF and bare CR becomes CRLF, so POP3 and
 * IMAP send proper lines and every size is that of what is sent (SMTP, LMTP, `sarn deliver`,
 * IMAP APPEND). Works across calls in any chunking. */
enum store_err store_blob_write_lines(struct store_blob *blob, const void *data, size_t len);
/* fsyncs the file; after this the blob can be delivered. */
enum store_err store_blob_finish(struct store_blob *blob);
uint64_t store_blob_size(const struct store_blob *blob);
/* The spool file (e.g. for the outbound queue to link); valid until store_blob_free. */
const char *store_blob_path(const struct store_blob *blob);
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

/* Reads that follow (store_msg_parsed, store_msg_open, listings) share one read transaction
 * until store_read_batch_end: a consistent snapshot, and much cheaper per message. Only reads
 * may run inside a batch; keep it short (it holds back WAL checkpoints). Nesting is ignored. */
void store_read_batch_begin(struct store_account *acct);
void store_read_batch_end(struct store_account *acct);

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
/* Records the first POP3 download time of messages (kept where already set), in one
 * transaction. */
enum store_err store_mark_downloaded(struct store_account *acct, const char *mailbox,
				     const uint32_t *uids, size_t count, int64_t when);
/* Expunges messages whose first download is older than before (retention). Returns how many
 * in *count_r. */
enum store_err store_expire_downloaded(struct store_account *acct, const char *mailbox,
				       int64_t before, size_t *count_r);

/* POP3 maildrop lock (RFC 1939 §8): exclusive per account across threads and processes.
 * STORE_INUSE if another session holds it. Released by store_pop3_unlock or close. */
enum store_err store_pop3_lock(struct store_account *acct);
void store_pop3_unlock(struct store_account *acct);

/* ===================== For IMAP ===================================================== */

/* All system flags that can be stored (\Recent is never stored). */
#define STORE_FLAGS_ALL                                                                   \
	(STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |   \
	 STORE_FLAG_DRAFT)

/* --- Mailboxes ---
 * Names are UTF-8 with '/' as the hierarchy delimiter. Every function re-checks them:
 * non-empty, at most 1024 octets, no control characters and no empty level (no leading,
 * trailing or doubled '/'), else STORE_INVALID. "INBOX" is matched in any case.
 * A \Noselect mailbox (left by deleting a mailbox that has inferiors) holds no messages;
 * every message function treats it as missing (STORE_NOTFOUND). */

/* Creates name and any missing parents (RFC 9051 §6.3.4) with a new UIDVALIDITY;
 * special_use (e.g. "\\Archive", NULL = none) applies to name only. STORE_EXISTS if it
 * exists; creating a \Noselect name makes it selectable again (with a new UIDVALIDITY). */
enum store_err store_mailbox_create(struct store_account *acct, const char *name,
				    const char *special_use);
/* RFC 9051 §6.3.5: INBOX → STORE_PERM. The messages are removed (files released as by
 * store_expunge); a mailbox with inferiors stays as \Noselect, others go. Deleting a
 * \Noselect mailbox that still has inferiors → STORE_PERM. */
enum store_err store_mailbox_delete(struct store_account *acct, const char *name);
/* RFC 9051 §6.3.6: renames the mailbox and its inferiors (UIDVALIDITY and UIDs kept),
 * creating missing parents of new. Renaming INBOX moves its messages to a new mailbox new
 * (a new UIDVALIDITY, the same UIDs) and leaves INBOX empty; INBOX's inferiors stay.
 * STORE_NOTFOUND if old is missing, STORE_EXISTS if new (or an inferior of it) exists,
 * STORE_INVALID if new is old or one of its inferiors. Subscriptions are not changed. */
enum store_err store_mailbox_rename(struct store_account *acct, const char *old_name,
				    const char *new_name);

struct store_mailbox_entry {
	char *name;
	char *special_use; /* NULL if none */
	bool subscribed;
	bool noselect;
	bool has_children;
};
/* Every mailbox sorted by name (octet order). Free with store_mailbox_list_free. */
enum store_err store_mailbox_list(struct store_account *acct, struct store_mailbox_entry **r,
				  size_t *count_r);
void store_mailbox_list_free(struct store_mailbox_entry *entries, size_t count);

/* Subscriptions are a separate list: a name may be subscribed without existing. Subscribing
 * twice or unsubscribing a name not subscribed is not an error. */
enum store_err store_subscribe(struct store_account *acct, const char *name, bool on);
/* Subscribed names sorted (octet order). Free with store_names_free. */
enum store_err store_subscriptions(struct store_account *acct, char ***names_r, size_t *count_r);
void store_names_free(char **names, size_t count);

/* --- Flags and keywords ---
 * Keywords are IMAP atoms of at most 255 octets (ASCII without control characters, space,
 * ( ) { % * " \ ], not starting with '\'), compared case-insensitively, stored once each
 * as a space-separated list sorted case-insensitively; a bad keyword → STORE_INVALID.
 * Every change of a message's flags or keywords gives it a new MODSEQ (HIGHESTMODSEQ + 1);
 * an unchanged one keeps its MODSEQ. */

enum store_flag_op {
	STORE_FLAGS_ADD,
	STORE_FLAGS_REMOVE,
	STORE_FLAGS_REPLACE,
};

enum store_flag_status {
	STORE_SET_CHANGED,   /* flags changed: modseq is the new MODSEQ */
	STORE_SET_UNCHANGED, /* the operation changed nothing */
	STORE_SET_MODIFIED,  /* skipped: MODSEQ > unchangedsince (RFC 7162 MODIFIED) */
};

struct store_flag_result {
	uint32_t uid;
	enum store_flag_status status;
	uint32_t flags;   /* after the operation (as they are, if skipped) */
	char *keywords;   /* likewise; NULL if none */
	uint64_t modseq;
};

/* One transaction over the messages uids[0..n) of mailbox (UIDs no longer present are left
 * out of the results). unchangedsince 0 = no condition. *res_r (one entry per message
 * found, in the order of uids) is freed with store_flag_results_free. */
enum store_err store_set_flags(struct store_account *acct, const char *mailbox,
			       const uint32_t *uids, size_t n, enum store_flag_op op,
			       uint32_t flags, const char *const *keywords, size_t nkw,
			       uint64_t unchangedsince, struct store_flag_result **res_r,
			       size_t *nres_r);
void store_flag_results_free(struct store_flag_result *res, size_t n);
/* The keywords in use by messages of mailbox, sorted (for FLAGS / PERMANENTFLAGS).
 * Free with store_names_free. */
enum store_err store_mailbox_keywords(struct store_account *acct, const char *mailbox,
				      char ***keywords_r, size_t *count_r);

struct store_msg_full {
	struct store_msg msg;
	char *keywords; /* space-separated, NULL if none */
};
/* As store_mailbox_messages, with keywords. Free with store_msgs_full_free. */
enum store_err store_mailbox_messages_full(struct store_account *acct, const char *mailbox,
					   struct store_msg_full **msgs_r, size_t *count_r);
/* The same for the messages with UID >= uid_from (new arrivals). */
enum store_err store_mailbox_messages_from(struct store_account *acct, const char *mailbox,
					   uint32_t uid_from, struct store_msg_full **msgs_r,
					   size_t *count_r);
void store_msgs_full_free(struct store_msg_full *msgs, size_t count);

/* --- Copy and move (same account) --- */

/* Copies messages from src to dst sharing their files (no data is copied): new UIDs in dst
 * in the order of uids, flags, keywords and INTERNALDATE kept. *new_uids_r (n entries, 0
 * for a UID no longer in src; the caller's to free()) gives COPYUID. STORE_NOTFOUND if src
 * or dst is missing (IMAP: TRYCREATE for dst). One transaction. */
enum store_err store_copy(struct store_account *acct, const char *src, const char *dst,
			  const uint32_t *uids, size_t n, uint32_t **new_uids_r);
/* Copy then expunge from src, in one transaction (RFC 6851). */
enum store_err store_move(struct store_account *acct, const char *src, const char *dst,
			  const uint32_t *uids, size_t n, uint32_t **new_uids_r);

/* --- IMAP APPEND --- */

struct store_append_msg {
	struct store_blob *blob; /* finished */
	uint32_t flags;
	const char *const *keywords;
	size_t nkw;
	int64_t internaldate; /* 0 = now */
};
/* Adds messages to mailbox in one transaction: all or none, and nobody sees some of them
 * before all are there (MULTIAPPEND, RFC 3502). uids_r gets n UIDs. Flags beyond
 * STORE_FLAGS_ALL or a bad keyword → STORE_INVALID. */
enum store_err store_append_many(struct store_account *acct, const char *mailbox,
				 const struct store_append_msg *msgs, size_t n, uint32_t *uids_r);
/* store_append_many of one message. */
enum store_err store_append(struct store_account *acct, const char *mailbox,
			    struct store_blob *blob, uint32_t flags, const char *const *keywords,
			    size_t nkw, int64_t internaldate, uint32_t *uid_r);

/* --- Parsed data --- */

/* The serialized parse result saved at delivery (mime_result_deserialize), for ENVELOPE,
 * BODYSTRUCTURE and sections without parsing again. *data_r is the caller's to free();
 * NULL with *len_r 0 if none was saved (the caller parses the file). STORE_EXPUNGED if the
 * message is gone. */
enum store_err store_msg_parsed(struct store_account *acct, const char *mailbox, uint32_t uid,
				unsigned char **data_r, size_t *len_r);
/* The same, and the message's header as stored (up to the empty line that ends it, included)
 * when it was small enough to be kept in the index: *header_r is then the caller's to free(),
 * else NULL with *header_len_r 0 (read the file). */
enum store_err store_msg_parsed_header(struct store_account *acct, const char *mailbox,
				       uint32_t uid, unsigned char **data_r, size_t *len_r,
				       unsigned char **header_r, size_t *header_len_r);

/* --- IMAP4rev1 \Recent (RFC 3501 §2.3.2) ---
 * A message is recent for the first session that learns of it. The UIDs [*from_r, *to_r)
 * are those no session has claimed yet (*to_r is UIDNEXT); with claim, they become the
 * caller's (SELECT), without, they are only read (EXAMINE, STATUS RECENT). */
enum store_err store_recent(struct store_account *acct, const char *mailbox, bool claim,
			    uint32_t *from_r, uint32_t *to_r);

/* --- Changes (IDLE, NOOP, CONDSTORE/QRESYNC) --- */

struct store_change {
	uint32_t uid;
	uint32_t flags;
	char *keywords; /* NULL if none */
	uint64_t modseq;
};
/* Messages with MODSEQ > modseq in UID order, and the UIDs expunged (by expunge or move)
 * with MODSEQ > modseq, ascending. Free with store_changes_free and free(). */
enum store_err store_changes_since(struct store_account *acct, const char *mailbox,
				   uint64_t modseq, struct store_change **changes_r,
				   size_t *nchanges_r, uint32_t **expunged_r, size_t *nexpunged_r);
void store_changes_free(struct store_change *changes, size_t n);

/* Change notification across threads and processes. A watcher is one non-blocking fd (for
 * an event loop) that becomes readable after any commit by anyone (a delivery, another session,
 * `sarn deliver`) to the accounts added to it. Adding an account twice gives the same watch
 * descriptor: one watcher serves every session of a thread. */
struct store_watcher;
enum store_err store_watcher_new(struct store_watcher **w_r);
void store_watcher_free(struct store_watcher **w);
int store_watcher_fd(const struct store_watcher *w);
enum store_err store_watcher_add(struct store_watcher *w, struct store_account *acct, int *wd_r);
void store_watcher_remove(struct store_watcher *w, int wd);
/* Reads what is pending, calling fn(ctx, wd) once per change notice of an added account. */
void store_watcher_read(struct store_watcher *w, void (*fn)(void *ctx, int wd), void *ctx);

#endif
