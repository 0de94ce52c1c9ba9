/* sarn subcommands. Each takes the arguments after its own name (argv[0] is the name) and
 * returns the process exit code. */
#ifndef SARN_CLI_CLI_H
#define SARN_CLI_CLI_H

#include "config/config.h"

int cmd_serve(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_alias(int argc, char **argv);
int cmd_domain(int argc, char **argv);
int cmd_deliver(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_dkim(int argc, char **argv);
int cmd_queue(int argc, char **argv);

/* [server] user: when running as root, gives the data directory to that user (the first time)
 * and switches to it for good. Does nothing when no user is set or not running as root.
 * 0, or -1 after printing why. */
int cli_become_user(const struct config *cfg);

/* Reads a password: prompts without echo on a terminal, else reads one line from stdin.
 * Returns a new string (caller frees) or NULL. */
char *cli_read_password(const char *prompt);

#endif
