/* Local delivery: a finished blob into an account's INBOX. Shared by SMTP, LMTP and
 * `sarn deliver`. */
#ifndef SARN_SMTP_DELIVERY_H
#define SARN_SMTP_DELIVERY_H

#include "store/store.h"

enum store_err delivery_local(struct store *store, const char *account, struct store_blob *blob);

/* Writes data to the blob turning bare LF into CRLF; *prev_cr carries state between calls. */
enum store_err delivery_write_crlf(struct store_blob *blob, const unsigned char *data, size_t len,
				   bool *prev_cr);

#endif
