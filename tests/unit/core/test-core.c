/* Unit tests for src/core/buf.c and src/core/util.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/util.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- buf ---- */

static void test_buf_append(void **state)
{
	(void)state;
	struct buf b = {0};
	buf_append(&b, "abc", 3);
	buf_append(&b, "", 0);
	buf_append(&b, "\0x", 2); /* NUL bytes are data */
	buf_append_str(&b, "yz");
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "abc\0xyz", 7);
	assert_true(b.cap > b.len);

	/* Growth across many reallocations keeps the contents. */
	for (int i = 0; i < 1000; i++)
		buf_append(&b, "0123456789", 10);
	assert_int_equal(b.len, 7 + 10000);
	for (int i = 0; i < 1000; i++)
		assert_memory_equal(b.data + 7 + 10 * i, "0123456789", 10);

	assert_string_equal(buf_cstr(&b) + b.len - 3, "789");
	assert_int_equal(b.data[b.len], '\0');
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_buf_cstr_empty(void **state)
{
	(void)state;
	struct buf b = {0};
	assert_string_equal(buf_cstr(&b), "");
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_buf_printf(void **state)
{
	(void)state;
	struct buf b = {0};
	buf_printf(&b, "%s=%d", "n", 42);
	buf_printf(&b, " %05u", 7u);
	assert_int_equal(b.len, strlen("n=42 00007"));
	assert_string_equal(buf_cstr(&b), "n=42 00007");

	/* A long expansion (larger than any initial capacity). */
	char big[5000];
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	buf_clear(&b);
	assert_int_equal(b.len, 0);
	buf_printf(&b, "[%s]", big);
	assert_int_equal(b.len, sizeof big + 1);
	assert_int_equal(b.data[0], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[2500], 'q');
	buf_free(&b);

	char *s = xasprintf("%s-%lu", "x", 12345UL);
	assert_string_equal(s, "x-12345");
	free(s);
	s = xasprintf("%s", "");
	assert_string_equal(s, "");
	free(s);
}

static void test_buf_consume(void **state)
{
	(void)state;
	struct buf b = {0};
	buf_append_str(&b, "hello world");
	buf_consume(&b, 0);
	assert_int_equal(b.len, 11);
	buf_consume(&b, 6);
	assert_int_equal(b.len, 5);
	assert_string_equal(buf_cstr(&b), "world");
	buf_consume(&b, 5);
	assert_int_equal(b.len, 0);
	buf_append_str(&b, "abc");
	buf_consume(&b, 100); /* more than held: empties */
	assert_int_equal(b.len, 0);
	buf_append_str(&b, "again");
	assert_string_equal(buf_cstr(&b), "again");
	buf_free(&b);
}

static void test_xstr(void **state)
{
	(void)state;
	char *s = xstrndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);
	s = xstrdup("");
	assert_string_equal(s, "");
	free(s);
	unsigned char *z = xcalloc(16, 4);
	for (int i = 0; i < 64; i++)
		assert_int_equal(z[i], 0);
	z = xrealloc(z, 128);
	z[127] = 1;
	free(z);
	free(xmalloc(0));
}

/* ---- base64 ---- */

static const struct {
	const char *plain;
	const char *b64;
} b64_vectors[] = {
	/* RFC 4648 §10 */
	{"", ""},
	{"f", "Zg=="},
	{"fo", "Zm8="},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg=="},
	{"fooba", "Zm9vYmE="},
	{"foobar", "Zm9vYmFy"},
};

static void test_base64_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof b64_vectors / sizeof b64_vectors[0]; i++) {
		const char *plain = b64_vectors[i].plain, *b64 = b64_vectors[i].b64;
		char *enc = base64_encode((const unsigned char *)plain, strlen(plain));
		assert_string_equal(enc, b64);
		free(enc);
		unsigned char out[64];
		long n = base64_decode(b64, strlen(b64), out);
		assert_int_equal(n, (long)strlen(plain));
		assert_memory_equal(out, plain, (size_t)n);
	}
}

static void test_base64_roundtrip(void **state)
{
	(void)state;
	unsigned char in[300], out[(400 / 4 + 1) * 3];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 37 + 11); /* every byte value appears, incl. 0 */
	for (size_t len = 0; len <= sizeof in; len++) {
		char *enc = base64_encode(in, len);
		size_t elen = strlen(enc);
		assert_int_equal(elen, 4 * ((len + 2) / 3));
		assert_true(elen / 4 * 3 <= sizeof out);
		long n = base64_decode(enc, elen, out);
		assert_int_equal(n, (long)len);
		assert_memory_equal(out, in, len);
		free(enc);
	}
}

