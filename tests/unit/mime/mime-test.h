/* Helpers shared by the mime unit tests. They also use src/mime/mime-private.h, to test
 * the address, date, encoded-word and parameter parsers directly. */
#ifndef SARN_TEST_MIME_TEST_H
#define SARN_TEST_MIME_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "mime/mime.h"

static inline struct mime_result *parse_str(const char *msg)
{
	return mime_parse_buffer((const unsigned char *)msg, strlen(msg), NULL);
}

/* Parses msg fed in pieces of chunk bytes. */
static inline struct mime_result *parse_chunked(const unsigned char *msg, size_t len,
						size_t chunk)
{
	struct mime_parser *mp = mime_parser_new(NULL);
	for (size_t i = 0; i < len; i += chunk)
		mime_parser_feed(mp, msg + i, len - i < chunk ? len - i : chunk);
	struct mime_result *res = mime_parser_finish(mp);
	mime_parser_free(&mp);
	return res;
}

static inline void serialize(const struct mime_result *res, struct buf *out)
{
	buf_clear(out);
	mime_result_serialize(res, out);
}

#endif
