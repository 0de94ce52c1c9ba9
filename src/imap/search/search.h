/* IMAP SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4) with ESEARCH return options (RFC 4731), the
 * saved result "$" (RFC 5182) and the MODSEQ criterion (RFC 7162 §3.1.5), as a library for the
 * IMAP session.
 *
 * Two steps: imap_search_parse turns the command's arguments (after "SEARCH" or "UID SEARCH")
 * into a query, imap_search_run evaluates it over the messages of the selected mailbox.
 * The format functions then write the response.
 *
 * Date keys compare days: BEFORE/ON/SINCE the INTERNALDATE's day in UTC, SENTBEFORE/SENTON/
 * SENTSINCE the Date header's day in the timezone written in that header. String keys match
 * a substring after RFC 2047 decoding and Unicode folding (mime_text_fold), so they are
 * case-insensitive in any script. */
#ifndef SARN_IMAP_SEARCH_SEARCH_H
#define SARN_IMAP_SEARCH_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "imap/parser.h"
#include "imap/seqset.h"
#include "store/store.h"

/* The charsets accepted after CHARSET, as the BADCHARSET response code lists them. */
#define IMAP_SEARCH_CHARSETS "(UTF-8 US-ASCII)"

/* RETURN options (RFC 4731, RFC 5182). */
enum {
	IMAP_SEARCH_RET_MIN = 1 << 0,
	IMAP_SEARCH_RET_MAX = 1 << 1,
	IMAP_SEARCH_RET_ALL = 1 << 2,
	IMAP_SEARCH_RET_COUNT = 1 << 3,
	IMAP_SEARCH_RET_SAVE = 1 << 4,
};

/* Nesting of NOT, OR and parenthesised groups a query may have. */
#define IMAP_SEARCH_MAX_DEPTH 64

struct imap_search_key;

/* Made only by imap_search_parse; read-only for the caller. */
struct imap_search_query {
	struct imap_search_key *root;
	/* RETURN was given: answer with ESEARCH (or nothing, for RETURN (SAVE) alone). */
	bool esearch;
	unsigned ret; /* IMAP_SEARCH_RET_*; RETURN () means ALL */
	bool uses_saved;  /* "$" appears (RFC 5182 §2.1: with no saved result it is empty) */
	bool uses_modseq; /* a MODSEQ key: responses carry the highest MODSEQ (RFC 7162) */
};

struct imap_search_error {
	/* CHARSET named a charset not in IMAP_SEARCH_CHARSETS: reply
	 * "NO [BADCHARSET " IMAP_SEARCH_CHARSETS "] reason". Otherwise reply BAD reason. */
	bool badcharset;
	const char *reason; /* static English text */
};

/* Parses args[0..count) (everything after the command name). rev1: IMAP4rev1 semantics, where
 * NEW, OLD and RECENT exist; under IMAP4rev2 they are unknown keys. Returns 0 with *query_r
 * (free with imap_search_query_free), or -1 with *error_r filled in. */
int imap_search_parse(const struct imap_arg *args, size_t count, bool rev1,
		      struct imap_search_query **query_r, struct imap_search_error *error_r);
/* Frees the query and sets *query to NULL; NULL is fine. */
void imap_search_query_free(struct imap_search_query **query);

/* What a search runs over. */
struct imap_search_ctx {
	struct store_account *acct;
	const char *mailbox;
	/* The mailbox's messages in UID order (store_mailbox_messages_full); the sequence number
	 * of msgs[i] is i + 1. */
	const struct store_msg_full *msgs;
	size_t count;
	/* The saved search result "$" as UIDs, or NULL when there is none (then "$" matches
	 * nothing, RFC 5182 §2.1). */
	const struct imap_seqset *saved;
	/* UIDs of the messages that are \Recent in this session (IMAP4rev1), or NULL. */
	const struct imap_seqset *recent;
};

struct imap_search_result {
	size_t count;
	uint32_t *uids; /* ascending */
	uint32_t *seqs; /* the matching messages' sequence numbers, ascending */
	uint64_t *modseqs; /* the matching messages' MODSEQs, in the same order */
	/* The highest MODSEQ of the matching messages (for the MODSEQ response data). */
	uint64_t highest_modseq;
};

/* Evaluates the query. Keys that need no message data (flags, sizes, dates, sets) are tried
 * before those that read the parse result or the message header; BODY and TEXT ask the
 * full-text index once per key. STORE_OK with *result_r filled (free with
 * imap_search_result_free), or the store's error (e.g. STORE_TEMP: reply NO). */
enum store_err imap_search_run(const struct imap_search_query *query,
			       const struct imap_search_ctx *ctx,
			       struct imap_search_result *result_r);
void imap_search_result_free(struct imap_search_result *result);

/* Appends the untagged "* SEARCH ..." response with CRLF: UIDs for UID SEARCH (uid), else
 * sequence numbers; with " (MODSEQ n)" after a MODSEQ search that matched something. */
void imap_search_format_search(const struct imap_search_query *query,
			       const struct imap_search_result *result, bool uid,
			       struct buf *out);

/* Appends the untagged "* ESEARCH (TAG "tag") [UID] [MIN n] [MAX n] [COUNT n] [ALL set]
 * [MODSEQ n]" response with CRLF, for the RETURN options of the query (RFC 4731: MIN, MAX and
 * ALL are left out when nothing matched). Appends nothing when SAVE is the only option
 * (RFC 5182 §2.4). A query without RETURN gets ALL (the IMAP4rev2 answer to a plain SEARCH).
 * tag NULL leaves out the correlator. MODSEQ (after a MODSEQ search, RFC 4731 §3.2): of the
 * MIN and/or MAX message when only those were asked for, else the highest of all matches. */
void imap_search_format_esearch(const struct imap_search_query *query,
				const struct imap_search_result *result, const char *tag,
				bool uid, struct buf *out);

/* For RETURN (SAVE ...): the new saved result as UIDs (RFC 5182 §2.4: only the minimum and/or
 * maximum when SAVE comes with MIN and/or MAX but not ALL or COUNT). *out is initialised.
 * When a SEARCH with SAVE fails, the session sets the saved result to the empty set instead
 * (RFC 5182 §2.1). */
void imap_search_saved_result(const struct imap_search_query *query,
			      const struct imap_search_result *result, struct imap_seqset *out);

#endif