static void test_base64_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"Zg=",       /* length not a multiple of 4 */
		"Zm9",       /* missing padding */
		"Z",         /* truncated */
		"Z===",      /* too much padding */
		"====",      /* padding only */
		"Zm9v!A==",  /* character outside the alphabet */
		"Zm 9",      /* space */
		"Zm9v\r\n",  /* line break */
		"Zg==Zg==",  /* data after padding */
		"Zg=a",      /* data after padding in one quantum */
		"Zm-_",      /* base64url is not base64 */
	};
	unsigned char out[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long n = base64_decode(bad[i], strlen(bad[i]), out);
		if (n != -1)
			fail_msg("accepted invalid base64 \"%s\"", bad[i]);
	}
	/* An embedded NUL is not a base64 character. */
	assert_int_equal(base64_decode("Zm\0v", 4, out), -1);
}

/* ---- numbers and tokens ---- */

static void test_parse_u64(void **state)
{
	(void)state;
	uint64_t v = 99;
	assert_int_equal(parse_u64("0", 1, UINT64_MAX, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("12345", 5, UINT64_MAX, &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(parse_u64("12345", 3, UINT64_MAX, &v), 0); /* counted */
	assert_int_equal(v, 123);
	assert_int_equal(parse_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);

	v = 7;
	assert_int_equal(parse_u64("18446744073709551616", 20, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("99999999999999999999", 20, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("184467440737095516150", 21, UINT64_MAX, &v), -1);
	assert_int_equal(v, 7); /* untouched on failure */

	assert_int_equal(parse_u64("99", 2, 99, &v), 0);
	assert_int_equal(v, 99);
	assert_int_equal(parse_u64("100", 3, 99, &v), -1);
	assert_int_equal(parse_u64("4294967296", 10, UINT32_MAX, &v), -1);
	assert_int_equal(parse_u64("4294967295", 10, UINT32_MAX, &v), 0);
	assert_true(v == UINT32_MAX);

	assert_int_equal(parse_u64("", 0, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("-1", 2, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("+1", 2, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64(" 1", 2, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("1a", 2, UINT64_MAX, &v), -1);
	assert_int_equal(parse_u64("1\0", 2, UINT64_MAX, &v), -1);
}

static void test_token_eq(void **state)
{
	(void)state;
	assert_true(token_eq("LOGIN", 5, "login"));
	assert_true(token_eq("LoGiN", 5, "LOGIN"));
	assert_true(token_eq("LOGINX", 5, "login")); /* counted: only 5 bytes are the token */
	assert_false(token_eq("LOG", 3, "login"));
	assert_false(token_eq("LOGIN", 5, "logout"));
	assert_false(token_eq("LOGIN", 5, "login2"));
	assert_true(token_eq("", 0, ""));
	assert_false(token_eq("", 0, "x"));
}

static void test_ascii_lower(void **state)
{
	(void)state;
	char s[] = "MiXeD@Example.COM-09_\xc3\x84";
	ascii_lower(s);
	assert_string_equal(s, "mixed@example.com-09_\xc3\x84"); /* non-ASCII untouched */
}

static void test_random_hex(void **state)
{
	(void)state;
	char *a = random_hex(16), *b = random_hex(16);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	char *e = random_hex(0);
	assert_string_equal(e, "");
	free(e);
}

/* ---- files ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_files(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/sarn-test-core-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir);

	/* mkdir_p: nested, idempotent. */
	char *deep = xasprintf("%s/a/b/c", dir);
	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(mkdir_p(deep, 0700), 0);
	struct stat st;
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* mkdir_p fails below a regular file. */
	char *file = xasprintf("%s/a/file", dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static const char data[] = "some bytes\0with a NUL";
	assert_int_equal(write_full(fd, data, sizeof data), 0);
	close(fd);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_size, sizeof data);
	char *under = xasprintf("%s/x/y", file);
	assert_int_equal(mkdir_p(under, 0700), -1);

	assert_int_equal(fsync_parent_dir(file), 0);

	/* write_full to a pipe, and to a bad descriptor. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_full(p[1], "abc", 3), 0);
	close(p[1]);
	char rd[8];
	assert_int_equal(read(p[0], rd, sizeof rd), 3);
	close(p[0]);
	assert_int_equal(write_full(-1, "x", 1), -1);

	free(under);
	free(file);
	free(deep);
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_append),
		cmocka_unit_test(test_buf_cstr_empty),
		cmocka_unit_test(test_buf_printf),
		cmocka_unit_test(test_buf_consume),
		cmocka_unit_test(test_xstr),
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_invalid),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_token_eq),
		cmocka_unit_test(test_ascii_lower),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
