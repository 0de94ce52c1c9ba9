/* The IMAP session: state shared by the command files of src/imap/session. */
#ifndef SARN_IMAP_SESSION_PRIVATE_H
#define SARN_IMAP_SESSION_PRIVATE_H

#include "app.h"
#include "core/buf.h"
#include "core/ev.h"
#include "imap/flags.h"
#include "imap/parser.h"
#include "imap/seqset.h"
#include "imap/session/imap.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

enum imap_state {
	IMAP_NOT_AUTHENTICATED = 1,
	IMAP_AUTHENTICATED = 2,
	IMAP_SELECTED = 4,
	IMAP_LOGOUT = 8,
};

/* The selected mailbox as this session has told the client about it. Message i has
 * sequence number i + 1; its flags are the ones the client was last told. */
struct imap_view {
	char *name; /* canonical UTF-8 */
	bool readonly;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t modseq;     /* changes up to this MODSEQ are reflected */
	struct store_msg_full *msgs;
	size_t count, cap;
	struct imap_seqset recent; /* IMAP4rev1 \Recent: the UIDs this session claimed */
	/* Expunges seen while EXPUNGE responses were not allowed (during FETCH, STORE, SEARCH):
	 * the messages stay in msgs until they can be announced. */
	uint32_t *pending_expunges;
	size_t npending, pending_cap;
	bool have_saved;          /* SEARCHRES "$" */
	struct imap_seqset saved; /* as UIDs */
};

enum imap_sasl_step {
	IMAP_SASL_NONE,
	IMAP_SASL_PLAIN,
	IMAP_SASL_LOGIN_USER,
	IMAP_SASL_LOGIN_PASS,
};

struct imap_fetch_job;
struct imap_append;

struct imap {
	struct conn *c;
	struct app *app;
	enum imap_state state;
	struct imap_parser *parser;
	bool rev2;          /* ENABLE IMAP4rev2 */
	bool login_pending; /* a password check runs on a job thread */
	uint32_t bad_commands;
	/* The command now running is FETCH, STORE or SEARCH: no EXPUNGE responses
	 * (RFC 9051 §7.5.1). */
	bool no_expunge;
	char *account;
	bool counted; /* holds one of the account's app->user_sessions */
	struct store_account *acct;
	struct imap_view *view; /* NULL unless SELECTED */

	/* The command being carried out across events (login, AUTHENTICATE, IDLE, FETCH). */
	char *tag;
	enum imap_sasl_step sasl;
	char *sasl_user;
	struct buf line; /* continuation lines (AUTHENTICATE, IDLE's DONE) */

	bool idling;
	int watch_wd;           /* the account's watch in this thread's IDLE hub, while idling */
	struct ev_timer settle; /* announces a burst of changes together */

	struct imap_fetch_job *fetch; /* a FETCH streaming its responses */
	struct imap_append *append;   /* an APPEND receiving its literals */
};

/* Every command handler: args are what follows the command name. */
typedef void imap_cmd_fn(struct imap *s, const char *tag, const struct imap_arg *args,
			 size_t nargs);

