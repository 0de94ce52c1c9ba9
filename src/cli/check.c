/* sarn check [--repair]: verifies the store, running or stopped. */
#include "cli/cli.h"

#include "config/config.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
}

int cmd_check(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0)
		return 2;
	bool repair = argc == 2 && strcmp(argv[1], "--repair") == 0;
	if (argc > 2 || (argc == 2 && !repair)) {
		fprintf(stderr, "usage: sarn check [-c FILE | --data DIR] [--repair]\n");
		config_free(&cfg);
		return 2;
	}
	struct store *store = NULL;
	if (store_open(cfg.data_dir, &store) != STORE_OK) {
		fprintf(stderr, "sarn check: cannot open the store in %s\n", cfg.data_dir);
		config_free(&cfg);
		return 1;
	}
	int problems = store_check(store, repair, print_line, NULL);
	printf("%d problem%s%s\n", problems, problems == 1 ? "" : "s",
	       repair ? " remaining after repair" : "");
	store_close(&store);
	config_free(&cfg);
	return problems == 0 ? 0 : 1;
}
