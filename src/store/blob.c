/* Spool blobs: a message is written once to DATA/spool/tmp, fsync'ed, then hard-linked into
 * each recipient account. */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOB_WRITE_BUFFER (64 * 1024)

static enum store_err errno_to_store(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? STORE_NOSPACE : STORE_TEMP;
}

enum store_err store_blob_begin(struct store *store, struct store_blob **blob_r)
{
	char *id = random_hex(16);
	char *path = xasprintf("%s/tmp/%s", store->spool_dir, id);
	free(id);
	/* Read back once in store_blob_finish, for the full-text index. */
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		log_error("event=blob_create path=%s error=\"%s\"", path, strerror(e));
		free(path);
		return errno_to_store(e);
	}
	struct store_blob *b = xcalloc(1, sizeof *b);
	b->store = store;
	b->path = path;
	b->fd = fd;
	struct mime_limits limits;
	mime_limits_default(&limits);
	b->parser = mime_parser_new(&limits);
	*blob_r = b;
	return STORE_OK;
}

/* A failed write leaves the file incomplete: the error sticks, so the blob can never be
 * finished and delivered. */
static enum store_err write_out(struct store_blob *b, const void *data, size_t len)
{
	if (len > 0 && write_full(b->fd, data, len) < 0) {
		int e = errno;
		log_error("event=blob_write path=%s error=\"%s\"", b->path, strerror(e));
		b->write_err = errno_to_store(e);
	}
	return b->write_err;
}

static enum store_err flush_pending(struct store_blob *b)
{
	enum store_err err = write_out(b, b->wbuf.data, b->wbuf.len);
	buf_clear(&b->wbuf);
	return err;
}

enum store_err store_blob_write(struct store_blob *b, const void *data, size_t len)
{
	if (b->fd < 0 || b->finished)
		return STORE_INVALID;
	if (b->write_err != STORE_OK)
		return b->write_err;
	/* Callers write line by line (CRLF normalisation): gather small writes into one
	 * system call per BLOB_WRITE_BUFFER bytes. */
	enum store_err err = STORE_OK;
	if (b->wbuf.len + len > BLOB_WRITE_BUFFER && b->wbuf.len > 0)
		err = flush_pending(b);
	if (err == STORE_OK && len >= BLOB_WRITE_BUFFER)
		err = write_out(b, data, len);
	else if (err == STORE_OK)
		buf_append(&b->wbuf, data, len);
	if (err != STORE_OK)
		return err;
	const unsigned char *p = data;
	mime_parser_feed(b->parser, p, len);
	if (len >= 2) {
		b->last2[0] = p[len - 2];
		b->last2[1] = p[len - 1];
	} else if (len == 1) {
		b->last2[0] = b->last2[1];
		b->last2[1] = p[0];
	}
	b->size += len;
	return STORE_OK;
}

enum store_err store_blob_write_lines(struct store_blob *b, const void *data, size_t len)
{
	static const unsigned char crlf[2] = {'\r', '\n'};
	const unsigned char *p = data;
	size_t start = 0;
	enum store_err err = STORE_OK;
	for (size_t i = 0; i < len && err == STORE_OK; i++) {
		unsigned char c = p[i];
		if (b->pending_cr) {
			/* The CR before this byte was held back: CRLF or a bare CR, both become CRLF. */
			b->pending_cr = false;
			err = store_blob_write(b, crlf, 2);
			start = i + (c == '\n');
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			err = store_blob_write(b, p + start, i - start);
			b->pending_cr = true;
			start = i + 1;
		} else if (c == '\n') {
			if (err == STORE_OK)
				err = store_blob_write(b, p + start, i - start);
			if (err == STORE_OK)
				err = store_blob_write(b, crlf, 2);
			start = i + 1;
		}
	}
	if (err == STORE_OK && start < len)
		err = store_blob_write(b, p + start, len - start);
	return err;
}

enum store_err store_blob_finish(struct store_blob *b)
{
	if (b->finished)
		return STORE_OK;
	if (b->fd < 0)
		return STORE_INVALID;
	enum store_err err = STORE_OK;
	if (b->pending_cr) {
		b->pending_cr = false;
		err = store_blob_write(b, "\r\n", 2);
	}
	if (err == STORE_OK)
		err = flush_pending(b);
	buf_free(&b->wbuf);
	if (err != STORE_OK)
		return err;
	if (fsync(b->fd) < 0) {
		int e = errno;
		log_error("event=blob_fsync path=%s error=\"%s\"", b->path, strerror(e));
		return errno_to_store(e);
	}
	/* Parse once: ENVELOPE, BODYSTRUCTURE and part offsets are saved with the blob row, so
	 * reading a message's structure never re-parses it. */
	struct mime_result *r = mime_parser_finish(b->parser);
	mime_parser_free(&b->parser);
	mime_result_serialize(r, &b->parsed);
	const struct mime_part *top = mime_result_find(r, NULL, 0);
	if (top != NULL && top->header_size > 0 && top->header_size <= STORE_HEADER_CACHE_MAX) {
		buf_reserve(&b->header, (size_t)top->header_size);
		ssize_t n = pread(b->fd, b->header.data, (size_t)top->header_size, 0);
		b->header.len = n == (ssize_t)top->header_size ? (size_t)n : 0;
	}
	/* Its searchable text, also once for all recipients: the file was just written, so
	 * this reads the page cache. */
	int rc = mime_text_extract(r, b->fd, 0, &b->fts_header, &b->fts_body, NULL);
	int e = errno;
	mime_result_free(&r);
	close(b->fd);
	b->fd = -1;
	if (rc < 0) {
		log_error("event=blob_read path=%s error=\"%s\"", b->path, strerror(e));
		return STORE_TEMP;
	}
	b->finished = true;
	return STORE_OK;
}

uint64_t store_blob_size(const struct store_blob *b)
{
	return b->size;
}

const char *store_blob_path(const struct store_blob *b)
{
	return b->path;
}

void store_blob_free(struct store_blob **bp)
{
	struct store_blob *b = *bp;
	if (b == NULL)
		return;
	if (b->fd >= 0)
		close(b->fd);
	unlink(b->path);
	free(b->path);
	mime_parser_free(&b->parser);
	buf_free(&b->parsed);
	buf_free(&b->header);
	buf_free(&b->wbuf);
	buf_free(&b->fts_header);
	buf_free(&b->fts_body);
	free(b);
	*bp = NULL;
}

bool blob_id_valid(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return false;
	return n == 32;
}

char *blob_path(const char *account_dir, const char *blob_id)
{
	return xasprintf("%s/blobs/%.2s/%s", account_dir, blob_id, blob_id);
}
