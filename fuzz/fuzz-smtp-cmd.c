/* SMTP/LMTP input parsers: MAIL/RCPT paths and the DATA unstuffer, fed in two splits that
 * must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "smtp/smtp-private.h"
#include "smtp/unstuff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void emit(void *ctx, const unsigned char *p, size_t len)
{
	buf_append(ctx, p, len);
}

static bool unstuff_split(const uint8_t *data, size_t size, size_t step, struct buf *out)
{
	struct unstuff u;
	unstuff_init(&u);
	struct buf pending = {0};
	bool end = false;
	for (size_t pos = 0; pos < size && !end;) {
		size_t n = step < size - pos ? step : size - pos;
		buf_append(&pending, data + pos, n);
		pos += n;
		buf_consume(&pending, unstuff_feed(&u, pending.data, pending.len, emit, out, &end));
	}
	buf_free(&pending);
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	char *addr = NULL, *params = NULL;
	if (smtp_parse_path(line, size > 0 && data[0] & 1 ? "TO:" : "FROM:", &addr, &params) == 0) {
		if (strlen(addr) > 256)
			abort();
		free(addr);
	}
	free(line);

	struct buf a = {0}, b = {0};
	bool end_a = unstuff_split(data, size, size ? size : 1, &a);
	bool end_b = unstuff_split(data, size, 1, &b);
	if (end_a != end_b || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
