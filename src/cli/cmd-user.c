/* sarn user add|del|passwd|list|retention and sarn domain list|retention.
 * Exit codes: 0 success, 1 error, 2 usage error (wrong arguments, bad address or number). */
#include "cli/cli.h"

#include "auth/auth.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/util.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION_DAYS_MAX 100000

static const char user_usage[] =
	"usage: sarn user add ADDRESS        (password from the terminal or one line of stdin)\n"
	"       sarn user del ADDRESS\n"
	"       sarn user passwd ADDRESS\n"
	"       sarn user list\n"
	"       sarn user retention ADDRESS DAYS|default\n"
	"options: -c FILE, --data DIR\n";

static const char domain_usage[] =
	"usage: sarn domain list\n"
	"       sarn domain retention DOMAIN DAYS|default\n"
	"options: -c FILE, --data DIR\n";

static int usage(const char *text)
{
	fputs(text, stderr);
	return 2;
}

/* Creates the data directory and opens the accounts database. 0 ok, -1 (printed). */
static int open_db(const struct config *cfg, struct auth_db **db_r)
{
	if (mkdir_p(cfg->data_dir, 0700) < 0) {
		fprintf(stderr, "sarn: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
		return -1;
	}
	if (auth_db_open(cfg->data_dir, db_r) < 0) {
		fprintf(stderr, "sarn: cannot open the accounts database in %s\n", cfg->data_dir);
		return -1;
	}
	return 0;
}

/* "default" -> -1, else 0..RETENTION_DAYS_MAX. 0 ok, -1 bad value (printed). */
static int parse_days(const char *s, int *days_r)
{
	uint64_t v;
	if (strcmp(s, "default") == 0) {
		*days_r = -1;
		return 0;
	}
	if (parse_u64(s, strlen(s), RETENTION_DAYS_MAX, &v) < 0) {
		fprintf(stderr, "sarn: DAYS must be a number from 0 to %d (0 = keep forever) "
				"or \"default\", not \"%s\"\n",
			RETENTION_DAYS_MAX, s);
		return -1;
	}
	*days_r = (int)v;
	return 0;
}

static void print_line(const char *s, void *ctx)
{
	(void)ctx;
	printf("%s\n", s);
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Reads and checks a new password for account. NULL on failure (printed). */
static char *new_password(const char *account)
{
	char *prompt = xasprintf("Password for %s: ", account);
	char *pw = cli_read_password(prompt);
	free(prompt);
	if (pw != NULL && strlen(pw) > AUTH_PASSWORD_MAX) {
		fprintf(stderr, "sarn: password too long (at most %d octets)\n", AUTH_PASSWORD_MAX);
		wipe_free(pw);
		return NULL;
	}
	return pw;
}

static int user_add(struct config *cfg, struct auth_db *db, const char *address)
{
	if (auth_user_exists(db, address)) {
		fprintf(stderr, "sarn: account %s already exists\n", address);
		return 1;
	}
	char *pw = new_password(address);
	if (pw == NULL)
		return 1;
	int r = auth_user_add(db, address, pw);
	wipe_free(pw);
	if (r == 0) {
		fprintf(stderr, "sarn: account %s already exists\n", address);
		return 1;
	}
	char *account = NULL;
	if (r < 0 || auth_user_canonical(db, address, &account) != 1) {
		fprintf(stderr, "sarn: cannot add account %s\n", address);
		free(account);
		return 1;
	}

	struct store *st = NULL;
	enum store_err err = store_open(cfg->data_dir, &st);
	if (err == STORE_OK) {
		err = store_account_create(st, account);
		store_close(&st);
	}
	if (err != STORE_OK) {
		fprintf(stderr, "sarn: cannot create the mailboxes of %s: %s\n", account,
			store_strerror(err));
		if (auth_user_del(db, account) != 1)
			fprintf(stderr, "sarn: and cannot remove the half-created account %s; "
					"remove it with: sarn user del %s\n",
				account, account);
		free(account);
		return 1;
	}
	printf("added %s\n", account);
	free(account);
	return 0;
}

static int user_del(struct config *cfg, struct auth_db *db, const char *address)
{
	char *account = NULL;
	int r = auth_user_canonical(db, address, &account);
	if (r == 0) {
		fprintf(stderr, "sarn: no such account: %s\n", address);
		return 1;
	}
	if (r < 0 || auth_user_del(db, account) != 1) {
		fprintf(stderr, "sarn: cannot delete account %s\n", address);
		free(account);
		return 1;
	}
	struct store *st = NULL;
	enum store_err err = store_open(cfg->data_dir, &st);
	if (err == STORE_OK) {
		err = store_account_delete(st, account);
		store_close(&st);
	}
	if (err != STORE_OK && err != STORE_NOTFOUND) {
		fprintf(stderr, "sarn: account %s removed, but its mail could not be deleted: %s\n",
			account, store_strerror(err));
		free(account);
		return 1;
	}
	printf("deleted %s\n", account);
	free(account);
	return 0;
}

static int user_passwd(struct auth_db *db, const char *address)
{
	char *account = NULL;
	int r = auth_user_canonical(db, address, &account);
	if (r <= 0) {
		fprintf(stderr, r == 0 ? "sarn: no such account: %s\n"
				       : "sarn: cannot look up account %s\n",
			address);
		return 1;
	}
	char *pw = new_password(account);
	if (pw == NULL) {
		free(account);
		return 1;
	}
	r = auth_user_passwd(db, account, pw);
	wipe_free(pw);
	if (r != 1) {
		fprintf(stderr, r == 0 ? "sarn: no such account: %s\n"
				       : "sarn: cannot change the password of %s\n",
			account);
		free(account);
		return 1;
	}
	printf("password changed for %s\n", account);
	free(account);
	return 0;
}

static int user_retention(struct auth_db *db, const char *address, int days)
{
	int r = auth_retention_set_user(db, address, days);
	if (r != 1) {
		fprintf(stderr, r == 0 ? "sarn: no such account: %s\n"
				       : "sarn: cannot set the retention of %s\n",
			address);
		return 1;
	}
	return 0;
}

static bool check_address(const char *address)
{
	if (auth_address_valid(address))
		return true;
	fprintf(stderr, "sarn: invalid address \"%s\" (expected local@domain)\n", address);
	return false;
}

int cmd_user(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	int ret = 2;
	struct auth_db *db = NULL;
	const char *sub = argc >= 2 ? argv[1] : "";
	int days = -1;
	bool one_addr = !strcmp(sub, "add") || !strcmp(sub, "del") || !strcmp(sub, "passwd");

	/* Check the command line completely before touching any data. */
	if (one_addr && argc == 3) {
		if (!check_address(argv[2]))
			goto out;
	} else if (!strcmp(sub, "retention") && argc == 4) {
		if (!check_address(argv[2]) || parse_days(argv[3], &days) < 0)
			goto out;
	} else if (!(strcmp(sub, "list") == 0 && argc == 2)) {
		if (argc >= 2 && !one_addr && strcmp(sub, "retention") && strcmp(sub, "list"))
			fprintf(stderr, "sarn: unknown user command \"%s\"\n", sub);
		ret = usage(user_usage);
		goto out;
	}

	ret = 1;
	if (open_db(&cfg, &db) < 0)
		goto out;
	if (!strcmp(sub, "add"))
		ret = user_add(&cfg, db, argv[2]);
	else if (!strcmp(sub, "del"))
		ret = user_del(&cfg, db, argv[2]);
	else if (!strcmp(sub, "passwd"))
		ret = user_passwd(db, argv[2]);
	else if (!strcmp(sub, "retention"))
		ret = user_retention(db, argv[2], days);
	else if (auth_user_list(db, print_line, NULL) == 0)
		ret = 0;
	else
		fputs("sarn: cannot list accounts\n", stderr);
out:
	auth_db_close(&db);
	config_free(&cfg);
	fflush(stdout);
	return ret;
}

int cmd_domain(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	int ret = 2;
	struct auth_db *db = NULL;
	const char *sub = argc >= 2 ? argv[1] : "";
	int days = -1;

	if (!strcmp(sub, "retention") && argc == 4) {
		char *probe = xasprintf("x@%s", argv[2]);
		bool ok = auth_address_valid(probe);
		free(probe);
		if (!ok) {
			fprintf(stderr, "sarn: invalid domain \"%s\"\n", argv[2]);
			goto out;
		}
		if (parse_days(argv[3], &days) < 0)
			goto out;
	} else if (!(strcmp(sub, "list") == 0 && argc == 2)) {
		if (argc >= 2 && strcmp(sub, "retention") && strcmp(sub, "list"))
			fprintf(stderr, "sarn: unknown domain command \"%s\"\n", sub);
		ret = usage(domain_usage);
		goto out;
	}

	ret = 1;
	if (open_db(&cfg, &db) < 0)
		goto out;
	if (!strcmp(sub, "retention")) {
		int r = auth_retention_set_domain(db, argv[2], days);
		if (r == 1)
			ret = 0;
		else if (r == 0)
			fprintf(stderr, "sarn: no such domain: %s (a domain is created with its "
					"first account or alias)\n",
				argv[2]);
		else
			fprintf(stderr, "sarn: cannot set the retention of %s\n", argv[2]);
	} else if (auth_domain_list(db, print_line, NULL) == 0) {
		ret = 0;
	} else {
		fputs("sarn: cannot list domains\n", stderr);
	}
out:
	auth_db_close(&db);
	config_free(&cfg);
	fflush(stdout);
	return ret;
}
