/* Unit tests for src/auth/auth.c: accounts, passwords, aliases, recipients, retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "core/buf.h"

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct fixture {
	char dir[64];
	struct auth_db *db;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "%s", "/tmp/sarn-test-auth-XXXXXX");
	if (mkdtemp(f->dir) == NULL || auth_db_open(f->dir, &f->db) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	auth_db_close(&f->db);
	assert_null(f->db);
	int r = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return r;
}

/* Expects auth_verify to give r (and, when 1, the account). */
static void expect_verify(struct auth_db *db, const char *addr, const char *pw, int r,
			  const char *account)
{
	char *got = (char *)"unset";
	assert_int_equal(auth_verify(db, addr, pw, &got), r);
	if (r == 1) {
		assert_non_null(got);
		assert_string_equal(got, account);
		free(got);
	} else {
		assert_null(got);
	}
}

/* Expects auth_resolve_rcpt to map rcpt to account (NULL: unknown). */
static void expect_rcpt(struct auth_db *db, const char *rcpt, const char *account)
{
	char *got = (char *)"unset";
	int r = auth_resolve_rcpt(db, rcpt, &got);
	if (account == NULL) {
		if (r != 0)
			fail_msg("%s resolved to %s", rcpt, r == 1 ? got : "(error)");
		assert_null(got);
		return;
	}
	if (r != 1)
		fail_msg("%s did not resolve (r=%d), expected %s", rcpt, r, account);
	assert_string_equal(got, account);
	free(got);
}

static void test_address_valid(void **state)
{
	(void)state;
	static const char *const good[] = {
		"alice@example.com",
		"a@b.c",
		"Alice.Smith@Example.COM",
		"user+tag@example.com",
		"x@localhost",
		"x@LocalHost",
		"o'brien@example.ie",
		"a!#$%&*=?^_`{|}~-@sub.example.co.uk",
		"u@xn--bcher-kva.example",
		"u@my_host.example.com",
		"u@123.example",
		"_@e.x",
	};
	static const char *const bad[] = {
		"",
		"alice",
		"@example.com",
		"alice@",
		"alice@@example.com",
		"a@b@example.com",
		"alice@example",         /* no dot and not localhost */
		"alice@localhost.",      /* trailing dot */
		"alice@.example.com",    /* leading dot */
		"alice@example..com",
		"alice@example.com.",
		".alice@example.com",
		"al..ice@example.com",
		"alice.@example.com",
		"al ice@example.com",
		"al\tice@example.com",
		"al/ice@example.com",
		"al\\ice@example.com",
		"\"alice\"@example.com",
		"al(ice@example.com",
		"al)ice@example.com",
		"al,ice@example.com",
		"al:ice@example.com",
		"al;ice@example.com",
		"<alice@example.com>",
		"al[ice@example.com",
		"al]ice@example.com",
		"al\x7f@example.com",
		"al\x01ice@example.com",
		"\xc3\xa4lice@example.com", /* non-ASCII */
		"alice@exa mple.com",
		"alice@exa/mple.com",
		"alice@[127.0.0.1]",
		"alice@-example.com",
		"alice@example-.com",
		"alice@exa!mple.com",
		"../../etc@example.com",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!auth_address_valid(good[i]))
			fail_msg("refused valid address \"%s\"", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (auth_address_valid(bad[i]))
			fail_msg("accepted invalid address \"%s\"", bad[i]);
	assert_false(auth_address_valid(NULL));

	/* Length limits: local part 64, label 63, total 254. */
	char local64[80], addr[400];
	memset(local64, 'l', 64);
	local64[64] = '\0';
	snprintf(addr, sizeof addr, "%s@example.com", local64);
	assert_true(auth_address_valid(addr));
	snprintf(addr, sizeof addr, "%sl@example.com", local64);
	assert_false(auth_address_valid(addr));

	char label63[64];
	memset(label63, 'd', 63);
	label63[63] = '\0';
	snprintf(addr, sizeof addr, "u@%s.com", label63);
	assert_true(auth_address_valid(addr));
	snprintf(addr, sizeof addr, "u@%sd.com", label63);
	assert_false(auth_address_valid(addr));

	/* u@ + 4 labels of 61 + dots = 254 in total. */
	char dom[300];
	memset(dom, 'a', sizeof dom);
	for (int i = 1; i <= 3; i++)
		dom[62 * i - 1] = '.';
	dom[62 * 4 - 1] = '\0'; /* 247 octets */
	snprintf(addr, sizeof addr, "uuuuuu@%s", dom);
	assert_int_equal(strlen(addr), 254);
	assert_true(auth_address_valid(addr));
	snprintf(addr, sizeof addr, "uuuuuuu@%s", dom);
	assert_int_equal(strlen(addr), 255);
	assert_false(auth_address_valid(addr));

	char *n = auth_address_normalize("Alice.Smith@Example.COM");
	assert_string_equal(n, "Alice.Smith@example.com");
	free(n);
	assert_null(auth_address_normalize("not an address"));
}

static void test_add_verify(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "alice@example.com", "correct horse"), 1);
	assert_true(auth_user_exists(f->db, "alice@example.com"));
	assert_true(auth_user_exists(f->db, "ALICE@EXAMPLE.COM"));
	assert_false(auth_user_exists(f->db, "alicia@example.com"));

	expect_verify(f->db, "alice@example.com", "correct horse", 1, "alice@example.com");
	expect_verify(f->db, "Alice@Example.Com", "correct horse", 1, "alice@example.com");
	expect_verify(f->db, "alice@example.com", "correct horse ", 0, NULL);
	expect_verify(f->db, "alice@example.com", "Correct horse", 0, NULL);
	expect_verify(f->db, "alice@example.com", "", 0, NULL);
	expect_verify(f->db, "nobody@example.com", "correct horse", 0, NULL);
	expect_verify(f->db, "alice@example.org", "correct horse", 0, NULL);
	expect_verify(f->db, "not an address", "correct horse", 0, NULL);

	/* Local parts are stored as given and matched without case. */
	assert_int_equal(auth_user_add(f->db, "Bob.Jones@EXAMPLE.com", "pw-bob"), 1);
	expect_verify(f->db, "bob.jones@example.com", "pw-bob", 1, "Bob.Jones@example.com");
	char *canon = NULL;
	assert_int_equal(auth_user_canonical(f->db, "BOB.JONES@example.COM", &canon), 1);
	assert_string_equal(canon, "Bob.Jones@example.com");
	free(canon);
	assert_int_equal(auth_user_canonical(f->db, "nobody@example.com", &canon), 0);
	assert_null(canon);
}

