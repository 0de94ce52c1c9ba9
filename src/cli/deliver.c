/* sarn deliver: a local delivery agent (e.g. Postfix mailbox_command), exit codes from
 * sysexits.h so the MTA retries or bounces correctly. */
#include "cli/cli.h"

#include "auth/auth.h"
#include "config/config.h"
#include "core/buf.h"
#include "smtp/delivery.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

static int read_message(struct store_blob *blob, uint64_t max_size)
{
	unsigned char chunk[65536];
	bool first = true;
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(STDIN_FILENO, chunk, sizeof chunk)) > 0) {
		unsigned char *p = chunk;
		size_t len = (size_t)n;
		/* An mbox "From " separator line is not part of the message. */
		if (first && len >= 5 && memcmp(p, "From ", 5) == 0) {
			unsigned char *lf = memchr(p, '\n', len);
			if (lf != NULL) {
				len -= (size_t)(lf + 1 - p);
				p = lf + 1;
			}
		}
		first = false;
		total += len;
		if (total > max_size)
			return EX_DATAERR;
		if (store_blob_write_lines(blob, p, len) != STORE_OK)
			return EX_TEMPFAIL;
	}
	if (n < 0)
		return EX_IOERR;
	return EX_OK; /* a CR held back at the end is written by store_blob_finish */
}

int cmd_deliver(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0)
		return EX_CONFIG;
	const char *mailbox = NULL;
	int i = 1;
	if (i + 1 < argc && strcmp(argv[i], "-m") == 0) {
		mailbox = argv[i + 1];
		i += 2;
	}
	if (i + 1 != argc) {
		fprintf(stderr, "usage: sarn deliver [-c FILE] [-m MAILBOX] RECIPIENT < MESSAGE\n");
		config_free(&cfg);
		return EX_USAGE;
	}
	struct store *store = NULL;
	struct auth_db *auth = NULL;
	struct store_blob *blob = NULL;
	struct store_account *acct = NULL;
	char *account = NULL;
	int rc = EX_TEMPFAIL;
	if (store_open(cfg.data_dir, &store) != STORE_OK || auth_db_open(cfg.data_dir, &auth) < 0)
		goto out;
	int r = auth_resolve_rcpt(auth, argv[i], &account);
	if (r == 0) {
		fprintf(stderr, "sarn deliver: %s: no such user\n", argv[i]);
		rc = EX_NOUSER;
		goto out;
	}
	if (r < 0 || store_blob_begin(store, &blob) != STORE_OK)
		goto out;
	rc = read_message(blob, cfg.max_message_size);
	if (rc != EX_OK) {
		fprintf(stderr, "sarn deliver: %s\n",
			rc == EX_DATAERR ? "message too large" : "cannot store the message");
		goto out;
	}
	rc = EX_TEMPFAIL;
	if (store_blob_finish(blob) != STORE_OK)
		goto out;
	enum store_err err = mailbox == NULL ? delivery_local(store, account, blob)
		: store_account_open(store, account, &acct);
	if (mailbox != NULL && err == STORE_OK)
		err = store_deliver(acct, mailbox, blob, 0, 0, NULL);
	if (err == STORE_NOTFOUND && mailbox != NULL) {
		fprintf(stderr, "sarn deliver: %s: no such mailbox\n", mailbox);
		rc = EX_CANTCREAT;
	} else if (err != STORE_OK) {
		fprintf(stderr, "sarn deliver: %s\n", store_strerror(err));
	} else {
		rc = EX_OK;
	}
out:
	store_account_close(&acct);
	store_blob_free(&blob);
	free(account);
	auth_db_close(&auth);
	store_close(&store);
	config_free(&cfg);
	return rc;
}
