/* sarn dkim generate|sign: DKIM keys in DATA/dkim/<domain>/<selector>.pem, the DNS record
 * to publish, and signing a message from stdin (to check a setup). */
#include "cli/cli.h"

#include "core/buf.h"
#include "core/util.h"
#include "smtp/dkim.h"

#include <openssl/crypto.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool name_ok(const char *s, size_t max, bool dots)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' ||
	    strstr(s, "..") != NULL)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      (c == '.' && dots) || (c == '_' && !dots)))
			return false;
	}
	return true;
}

static char *key_path(const struct config *cfg, const char *domain, const char *selector)
{
	return xasprintf("%s/dkim/%s/%s.pem", cfg->data_dir, domain, selector);
}

static int usage(void)
{
	fprintf(stderr, "usage: sarn dkim generate DOMAIN [SELECTOR] [--ed25519]\n"
			"       sarn dkim sign DOMAIN [SELECTOR] < MESSAGE > SIGNED\n"
			"(SELECTOR defaults to \"sarn\"; names in lower case)\n");
	return 2;
}

static int generate(const struct config *cfg, const char *domain, const char *selector,
		    bool ed25519)
{
	char *path = key_path(cfg, domain, selector);
	char *dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	struct buf pem = {0}, txt = {0};
	const char *error = NULL;
	int rc = 1;
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "sarn dkim: %s exists; remove it first to make a new key\n", path);
		goto out;
	}
	if (dkim_generate(ed25519 ? DKIM_ED25519_SHA256 : DKIM_RSA_SHA256, &pem, &txt, &error) < 0) {
		fprintf(stderr, "sarn dkim: %s\n", error);
		goto out;
	}
	int fd = mkdir_p(dir, 0700) < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, pem.data, pem.len) != (ssize_t)pem.len || fsync(fd) < 0) {
		fprintf(stderr, "sarn dkim: cannot write %s: %s\n", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		goto out;
	}
	close(fd);
	/* A TXT string holds at most 255 octets: longer values are split. */
	printf("Key written to %s. Publish this DNS record:\n\n%s._domainkey.%s. IN TXT (", path,
	       selector, domain);
	for (size_t i = 0; i < txt.len; i += 255)
		printf(" \"%.*s\"", (int)(txt.len - i < 255 ? txt.len - i : 255), txt.data + i);
	printf(" )\n");
	rc = 0;
out:
	OPENSSL_cleanse(pem.data, pem.cap);
	buf_free(&pem);
	buf_free(&txt);
	free(dir);
	free(path);
	return rc;
}

static int sign(const struct config *cfg, const char *domain, const char *selector)
{
	char *path = key_path(cfg, domain, selector);
	struct buf pem = {0}, msg = {0}, out = {0};
	int rc = 1;
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;
	if (f == NULL) {
		fprintf(stderr, "sarn dkim: cannot read %s: %s\n", path, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&pem, chunk, n);
	fclose(f);
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		buf_append(&msg, chunk, n);
	struct dkim_signer *s = NULL;
	const char *error = NULL;
	int signed_ok = dkim_signer_new(pem.data, pem.len, domain, selector, &s, &error);
	if (signed_ok == 0) {
		dkim_signer_feed(s, msg.data, msg.len);
		signed_ok = dkim_signer_finish(s, (int64_t)time(NULL), &out, &error);
		dkim_signer_free(&s);
	}
	if (signed_ok < 0) {
		fprintf(stderr, "sarn dkim: %s\n", error);
		goto out;
	}
	fwrite(out.data, 1, out.len, stdout);
	fwrite(msg.data, 1, msg.len, stdout);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	OPENSSL_cleanse(pem.data, pem.cap);
	buf_free(&pem);
	buf_free(&msg);
	buf_free(&out);
	free(path);
	return rc;
}

int cmd_dkim(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0)
		return 2;
	bool ed25519 = argc > 1 && strcmp(argv[argc - 1], "--ed25519") == 0;
	if (ed25519)
		argc--;
	int rc;
	if (argc < 3 || argc > 4 || !name_ok(argv[2], 253, true) ||
	    (argc == 4 && !name_ok(argv[3], 63, false)))
		rc = usage();
	else if (strcmp(argv[1], "generate") == 0)
		rc = generate(&cfg, argv[2], argc == 4 ? argv[3] : "sarn", ed25519);
	else if (strcmp(argv[1], "sign") == 0 && !ed25519)
		rc = sign(&cfg, argv[2], argc == 4 ? argv[3] : "sarn");
	else
		rc = usage();
	config_free(&cfg);
	return rc;
}
