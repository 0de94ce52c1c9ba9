/* Writing strings into IMAP responses (RFC 9051 §4.3): as an atom or a quoted string when that
 * is safe, else as a literal "{n}" CRLF data, or a literal8 "~{n}" CRLF data for binary data
 * with NUL bytes where the client may receive it (BINARY FETCH). Used for mailbox names, flags,
 * header values and everything else a response carries as a string. */
#ifndef SARN_IMAP_QUOTE_H
#define SARN_IMAP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Strings longer than this are sent as literals even when they could be quoted. */
#define IMAP_QUOTED_MAX 1024

enum imap_quote_flags {
	/* The client accepts UTF-8 in quoted strings (IMAP4rev2, UTF8=ACCEPT). */
	IMAP_QUOTE_UTF8 = 1,
	/* The client accepts literal8 here: data with NUL bytes goes out as "~{n}". */
	IMAP_QUOTE_BINARY = 2,
};

/* data is a non-empty run of ATOM-CHARs. */
bool imap_is_atom(const void *data, size_t len);

/* astring: an atom when data is 1*ASTRING-CHAR and not "NIL" in any case; else as
 * imap_write_string. */
int imap_write_astring(struct buf *out, const void *data, size_t len, unsigned flags);

/* string: quoted when every byte is TEXT-CHAR (or valid UTF-8 with IMAP_QUOTE_UTF8) and data is
 * at most IMAP_QUOTED_MAX bytes, else a literal. Returns 0, or -1 without writing anything when
 * data holds NUL and IMAP_QUOTE_BINARY is not set (no IMAP string can carry it). */
int imap_write_string(struct buf *out, const void *data, size_t len, unsigned flags);

/* nstring: NIL for data == NULL, else as imap_write_string. */
int imap_write_nstring(struct buf *out, const void *data, size_t len, unsigned flags);

#endif
