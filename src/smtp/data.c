/* DATA: the message streams to a spool blob with dot-unstuffing (RFC 5321 §4.5.2); the
 * reply comes only after it is durably stored for every recipient. */
#include "smtp/smtp-private.h"

#include "core/log.h"
#include "core/util.h"
#include "smtp/delivery.h"
#include "smtp/notice.h"
#include "smtp/queue.h"
#include "smtp/runner.h"
#include "smtp/submit.h"
#include "smtp/unstuff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void write_data(struct smtp *s, const unsigned char *p, size_t len)
{
	if (len == 0 || s->data_err != STORE_OK)
		return;
	s->data_size += len;
	if (s->data_size > conn_config(s->c)->max_message_size) {
		s->data_too_big = true;
		return;
	}
	if (!s->data_too_big)
		s->data_err = store_blob_write_lines(s->blob, p, len);
}

static void trace_fields(struct smtp *s, struct buf *b)
{
	char date[MAIL_DATE_MAX];
	format_mail_date((int64_t)time(NULL), date);
	const char *with = s->lmtp ? "LMTP" : s->esmtp ? "ESMTP" : "SMTP";
	/* RFC 5321 §4.4: final delivery records the reverse path. The outbound queue leaves
	 * it out when it relays the message (outbound.c). */
	buf_append_str(b, "Return-Path: <");
	smtp_format_path(s->mail_from, b);
	buf_append_str(b, ">\r\n");
	buf_printf(b, "Received: from %s (%s)\r\n\tby %s (sarn) with %s%s id %08x",
		   s->helo, conn_peer_ip(s->c), conn_config(s->c)->hostname, with,
		   conn_tls_active(s->c) && !s->lmtp ? "S" : "", conn_id(s->c));
	if (s->nrcpts == 1)
		buf_printf(b, "\r\n\tfor <%s>", s->rcpts[0].address);
	buf_printf(b, "; %s\r\n", date);
}

/* Opens the spool blob and writes the trace fields; false after replying. */
static bool begin_message(struct smtp *s)
{
	enum store_err err = store_blob_begin(s->app->store, &s->blob);
	if (err != STORE_OK) {
		smtp_reply(s, "451 4.3.0 Cannot accept the message now, try again later");
		return false;
	}
	struct buf hdr = {0};
	trace_fields(s, &hdr);
	s->data_err = store_blob_write(s->blob, hdr.data, hdr.len);
	buf_free(&hdr);
	s->data_size = 0;
	s->data_too_big = false;
	return true;
}

