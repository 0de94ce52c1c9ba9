/* sarn subcommands. Each takes the arguments after its own name (argv[0] is the name) and
 * returns the process exit code. */
#ifndef SARN_CLI_CLI_H
#define SARN_CLI_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_alias(int argc, char **argv);
int cmd_domain(int argc, char **argv);
int cmd_deliver(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* Reads a password: prompts without echo on a terminal, else reads one line from stdin.
 * Returns a new string (caller frees) or NULL. */
char *cli_read_password(const char *prompt);

#endif