static void test_add_invalid(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "no-at-sign", "pw"), -1);
	assert_int_equal(auth_user_add(f->db, "a/b@example.com", "pw"), -1);
	assert_int_equal(auth_user_add(f->db, "carol@example.com", ""), -1);
	assert_int_equal(auth_user_add(f->db, "carol@example.com", NULL), -1);

	char longpw[AUTH_PASSWORD_MAX + 2];
	memset(longpw, 'p', sizeof longpw);
	longpw[AUTH_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(auth_user_add(f->db, "carol@example.com", longpw), -1);
	assert_false(auth_user_exists(f->db, "carol@example.com"));
	expect_verify(f->db, "carol@example.com", longpw, 0, NULL);

	longpw[AUTH_PASSWORD_MAX] = '\0'; /* exactly the maximum */
	assert_int_equal(auth_user_add(f->db, "carol@example.com", longpw), 1);
	expect_verify(f->db, "carol@example.com", longpw, 1, "carol@example.com");
	/* A longer password with the same prefix does not match. */
	longpw[AUTH_PASSWORD_MAX] = 'p';
	expect_verify(f->db, "carol@example.com", longpw, 0, NULL);
}

static void test_duplicate(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "dup@example.com", "first"), 1);
	assert_int_equal(auth_user_add(f->db, "dup@example.com", "second"), 0);
	assert_int_equal(auth_user_add(f->db, "DUP@Example.COM", "third"), 0);
	/* The original password is untouched. */
	expect_verify(f->db, "dup@example.com", "first", 1, "dup@example.com");
	expect_verify(f->db, "dup@example.com", "second", 0, NULL);
}