void smtp_cmd_data(struct smtp *s, char *args)
{
	if (args[0] != '\0') {
		smtp_bad_command(s, "501 5.5.4 DATA takes no arguments");
		return;
	}
	if (s->bdat) {
		smtp_bad_command(s, "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	if (!s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 Send MAIL first");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_bad_command(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (!begin_message(s))
		return;
	unstuff_init(&s->unstuff);
	s->in_data = true;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void reply_for_error(struct smtp *s, enum store_err err, const char *rcpt)
{
	const char *who = rcpt ? rcpt : "";
	const char *sep = rcpt ? ": " : "";
	if (err == STORE_NOSPACE || err == STORE_OVERQUOTA)
		smtp_reply(s, "452 4.3.1 %s%sInsufficient storage, try again later", who, sep);
	else
		smtp_reply(s, "451 4.3.0 %s%sLocal delivery failed, try again later", who, sep);
}

/* Storing a message waits for fsyncs, so it runs on a delivery thread while the session
 * waits; the job owns the message and the recipients meanwhile. */
struct delivery_job {
	struct conn *c;
	struct smtp *s; /* used only while the connection is open */
	struct store *store;
	struct auth_db *auth;
	struct queue_runner *runner;
	const struct config *cfg; /* a published snapshot: valid until exit */
	bool lmtp;
	bool submission;
	char *account;           /* submission: the authenticated sender */
	struct store_blob *blob;
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	char *mail_from;
	char *envid;
	bool ret_hdrs;
	bool smtputf8;
	uint64_t size;
	enum store_err err;      /* before delivery (writing, finishing the blob) */
	enum store_err *results; /* per recipient */
};

/* Every remote recipient in one queue entry. */
static enum store_err enqueue_remote(struct delivery_job *j)
{
	struct queue_msg m = {
		.from = xstrdup(j->mail_from),
		.envid = j->envid ? xstrdup(j->envid) : NULL,
		.ret_hdrs = j->ret_hdrs,
		.smtputf8 = j->smtputf8,
		.created = time(NULL),
	};
	for (size_t i = 0; i < j->nrcpts; i++)
		if (j->rcpts[i].account == NULL)
			queue_rcpt_add(&m, j->rcpts[i].address, j->rcpts[i].notify, j->rcpts[i].orcpt);
	enum store_err err = STORE_OK;
	if (m.nrcpts > 0 && queue_enqueue(j->cfg->data_dir, store_blob_path(j->blob), &m) < 0)
		err = errno == ENOSPC || errno == EDQUOT ? STORE_NOSPACE : STORE_TEMP;
	else if (m.nrcpts > 0)
		queue_runner_enqueued(j->runner, m.id);
	queue_msg_free(&m);
	return err;
}

static void deliver_on_job_thread(void *arg)
{
	struct delivery_job *j = arg;
	if (j->err == STORE_OK)
		j->err = store_blob_finish(j->blob);
	if (j->err == STORE_OK && j->submission)
		j->err = submit_prepare(j->store, j->cfg, j->mail_from, &j->blob);
	enum store_err err = j->err;
	bool any_remote = false;
	for (size_t i = 0; i < j->nrcpts; i++) {
		if (j->rcpts[i].account == NULL) {
			any_remote = true;
			continue;
		}
		/* SMTP stops at the first failure: the whole message is retried anyway. */
		j->results[i] = err == STORE_OK ? delivery_local(j->store, j->rcpts[i].account, j->blob)
						: err;
		if (!j->lmtp && j->results[i] != STORE_OK)
			err = j->results[i];
	}
	if (any_remote) {
		enum store_err qerr = err == STORE_OK ? enqueue_remote(j) : err;
		for (size_t i = 0; i < j->nrcpts; i++)
			if (j->rcpts[i].account == NULL)
				j->results[i] = qerr;
		err = qerr;
	}
	if (err == STORE_OK && j->submission) {
		if (j->cfg->save_sent)
			submit_save_sent(j->store, j->account, j->blob);
		for (size_t i = 0; i < j->nrcpts; i++)
			if (j->rcpts[i].account != NULL && (j->rcpts[i].notify & DSN_NOTIFY_SUCCESS))
				notice_local_delivered(j->store, j->auth, j->cfg, j->mail_from, j->envid,
						       j->rcpts[i].address, j->rcpts[i].orcpt, j->blob);
	}
}

static void job_free(struct delivery_job *j)
{
	store_blob_free(&j->blob);
	for (size_t i = 0; i < j->nrcpts; i++) {
		free(j->rcpts[i].address);
		free(j->rcpts[i].account);
		free(j->rcpts[i].orcpt);
	}
	free(j->rcpts);
	free(j->results);
	free(j->mail_from);
	free(j->envid);
	free(j->account);
	free(j);
}

static void delivered(void *arg)
{
	struct delivery_job *j = arg;
	if (!conn_closed(j->c)) {
		struct smtp *s = j->s;
		enum store_err overall = j->err;
		if (j->lmtp) {
			/* RFC 2033 §4.2: one reply per accepted recipient, in order. */
			for (size_t i = 0; i < j->nrcpts; i++) {
				if (j->results[i] == STORE_OK)
					smtp_reply(s, "250 2.0.0 <%s> Delivered", j->rcpts[i].address);
				else
					reply_for_error(s, j->results[i], j->rcpts[i].address);
			}
		} else {
			/* SMTP has one reply for all: if any local delivery failed, ask for a retry;
			 * recipients already delivered may see it twice (at-least-once), none lose it. */
			for (size_t i = 0; i < j->nrcpts && overall == STORE_OK; i++)
				overall = j->results[i];
			if (overall == STORE_OK)
				smtp_reply(s, "250 2.0.0 Message accepted for delivery");
			else
				reply_for_error(s, overall, NULL);
		}
		log_info("sess=%08x event=message from=\"%s\" rcpts=%zu size=%llu result=%s",
			 conn_id(j->c), j->mail_from, j->nrcpts, (unsigned long long)j->size,
			 overall == STORE_OK ? "ok" : store_strerror(overall));
		s->delivering = false;
		conn_resume(j->c); /* pipelined commands go on */
	}
	conn_unref(j->c);
	job_free(j);
}

static void end_of_data(struct smtp *s)
{
	s->in_data = false;
	s->bdat = false;
	if (s->data_too_big) {
		/* LMTP: one reply per recipient, even for a refusal (RFC 2033 §4.2). */
		for (size_t i = 0; i < (s->lmtp ? s->nrcpts : 1); i++)
			smtp_reply(s, "552 5.3.4 Message size exceeds the limit of %llu octets",
				   (unsigned long long)conn_config(s->c)->max_message_size);
		smtp_reset_transaction(s);
		return;
	}
	struct delivery_job *j = xcalloc(1, sizeof *j);
	j->c = s->c;
	j->s = s;
	j->store = s->app->store;
	j->auth = s->app->auth;
	j->runner = s->app->queue;
	j->cfg = conn_config(s->c);
	j->lmtp = s->lmtp;
	j->submission = s->submission;
	j->account = s->account ? xstrdup(s->account) : NULL;
	j->size = s->data_size;
	j->err = s->data_err;
	j->blob = s->blob;
	j->rcpts = s->rcpts;
	j->nrcpts = s->nrcpts;
	j->mail_from = s->mail_from;
	j->envid = s->envid;
	j->ret_hdrs = s->ret_hdrs;
	j->smtputf8 = s->smtputf8;
	j->results = xcalloc(s->nrcpts, sizeof *j->results);
	s->blob = NULL;
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->mail_from = NULL;
	s->envid = NULL;
	smtp_reset_transaction(s);
	s->delivering = true;
	conn_ref(s->c);
	conn_pause(s->c);
	workq_submit(s->app->deliveries, deliver_on_job_thread, conn_loop(s->c), delivered, j);
}

static void emit_data(void *ctx, const unsigned char *data, size_t len)
{
	write_data(ctx, data, len);
}

bool smtp_data_input(struct smtp *s)
{
	struct buf *in = conn_input(s->c);
	bool end = false;
	size_t used = unstuff_feed(&s->unstuff, in->data, in->len, emit_data, s, &end);
	buf_consume(in, used);
	if (end)
		end_of_data(s);
	return end;
}

/* The end of a BDAT chunk (RFC 3030 §2). */
static void chunk_done(struct smtp *s)
{
	if (s->chunk_discard)
		return;
	if (!s->chunk_last) {
		smtp_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->data_size);
		return;
	}
	end_of_data(s);
}

void smtp_cmd_bdat(struct smtp *s, char *args)
{
	size_t n = strcspn(args, " ");
	uint64_t size;
	bool last = strcasecmp(args + n, " LAST") == 0;
	if (parse_u64(args, n, UINT64_MAX, &size) < 0 || (args[n] != '\0' && !last)) {
		/* The chunk's length is unknown, so its octets will be read as commands. */
		smtp_bad_command(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	s->chunk_left = size;
	s->chunk_last = last;
	s->chunk_discard = true; /* until the checks below pass */
	if (!s->have_mail) {
		smtp_bad_command(s, "503 5.5.1 Send MAIL first");
	} else if (s->nrcpts == 0) {
		smtp_bad_command(s, "554 5.5.1 No valid recipients");
	} else if (s->bdat || begin_message(s)) {
		s->bdat = true;
		s->chunk_discard = false;
	} else {
		smtp_reset_transaction(s);
	}
	if (size == 0)
		chunk_done(s);
}

bool smtp_chunk_input(struct smtp *s)
{
	struct buf *in = conn_input(s->c);
	size_t take = in->len < s->chunk_left ? in->len : (size_t)s->chunk_left;
	if (!s->chunk_discard)
		write_data(s, in->data, take);
	buf_consume(in, take);
	s->chunk_left -= take;
	if (s->chunk_left > 0)
		return false;
	chunk_done(s);
	return true;
}
