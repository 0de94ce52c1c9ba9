/* IMAP server (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1) on the shared store. */
#ifndef SARN_IMAP_SESSION_IMAP_H
#define SARN_IMAP_SESSION_IMAP_H

#include "net/conn.h"

extern const struct proto imap_proto;

#endif
