/* mime-dump FILE...: prints what sarn's parser stores for each message, for the Dovecot
 * comparison (tests/interop) and for people. Values that may hold any byte are written
 * as "KEY <length>\n<bytes>\n". */
#include "core/buf.h"
#include "mime/mime.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(const char *key, const char *value)
{
	if (value == NULL) {
		printf("%s -1\n\n", key);
		return;
	}
	printf("%s %zu\n", key, strlen(value));
	fwrite(value, 1, strlen(value), stdout);
	putchar('\n');
}

static void dump(const char *path, size_t chunk)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	struct mime_result *res;
	if (chunk == 0) {
		res = mime_parse_fd(fd, NULL);
	} else {
		struct mime_parser *mp = mime_parser_new(NULL);
		unsigned char *b = malloc(chunk);
		ssize_t r;
		while ((r = read(fd, b, chunk)) > 0)
			mime_parser_feed(mp, b, (size_t)r);
		free(b);
		res = mime_parser_finish(mp);
		mime_parser_free(&mp);
	}
	close(fd);
	if (res == NULL) {
		perror(path);
		exit(1);
	}
	put("FILE", path);
	printf("SIZE %llu\n", (unsigned long long)mime_result_size(res));
	put("ENVELOPE", mime_result_envelope(res));
	put("BODYSTRUCTURE", mime_result_bodystructure(res));
	put("BODY", mime_result_body(res));
	for (unsigned int i = 0; i < mime_result_part_count(res); i++) {
		const struct mime_part *p = mime_result_part(res, i);
		char sec[256];
		mime_result_part_section(res, i, sec, sizeof(sec));
		printf("PART %u section=%s depth=%u kind=%u enc=%u hoff=%llu hsize=%llu boff=%llu "
		       "bsize=%llu lines=%llu decoded=%llu\n",
		       i, sec[0] ? sec : "-", p->depth, p->kind, p->encoding,
		       (unsigned long long)p->header_offset, (unsigned long long)p->header_size,
		       (unsigned long long)p->body_offset, (unsigned long long)p->body_size,
		       (unsigned long long)p->body_lines, (unsigned long long)p->decoded_size);
	}
	const struct mime_sort_fields *sf = mime_result_sort_fields(res);
	put("BASE-SUBJECT", sf->base_subject);
	put("FROM", sf->from.addr);
	put("TO", sf->to.addr);
	put("CC", sf->cc.addr);
	put("DISPLAY-FROM", sf->from.display);
	if (sf->has_date)
		printf("DATE %lld %d\n", (long long)sf->date, sf->tz_offset);
	else
		printf("DATE none\n");
	put("MESSAGE-ID", sf->message_id);
	put("IN-REPLY-TO", sf->in_reply_to);
	put("REFERENCES", sf->references);
	printf("END\n");
	mime_result_free(&res);
}

int main(int argc, char **argv)
{
	size_t chunk = 0;
	int i = 1;
	if (argc > 2 && strcmp(argv[1], "--chunk") == 0) {
		chunk = (size_t)strtoul(argv[2], NULL, 10);
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: mime-dump [--chunk N] FILE...\n");
		return 2;
	}
	for (; i < argc; i++)
		dump(argv[i], chunk);
	return 0;
}
