/* The configuration loader: defaults, every value kind, and errors that name the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

static void test_defaults(void **state)
{
	(void)state;
	struct config cfg;
	config_defaults(&cfg);
	assert_string_equal(cfg.data_dir, "./sarn-data");
	assert_string_equal(cfg.listen[LISTEN_POP3], "127.0.0.1:1110");
	assert_string_equal(cfg.listen[LISTEN_LMTP], "127.0.0.1:2424");
	assert_int_equal(cfg.max_message_size, 50 * 1024 * 1024);
	assert_int_equal(cfg.plaintext_auth, PLAINTEXT_AUTH_LOOPBACK);
	assert_true(cfg.pop3_lock);
	config_free(&cfg);
}

static void test_values(void **state)
{
	(void)state;
	struct config cfg;
	config_defaults(&cfg);
	char *err = NULL;
	int r = config_load_string(&cfg,
		"; comment\n[server]\ndata_dir = /var/lib/sarn\nlog_level = debug\n"
		"[listen]\npop3 = [::1]:110\nsmtp =\n"
		"[limits]\nmax_message_size = 20M\nmax_line_length = 64k\n"
		"[auth]\nplaintext_auth = never\n[pop3]\nretention_days = 14\nlock = no\n",
		"t", &err);
	assert_int_equal(r, 0);
	assert_string_equal(cfg.data_dir, "/var/lib/sarn");
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_string_equal(cfg.listen[LISTEN_POP3], "[::1]:110");
	assert_null(cfg.listen[LISTEN_SMTP]); /* empty turns a listener off */
	assert_int_equal(cfg.max_message_size, 20 * 1024 * 1024);
	assert_int_equal(cfg.max_line_length, 64 * 1024);
	assert_int_equal(cfg.plaintext_auth, PLAINTEXT_AUTH_NEVER);
	assert_int_equal(cfg.pop3_retention_days, 14);
	assert_false(cfg.pop3_lock);
	config_free(&cfg);
}

static void test_errors_name_the_line(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *expect;
	} cases[] = {
		{"[limits]\nmax_message_size = lots\n", "t: line 2: [limits] max_message_size: invalid value"},
		{"[limits]\nmax_line_length = 10\n", "t: line 2: [limits] max_line_length: invalid value"},
		{"[server]\n\nnope = 1\n", "t: line 3: [server] nope: unknown setting"},
		{"[auth]\nplaintext_auth = sometimes\n", "t: line 2: [auth] plaintext_auth: invalid value"},
		{"[pop3]\nlock = perhaps\n", "t: line 2: [pop3] lock: invalid value"},
		{"[limits]\nmax_connections = -1\n", "t: line 2: [limits] max_connections: invalid value"},
		{"[limits\n", "t: line 1: syntax error"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config cfg;
		config_defaults(&cfg);
		char *err = NULL;
		assert_int_equal(config_load_string(&cfg, cases[i].text, "t", &err), -1);
		assert_non_null(err);
		assert_memory_equal(err, cases[i].expect, strlen(cases[i].expect));
		free(err);
		config_free(&cfg);
	}
}

static void test_snapshots(void **state)
{
	(void)state;
	struct config cfg;
	config_defaults(&cfg);
	config_publish(config_dup(&cfg));
	const struct config *first = config_current();
	cfg.max_recipients = 7;
	config_publish(config_dup(&cfg));
	assert_int_equal(config_current()->max_recipients, 7);
	assert_int_equal(first->max_recipients, 1000); /* an old snapshot stays readable */
	config_retire_all();
	assert_null(config_current());
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_snapshots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
