/* Parse throughput and memory of src/mime (not a test: see README.md).
 *
 *   mime-bench [CORPUS_DIR]
 *
 * 1. corpus: every *.eml of CORPUS_DIR parsed from memory, repeated until ~200 MB went
 *    through; MB/s and messages/s.
 * 2. mailbox: 2000 generated messages (text, quoted-printable, HTML alternative, base64
 *    attachments, a nested message/rfc822), ~150 MB; MB/s.
 * 3. big message: a 50 MB multipart message generated and fed in 64 KiB chunks by a
 *    child process that never holds the message; the child's peak RSS is reported.
 */
#include "core/buf.h"
#include "mime/mime.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void parse_mem(const unsigned char *data, size_t len)
{
	struct mime_parser *mp = mime_parser_new(NULL);
	for (size_t i = 0; i < len; i += 65536)
		mime_parser_feed(mp, data + i, len - i < 65536 ? len - i : 65536);
	struct mime_result *res = mime_parser_finish(mp);
	mime_parser_free(&mp);
	mime_result_free(&res);
}

struct msg {
	unsigned char *data;
	size_t len;
};

static void bench_set(const char *what, struct msg *msgs, size_t n, size_t target)
{
	size_t total = 0, count = 0;
	double t0 = now();
	while (total < target || count < n) {
		for (size_t i = 0; i < n; i++) {
			parse_mem(msgs[i].data, msgs[i].len);
			total += msgs[i].len;
			count++;
		}
	}
	double dt = now() - t0;
	printf("%-8s %6zu messages %8.1f MB in %6.2f s: %7.1f MB/s, %8.0f messages/s\n", what, n,
	       (double)total / 1e6, dt, (double)total / 1e6 / dt, (double)count / dt);
}

static size_t load_corpus(const char *dir, struct msg **out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0)
			continue;
		unsigned char *buf = xmalloc((size_t)st.st_size + 1);
		ssize_t r = read(fd, buf, (size_t)st.st_size);
		close(fd);
		if (r < 0) {
			free(buf);
			continue;
		}
		*out = xrealloc(*out, (n + 1) * sizeof(**out));
		(*out)[n].data = buf;
		(*out)[n].len = (size_t)r;
		n++;
	}
	closedir(d);
	return n;
}

static void b64_lines(struct buf *b, size_t bytes, unsigned int seed)
{
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[78];
	for (size_t done = 0; done < bytes; done += 57) {
		for (int i = 0; i < 76; i++) {
			seed = seed * 1103515245 + 12345;
			line[i] = alpha[(seed >> 16) & 63];
		}
		line[76] = '\r';
		line[77] = '\n';
		buf_append(b, line, 78);
	}
}

static void gen_message(struct buf *b, unsigned int i)
{
	buf_printf(b, "From: Sender %u <sender%u@example.com>\r\nTo: rcpt@example.org, "
		      "\"Other, Person\" <other@example.net>\r\nSubject: =?utf-8?q?Message_%u_caf=C3=A9?="
		      "\r\nDate: Mon, 1 Jan 2024 12:%02u:00 +0100\r\nMessage-ID: <%u@example.com>\r\n"
		      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_outer_%u\"\r\n\r\n"
		      "This is a multi-part message in MIME format.\r\n--=_outer_%u\r\n"
		      "Content-Type: multipart/alternative; boundary=\"=_alt_%u\"\r\n\r\n--=_alt_%u\r\n"
		      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
		      "quoted-printable\r\n\r\n",
		   i, i, i, i % 60, i, i, i, i, i);
	for (int l = 0; l < 40; l++)
		buf_append_str(b, "Lorem ipsum dolor sit amet, consectetur adipiscing elit, caf=C3=A9 =\r\n"
				  "sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\r\n");
	buf_printf(b, "--=_alt_%u\r\nContent-Type: text/html; charset=utf-8\r\n\r\n", i);
	for (int l = 0; l < 40; l++)
		buf_append_str(b, "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>\r\n");
	buf_printf(b, "--=_alt_%u--\r\n--=_outer_%u\r\nContent-Type: application/pdf; "
		      "name=\"doc%u.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: "
		      "attachment; filename=\"doc%u.pdf\"\r\n\r\n", i, i, i, i);
	b64_lines(b, (size_t)(i % 7 + 1) * 10000, i);
	buf_printf(b, "--=_outer_%u\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\n"
		      "Subject: forwarded\r\n\r\nForwarded text.\r\n--=_outer_%u--\r\n", i, i);
}

static void big_message_rss(size_t size)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		long before = ru.ru_maxrss;
		struct mime_parser *mp = mime_parser_new(NULL);
		struct buf b = {0};
		size_t fed = 0;
		unsigned int part = 0;
		double t0 = now();
		buf_append_str(&b, "From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
				   "Content-Type: multipart/mixed; boundary=BIG\r\n\r\n");
		while (fed < size) {
			if (b.len < 65536) {
				buf_printf(&b, "--BIG\r\nContent-Type: application/octet-stream\r\n"
					       "Content-Transfer-Encoding: base64\r\n\r\n");
				b64_lines(&b, 1024 * 1024, part++);
			}
			size_t n = b.len < 65536 ? b.len : 65536;
			mime_parser_feed(mp, b.data, n);
			buf_consume(&b, n);
			fed += n;
		}
		mime_parser_feed(mp, b.data, b.len);
		fed += b.len;
		mime_parser_feed(mp, (const unsigned char *)"\r\n--BIG--\r\n", 11);
		fed += 11;
		struct mime_result *res = mime_parser_finish(mp);
		double dt = now() - t0;
		getrusage(RUSAGE_SELF, &ru);
		printf("big      %6.1f MB message, %u parts, %.2f s (%.1f MB/s): peak RSS %ld KiB "
		       "(%ld KiB before parsing)\n", (double)fed / 1e6,
		       mime_result_part_count(res), dt, (double)fed / 1e6 / dt, ru.ru_maxrss, before);
		mime_result_free(&res);
		mime_parser_free(&mp);
		buf_free(&b);
		exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
}

int main(int argc, char **argv)
{
	big_message_rss(50 * 1000 * 1000);

	struct msg *corpus = NULL;
	size_t n = argc > 1 ? load_corpus(argv[1], &corpus) : 0;
	if (n > 0)
		bench_set("corpus", corpus, n, 200 * 1000 * 1000);
	else
		printf("corpus   (no corpus directory given or empty)\n");

	struct msg *box = xcalloc(2000, sizeof(*box));
	for (unsigned int i = 0; i < 2000; i++) {
		struct buf b = {0};
		gen_message(&b, i);
		box[i].data = b.data;
		box[i].len = b.len;
	}
	bench_set("mailbox", box, 2000, 0);
	for (size_t i = 0; i < n; i++)
		free(corpus[i].data);
	free(corpus);
	for (unsigned int i = 0; i < 2000; i++)
		free(box[i].data);
	free(box);
	return 0;
}
