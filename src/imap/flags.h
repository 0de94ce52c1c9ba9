/* System flags and keywords as IMAP writes them: "(\\Answered \\Seen $Label \\Recent)". */
#ifndef SARN_IMAP_FLAGS_H
#define SARN_IMAP_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* flags: STORE_FLAG_* bits; keywords: space-separated (NULL or "" for none); recent: add
 * \Recent (IMAP4rev1). */
void imap_format_flags(struct buf *out, uint32_t flags, const char *keywords, bool recent);

#endif