/* --- Responses (session.c) --- */
void imap_send(struct imap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_send_buf(struct imap *s, struct buf *b);
/* Tagged OK/NO/BAD. Before it, changes by others are announced (EXPUNGE only where
 * expunges_ok says the running command allows them). */
void imap_ok(struct imap *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_no(struct imap *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* BAD counts toward max_bad_commands: the connection closes past it. */
void imap_bad(struct imap *s, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The tagged completion without announcing changes first. */
void imap_tagged_raw(struct imap *s, const char *tag, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* "NO [code] text" for a store error. */
void imap_no_store(struct imap *s, const char *tag, enum store_err err, const char *what);
void imap_capability_string(struct imap *s, struct buf *out);
/* Continues reading commands (after an asynchronous step finished). */
void imap_input(void *sess);

/* --- Arguments (args.c) --- */
/* A mailbox name argument in canonical UTF-8 (a new string), or NULL after replying BAD/NO. */
char *imap_arg_mailbox(struct imap *s, const char *tag, const struct imap_arg *arg);
/* Writes name as the client reads it (modified UTF-7 unless IMAP4rev2) as an astring. */
void imap_write_mailbox(struct imap *s, struct buf *out, const char *name);
/* Parses a flag list or a single flag: system flags into *flags_r, keywords (pointers into
 * args) into kw[] (at most max). allow_recent lets \Recent through (SEARCH has no use).
 * -1 with a reason on a bad flag. */
int imap_parse_flags(const struct imap_arg *arg, size_t nargs, uint32_t *flags_r,
		     const char **kw, size_t max, size_t *nkw_r, const char **error_r);
/* LIST wildcards (RFC 9051 §6.3.9): "*" matches anything, "%" anything but "/". */
bool imap_list_match(const char *pattern, const char *name);
/* RFC 9051 date-time "dd-Mon-yyyy hh:mm:ss +zzzz" to Unix time; -1 if malformed. */
int64_t imap_parse_datetime(const char *s);

/* --- Selected mailbox (view.c) --- */
/* Opens name for SELECT/EXAMINE. */
enum store_err imap_view_open(struct imap *s, const char *name, bool readonly,
			      struct imap_view **view_r);
void imap_view_free(struct imap_view **view);
/* Announces changes made by anyone since the view's MODSEQ: EXISTS (and RECENT), FETCH
 * FLAGS, and EXPUNGE if allow_expunge (else they wait). */
void imap_view_sync(struct imap *s, bool allow_expunge);
/* Index in view->msgs of uid, or -1. */
long imap_view_find(const struct imap_view *v, uint32_t uid);
bool imap_view_recent(const struct imap *s, const struct store_msg_full *m);
size_t imap_view_recent_count(const struct imap *s);
/* Resolves a sequence set argument ("$" included) into ascending indexes into view->msgs.
 * uid: UIDs (missing ones are left out) else sequence numbers (out of range: error). 0, or -1
 * with a static reason for BAD. *idx_r is the caller's to free(). */
int imap_view_resolve(struct imap *s, const struct imap_arg *arg, bool uid, uint32_t **idx_r,
		      size_t *n_r, const char **error_r);

/* --- Commands --- */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_id, imap_cmd_enable,
	imap_cmd_starttls, imap_cmd_login, imap_cmd_authenticate, imap_cmd_namespace;
imap_cmd_fn imap_cmd_select, imap_cmd_examine, imap_cmd_close, imap_cmd_unselect,
	imap_cmd_create, imap_cmd_delete, imap_cmd_rename, imap_cmd_subscribe,
	imap_cmd_unsubscribe, imap_cmd_status;
imap_cmd_fn imap_cmd_list, imap_cmd_lsub;
imap_cmd_fn imap_cmd_append;
imap_cmd_fn imap_cmd_idle;
imap_cmd_fn imap_cmd_expunge, imap_cmd_uid_expunge, imap_cmd_store, imap_cmd_uid_store,
	imap_cmd_copy, imap_cmd_uid_copy, imap_cmd_move, imap_cmd_uid_move;
imap_cmd_fn imap_cmd_fetch, imap_cmd_uid_fetch, imap_cmd_search, imap_cmd_uid_search;

/* AUTHENTICATE continuation lines and IDLE's DONE. */
void imap_sasl_line(struct imap *s, char *line);
void imap_idle_line(struct imap *s, char *line);
void imap_idle_stop(struct imap *s);

/* FETCH streaming (fetch.c): writes more; true while more is to come. */
bool imap_fetch_continue(struct imap *s);
void imap_fetch_abort(struct imap *s);

/* APPEND's literal sink and its cleanup (append.c). */
void imap_append_prepare(struct imap *s);
void imap_append_abort(struct imap *s);

/* STATUS items for one mailbox (status.c), shared with LIST-STATUS: appends
 * "* STATUS name (...)" CRLF. The items are atoms of args. */
int imap_status_parse(const struct imap_arg *list, unsigned *items_r, const char **error_r);
enum store_err imap_status_write(struct imap *s, const char *name, unsigned items,
				 struct buf *out);

#endif
