/* Small helpers with no mail knowledge. */
#ifndef SARN_CORE_UTIL_H
#define SARN_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Base64 (RFC 4648). decode returns the decoded length, or -1 on bad input;
 * out must hold (len / 4 + 1) * 3 bytes. encode returns a new NUL-terminated string. */
long base64_decode(const char *in, size_t len, unsigned char *out);
char *base64_encode(const unsigned char *in, size_t len);
/* The value of one base64 (RFC 4648 §4) character, or -1. */
int base64_value(unsigned char c);

/* The value of a hexadecimal digit, or -1. */
int hex_value(unsigned char c);

/* Case-insensitive ASCII comparison of a counted token with a C string. */
bool token_eq(const char *tok, size_t len, const char *word);
/* Parses a decimal number with no sign, no spaces, at most max; -1 on bad input. */
int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);
/* Lowercases ASCII in place. */
void ascii_lower(char *s);
/* Writes all of buf to fd, retrying on EINTR and short writes; -1 on error. */
int write_full(int fd, const void *buf, size_t len);
/* fsyncs the directory holding path (so a rename or link in it is durable). */
int fsync_parent_dir(const char *path);
/* Creates dir and its parents with the given mode; 0 ok, -1 error. */
int mkdir_p(const char *dir, unsigned mode);
/* Hands memory freed to the allocator back to the system (malloc_trim; a no-op under
 * AddressSanitizer, whose allocator is not glibc's). */
void release_free_memory(void);
/* Formats t (Unix seconds) as an RFC 5322 date-time in local time, e.g.
 * "Fri, 27 Nov 2026 16:05:00 +0000" (the C locale's day and month names). */
#define MAIL_DATE_MAX 40
void format_mail_date(int64_t t, char out[MAIL_DATE_MAX]);
/* Random hex string of 2*nbytes characters (at most 64 bytes; getrandom(2)). */
char *random_hex(size_t nbytes);

#endif
