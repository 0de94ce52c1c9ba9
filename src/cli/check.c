/* sarn check [--repair]: verifies the store and the outbound queue, running or stopped. */
#include "cli/cli.h"

#include "config/config.h"
#include "core/buf.h"
#include "smtp/queue.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
}

/* Every queue entry readable and with its message file. (Half-written entries of a crash
 * are not problems: the server removes them when it starts.) */
static int check_queue(const struct config *cfg)
{
	char **ids;
	size_t n;
	if (queue_ids(cfg->data_dir, &ids, &n) < 0) {
		printf("queue: cannot read %s/queue: %s\n", cfg->data_dir, strerror(errno));
		return 1;
	}
	int problems = 0;
	for (size_t i = 0; i < n; i++) {
		struct queue_msg m;
		char *msg = xasprintf("%s/queue/%s.msg", cfg->data_dir, ids[i]);
		if (queue_load(cfg->data_dir, ids[i], &m) < 0) {
			if (errno != ENOENT) { /* ENOENT: delivered meanwhile */
				printf("queue: %s: unreadable envelope (%s)\n", ids[i], strerror(errno));
				problems++;
			}
		} else {
			char *env = xasprintf("%s/queue/%s.env", cfg->data_dir, ids[i]);
			/* Both gone: delivered meanwhile (the .env goes first). */
			if (access(msg, R_OK) < 0 && access(env, F_OK) == 0) {
				printf("queue: %s: message file missing\n", ids[i]);
				problems++;
			}
			free(env);
			queue_msg_free(&m);
		}
		free(msg);
	}
	queue_ids_free(ids, n);
	return problems;
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
	problems += check_queue(&cfg);
	printf("%d problem%s%s\n", problems, problems == 1 ? "" : "s",
	       repair ? " remaining after repair" : "");
	store_close(&store);
	config_free(&cfg);
	return problems == 0 ? 0 : 1;
}
