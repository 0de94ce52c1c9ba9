/* Local delivery: a finished blob into an account's INBOX. Shared by SMTP, LMTP and
 * `sarn deliver`. */
#ifndef SARN_SMTP_DELIVERY_H
#define SARN_SMTP_DELIVERY_H

#include "store/store.h"

enum store_err delivery_local(struct store *store, const char *account, struct store_blob *blob);

#endif
