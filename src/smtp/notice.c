#include "smtp/notice.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/delivery.h"
#include "smtp/queue.h"
#include "smtp/submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *action_name(enum notice_action a)
{
	switch (a) {
	case NOTICE_FAILED:
		return "failed";
	case NOTICE_DELAYED:
		return "delayed";
	case NOTICE_DELIVERED:
		return "delivered";
	case NOTICE_RELAYED:
		break;
	}
	return "relayed";
}

static void human_part(const struct config *cfg, const struct notice *n, struct buf *b)
{
	enum notice_action a = n->rcpts[0].action;
	buf_printf(b, "This is the mail system at %s.\r\n\r\n", cfg->hostname);
	if (a == NOTICE_FAILED)
		buf_append_str(b, "Your message could not be delivered to one or more recipients.\r\n"
				  "It is attached below.\r\n\r\n");
	else if (a == NOTICE_DELAYED)
		buf_append_str(b, "Your message has not been delivered yet to the recipients below.\r\n"
				  "The mail system will keep trying; no action is needed.\r\n\r\n");
	else
		buf_append_str(b, "Your message was delivered to the recipients below.\r\n\r\n");
	for (size_t i = 0; i < n->nrcpts; i++)
		buf_printf(b, "<%s>: %s\r\n", n->rcpts[i].address,
			   n->rcpts[i].diagnostic ? n->rcpts[i].diagnostic : action_name(n->rcpts[i].action));
}

static void status_part(const struct config *cfg, const struct notice *n, struct buf *b)
{
	char date[MAIL_DATE_MAX];
	format_mail_date(n->arrival, date);
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", cfg->hostname);
	if (n->envid != NULL)
		buf_printf(b, "Original-Envelope-Id: %s\r\n", n->envid);
	buf_printf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < n->nrcpts; i++) {
		const struct notice_rcpt *r = &n->rcpts[i];
		buf_printf(b, "\r\nFinal-Recipient: rfc822; %s\r\n", r->address);
		if (r->orcpt != NULL)
			buf_printf(b, "Original-Recipient: %s\r\n", r->orcpt);
		buf_printf(b, "Action: %s\r\nStatus: %s\r\n", action_name(r->action), r->status);
		if (r->diagnostic != NULL)
			buf_printf(b, "Diagnostic-Code: smtp; %s\r\n", r->diagnostic);
		if (r->action == NOTICE_DELAYED && n->retry_until > 0) {
			format_mail_date(n->retry_until, date);
			buf_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

static const char *subject_for(enum notice_action a)
{
	switch (a) {
	case NOTICE_FAILED:
		return "Undelivered Mail Returned to Sender";
	case NOTICE_DELAYED:
		return "Delayed Mail (still being retried)";
	default:
		return "Successful Mail Delivery Report";
	}
}

/* Writes the whole report into a new finished blob. */
static enum store_err build(struct store *store, const struct config *cfg, const struct notice *n,
			    struct store_blob **blob_r)
{
	char date[MAIL_DATE_MAX];
	format_mail_date((int64_t)time(NULL), date);
	char *boundary = random_hex(12);
	char *msgid = random_hex(12);
	struct buf b = {0};
	buf_printf(&b,
		   "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
		   "Date: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-replied\r\n"
		   "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
		   "\r\n\tboundary=\"%s\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n"
		   "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		   cfg->hostname, n->to, subject_for(n->rcpts[0].action), date, msgid, cfg->hostname,
		   boundary, boundary);
	human_part(cfg, n, &b);
	buf_printf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary);
	status_part(cfg, n, &b);
	buf_printf(&b, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
		   n->headers_only ? "text/rfc822-headers" : "message/rfc822");
	struct store_blob *blob = NULL;
	enum store_err err = store_blob_begin(store, &blob);
	if (err == STORE_OK)
		err = store_blob_write(blob, b.data, b.len);
	b.len = 0;
	if (err == STORE_OK && n->headers_only) {
		if (submit_read_header(n->msg_path, 1024 * 1024, &b) < 0)
			err = STORE_TEMP;
		else
			err = store_blob_write_lines(blob, b.data, b.len);
	} else if (err == STORE_OK) {
		int fd = open(n->msg_path, O_RDONLY | O_CLOEXEC);
		char *chunk = xmalloc(65536);
		ssize_t got;
		if (fd < 0)
			err = STORE_TEMP;
		while (err == STORE_OK && (got = read(fd, chunk, 65536)) > 0)
			err = store_blob_write_lines(blob, chunk, (size_t)got);
		if (fd >= 0)
			close(fd);
		free(chunk);
	}
	b.len = 0;
	buf_printf(&b, "\r\n--%s--\r\n", boundary);
	if (err == STORE_OK)
		err = store_blob_write(blob, b.data, b.len);
	if (err == STORE_OK)
		err = store_blob_finish(blob);
	if (err == STORE_OK)
		*blob_r = blob;
	else
		store_blob_free(&blob);
	buf_free(&b);
	free(boundary);
	free(msgid);
	return err;
}

int notice_send(struct store *store, struct auth_db *auth, const struct config *cfg,
		const struct notice *n)
{
	if (n->to[0] == '\0' || n->nrcpts == 0)
		return 0;
	struct store_blob *blob = NULL;
	enum store_err err = build(store, cfg, n, &blob);
	if (err != STORE_OK) {
		log_error("event=notice_failed to=\"%s\" error=\"%s\"", n->to, store_strerror(err));
		return -1;
	}
	char *account = NULL;
	int r = auth_resolve_rcpt(auth, n->to, &account);
	int rc = 0;
	if (r == 1) {
		rc = delivery_local(store, account, blob) == STORE_OK ? 0 : -1;
	} else {
		struct queue_msg m = {.from = xstrdup(""), .created = time(NULL)};
		queue_rcpt_add(&m, n->to, 0, NULL);
		rc = queue_enqueue(cfg->data_dir, store_blob_path(blob), &m);
		queue_msg_free(&m);
	}
	log_info("event=notice action=%s to=\"%s\" rcpts=%zu result=%s", action_name(n->rcpts[0].action),
		 n->to, n->nrcpts, rc == 0 ? "ok" : "failed");
	free(account);
	store_blob_free(&blob);
	return rc;
}

void notice_local_delivered(struct store *store, struct auth_db *auth, const struct config *cfg,
			    const char *mail_from, const char *envid, const char *rcpt,
			    const char *orcpt, struct store_blob *blob)
{
	struct notice_rcpt r = {rcpt, orcpt, NOTICE_DELIVERED, "2.0.0", NULL};
	struct notice n = {
		.to = mail_from,
		.envid = envid,
		.headers_only = true,
		.msg_path = store_blob_path(blob),
		.arrival = (int64_t)time(NULL),
		.rcpts = &r,
		.nrcpts = 1,
	};
	notice_send(store, auth, cfg, &n);
}
