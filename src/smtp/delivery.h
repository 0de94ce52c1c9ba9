/* Local delivery: a finished blob into an account's INBOX. Shared by SMTP, LMTP and
 * `sarn deliver`. */
#ifndef SARN_SMTP_DELIVERY_H
#define SARN_SMTP_DELIVERY_H

#include "store/store.h"

enum store_err delivery_local(struct store *store, const char *account, struct store_blob *blob);

/* Line-ending normalisation: every bare LF and bare CR becomes CRLF, so POP3 and IMAP send
 * proper lines and sizes are those of what is sent. State carries across calls. */
struct crlf_state {
	bool pending_cr;
};

enum store_err delivery_write_crlf(struct store_blob *blob, const unsigned char *data, size_t len,
				   struct crlf_state *st);
/* Flushes a CR left pending at the end of the input. */
enum store_err delivery_finish_crlf(struct store_blob *blob, struct crlf_state *st);

#endif