static void test_del(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "Gone@example.com", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "stays@example.com", "pw"), 1);
	assert_int_equal(auth_alias_add(f->db, "old@example.com", "gone@example.com"), 1);
	assert_int_equal(auth_alias_add(f->db, "@example.com", "gone@example.com"), 1);
	assert_int_equal(auth_alias_add(f->db, "other@example.com", "stays@example.com"), 1);
	expect_rcpt(f->db, "old@example.com", "Gone@example.com");

	assert_int_equal(auth_user_del(f->db, "gone@EXAMPLE.com"), 1);
	assert_false(auth_user_exists(f->db, "gone@example.com"));
	expect_verify(f->db, "gone@example.com", "pw", 0, NULL);
	/* Aliases to it went with it; others stay; the domain stays. */
	expect_rcpt(f->db, "old@example.com", NULL);
	expect_rcpt(f->db, "random@example.com", NULL);
	expect_rcpt(f->db, "other@example.com", "stays@example.com");
	assert_int_equal(auth_alias_del(f->db, "old@example.com"), 0);
	assert_true(auth_domain_is_local(f->db, "example.com"));

	assert_int_equal(auth_user_del(f->db, "gone@example.com"), 0);
	assert_int_equal(auth_user_del(f->db, "invalid"), -1);

	/* Deleting the last user of a domain keeps the domain. */
	assert_int_equal(auth_user_add(f->db, "solo@solo.example", "pw"), 1);
	assert_int_equal(auth_user_del(f->db, "solo@solo.example"), 1);
	assert_true(auth_domain_is_local(f->db, "solo.example"));
	/* And the address can be added again. */
	assert_int_equal(auth_user_add(f->db, "solo@solo.example", "pw2"), 1);
	expect_verify(f->db, "solo@solo.example", "pw2", 1, "solo@solo.example");
}

static void test_passwd(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "pw@example.com", "old password"), 1);
	assert_int_equal(auth_user_passwd(f->db, "PW@example.com", "new password"), 1);
	expect_verify(f->db, "pw@example.com", "old password", 0, NULL);
	expect_verify(f->db, "pw@example.com", "new password", 1, "pw@example.com");
	assert_int_equal(auth_user_passwd(f->db, "nobody@example.com", "x"), 0);
	assert_int_equal(auth_user_passwd(f->db, "pw@example.com", ""), -1);
	assert_int_equal(auth_user_passwd(f->db, "bad address", "x"), -1);
	expect_verify(f->db, "pw@example.com", "new password", 1, "pw@example.com");
}

static int grep_file(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return 0;
	struct buf b = {0};
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	int found = b.len > 0 && memmem(b.data, b.len, needle, strlen(needle)) != NULL;
	buf_free(&b);
	return found;
}

static void test_hash_stored(void **state)
{
	struct fixture *f = *state;
	static const char secret[] = "Plaintext-Marker-7f3a9";
	assert_int_equal(auth_user_add(f->db, "hash@example.com", secret), 1);
	assert_int_equal(auth_user_passwd(f->db, "hash@example.com", secret), 1);

	char *path = xasprintf("%s/accounts.db", f->dir);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT hash FROM users WHERE address = "
					       "'hash@example.com'", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *hash = (const char *)sqlite3_column_text(st, 0);
	assert_non_null(hash);
	assert_memory_equal(hash, "$y$", 3);
	assert_null(strstr(hash, secret));
	assert_true(strlen(hash) > 40);
	sqlite3_finalize(st);
	sqlite3_close(h);

	/* The database file is private and no file holds the plaintext. */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);
	char *wal = xasprintf("%s-wal", path);
	assert_false(grep_file(path, secret));
	assert_false(grep_file(wal, secret));
	free(wal);
	free(path);
}

