/* Dropping root: after the listeners are bound, `sarn serve` (and every other subcommand, at
 * once) runs as the configured unprivileged user. */
#define _XOPEN_SOURCE 700
#include "cli/cli.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uid_t owner_uid;
static gid_t owner_gid;
static int chown_failures;

static int give(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	if ((st->st_uid != owner_uid || st->st_gid != owner_gid) &&
	    lchown(path, owner_uid, owner_gid) < 0)
		chown_failures++;
	return 0;
}

int cli_become_user(const struct config *cfg)
{
	if (cfg->run_user == NULL || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(cfg->run_user);
	if (pw == NULL) {
		fprintf(stderr, "sarn: [server] user: no such user \"%s\"\n", cfg->run_user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		fprintf(stderr, "sarn: [server] user \"%s\" is root; nothing to drop to\n",
			cfg->run_user);
		return -1;
	}
	/* The data directory is the user's: made here if missing; handed over, with what root
	 * made in it, when it is not yet (the first start as that user). */
	struct stat st;
	if (mkdir_p(cfg->data_dir, 0700) < 0 || stat(cfg->data_dir, &st) < 0) {
		fprintf(stderr, "sarn: cannot create %s\n", cfg->data_dir);
		return -1;
	}
	owner_uid = pw->pw_uid;
	owner_gid = pw->pw_gid;
	chown_failures = 0;
	if (st.st_uid != pw->pw_uid) {
		nftw(cfg->data_dir, give, 32, FTW_PHYS);
	} else {
		/* A certificate generated just now, as root (serve reads it before switching). */
		char *tls = xasprintf("%s/tls", cfg->data_dir);
		if (access(tls, F_OK) == 0)
			nftw(tls, give, 8, FTW_PHYS);
		free(tls);
	}
	if (chown_failures > 0) {
		fprintf(stderr, "sarn: cannot give %d files in %s to %s\n", chown_failures,
			cfg->data_dir, cfg->run_user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "sarn: cannot switch to user %s: %s\n", cfg->run_user,
			strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "sarn: still able to regain root after switching users\n");
		return -1;
	}
	log_info("event=privileges_dropped user=%s uid=%u", cfg->run_user, (unsigned)pw->pw_uid);
	return 0;
}
