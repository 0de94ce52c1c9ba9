/* A scratch store with one account, for cmocka tests that need real mail storage.
 * Include after <cmocka.h>. */
#ifndef SARN_TESTS_STORE_FIXTURE_H
#define SARN_TESTS_STORE_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "store/store.h"

#define FIXTURE_ACCOUNT "alice@example.com"

struct store_fixture {
	char dir[64];
	struct store *store;
	struct store_account *acct;
};

static inline struct store_fixture *store_fixture_new(void)
{
	struct store_fixture *f = xcalloc(1, sizeof *f);
	strcpy(f->dir, "/tmp/sarn-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(f->dir, &f->store), STORE_OK);
	assert_int_equal(store_account_create(f->store, FIXTURE_ACCOUNT), STORE_OK);
	assert_int_equal(store_account_open(f->store, FIXTURE_ACCOUNT, &f->acct), STORE_OK);
	return f;
}

static inline void store_fixture_free(struct store_fixture *f)
{
	store_account_close(&f->acct);
	store_close(&f->store);
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
}

#endif
