/* The DATA terminator and dot-unstuffing (RFC 5321 §4.5.2) as a resumable parser: feeding
 * the input in any split gives the same output. No I/O. */
#ifndef SARN_SMTP_UNSTUFF_H
#define SARN_SMTP_UNSTUFF_H

#include <stdbool.h>
#include <stddef.h>

struct unstuff {
	bool bol;     /* the bytes so far end with CRLF (or nothing was seen yet) */
	bool prev_cr; /* the bytes so far end with CR */
};

typedef void unstuff_emit_fn(void *ctx, const unsigned char *data, size_t len);

void unstuff_init(struct unstuff *u);
/* Consumes input, passing message bytes to emit. Returns how many input bytes were consumed;
 * sets *end_r when CRLF "." CRLF was seen (the terminator is consumed, not emitted). Bytes
 * not consumed (a "." or ".\r" at a line start) must be offered again with more input.
 * Only CRLF "." CRLF ends the data: bare LF never does (no SMTP smuggling). */
size_t unstuff_feed(struct unstuff *u, const unsigned char *in, size_t len, unstuff_emit_fn *emit,
		    void *ctx, bool *end_r);

#endif
