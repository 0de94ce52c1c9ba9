/* Every message of the shared corpus parses, gives the same result in any chunking,
 * and survives a serialise/deserialise round trip. The corpus directory is argv[1] or
 * $SARN_MIME_CORPUS; the test is skipped when it is absent. */
#include "mime-test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *corpus_dir;

static unsigned char *read_file(const char *path, size_t *len_r)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	unsigned char *data = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*len_r = got;
	return data;
}

static void check_message(const char *path)
{
	size_t len;
	unsigned char *data = read_file(path, &len);
	struct mime_result *whole = mime_parse_buffer(data, len, NULL);
	struct buf a = {0}, b = {0};
	serialize(whole, &a);

	static const size_t chunks[] = {1, 2, 3, 7, 64, 1000, 4096};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct mime_result *res = parse_chunked(data, len, chunks[i]);
		serialize(res, &b);
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
			fail_msg("%s: chunk size %zu changes the result", path, chunks[i]);
		mime_result_free(&res);
	}

	struct mime_result *back = mime_result_deserialize(a.data, a.len);
	if (back == NULL)
		fail_msg("%s: deserialize failed", path);
	serialize(back, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		fail_msg("%s: round trip changes the result", path);

	/* structural sanity: parts lie inside the message, children inside parents */
	for (unsigned int i = 0; i < mime_result_part_count(whole); i++) {
		const struct mime_part *p = mime_result_part(whole, i);
		assert_true(p->body_offset + p->body_size <= len);
		assert_int_equal(p->header_offset + p->header_size, p->body_offset);
		if (i > 0) {
			const struct mime_part *q = mime_result_part(whole, p->parent);
			assert_true(p->header_offset >= q->body_offset);
			assert_true(p->body_offset + p->body_size <= q->body_offset + q->body_size);
		}
	}
	assert_int_equal(mime_result_size(whole), len);

	mime_result_free(&back);
	mime_result_free(&whole);
	buf_free(&a);
	buf_free(&b);
	free(data);
}

static int is_eml(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 4 && strcmp(d->d_name + n - 4, ".eml") == 0;
}

static int check_dir(const char *dir)
{
	struct dirent **list;
	int n = scandir(dir, &list, is_eml, alphasort);
	for (int i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		check_message(path);
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	return n < 0 ? 0 : n;
}

static void test_corpus(void **state)
{
	(void)state;
	int n = check_dir(corpus_dir);
	if (n == 0)
		skip();
	/* raw/ keeps the original bytes (bare LF, bare CR) of some messages */
	char raw[4096];
	snprintf(raw, sizeof(raw), "%s/raw", corpus_dir);
	n += check_dir(raw);
	printf("corpus: %d messages checked\n", n);
}

int main(int argc, char **argv)
{
	corpus_dir = argc > 1 ? argv[1] : getenv("SARN_MIME_CORPUS");
	if (corpus_dir == NULL || access(corpus_dir, R_OK) != 0) {
		printf("corpus directory not found, skipping\n");
		return 77; /* meson: skipped */
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