static void test_resolve_rcpt(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "Carol@example.com", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "dave+x@example.com", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "erin@other.example", "pw"), 1);

	/* Exact, case-insensitive. */
	expect_rcpt(f->db, "Carol@example.com", "Carol@example.com");
	expect_rcpt(f->db, "carol@EXAMPLE.COM", "Carol@example.com");
	/* +tag, from the first '+'. */
	expect_rcpt(f->db, "carol+news@example.com", "Carol@example.com");
	expect_rcpt(f->db, "CAROL+a+b@Example.Com", "Carol@example.com");
	expect_rcpt(f->db, "carol+@example.com", "Carol@example.com");
	/* An account with '+' in its name is found exactly first. */
	expect_rcpt(f->db, "dave+x@example.com", "dave+x@example.com");
	expect_rcpt(f->db, "dave+y@example.com", NULL);
	expect_rcpt(f->db, "dave@example.com", NULL);
	/* A leading '+' is not a tag separator. */
	expect_rcpt(f->db, "+carol@example.com", NULL);
	/* Unknown local part, unknown domain, invalid address. */
	expect_rcpt(f->db, "nobody@example.com", NULL);
	expect_rcpt(f->db, "carol@example.net", NULL);
	expect_rcpt(f->db, "carol", NULL);
	expect_rcpt(f->db, "", NULL);

	/* Aliases: exact, then with +tag stripped. */
	assert_int_equal(auth_alias_add(f->db, "Info@Example.COM", "carol@example.com"), 1);
	expect_rcpt(f->db, "info@example.com", "Carol@example.com");
	expect_rcpt(f->db, "INFO+promo@example.com", "Carol@example.com");
	assert_int_equal(auth_alias_add(f->db, "sales+eu@example.com", "erin@other.example"), 1);
	expect_rcpt(f->db, "sales+eu@example.com", "erin@other.example");
	expect_rcpt(f->db, "sales@example.com", NULL);
	/* The +tag-stripped account comes before an exact alias. */
	assert_int_equal(auth_alias_add(f->db, "carol+x@example.com", "erin@other.example"), 1);
	expect_rcpt(f->db, "carol+x@example.com", "Carol@example.com");

	/* Catch-all, for its own domain only, after accounts and aliases. */
	expect_rcpt(f->db, "whoever@other.example", NULL);
	assert_int_equal(auth_alias_add(f->db, "@Other.Example", "erin@other.example"), 1);
	expect_rcpt(f->db, "whoever@other.example", "erin@other.example");
	expect_rcpt(f->db, "x+y@OTHER.example", "erin@other.example");
	expect_rcpt(f->db, "whoever@example.com", NULL);
	expect_rcpt(f->db, "info@example.com", "Carol@example.com");

	/* An alias in a new domain makes the domain local. */
	assert_false(auth_domain_is_local(f->db, "alias-only.example"));
	assert_int_equal(auth_alias_add(f->db, "postmaster@alias-only.example",
					"carol@example.com"), 1);
	assert_true(auth_domain_is_local(f->db, "Alias-Only.example"));
	expect_rcpt(f->db, "postmaster@alias-only.example", "Carol@example.com");
	expect_rcpt(f->db, "abuse@alias-only.example", NULL);

	/* Alias rules. */
	assert_int_equal(auth_alias_add(f->db, "info@example.com", "erin@other.example"), 0);
	assert_int_equal(auth_alias_add(f->db, "INFO@example.com", "carol@example.com"), 0);
	assert_int_equal(auth_alias_add(f->db, "x@example.com", "nobody@example.com"), -1);
	assert_int_equal(auth_alias_add(f->db, "x@example.com", "info@example.com"), -1);
	assert_int_equal(auth_alias_add(f->db, "carol@example.com", "erin@other.example"), -1);
	assert_int_equal(auth_alias_add(f->db, "bad alias@example.com", "carol@example.com"), -1);
	assert_int_equal(auth_alias_add(f->db, "@", "carol@example.com"), -1);
	assert_int_equal(auth_alias_add(f->db, "@nodot", "carol@example.com"), -1);
	assert_int_equal(auth_alias_del(f->db, "INFO@example.com"), 1);
	assert_int_equal(auth_alias_del(f->db, "info@example.com"), 0);
	assert_int_equal(auth_alias_del(f->db, "@other.example"), 1);
	assert_int_equal(auth_alias_del(f->db, "bad"), -1);
	expect_rcpt(f->db, "info@example.com", NULL);
	expect_rcpt(f->db, "whoever@other.example", NULL);

	assert_true(auth_domain_is_local(f->db, "EXAMPLE.com"));
	assert_false(auth_domain_is_local(f->db, "example.net"));
	assert_false(auth_domain_is_local(f->db, ""));
	assert_false(auth_domain_is_local(f->db, NULL));
}

static void test_retention(void **state)
{
	struct fixture *f = *state;
	int days = 99;
	assert_int_equal(auth_user_add(f->db, "ret@example.com", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "ret2@example.com", "pw"), 1);

	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, -1); /* no setting: the server default applies */

	assert_int_equal(auth_retention_set_domain(f->db, "Example.COM", 30), 1);
	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, 30);

	assert_int_equal(auth_retention_set_user(f->db, "RET@example.com", 7), 1);
	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, 7);
	assert_int_equal(auth_retention_get(f->db, "ret2@example.com", &days), 1);
	assert_int_equal(days, 30);

	/* 0 ("keep forever") is a setting, not an absence of one. */
	assert_int_equal(auth_retention_set_user(f->db, "ret@example.com", 0), 1);
	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, 0);

	/* Clearing falls back to the domain, then to "no setting". */
	assert_int_equal(auth_retention_set_user(f->db, "ret@example.com", -1), 1);
	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, 30);
	assert_int_equal(auth_retention_set_domain(f->db, "example.com", -1), 1);
	assert_int_equal(auth_retention_get(f->db, "ret@example.com", &days), 1);
	assert_int_equal(days, -1);

	/* Unknown account or domain, bad values. */
	days = 5;
	assert_int_equal(auth_retention_get(f->db, "nobody@example.com", &days), 0);
	assert_int_equal(days, -1);
	assert_int_equal(auth_retention_set_user(f->db, "nobody@example.com", 3), 0);
	assert_int_equal(auth_retention_set_domain(f->db, "example.net", 3), 0);
	assert_int_equal(auth_retention_set_user(f->db, "ret@example.com", -2), -1);
	assert_int_equal(auth_retention_set_domain(f->db, "example.com", -5), -1);
	assert_int_equal(auth_retention_set_domain(f->db, "not a domain", 3), -1);
}

