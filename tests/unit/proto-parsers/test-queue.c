/* The outbound queue's files (write, read back, replace, list, lock, malformed input),
 * xtext (RFC 3461 §4) and SMTP path quoting. Delivery itself is tested end to end in
 * tests/proto/test_queue.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"
#include "smtp/outbound.h"
#include "smtp/queue.h"
#include "smtp/smtp-private.h"

static char *make_dir(void)
{
	char tmpl[] = "/tmp/sarn-queue-test-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *dir = xstrdup(tmpl);
	assert_int_equal(queue_init(dir), 0);
	return dir;
}

static char *make_message_file(const char *dir)
{
	char *path = xasprintf("%s/spool-file", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, "Subject: x\r\n\r\nbody\r\n", 20), 0);
	close(fd);
	return path;
}

static void remove_tree(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void test_roundtrip(void **state)
{
	(void)state;
	char *dir = make_dir();
	char *file = make_message_file(dir);
	struct queue_msg m = {.from = xstrdup("alice@example.com"), .envid = xstrdup("env 1"),
			      .ret_hdrs = true, .smtputf8 = true, .created = 1700000000,
			      .next_attempt = 1700000060};
	queue_rcpt_add(&m, "bob@remote.example", DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
		       "rfc822;bob@remote.example");
	queue_rcpt_add(&m, "carol@remote.example", 0, NULL);
	assert_int_equal(queue_enqueue(dir, file, &m), 0);
	assert_true(queue_id_valid(m.id));

	struct queue_msg back;
	assert_int_equal(queue_load(dir, m.id, &back), 0);
	assert_string_equal(back.from, "alice@example.com");
	assert_string_equal(back.envid, "env 1");
	assert_true(back.ret_hdrs && back.smtputf8);
	assert_int_equal(back.created, 1700000000);
	assert_int_equal(back.next_attempt, 1700000060);
	assert_int_equal(back.nrcpts, 2);
	assert_string_equal(back.rcpts[0].orcpt, "rfc822;bob@remote.example");
	assert_int_equal(back.rcpts[0].notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	assert_null(back.rcpts[1].orcpt);
	assert_int_equal(back.rcpts[1].state, QUEUE_PENDING);

	/* A remote reply with control characters is stored on one line. */
	back.rcpts[1].state = QUEUE_FAILED;
	back.rcpts[1].reported = true;
	strcpy(back.rcpts[1].status, "5.1.1");
	back.rcpts[1].reply = xstrdup("550 5.1.1 no\tsuch\r\nuser");
	back.attempts = 3;
	assert_int_equal(queue_save(dir, &back), 0);
	struct queue_msg again;
	assert_int_equal(queue_load(dir, m.id, &again), 0);
	assert_int_equal(again.attempts, 3);
	assert_int_equal(again.rcpts[1].state, QUEUE_FAILED);
	assert_true(again.rcpts[1].reported);
	assert_string_equal(again.rcpts[1].status, "5.1.1");
	assert_string_equal(again.rcpts[1].reply, "550 5.1.1 no such  user");

	char **ids;
	size_t n;
	assert_int_equal(queue_ids(dir, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], m.id);
	queue_ids_free(ids, n);

	/* The lock is exclusive between open file descriptions. */
	int fd = queue_lock(dir, m.id);
	assert_true(fd >= 0);
	assert_int_equal(queue_lock(dir, m.id), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(fd);

	queue_remove(dir, m.id);
	queue_msg_free(&back);
	assert_int_equal(queue_load(dir, m.id, &back), -1);
	assert_int_equal(queue_ids(dir, &ids, &n), 0);
	assert_int_equal(n, 0);

	queue_msg_free(&m);
	queue_msg_free(&again);
	queue_msg_free(&back);
	remove_tree(dir);
	free(file);
	free(dir);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"sarn-queue 2\nfrom\ta@b.c\nrcpt\tpending\t0\t0\t-\tx@y.z\t-\t-\n",
		"sarn-queue 1\nrcpt\tpending\t0\t0\t-\tx@y.z\t-\t-\n",          /* no sender */
		"sarn-queue 1\nfrom\ta@b.c\n",                                   /* no recipient */
		"sarn-queue 1\nfrom\ta@b.c\nrcpt\tgone\t0\t0\t-\tx@y.z\t-\t-\n", /* bad state */
		"sarn-queue 1\nfrom\ta@b.c\nrcpt\tpending\t0\t0\t-\tx@y.z\n",   /* short */
		"sarn-queue 1\nfrom\ta@b.c\nrcpt\tpending\t0\t0\t-\tx@y.z\t-\t-\textra\n",
		"sarn-queue 1\nfrom\ta@b.c\nunknown\t1\nrcpt\tpending\t0\t0\t-\tx@y.z\t-\t-\n",
		"sarn-queue 1\nfrom\ta@b.c\nrcpt\tpending\t0\t0\t5.1.1.1.1.1.1.1.1.1\tx@y.z\t-\t-\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct queue_msg m;
		assert_int_equal(queue_parse(bad[i], strlen(bad[i]), &m), -1);
		assert_null(m.from);
		assert_null(m.rcpts);
	}
	/* An embedded NUL is not a valid file either. */
	static const char nul[] = "sarn-queue 1\nfrom\ta@b.c\0\nrcpt\tpending\t0\t0\t-\tx@y.z\t-\t-\n";
	struct queue_msg m;
	assert_int_equal(queue_parse(nul, sizeof nul - 1, &m), -1);
	static const char good[] = "sarn-queue 1\nfrom\t\nrcpt\tsent\t2\t1\t2.0.0\tx@y.z\t-\t250 ok\n";
	assert_int_equal(queue_parse(good, strlen(good), &m), 0);
	assert_string_equal(m.from, "");
	assert_int_equal(m.rcpts[0].state, QUEUE_SENT);
	assert_string_equal(m.rcpts[0].reply, "250 ok");
	queue_msg_free(&m);
	assert_false(queue_id_valid("../../etc/passwd"));
	assert_false(queue_id_valid("0123456789ABCDEF"));
	assert_true(queue_id_valid("0123456789abcdef"));
}

static void test_xtext(void **state)
{
	(void)state;
	char a[] = "abc+2Bdef+3D";
	assert_int_equal(smtp_xtext_decode(a), 0);
	assert_string_equal(a, "abc+def=");
	char b[] = "a+2";
	assert_int_equal(smtp_xtext_decode(b), -1);
	char c[] = "a=b";
	assert_int_equal(smtp_xtext_decode(c), -1);
	char d[] = "tab+09here"; /* control characters never reach the queue files */
	assert_int_equal(smtp_xtext_decode(d), -1);
}

static void test_format_path(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"john.doe@example.com", "john.doe@example.com"},
		{"john doe@example.com", "\"john doe\"@example.com"},
		{"a\"b@example.com", "\"a\\\"b\"@example.com"},
		{".lead@example.com", "\".lead\"@example.com"},
		{"two..dots@example.com", "\"two..dots\"@example.com"},
		{"user@remote@example.com", "\"user@remote\"@example.com"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = {0};
		smtp_format_path(cases[i][0], &b);
		assert_string_equal(buf_cstr(&b), cases[i][1]);
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_format_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
