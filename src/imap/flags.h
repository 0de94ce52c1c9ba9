/* System flags and keywords as IMAP reads and writes them: "(\\Answered \\Seen $Label \\Recent)". */
#ifndef SARN_IMAP_FLAGS_H
#define SARN_IMAP_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* flags: STORE_FLAG_* bits; keywords: space-separated (NULL or "" for none); recent: add
 * \Recent (IMAP4rev1). */
void imap_format_flags(struct buf *out, uint32_t flags, const char *keywords, bool recent);
/* The STORE_FLAG_* bit of a system flag name ("\\Seen", any case), or 0 if it is none
 * (\Recent included: it cannot be set). */
uint32_t imap_system_flag(const char *name);

#endif
