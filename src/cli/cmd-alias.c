/* sarn alias add|del|list. Exit codes: 0 success, 1 error, 2 usage error. */
#include "cli/cli.h"

#include "auth/auth.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char alias_usage[] =
	"usage: sarn alias add ALIAS TARGET   (ALIAS is name@domain, or @domain for a catch-all;\n"
	"                                      TARGET is an existing account)\n"
	"       sarn alias del ALIAS\n"
	"       sarn alias list\n"
	"options: -c FILE, --data DIR\n";

static bool alias_valid(const char *alias)
{
	if (alias[0] != '@')
		return auth_address_valid(alias);
	char *probe = xasprintf("x%s", alias);
	bool ok = auth_address_valid(probe);
	free(probe);
	return ok;
}

static void print_alias(const char *alias, const char *target, void *ctx)
{
	(void)ctx;
	printf("%s -> %s\n", alias, target);
}

static int alias_add(struct auth_db *db, const char *alias, const char *target)
{
	if (!auth_user_exists(db, target)) {
		fprintf(stderr, "sarn: no such account: %s (an alias must point to an account)\n",
			target);
		return 1;
	}
	if (alias[0] != '@' && auth_user_exists(db, alias)) {
		fprintf(stderr, "sarn: %s is an account; an alias cannot replace it\n", alias);
		return 1;
	}
	int r = auth_alias_add(db, alias, target);
	if (r == 1) {
		printf("added %s -> %s\n", alias, target);
		return 0;
	}
	if (r == 0)
		fprintf(stderr, "sarn: alias %s already exists (delete it first)\n", alias);
	else
		fprintf(stderr, "sarn: cannot add alias %s\n", alias);
	return 1;
}

static int alias_del(struct auth_db *db, const char *alias)
{
	int r = auth_alias_del(db, alias);
	if (r == 1) {
		printf("deleted %s\n", alias);
		return 0;
	}
	if (r == 0)
		fprintf(stderr, "sarn: no such alias: %s\n", alias);
	else
		fprintf(stderr, "sarn: cannot delete alias %s\n", alias);
	return 1;
}

int cmd_alias(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	int ret = 2;
	struct auth_db *db = NULL;
	const char *sub = argc >= 2 ? argv[1] : "";

	/* Check the command line completely before touching any data. */
	if (!strcmp(sub, "add") && argc == 4) {
		if (!alias_valid(argv[2])) {
			fprintf(stderr, "sarn: invalid alias \"%s\" (expected name@domain or "
					"@domain)\n",
				argv[2]);
			goto out;
		}
		if (!auth_address_valid(argv[3])) {
			fprintf(stderr, "sarn: invalid address \"%s\"\n", argv[3]);
			goto out;
		}
	} else if (!strcmp(sub, "del") && argc == 3) {
		if (!alias_valid(argv[2])) {
			fprintf(stderr, "sarn: invalid alias \"%s\"\n", argv[2]);
			goto out;
		}
	} else if (!(strcmp(sub, "list") == 0 && argc == 2)) {
		if (argc >= 2 && strcmp(sub, "add") && strcmp(sub, "del") && strcmp(sub, "list"))
			fprintf(stderr, "sarn: unknown alias command \"%s\"\n", sub);
		fputs(alias_usage, stderr);
		goto out;
	}

	ret = 1;
	if (mkdir_p(cfg.data_dir, 0700) < 0) {
		fprintf(stderr, "sarn: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
		goto out;
	}
	if (auth_db_open(cfg.data_dir, &db) < 0) {
		fprintf(stderr, "sarn: cannot open the accounts database in %s\n", cfg.data_dir);
		goto out;
	}
	if (!strcmp(sub, "add"))
		ret = alias_add(db, argv[2], argv[3]);
	else if (!strcmp(sub, "del"))
		ret = alias_del(db, argv[2]);
	else if (auth_alias_list(db, print_alias, NULL) == 0)
		ret = 0;
	else
		fputs("sarn: cannot list aliases\n", stderr);
out:
	auth_db_close(&db);
	config_free(&cfg);
	fflush(stdout);
	return ret;
}
