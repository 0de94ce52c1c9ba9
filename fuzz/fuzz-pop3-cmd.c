/* POP3 output stuffing for RETR/TOP: any chunking gives the same bytes, and no line of the
 * output starts with a lone "." line that would end the response early. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "pop3/pop3-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const uint8_t *data, size_t size, size_t step, bool whole, uint64_t lines,
		struct buf *out)
{
	struct pop3_retr r = {.active = true, .whole = whole, .bol = true, .in_header = true,
			      .last_was_crlf = true, .header_blank = true, .body_lines = lines};
	for (size_t pos = 0; pos < size;) {
		size_t n = step < size - pos ? step : size - pos;
		if (!pop3_stuff(&r, data + pos, n, out))
			break;
		pos += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool whole = size > 0 && (data[0] & 1);
	uint64_t lines = size > 1 ? data[1] % 8 : 0;
	struct buf a = {0}, b = {0};
	run(data, size, size ? size : 1, whole, lines, &a);
	run(data, size, 3, whole, lines, &b);
	if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	/* A line consisting of "." alone would terminate the multi-line response. */
	for (size_t i = 0; i + 2 < a.len; i++)
		if ((i == 0 || a.data[i - 1] == '\n') && a.data[i] == '.' && a.data[i + 1] == '\r' &&
		    a.data[i + 2] == '\n')
			abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
