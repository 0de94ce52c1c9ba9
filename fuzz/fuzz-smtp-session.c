/* Whole SMTP, LMTP and submission sessions against the real session code, connection, store
 * and outbound queue files: the first input byte picks the listener (port 25 SMTP, LMTP,
 * submission), the rest is everything the client sends (EHLO/LHLO, STARTTLS, AUTH PLAIN or
 * LOGIN as a@example.com / secret, MAIL with SIZE/BODY/SMTPUTF8/RET/ENVID/AUTH, RCPT with
 * NOTIFY/ORCPT to local and remote addresses, DATA, BDAT chunks, RSET, QUIT ...). Messages
 * for remote recipients go into the queue directory, which is emptied after each session
 * (no queue runner runs here). See session-harness.c. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "session-harness.h"
#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void empty_queue(void)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/queue", config_current()->data_dir);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	static const struct proto *const protos[] = {&smtp_proto, &lmtp_proto, &submission_proto};
	fuzz_session_run(protos[data[0] % 3], NULL, data + 1, size - 1);
	empty_queue();
	return 0;
}