struct collect {
	struct buf out;
};

static void collect_one(const char *s, void *ctx)
{
	struct collect *c = ctx;
	buf_printf(&c->out, "%s;", s);
}

static void collect_two(const char *a, const char *b, void *ctx)
{
	struct collect *c = ctx;
	buf_printf(&c->out, "%s>%s;", a, b);
}

/* A callback may call back into the module (the lock is not held during callbacks). */
static void collect_reentrant(const char *s, void *ctx)
{
	struct auth_db *db = ctx;
	assert_true(auth_user_exists(db, s));
}

static void test_lists(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "zed@b.example", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "Amy@b.example", "pw"), 1);
	assert_int_equal(auth_user_add(f->db, "max@a.example", "pw"), 1);
	assert_int_equal(auth_alias_add(f->db, "@c.example", "max@a.example"), 1);
	assert_int_equal(auth_alias_add(f->db, "b@b.example", "zed@b.example"), 1);

	struct collect c = {0};
	assert_int_equal(auth_user_list(f->db, collect_one, &c), 0);
	assert_string_equal(buf_cstr(&c.out), "Amy@b.example;max@a.example;zed@b.example;");
	buf_clear(&c.out);
	assert_int_equal(auth_domain_list(f->db, collect_one, &c), 0);
	assert_string_equal(buf_cstr(&c.out), "a.example;b.example;c.example;");
	buf_clear(&c.out);
	assert_int_equal(auth_alias_list(f->db, collect_two, &c), 0);
	assert_string_equal(buf_cstr(&c.out), "@c.example>max@a.example;b@b.example>zed@b.example;");
	buf_free(&c.out);

	assert_int_equal(auth_user_list(f->db, collect_reentrant, f->db), 0);
}

static void test_reopen(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(auth_user_add(f->db, "keep@example.com", "persist"), 1);
	assert_int_equal(auth_retention_set_user(f->db, "keep@example.com", 12), 1);
	auth_db_close(&f->db);
	assert_null(f->db);
	assert_int_equal(auth_db_open(f->dir, &f->db), 0);
	expect_verify(f->db, "keep@example.com", "persist", 1, "keep@example.com");
	int days;
	assert_int_equal(auth_retention_get(f->db, "keep@example.com", &days), 1);
	assert_int_equal(days, 12);

	/* A second handle on the same files (another process, in real life) sees it too. */
	struct auth_db *other = NULL;
	assert_int_equal(auth_db_open(f->dir, &other), 0);
	assert_true(auth_user_exists(other, "keep@example.com"));
	assert_int_equal(auth_user_add(other, "new@example.com", "pw"), 1);
	assert_true(auth_user_exists(f->db, "new@example.com"));
	auth_db_close(&other);

	struct auth_db *none = (struct auth_db *)1;
	assert_int_equal(auth_db_open("/nonexistent/dir/for/sarn", &none), -1);
	assert_null(none);
}

struct thread_arg {
	struct auth_db *db;
	int index;
	int failures;
};

static void *verify_thread(void *p)
{
	struct thread_arg *a = p;
	char addr[64];
	snprintf(addr, sizeof addr, "t%d@threads.example", a->index);
	for (int i = 0; i < 2; i++) {
		char *acct = NULL;
		if (auth_verify(a->db, addr, "thread pw", &acct) != 1 || strcmp(acct, addr) != 0)
			a->failures++;
		free(acct);
		if (auth_verify(a->db, addr, "wrong", &acct) != 0)
			a->failures++;
		char *r = NULL;
		if (auth_resolve_rcpt(a->db, addr, &r) != 1)
			a->failures++;
		free(r);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	enum { N = 4 };
	struct thread_arg args[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		char addr[64];
		snprintf(addr, sizeof addr, "t%d@threads.example", i);
		assert_int_equal(auth_user_add(f->db, addr, "thread pw"), 1);
		args[i] = (struct thread_arg){.db = f->db, .index = i};
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, verify_thread, &args[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_valid),
		cmocka_unit_test_setup_teardown(test_add_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passwd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hash_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_rcpt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
