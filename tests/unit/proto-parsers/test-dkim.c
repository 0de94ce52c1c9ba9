/* DKIM canonicalization (RFC 6376 §3.4.5's example) and signature fields. Signatures are
 * checked by an independent verifier in tests/proto/test_dkim.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "smtp/dkim.h"

static void test_relaxed_header(void **state)
{
	(void)state;
	struct buf b = {0};
	static const char *const fields[] = {"A: X", "B : Y\t\r\n\tZ  ", "Subject:\t  x \t y"};
	for (size_t i = 0; i < 3; i++)
		dkim_relaxed_header(fields[i], strlen(fields[i]), &b);
	assert_string_equal(buf_cstr(&b), "a:X\r\nb:Y Z\r\nsubject:x y\r\n");
	buf_free(&b);
}

static char *signature_of(const char *msg, struct buf *pem)
{
	struct dkim_signer *s = NULL;
	const char *error = NULL;
	assert_int_equal(dkim_signer_new(pem->data, pem->len, "example.com", "sel", &s, &error), 0);
	/* byte by byte: any chunking gives the same result */
	for (size_t i = 0; msg[i]; i++)
		dkim_signer_feed(s, msg + i, 1);
	struct buf out = {0};
	int rc = dkim_signer_finish(s, 1700000000, &out, &error);
	dkim_signer_free(&s);
	if (rc < 0) {
		buf_free(&out);
		return NULL;
	}
	char *r = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return r;
}

static char *bh_of(const char *canonical_body)
{
	unsigned char d[32];
	unsigned int n = 0;
	EVP_Digest(canonical_body, strlen(canonical_body), d, &n, EVP_sha256(), NULL);
	char *b64 = base64_encode(d, n);
	char *tag = xasprintf("bh=%s;", b64);
	free(b64);
	return tag;
}

static void test_body_and_fields(void **state)
{
	(void)state;
	struct buf pem = {0}, txt = {0};
	const char *error = NULL;
	assert_int_equal(dkim_generate(DKIM_ED25519_SHA256, &pem, &txt, &error), 0);
	assert_non_null(strstr(buf_cstr(&txt), "v=DKIM1; k=ed25519; p="));
	/* RFC 6376 §3.4.5: the body " C \r\nD \t E\r\n\r\n\r\n" is " C\r\nD E\r\n" relaxed. */
	char *sig = signature_of("From: a@example.com\r\nA: X\r\nB : Y\t\r\n\tZ  \r\n\r\n"
				 " C \r\nD \t E\r\n\r\n\r\n", &pem);
	assert_non_null(sig);
	char *bh = bh_of(" C\r\nD E\r\n");
	assert_non_null(strstr(sig, bh));
	assert_non_null(strstr(sig, "a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=sel;"));
	assert_non_null(strstr(sig, "t=1700000000; h=from;"));
	free(bh);
	free(sig);
	/* An empty body hashes as nothing; a missing final CRLF is added. */
	sig = signature_of("From: a@example.com\r\n\r\n", &pem);
	bh = bh_of("");
	assert_non_null(strstr(sig, bh));
	free(bh);
	free(sig);
	sig = signature_of("From: a@example.com\r\nTo: b@example.org\r\nTo: c@example.org\r\n\r\nx", &pem);
	bh = bh_of("x\r\n");
	assert_non_null(strstr(sig, bh));
	assert_non_null(strstr(sig, "h=from:to:to;"));
	free(bh);
	free(sig);
	/* No From: nothing to sign for. */
	assert_null(signature_of("Subject: x\r\n\r\nbody\r\n", &pem));
	buf_free(&pem);
	buf_free(&txt);
}

static void test_bad_key(void **state)
{
	(void)state;
	struct dkim_signer *s = NULL;
	const char *error = NULL;
	assert_int_equal(dkim_signer_new("not a key", 9, "example.com", "s", &s, &error), -1);
	assert_non_null(error);
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relaxed_header),
		cmocka_unit_test(test_body_and_fields),
		cmocka_unit_test(test_bad_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
