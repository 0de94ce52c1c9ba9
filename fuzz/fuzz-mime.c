/* libFuzzer target for src/mime: the input is parsed in one piece and in two other
 * chunkings, which must give identical results; the result must survive a
 * serialise/deserialise round trip; and section lookups must stay inside the input. */
#include "core/buf.h"
#include "mime/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mime_result *parse_split(const uint8_t *data, size_t size, size_t step)
{
	struct mime_parser *mp = mime_parser_new(NULL);
	size_t i = 0, n = 1;
	while (i < size) {
		/* growing, irregular pieces: 1, 1+step, 1+2*step, ... */
		size_t len = n < size - i ? n : size - i;
		mime_parser_feed(mp, data + i, len);
		i += len;
		n += step;
	}
	struct mime_result *res = mime_parser_finish(mp);
	mime_parser_free(&mp);
	return res;
}

static void same_or_abort(const struct buf *a, const struct mime_result *r)
{
	struct buf b = {0};
	mime_result_serialize(r, &b);
	if (a->len != b.len || memcmp(a->data, b.data, a->len) != 0)
		abort();
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_result *whole = mime_parse_buffer(data, size, NULL);
	struct buf ser = {0};
	mime_result_serialize(whole, &ser);

	struct mime_result *r1 = parse_split(data, size, 0); /* byte by byte */
	same_or_abort(&ser, r1);
	struct mime_result *r2 = parse_split(data, size, 13);
	same_or_abort(&ser, r2);

	struct mime_result *back = mime_result_deserialize(ser.data, ser.len);
	if (back == NULL)
		abort();
	same_or_abort(&ser, back);

	/* every part and section lies inside the message */
	for (unsigned int i = 0; i < mime_result_part_count(whole); i++) {
		const struct mime_part *p = mime_result_part(whole, i);
		if (p->body_offset + p->body_size > size ||
		    p->header_offset + p->header_size != p->body_offset)
			abort();
		char sec[1024];
		mime_result_part_section(whole, i, sec, sizeof(sec));
		uint32_t path[128];
		int n = mime_section_parse(sec, path, 128);
		uint64_t off, len;
		if (n >= 0 && mime_result_section(whole, path, (size_t)n, MIME_SECTION_MIME, &off, &len) &&
		    off + len > size)
			abort();
	}
	/* deserialising arbitrary bytes must be safe too */
	struct mime_result *junk = mime_result_deserialize(data, size);
	mime_result_free(&junk);

	mime_result_free(&whole);
	mime_result_free(&r1);
	mime_result_free(&r2);
	mime_result_free(&back);
	buf_free(&ser);
	return 0;
}
