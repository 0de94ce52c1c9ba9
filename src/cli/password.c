/* Reading a password for `sarn user add` / `sarn user passwd`: without echo on a terminal
 * (asked twice), else one line from standard input (for scripts: echo pw | sarn user add). */
#include "cli/cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

/* Terminal state to restore if a signal arrives while echo is off. Only the CLI's main
 * thread prompts, so a static is enough. */
static struct termios saved_tio;

static const int restore_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_RESTORE_SIGNALS (sizeof restore_signals / sizeof restore_signals[0])

static void restore_and_reraise(int sig)
{
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void wipe_free(char *s, size_t cap)
{
	if (s == NULL)
		return;
	explicit_bzero(s, cap);
	free(s);
}

/* Reads one line from stdin without its CR/LF. Returns NULL at end of input or on error.
 * *cap_r is the allocation size (for wiping). */
static char *read_line(size_t *cap_r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	*cap_r = cap;
	if (n < 0) {
		wipe_free(line, cap);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* Prompts on stderr and reads a line from the terminal on stdin with echo off. */
static char *read_noecho(const char *prompt, size_t *cap_r)
{
	*cap_r = 0;
	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0) {
		perror("sarn: cannot read terminal settings");
		return NULL;
	}
	struct termios tio = saved_tio;
	tio.c_lflag &= ~(tcflag_t)ECHO;
	tio.c_lflag |= ICANON;

	struct sigaction sa, old[N_RESTORE_SIGNALS];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = restore_and_reraise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_RESTORE_SIGNALS; i++)
		sigaction(restore_signals[i], &sa, &old[i]);

	fputs(prompt, stderr);
	fflush(stderr);
	char *line = NULL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) < 0)
		perror("sarn: cannot turn off echo");
	else
		line = read_line(cap_r);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	fputc('\n', stderr);

	for (size_t i = 0; i < N_RESTORE_SIGNALS; i++)
		sigaction(restore_signals[i], &old[i], NULL);
	return line;
}

char *cli_read_password(const char *prompt)
{
	if (prompt == NULL)
		prompt = "Password: ";
	size_t cap1 = 0, cap2 = 0;

	if (!isatty(STDIN_FILENO)) {
		char *line = read_line(&cap1);
		if (line == NULL) {
			fputs("sarn: no password on standard input\n", stderr);
			return NULL;
		}
		if (line[0] == '\0') {
			fputs("sarn: empty password refused\n", stderr);
			wipe_free(line, cap1);
			return NULL;
		}
		return line;
	}

	/* On a terminal, ask twice: a typo would otherwise lock the account out. */
	char *first = read_noecho(prompt, &cap1);
	if (first == NULL) {
		fputs("sarn: no password entered\n", stderr);
		return NULL;
	}
	if (first[0] == '\0') {
		fputs("sarn: empty password refused\n", stderr);
		wipe_free(first, cap1);
		return NULL;
	}
	char *second = read_noecho("Retype password: ", &cap2);
	if (second == NULL || strcmp(first, second) != 0) {
		fputs("sarn: passwords do not match\n", stderr);
		wipe_free(first, cap1);
		wipe_free(second, cap2);
		return NULL;
	}
	wipe_free(second, cap2);
	return first;
}
