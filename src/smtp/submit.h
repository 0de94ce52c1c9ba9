/* What the submission server does to a message before it goes anywhere (RFC 6409 §8):
 * missing Date and Message-ID fields are added, and it is DKIM-signed (RFC 6376) with the
 * key of the sender's domain, if one was made with `sarn dkim generate`. */
#ifndef SARN_SMTP_SUBMIT_H
#define SARN_SMTP_SUBMIT_H

#include "config/config.h"
#include "core/buf.h"
#include "store/store.h"

/* *blob is finished; it may be replaced by a new finished blob (the old one freed). */
enum store_err submit_prepare(struct store *store, const struct config *cfg,
			      const char *mail_from, struct store_blob **blob);

/* [submission] save_sent: a copy, \Seen, in the account's \Sent mailbox. The message has
 * already been accepted, so a failure is only logged. */
void submit_save_sent(struct store *store, const char *account, struct store_blob *blob);

/* Reads the header section of a stored message file (up to the empty line, at most
 * max octets). 0, or -1 (errno). */
int submit_read_header(const char *path, size_t max, struct buf *out);
/* Whether a header section has a field with this name (case-insensitive). */
bool submit_has_field(const struct buf *header, const char *name);

#endif
