/* IMAP sequence sets (RFC 9051 §9 sequence-set, "$" from RFC 5182 SEARCHRES): "1:5,7,9:*".
 *
 * A parsed set keeps "*" symbolic (IMAP_SEQ_STAR, 0, which no message number can be), because
 * its value depends on the mailbox when the command runs. imap_seqset_resolve replaces it and
 * gives a plain set: ranges sorted, overlapping and adjacent ones merged. */
#ifndef SARN_IMAP_SEQSET_H
#define SARN_IMAP_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define IMAP_SEQ_STAR 0

/* Inclusive. In a parsed set, a range with "*" is stored as lo = the number (or STAR for "*"
 * alone) and hi = STAR, since "*:4" means the same as "4:*". Otherwise lo <= hi. */
struct imap_seq_range {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_seq_range *ranges;
	size_t count;
	size_t cap;
	/* "$": the saved search result (RFC 5182); then there are no ranges. */
	bool last_result;
	/* Concrete ranges sorted and merged, ranges with "*" after them (parse, resolve and
	 * normalize give this; imap_seqset_add may clear it). */
	bool sorted;
};

/* Upper bound for max_ranges of imap_seqset_parse on a client's set. */
#define IMAP_SEQSET_MAX_RANGES_DEFAULT 10000

enum imap_seqset_flags {
	IMAP_SEQSET_ALLOW_STAR = 1, /* "*" (not in uid-set, RFC 4315) */
	IMAP_SEQSET_ALLOW_LAST = 2, /* "$" alone as the whole set (SEARCHRES) */
};

/* Parses s[0..len) into *set (initialised by the call; free with imap_seqset_free). Numbers
 * are nz-number: 1 to 4294967295 with no leading zero. At most max_ranges comma-separated
 * elements. "$" may not be combined with other elements. Concrete ranges come out sorted and
 * merged; ranges with "*" follow them. 0, or -1 with a static reason (and an empty set). */
int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, size_t max_ranges,
		      unsigned flags, const char **error_r);

void imap_seqset_free(struct imap_seqset *set);

bool imap_seqset_has_star(const struct imap_seqset *set);

/* A plain set from a parsed one: "*" becomes star. RFC 9051 §9 seq-number: for sequence
 * numbers star is the message count; for UIDs the last message's UID or, in an empty mailbox,
 * UIDNEXT. -1 when the set uses "*" and star is 0 (sequence numbers of an empty mailbox: reply
 * BAD), or when the set is "$". *out is initialised by the call. */
int imap_seqset_resolve(const struct imap_seqset *set, uint32_t star, struct imap_seqset *out);

/* n is in the set, "*" standing for star (never matched when star is 0). False for "$". */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);

/* On a set without "*": the number of members and the largest one (0 when empty). */
uint64_t imap_seqset_count(const struct imap_seqset *set);
uint32_t imap_seqset_last(const struct imap_seqset *set);

/* Adds lo:hi (either order; no STAR) at the end, merging with the last range when it
 * overlaps or touches it from above. Keeps the order ranges are added in (COPYUID pairs its two
 * sets by position); call imap_seqset_normalize for a sorted set. */
void imap_seqset_add(struct imap_seqset *set, uint32_t lo, uint32_t hi);

/* Sorts and merges the concrete ranges; ranges with "*" stay after them. */
void imap_seqset_normalize(struct imap_seqset *set);

/* Appends the set compactly: "1:3,5,9:*", "$" for the saved result, nothing when empty. */
void imap_seqset_format(const struct imap_seqset *set, struct buf *out);

/* Walks the members of a set without "*" in order of its ranges. */
struct imap_seqset_iter {
	const struct imap_seqset *set;
	size_t idx;
	uint64_t next;
};
void imap_seqset_iter_init(struct imap_seqset_iter *it, const struct imap_seqset *set);
bool imap_seqset_iter_next(struct imap_seqset_iter *it, uint32_t *n_r);

#endif
