/* POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 SASL, RFC 3206 codes). */
#ifndef SARN_POP3_POP3_H
#define SARN_POP3_POP3_H

#include "net/conn.h"

extern const struct proto pop3_proto;

#endif
