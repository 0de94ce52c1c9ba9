/* APPEND with MULTIAPPEND (RFC 3502) and UIDPLUS APPENDUID (RFC 4315). Message literals larger
 * than IMAP_LITERAL_STREAM_THRESHOLD go straight from the parser into spool blobs, so an
 * upload of any size passes through fixed buffers. Line endings are made CRLF as for mail
 * that arrives by SMTP, except in a literal8 (BINARY, RFC 3516), whose bytes are data. */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

#define APPEND_MAX_KEYWORDS 128
/* One MULTIAPPEND keeps each received message's index data in memory until it commits them
 * together: at most this many messages, and this many bytes beyond one max_message_size. */
#define APPEND_MAX_MESSAGES 1000
#define APPEND_MAX_TOTAL (256ull * 1024 * 1024)

struct imap_append {
	struct store_blob *cur;    /* the literal being received */
	struct store_blob **done;  /* received literals, in order */
	size_t ndone, next;
	uint64_t total;            /* bytes of the received literals */
	bool binary;               /* the current literal is a literal8: stored as it is */
	bool failed;               /* writing a blob failed */
};

void imap_append_abort(struct imap *s)
{
	struct imap_append *a = s->append;
	if (a == NULL)
		return;
	store_blob_free(&a->cur);
	for (size_t i = 0; i < a->ndone; i++)
		store_blob_free(&a->done[i]);
	free(a->done);
	free(a);
	s->append = NULL;
}

static int sink(void *ctx, enum imap_literal_event ev, const struct imap_literal_info *info,
		const unsigned char *data, size_t len)
{
	struct imap *s = ctx;
	struct imap_append *a = s->append;
	switch (ev) {
	case IMAP_LITERAL_BEGIN:
		/* Only the messages: top-level and not the mailbox name. */
		if (info->depth != 0 || info->index == 0 ||
		    info->size > conn_config(s->c)->max_message_size ||
		    a->ndone >= APPEND_MAX_MESSAGES ||
		    (a->ndone > 0 && a->total + info->size > APPEND_MAX_TOTAL))
			return -1;
		a->total += info->size;
		a->binary = info->literal8;
		if (store_blob_begin(s->app->store, &a->cur) != STORE_OK)
			return -1;
		return 0;
	case IMAP_LITERAL_DATA:
		if ((a->binary ? store_blob_write(a->cur, data, len)
			       : store_blob_write_lines(a->cur, data, len)) != STORE_OK)
			a->failed = true;
		return 0;
	case IMAP_LITERAL_END:
		if (store_blob_finish(a->cur) != STORE_OK)
			a->failed = true;
		a->done = xrealloc(a->done, (a->ndone + 1) * sizeof *a->done);
		a->done[a->ndone++] = a->cur;
		a->cur = NULL;
		return 0;
	case IMAP_LITERAL_ABORT:
		store_blob_free(&a->cur);
		return 0;
	}
	return 0;
}

void imap_append_prepare(struct imap *s)
{
	imap_append_abort(s);
	s->append = xcalloc(1, sizeof *s->append);
	imap_parser_set_literal_sink(s->parser, IMAP_LITERAL_STREAM_THRESHOLD, sink, s);
}

/* One message of the command: [flags] [date-time] literal. */
struct append_msg {
	uint32_t flags;
	const char *kw[APPEND_MAX_KEYWORDS];
	size_t nkw;
	int64_t date;
	const struct imap_arg *data;
};

static int parse_messages(const struct imap_arg *args, size_t nargs, struct append_msg **msgs_r,
			  size_t *n_r, const char **error_r)
{
	struct append_msg *msgs = NULL;
	size_t n = 0;
	for (size_t i = 0; i < nargs;) {
		msgs = xrealloc(msgs, (n + 1) * sizeof *msgs);
		struct append_msg *m = &msgs[n++];
		memset(m, 0, sizeof *m);
		if (args[i].type == IMAP_ARG_LIST) {
			if (args[i].list_count > 0 &&
			    imap_parse_flags(&args[i], 1, &m->flags, m->kw, APPEND_MAX_KEYWORDS,
					     &m->nkw, error_r) < 0)
				goto fail;
			i++;
		}
		if (i + 1 < nargs && args[i].type == IMAP_ARG_STRING && !args[i].literal) {
			m->date = imap_parse_datetime((const char *)args[i].data);
			if (m->date < 0) {
				*error_r = "Bad date-time (\"dd-Mon-yyyy hh:mm:ss +zzzz\")";
				goto fail;
			}
			i++;
		}
		if (i == nargs || (args[i].type != IMAP_ARG_STREAMED &&
				   (args[i].type != IMAP_ARG_STRING || !args[i].literal))) {
			*error_r = "Message literal expected";
			goto fail;
		}
		m->data = &args[i++];
	}
	if (n == 0) {
		*error_r = "Usage: APPEND mailbox [(flags)] [date-time] literal";
		goto fail;
	}
	*msgs_r = msgs;
	*n_r = n;
	return 0;
fail:
	free(msgs);
	return -1;
}

