/* The IMAP FETCH engine (RFC 9051 §6.4.5 and §7.5.2, RFC 3501 §6.4.5 and §7.4.2, BINARY RFC 3516,
 * MODSEQ RFC 7162). A library the IMAP session calls; it does no network I/O.
 *
 * Two steps:
 *   1. imap_fetch_plan_parse turns the FETCH attribute arguments (an atom, a macro or a list)
 *      into a plan, or gives a reason for a tagged BAD.
 *   2. For each message, imap_fetch_begin makes a cursor and imap_fetch_next pulls the untagged
 *      "* n FETCH (...)" response out of it in pieces of at most max_bytes, so a big message is
 *      never held in memory: body bytes are read from the stored file in chunks of at most
 *      64 KiB. Small items (ENVELOPE, BODYSTRUCTURE, BODY) come from the parse result saved at
 *      delivery.
 *
 * Response details:
 *   - Items come out in the order of the request. In UID mode, UID comes first when the
 *     request did not name it.
 *   - BODY[...] data is a literal "{n}"; a NUL byte in it is sent as 0x80 (NUL cannot be in an
 *     IMAP literal; Dovecot does the same), so RFC822.SIZE equals what BODY[] sends.
 *   - BODY[...]<o.n> and BINARY[...]<o.n> are answered as "BODY[...]<o>", "BINARY[...]<o>".
 *     A section that does not exist gives "".
 *   - BINARY[...] is transfer-decoded; "~{n}" (literal8) when the data sent holds a NUL, else
 *     "{n}". BINARY[] (no part) is the raw message. A part that does not exist gives NIL, and
 *     BINARY.SIZE of it 0.
 *   - HEADER.FIELDS reads the section's header (at most IMAP_FETCH_MAX_HEADER bytes of it) to
 *     filter it: that one item is buffered.
 *   - INTERNALDATE is written in UTC ("+0000"). */
#ifndef SARN_IMAP_FETCH_FETCH_H
#define SARN_IMAP_FETCH_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "store/store.h"

/* Bytes of a header read for HEADER.FIELDS[.NOT]; the rest of a larger header is ignored. */
#define IMAP_FETCH_MAX_HEADER (1024 * 1024)
/* Largest read from the message file per step. */
#define IMAP_FETCH_CHUNK (64 * 1024)

enum imap_fetch_parse_flags {
	/* CONDSTORE is enabled (RFC 7162): MODSEQ is a valid item. */
	IMAP_FETCH_PARSE_CONDSTORE = 1,
};

struct imap_fetch_plan;

/* Parses the FETCH attributes from args[0..count) (the arguments after the sequence set):
 * one of ALL, FAST, FULL, a single attribute or a parenthesised list of attributes. A section
 * with a header list comes from the parser as three arguments (see parser.h), which count as one
 * attribute. *used_r (may be NULL) is the number of arguments of args used; the ones after are
 * the session's (FETCH modifiers such as CHANGEDSINCE). Returns 0 with *plan_r, or -1 with a
 * static reason in *error_r for a tagged BAD. */
int imap_fetch_plan_parse(const struct imap_arg *args, size_t count, unsigned flags,
			  struct imap_fetch_plan **plan_r, size_t *used_r, const char **error_r);
void imap_fetch_plan_free(struct imap_fetch_plan **plan);

/* The plan fetches BODY[...], BINARY[...], RFC822 or RFC822.TEXT without .PEEK: the session
 * sets \Seen on each message fetched (and then begins with IMAP_FETCH_ADD_FLAGS). */
bool imap_fetch_plan_sets_seen(const struct imap_fetch_plan *plan);
/* The plan names MODSEQ (the session then knows CONDSTORE is in use). */
bool imap_fetch_plan_has_modseq(const struct imap_fetch_plan *plan);
/* Appends the item names as a response would name them, space-separated, e.g.
 * "FLAGS BODY[HEADER.FIELDS (FROM)]<0> RFC822.SIZE" (for logs and tests). */
void imap_fetch_plan_format(const struct imap_fetch_plan *plan, struct buf *out);

enum imap_fetch_flags {
	IMAP_FETCH_UID = 1,       /* UID FETCH: UID is always in the response */
	IMAP_FETCH_IMAP4REV2 = 2, /* IMAP4rev2 is enabled */
	IMAP_FETCH_UTF8 = 4,      /* UTF8=ACCEPT or IMAP4rev2: UTF-8 in quoted strings */
	IMAP_FETCH_RECENT = 8,    /* show \Recent in FLAGS */
	IMAP_FETCH_ADD_FLAGS = 16, /* \Seen was just set: send FLAGS even if not asked for */
};

enum imap_fetch_error {
	IMAP_FETCH_ERR_NONE = 0,
	IMAP_FETCH_ERR_EXPUNGED,    /* the message is gone (reply NO, or skip it) */
	IMAP_FETCH_ERR_IO,          /* reading the message or the store failed */
	IMAP_FETCH_ERR_UNKNOWN_CTE, /* BINARY of a part with an unknown encoding: NO [UNKNOWN-CTE] */
};

struct imap_fetch_cursor;

/* A cursor producing the FETCH response of msg (a row of store_mailbox_messages_full) with
 * message sequence number seqno. msg and mailbox (NULL = INBOX) are copied; plan and acct must
 * outlive the cursor. flags: enum imap_fetch_flags (IMAP4REV2 and UTF8 change nothing yet: the
 * ENVELOPE/BODYSTRUCTURE strings are made at delivery). Returns 0 (nothing is read yet). */
int imap_fetch_begin(const struct imap_fetch_plan *plan, struct store_account *acct,
		     const char *mailbox, const struct store_msg_full *msg, uint32_t seqno,
		     unsigned flags, struct imap_fetch_cursor **cursor_r);

/* Appends the next at most max_bytes bytes of the response to out (max_bytes 0 counts as 1).
 * Returns 1 when the response is complete (nothing more to come), 0 when there is more, -1 on
 * error (see imap_fetch_error). The message and its parse result are loaded on the first call,
 * before anything is written: an error then leaves out untouched and the session can reply NO.
 * An error later (I/O) leaves a truncated response behind: the connection must be closed. */
int imap_fetch_next(struct imap_fetch_cursor *cursor, struct buf *out, size_t max_bytes);

enum imap_fetch_error imap_fetch_error(const struct imap_fetch_cursor *cursor);

/* Closes the message file and frees the cursor; sets *cursor to NULL. NULL is fine. */
void imap_fetch_end(struct imap_fetch_cursor **cursor);

#endif
