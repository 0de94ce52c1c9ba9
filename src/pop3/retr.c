/* RETR and TOP: the message streams from its file through a fixed buffer, dot-stuffed
 * (RFC 1939 §3), so memory does not depend on message size. */
#include "pop3/pop3-private.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RETR_CHUNK 65536

static void start(struct pop3 *p, uint32_t msgno, bool whole, uint64_t body_lines)
{
	struct pop3_msg *m = &p->msgs[msgno - 1];
	int fd = -1;
	enum store_err err = store_msg_open(p->acct, NULL, m->uid, &fd);
	if (err == STORE_EXPUNGED) {
		pop3_reply_err(p, "Message %u was removed by another session", msgno);
		return;
	}
	if (err != STORE_OK) {
		pop3_reply_err(p, "[SYS/TEMP] Cannot read message: %s", store_strerror(err));
		return;
	}
	p->retr = (struct pop3_retr){
		.fd = fd, .msgno = msgno, .active = true, .whole = whole, .bol = true,
		.in_header = true, .last_was_crlf = true, .header_blank = true,
		.body_lines = body_lines,
	};
	if (whole)
		pop3_reply_ok(p, "%llu octets", (unsigned long long)m->size);
	else
		pop3_reply_ok(p, "Top of message follows");
	pop3_retr_continue(p);
}

void pop3_retr_abort(struct pop3 *p)
{
	if (p->retr.fd >= 0)
		close(p->retr.fd);
	p->retr.fd = -1;
	p->retr.active = false;
}

static void finish(struct pop3 *p, bool complete)
{
	if (!p->retr.last_was_crlf)
		conn_write(p->c, "\r\n", 2);
	conn_write(p->c, ".\r\n", 3);
	/* Retention counts from the first complete download (RETR, or a TOP that reached the
	 * end of the message); recorded when the session ends, in one transaction. */
	if (complete && !p->msgs[p->retr.msgno - 1].already_downloaded)
		p->msgs[p->retr.msgno - 1].downloaded = true;
	pop3_retr_abort(p);
}

/* Copies in[0..len) to out, dot-stuffing and, for TOP, stopping after the body lines.
 * Returns false when TOP has sent all it should. */
bool pop3_stuff(struct pop3_retr *r, const unsigned char *in, size_t len, struct buf *out)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = in[i];
		if (r->bol && !r->in_header && !r->whole && r->body_lines == 0) {
			buf_append(out, in + start, i - start);
			return false;
		}
		if (r->bol && ch == '.') {
			buf_append(out, in + start, i - start);
			buf_append(out, ".", 1);
			start = i;
		}
		if (ch == '\n') {
			if (r->in_header && r->header_blank)
				r->in_header = false; /* the empty line ends the header */
			else if (!r->in_header && r->body_lines > 0)
				r->body_lines--;
			r->bol = true;
			r->header_blank = true;
			r->last_was_crlf = (i > 0 ? in[i - 1] : r->prev_byte) == '\r';
			continue;
		}
		if (ch != '\r')
			r->header_blank = false;
		r->bol = false;
		r->last_was_crlf = false;
	}
	buf_append(out, in + start, len - start);
	if (len > 0)
		r->prev_byte = in[len - 1];
	return true;
}

bool pop3_retr_continue(struct pop3 *p)
{
	struct pop3_retr *r = &p->retr;
	unsigned char chunk[RETR_CHUNK];
	while (r->active && conn_output_pending(p->c) < CONN_OUT_LOW) {
		ssize_t n = read(r->fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("sess=%08x event=retr_read error=\"%s\"", conn_id(p->c), strerror(errno));
			/* The client cannot be told mid-message; end the connection. */
			pop3_retr_abort(p);
			conn_close(p->c);
			return false;
		}
		if (n == 0) {
			finish(p, true);
			return true;
		}
		struct buf out = {0};
		bool more = pop3_stuff(r, chunk, (size_t)n, &out);
		conn_write(p->c, out.data, out.len);
		buf_free(&out);
		if (!more) {
			r->last_was_crlf = true; /* TOP stops at a line boundary */
			finish(p, false);
			return true;
		}
	}
	return !r->active;
}

void pop3_record_downloads(struct pop3 *p)
{
	uint32_t *uids = xcalloc(p->nmsgs, sizeof *uids);
	size_t n = 0;
	for (size_t i = 0; i < p->nmsgs; i++)
		if (p->msgs[i].downloaded)
			uids[n++] = p->msgs[i].uid;
	enum store_err err = store_mark_downloaded(p->acct, NULL, uids, n, (int64_t)time(NULL));
	if (err != STORE_OK)
		log_warn("sess=%08x event=mark_downloaded error=\"%s\"", conn_id(p->c),
			 store_strerror(err));
	for (size_t i = 0; i < p->nmsgs; i++)
		p->msgs[i].downloaded = false;
	free(uids);
}

void pop3_cmd_retr(struct pop3 *p, char *args)
{
	uint32_t msgno;
	if (pop3_arg_single(p, args, &msgno) != NULL)
		start(p, msgno, true, 0);
}

void pop3_cmd_top(struct pop3 *p, char *args)
{
	char *space = strchr(args, ' ');
	uint64_t lines;
	if (space == NULL || parse_u64(space + 1, strlen(space + 1), UINT64_MAX, &lines) < 0) {
		pop3_bad_command(p, "Usage: TOP msg lines");
		return;
	}
	*space = '\0';
	uint32_t msgno;
	if (pop3_arg_single(p, args, &msgno) != NULL)
		start(p, msgno, false, lines);
}