/* The blob of one message: streamed already, or written now from memory. */
static enum store_err message_blob(struct imap *s, const struct imap_arg *data,
				   struct store_blob **blob_r)
{
	struct imap_append *a = s->append;
	if (data->type == IMAP_ARG_STREAMED) {
		if (a == NULL || a->next >= a->ndone)
			return STORE_TEMP;
		*blob_r = a->done[a->next];
		a->done[a->next++] = NULL;
		return STORE_OK;
	}
	enum store_err err = store_blob_begin(s->app->store, blob_r);
	if (err == STORE_OK)
		err = data->literal8 ? store_blob_write(*blob_r, data->data, data->len)
				     : store_blob_write_lines(*blob_r, data->data, data->len);
	if (err == STORE_OK)
		err = store_blob_finish(*blob_r);
	if (err != STORE_OK)
		store_blob_free(blob_r);
	return err;
}

void imap_cmd_append(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	struct append_msg *msgs = NULL;
	size_t n = 0;
	const char *error = NULL;
	if (nargs < 2 || parse_messages(args + 1, nargs - 1, &msgs, &n, &error) < 0) {
		imap_append_abort(s);
		imap_bad(s, tag, "%s", error ? error : "Usage: APPEND mailbox [(flags)] [date-time] literal");
		return;
	}
	char *name = imap_arg_mailbox(s, tag, &args[0]);
	if (name == NULL) {
		imap_append_abort(s);
		free(msgs);
		return;
	}
	struct store_mailbox_info info;
	enum store_err err = store_mailbox_info(s->acct, name, &info);
	if (err == STORE_OK && s->append != NULL && s->append->failed)
		err = STORE_TEMP;
	for (size_t i = 0; err == STORE_OK && i < n; i++)
		if (msgs[i].data->len == 0)
			err = STORE_INVALID;
	/* All messages in one transaction: MULTIAPPEND is all or nothing (RFC 3502), and is
	 * never seen half done. */
	struct store_append_msg *am = xcalloc(n, sizeof *am);
	for (size_t i = 0; err == STORE_OK && i < n; i++) {
		err = message_blob(s, msgs[i].data, &am[i].blob);
		am[i].flags = msgs[i].flags;
		am[i].keywords = msgs[i].kw;
		am[i].nkw = msgs[i].nkw;
		am[i].internaldate = msgs[i].date;
	}
	uint32_t *uids = xcalloc(n, sizeof *uids);
	if (err == STORE_OK)
		err = store_append_many(s->acct, name, am, n, uids);
	for (size_t i = 0; i < n; i++)
		store_blob_free(&am[i].blob);
	free(am);
	imap_append_abort(s);
	free(name);
	free(msgs);
	if (err == STORE_NOTFOUND)
		imap_no(s, tag, "[TRYCREATE] The mailbox does not exist");
	else if (err == STORE_INVALID)
		imap_no(s, tag, "[CANNOT] Empty message, bad flag or bad keyword");
	else if (err != STORE_OK)
		imap_no_store(s, tag, err, "APPEND failed");
	else {
		struct imap_seqset set = {0};
		for (size_t i = 0; i < n; i++)
			imap_seqset_add(&set, uids[i], uids[i]);
		struct buf b = {0};
		imap_seqset_format(&set, &b);
		imap_ok(s, tag, "[APPENDUID %u %s] APPEND completed", info.uidvalidity, buf_cstr(&b));
		buf_free(&b);
		imap_seqset_free(&set);
	}
	free(uids);
}
