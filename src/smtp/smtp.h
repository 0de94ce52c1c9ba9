/* SMTP (RFC 5321) for incoming mail, submission (RFC 6409) and LMTP (RFC 2033): one engine,
 * three front ends. */
#ifndef SARN_SMTP_SMTP_H
#define SARN_SMTP_SMTP_H

#include "net/conn.h"

extern const struct proto smtp_proto;
extern const struct proto lmtp_proto;
extern const struct proto submission_proto;

#endif
