#include "smtp/submit.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/dkim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int submit_read_header(const char *path, size_t max, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		size_t from = out->len >= 3 ? out->len - 3 : 0;
		buf_append(out, chunk, (size_t)n);
		const char *end = out->len > from ? memmem(out->data + from, out->len - from, "\r\n\r\n", 4) : NULL;
		if (end != NULL) {
			out->len = (size_t)(end - (const char *)out->data) + 2;
			break;
		}
		if (n == 0 || out->len >= max)
			break;
	}
	close(fd);
	return 0;
}

bool submit_has_field(const struct buf *header, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = (const char *)header->data, *end = p + header->len;
	while (p < end) {
		if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':')
			return true;
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return false;
}

/* The first key (by name) in DATA/dkim/<domain>/: its selector is the file name. */
static int find_dkim_key(const struct config *cfg, const char *domain, struct buf *pem,
			 char **selector_r)
{
	if (domain[0] == '.' || strchr(domain, '/') != NULL)
		return -1;
	char *dir = xasprintf("%s/dkim/%s", cfg->data_dir, domain);
	DIR *d = opendir(dir);
	char *best = NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 4 && de->d_name[0] != '.' && strcmp(de->d_name + len - 4, ".pem") == 0 &&
		    (best == NULL || strcmp(de->d_name, best) < 0)) {
			free(best);
			best = xstrdup(de->d_name);
		}
	}
	if (d != NULL)
		closedir(d);
	int r = -1;
	if (best != NULL) {
		char *path = xasprintf("%s/%s", dir, best);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		char chunk[4096];
		ssize_t n;
		while (fd >= 0 && (n = read(fd, chunk, sizeof chunk)) > 0)
			buf_append(pem, chunk, (size_t)n);
		if (fd >= 0) {
			close(fd);
			best[strlen(best) - 4] = '\0';
			*selector_r = best;
			best = NULL;
			r = 0;
		} else {
			log_error("event=dkim_key path=%s error=\"%s\"", path, strerror(errno));
		}
		free(path);
	}
	free(best);
	free(dir);
	return r;
}

/* Streams the file at path into the signer and/or the blob. */
static enum store_err copy_file(const char *path, struct dkim_signer *signer, struct store_blob *to)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return STORE_TEMP;
	enum store_err err = STORE_OK;
	char *chunk = xmalloc(65536);
	ssize_t n;
	while (err == STORE_OK && (n = read(fd, chunk, 65536)) != 0) {
		if (n < 0) {
			if (errno != EINTR)
				err = STORE_TEMP;
			continue;
		}
		if (signer != NULL)
			dkim_signer_feed(signer, chunk, (size_t)n);
		if (to != NULL)
			err = store_blob_write(to, chunk, (size_t)n);
	}
	free(chunk);
	close(fd);
	return err;
}

enum store_err submit_prepare(struct store *store, const struct config *cfg,
			      const char *mail_from, struct store_blob **blob)
{
	const char *path = store_blob_path(*blob);
	struct buf header = {0}, added = {0}, sig = {0}, pem = {0};
	if (submit_read_header(path, DKIM_MAX_HEADER, &header) < 0) {
		buf_free(&header);
		return STORE_TEMP;
	}
	if (!submit_has_field(&header, "Date")) {
		char date[MAIL_DATE_MAX];
		format_mail_date((int64_t)time(NULL), date);
		buf_printf(&added, "Date: %s\r\n", date);
	}
	if (!submit_has_field(&header, "Message-ID")) {
		char *id = random_hex(12);
		buf_printf(&added, "Message-ID: <%s@%s>\r\n", id, cfg->hostname);
		free(id);
	}
	buf_free(&header);

	char *selector = NULL;
	const char *at = strrchr(mail_from, '@');
	char *domain = xstrdup(at ? at + 1 : "");
	ascii_lower(domain);
	if (domain[0] != '\0' && find_dkim_key(cfg, domain, &pem, &selector) == 0) {
		struct dkim_signer *signer = NULL;
		const char *error = NULL;
		if (dkim_signer_new(pem.data, pem.len, domain, selector, &signer, &error) == 0) {
			if (added.len > 0)
				dkim_signer_feed(signer, added.data, added.len);
			enum store_err err = copy_file(path, signer, NULL);
			if (err != STORE_OK || dkim_signer_finish(signer, (int64_t)time(NULL), &sig, &error) < 0)
				sig.len = 0;
			dkim_signer_free(&signer);
		}
		if (sig.len == 0)
			log_warn("event=dkim_sign domain=%s selector=%s error=\"%s\"", domain, selector,
				 error ? error : "read failed");
		OPENSSL_cleanse(pem.data, pem.len);
	}
	free(selector);
	free(domain);
	buf_free(&pem);

	enum store_err err = STORE_OK;
	if (added.len > 0 || sig.len > 0) {
		struct store_blob *fresh = NULL;
		err = store_blob_begin(store, &fresh);
		if (err == STORE_OK && sig.len > 0)
			err = store_blob_write(fresh, sig.data, sig.len);
		if (err == STORE_OK && added.len > 0)
			err = store_blob_write(fresh, added.data, added.len);
		if (err == STORE_OK)
			err = copy_file(path, NULL, fresh);
		if (err == STORE_OK)
			err = store_blob_finish(fresh);
		if (err == STORE_OK) {
			store_blob_free(blob);
			*blob = fresh;
		} else {
			store_blob_free(&fresh);
		}
	}
	buf_free(&added);
	buf_free(&sig);
	return err;
}

void submit_save_sent(struct store *store, const char *account, struct store_blob *blob)
{
	struct store_account *acct = NULL;
	enum store_err err = store_account_open(store, account, &acct);
	struct store_mailbox_entry *boxes = NULL;
	size_t n = 0;
	char *name = NULL;
	if (err == STORE_OK && store_mailbox_list(acct, &boxes, &n) == STORE_OK) {
		for (size_t i = 0; i < n && name == NULL; i++)
			if (boxes[i].special_use && strcasecmp(boxes[i].special_use, "\\Sent") == 0)
				name = xstrdup(boxes[i].name);
		store_mailbox_list_free(boxes, n);
	}
	if (err == STORE_OK && name == NULL) {
		name = xstrdup("Sent");
		store_mailbox_create(acct, name, "\\Sent"); /* STORE_EXISTS is fine */
	}
	uint32_t uid = 0;
	if (err == STORE_OK)
		err = store_append(acct, name, blob, STORE_FLAG_SEEN, NULL, 0, 0, &uid);
	if (err == STORE_OK)
		log_info("event=saved_sent user=\"%s\" mailbox=\"%s\" uid=%u", account, name, uid);
	else
		log_warn("event=saved_sent user=\"%s\" error=\"%s\"", account, store_strerror(err));
	free(name);
	store_account_close(&acct);
}
