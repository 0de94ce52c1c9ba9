#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{"serve", cmd_serve, "serve [-c FILE] [--data DIR]      run the server"},
	{"user", cmd_user, "user add|del|passwd|list|retention ADDRESS ...   manage accounts"},
	{"alias", cmd_alias, "alias add|del|list ALIAS [TARGET]   manage aliases"},
	{"domain", cmd_domain, "domain list|retention DOMAIN DAYS   manage domains"},
	{"deliver", cmd_deliver, "deliver [-m MAILBOX] RECIPIENT < MESSAGE   local delivery agent"},
	{"check", cmd_check, "check [--repair]                   verify the store"},
	{"queue", cmd_queue, "queue list|flush|delete ID           the outbound queue"},
	{"dkim", cmd_dkim, "dkim generate|sign DOMAIN [SELECTOR]   DKIM keys (DNS record), signing"},
};

static int usage(FILE *out)
{
	fprintf(out, "usage: sarn COMMAND [-c FILE | --data DIR] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  sarn %s\n", commands[i].usage);
	return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		return usage(stdout);
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		puts("sarn 0.1.0");
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "sarn: unknown command \"%s\"\n", argv[1]);
	return usage(stderr);
}
