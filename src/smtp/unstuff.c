#include "smtp/unstuff.h"

#include <string.h>

void unstuff_init(struct unstuff *u)
{
	u->bol = true;
	u->prev_cr = false;
}

size_t unstuff_feed(struct unstuff *u, const unsigned char *p, size_t len, unstuff_emit_fn *emit,
		    void *ctx, bool *end_r)
{
	size_t i = 0, out = 0;
	*end_r = false;
	while (i < len) {
		if (u->bol && p[i] == '.') {
			if (i + 1 >= len || (p[i + 1] == '\r' && i + 2 >= len))
				break; /* need more bytes to decide */
			if (p[i + 1] == '\r' && p[i + 2] == '\n') {
				if (i > out)
					emit(ctx, p + out, i - out);
				*end_r = true;
				return i + 3;
			}
			if (i > out)
				emit(ctx, p + out, i - out);
			out = i + 1; /* drop the stuffed dot */
		}
		const unsigned char *lf = memchr(p + i, '\n', len - i);
		if (lf == NULL) {
			u->prev_cr = p[len - 1] == '\r';
			u->bol = false;
			i = len;
			break;
		}
		size_t j = (size_t)(lf - p);
		u->bol = j > i ? p[j - 1] == '\r' : u->prev_cr;
		u->prev_cr = false;
		i = j + 1;
	}
	if (i > out)
		emit(ctx, p + out, i - out);
	return i;
}
