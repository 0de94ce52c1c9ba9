/* Mailbox names: modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8, UTF-8 validation, and the
 * validator that turns what a client sent into the canonical name sarn stores.
 *
 * Names are UTF-8 inside sarn. Clients that did not enable UTF-8 (IMAP4rev1 without
 * UTF8=ACCEPT) send and receive them in modified UTF-7. */
#ifndef SARN_IMAP_UTF7_H
#define SARN_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The hierarchy separator sarn uses. */
#define IMAP_HIERARCHY_SEP '/'
/* Longest mailbox name, in bytes of UTF-8. */
#define IMAP_MAILBOX_NAME_MAX 1024
/* Longest hierarchy component, in bytes of UTF-8. */
#define IMAP_MAILBOX_COMPONENT_MAX 255
/* Most hierarchy levels in one name. */
#define IMAP_MAILBOX_DEPTH_MAX 32

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
bool imap_utf8_valid(const unsigned char *s, size_t len);

/* Decodes one UTF-8 character at s; returns its length (1-4) and sets *cp_r, or 0 when s does
 * not start with a well-formed character. */
size_t imap_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r);

/* Modified UTF-7 to UTF-8. Strict: only the canonical encoding is accepted (no printable ASCII
 * or "&" inside a shift, no empty shift other than "&-", no "-&" null shift, no unterminated
 * shift, no stray or non-zero padding bits, surrogates only in pairs, no raw 8-bit or control
 * bytes, no U+0000). 0 with a new string in *out_r, or -1 with a static reason. */
int imap_utf7_to_utf8(const char *in, size_t len, char **out_r, const char **error_r);

/* UTF-8 to modified UTF-7. -1 when the input is not valid UTF-8 or holds NUL. */
int imap_utf8_to_utf7(const char *in, size_t len, char **out_r, const char **error_r);

/* Validates a UTF-8 mailbox name and returns its canonical form in *canon_r (a new string):
 * a first component equal to INBOX in any case becomes "INBOX" (RFC 9051 §5.1). Refused: empty
 * names, names longer than IMAP_MAILBOX_NAME_MAX, invalid UTF-8, control characters (C0, DEL,
 * C1), the LIST wildcards "%" and "*", a leading or trailing "/", empty components ("a//b"),
 * "." and ".." components, components longer than IMAP_MAILBOX_COMPONENT_MAX and more than
 * IMAP_MAILBOX_DEPTH_MAX levels. -1 with a static reason otherwise. */
int imap_mailbox_normalize(const char *name, size_t len, char **canon_r, const char **error_r);

/* A mailbox name as the client sent it: modified UTF-7 unless utf8 is set (IMAP4rev2 or
 * UTF8=ACCEPT), then validated as above. */
int imap_mailbox_from_client(const char *name, size_t len, bool utf8, char **canon_r,
			     const char **error_r);

/* "INBOX" in any case. */
bool imap_mailbox_is_inbox(const char *name, size_t len);

#endif
