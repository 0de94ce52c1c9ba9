/* Counted byte buffers. Protocol data may hold NUL bytes, so lengths are explicit. */
#ifndef SARN_CORE_BUF_H
#define SARN_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	unsigned char *data;
	size_t len;
	size_t cap;
};

/* Allocation helpers: they abort on out-of-memory, so callers need no OOM branch. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);
/* Frees the storage; the struct itself is the caller's. */
void buf_free(struct buf *b);
/* Returns the contents as a NUL-terminated string (adds a NUL past len). */
const char *buf_cstr(struct buf *b);

#endif
