/* The DKIM signer fed a message in two chunkings: the signatures (deterministic for Ed25519
 * with a fixed timestamp) must be identical, and nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "smtp/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct buf pem;

static int sign(const uint8_t *data, size_t size, size_t step, struct buf *out)
{
	struct dkim_signer *s = NULL;
	const char *error = NULL;
	if (dkim_signer_new(pem.data, pem.len, "example.com", "fuzz", &s, &error) < 0)
		abort();
	for (size_t i = 0; i < size; i += step)
		dkim_signer_feed(s, data + i, size - i < step ? size - i : step);
	int rc = dkim_signer_finish(s, 1700000000, out, &error);
	dkim_signer_free(&s);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (pem.len == 0) {
		struct buf txt = {0};
		const char *error = NULL;
		if (dkim_generate(DKIM_ED25519_SHA256, &pem, &txt, &error) < 0)
			abort();
		buf_free(&txt);
	}
	size_t step = size > 0 ? (size_t)data[0] % 7 + 1 : 1;
	struct buf a = {0}, b = {0};
	int ra = sign(data, size, size ? size : 1, &a);
	int rb = sign(data, size, step, &b);
	if (ra != rb || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
