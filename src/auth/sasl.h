/* SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): decoding only;
 * the protocols carry the exchange. */
#ifndef SARN_AUTH_SASL_H
#define SARN_AUTH_SASL_H

#include <stddef.h>

enum sasl_mech { SASL_PLAIN, SASL_LOGIN, SASL_UNKNOWN };

/* Case-insensitive mechanism name lookup. */
enum sasl_mech sasl_mech_parse(const char *name, size_t len);

/* Decodes a base64 PLAIN response "authzid\0authcid\0passwd". An authzid that is non-empty
 * and differs from authcid is refused (no proxy login). Returns 0 and new strings (caller
 * frees both), or -1 on bad base64, missing fields, embedded NULs, or fields > 1024 octets. */
int sasl_plain_decode(const char *b64, size_t len, char **user_r, char **pass_r);

/* Decodes one base64 LOGIN step (user name or password). Returns a new string or NULL. */
char *sasl_login_decode(const char *b64, size_t len);

/* The LOGIN mechanism's prompts, base64 encoded ("Username:" and "Password:"). */
#define SASL_LOGIN_PROMPT_USER "VXNlcm5hbWU6"
#define SASL_LOGIN_PROMPT_PASS "UGFzc3dvcmQ6"

#endif
