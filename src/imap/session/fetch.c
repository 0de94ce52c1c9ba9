/* FETCH and UID FETCH streamed through the FETCH engine, and STORE / UID STORE. */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"
#include "imap/fetch/fetch.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of a response produced per step; the connection's back-pressure does the rest. */
#define FETCH_STEP (64 * 1024)

struct imap_fetch_job {
	char *tag;
	struct imap_fetch_plan *plan;
	unsigned flags;
	uint32_t *idx; /* view indexes to fetch, ascending */
	bool *seen_set; /* \Seen was just set on idx[i]: send FLAGS */
	size_t n, pos;
	struct imap_fetch_cursor *cursor;
	bool started; /* the cursor has written part of its response */
	bool expunged, unknown_cte;
	struct buf out;
};

static void job_free(struct imap_fetch_job *j)
{
	imap_fetch_end(&j->cursor);
	imap_fetch_plan_free(&j->plan);
	buf_free(&j->out);
	free(j->idx);
	free(j->seen_set);
	free(j->tag);
	free(j);
}

void imap_fetch_abort(struct imap *s)
{
	if (s->fetch != NULL)
		job_free(s->fetch);
	s->fetch = NULL;
}

/* Writes responses until the output is full or all are written; true while more remain. */
static bool produce(struct imap *s)
{
	struct imap_fetch_job *j = s->fetch;
	struct imap_view *v = s->view;
	while (j->pos < j->n) {
		if (conn_closed(s->c))
			return false;
		if (j->cursor == NULL) {
			uint32_t i = j->idx[j->pos];
			unsigned flags = j->flags;
			if (imap_view_recent(s, &v->msgs[i]))
				flags |= IMAP_FETCH_RECENT;
			if (j->seen_set[j->pos])
				flags |= IMAP_FETCH_ADD_FLAGS;
			imap_fetch_begin(j->plan, s->acct, v->name, &v->msgs[i], i + 1, flags,
					 &j->cursor);
			j->started = false;
		}
		int r = imap_fetch_next(j->cursor, &j->out, FETCH_STEP);
		if (r < 0) {
			enum imap_fetch_error e = imap_fetch_error(j->cursor);
			if (j->started || e == IMAP_FETCH_ERR_IO) {
				/* A response cut short cannot be repaired: end the connection. */
				log_error("sess=%08x event=fetch_failed uid=%u", conn_id(s->c),
					  v->msgs[j->idx[j->pos]].msg.uid);
				imap_send_buf(s, &j->out);
				imap_send(s, "* BYE Reading a message failed");
				conn_close(s->c);
				return false;
			}
			if (e == IMAP_FETCH_ERR_UNKNOWN_CTE)
				j->unknown_cte = true;
			else
				j->expunged = true;
			r = 1;
		} else {
			j->started = true;
		}
		imap_send_buf(s, &j->out);
		if (r == 1) {
			imap_fetch_end(&j->cursor);
			j->pos++;
		}
		if (conn_output_pending(s->c) >= CONN_OUT_HIGH)
			return true;
	}
	return false;
}

bool imap_fetch_continue(struct imap *s)
{
	/* One read transaction per round instead of one per message. */
	store_read_batch_begin(s->acct);
	bool more = produce(s);
	store_read_batch_end(s->acct);
	struct imap_fetch_job *j = s->fetch;
	if (more || j == NULL || conn_closed(s->c))
		return more;
	s->fetch = NULL;
	if (j->unknown_cte)
		imap_no(s, j->tag, "[UNKNOWN-CTE] A part has a content transfer encoding "
				   "that cannot be decoded");
	else if (j->expunged)
		imap_ok(s, j->tag, "[EXPUNGEISSUED] Some messages were expunged meanwhile");
	else
		imap_ok(s, j->tag, "FETCH completed");
	job_free(j);
	return false;
}

/* Sets \Seen on the messages the plan reads without .PEEK; seen_set[i] tells which. */
static void set_seen(struct imap *s, const uint32_t *idx, size_t n, bool *seen_set)
{
	struct imap_view *v = s->view;
	uint32_t *uids = xcalloc(n, sizeof *uids);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!(v->msgs[idx[i]].msg.flags & STORE_FLAG_SEEN))
			uids[k++] = v->msgs[idx[i]].msg.uid;
	struct store_flag_result *res = NULL;
	size_t nres = 0;
	if (k > 0 && store_set_flags(s->acct, v->name, uids, k, STORE_FLAGS_ADD, STORE_FLAG_SEEN,
				     NULL, 0, 0, &res, &nres) == STORE_OK) {
		for (size_t r = 0, i = 0; r < nres; r++) {
			if (res[r].status != STORE_SET_CHANGED)
				continue;
			while (i < n && v->msgs[idx[i]].msg.uid < res[r].uid)
				i++;
			if (i == n)
				break;
			struct store_msg_full *m = &v->msgs[idx[i]];
			m->msg.flags = res[r].flags;
			m->msg.modseq = res[r].modseq;
			seen_set[i] = true;
		}
	}
	store_flag_results_free(res, nres);
	free(uids);
}

static void fetch_common(struct imap *s, const char *tag, const struct imap_arg *args,
			 size_t nargs, bool uid)
{
	if (nargs < 2) {
		imap_bad(s, tag, "Usage: FETCH sequence-set items");
		return;
	}
	struct imap_fetch_plan *plan = NULL;
	size_t used = 0;
	const char *error = NULL;
	if (imap_fetch_plan_parse(args + 1, nargs - 1, 0, &plan, &used, &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	if (used != nargs - 1) {
		imap_fetch_plan_free(&plan);
		imap_bad(s, tag, "Unknown FETCH modifier");
		return;
	}
	uint32_t *idx = NULL;
	size_t n = 0;
	if (imap_view_resolve(s, &args[0], uid, &idx, &n, &error) < 0) {
		imap_fetch_plan_free(&plan);
		imap_bad(s, tag, "%s", error);
		return;
	}
	struct imap_fetch_job *j = xcalloc(1, sizeof *j);
	j->tag = xstrdup(tag);
	j->plan = plan;
	j->idx = idx;
	j->n = n;
	j->seen_set = xcalloc(n ? n : 1, sizeof *j->seen_set);
	j->flags = (uid ? IMAP_FETCH_UID : 0) | (s->rev2 ? IMAP_FETCH_IMAP4REV2 | IMAP_FETCH_UTF8 : 0);
	if (n > 0 && imap_fetch_plan_sets_seen(plan) && !s->view->readonly)
		set_seen(s, idx, n, j->seen_set);
	s->fetch = j;
	imap_fetch_continue(s);
}

void imap_cmd_fetch(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	fetch_common(s, tag, args, nargs, false);
}

void imap_cmd_uid_fetch(struct imap *s, const char *tag, const struct imap_arg *args,
			size_t nargs)
{
	fetch_common(s, tag, args, nargs, true);
}

#define STORE_MAX_KEYWORDS 128

static void store_common(struct imap *s, const char *tag, const struct imap_arg *args,
			 size_t nargs, bool uid)
{
	const char *item = nargs >= 3 ? imap_arg_atom(&args[1]) : NULL;
	if (item == NULL) {
		imap_bad(s, tag, "Usage: STORE sequence-set [+|-]FLAGS[.SILENT] (flags)");
		return;
	}
	enum store_flag_op op = STORE_FLAGS_REPLACE;
	if (item[0] == '+' || item[0] == '-') {
		op = item[0] == '+' ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE;
		item++;
	}
	bool silent = strcasecmp(item, "FLAGS.SILENT") == 0;
	if (!silent && strcasecmp(item, "FLAGS") != 0) {
		imap_bad(s, tag, "STORE item must be FLAGS, +FLAGS or -FLAGS (.SILENT)");
		return;
	}
	uint32_t flags = 0;
	const char *kw[STORE_MAX_KEYWORDS];
	size_t nkw = 0;
	const char *error = NULL;
	if (imap_parse_flags(args + 2, nargs - 2, &flags, kw, STORE_MAX_KEYWORDS, &nkw,
			     &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	uint32_t *idx = NULL;
	size_t n = 0;
	if (imap_view_resolve(s, &args[0], uid, &idx, &n, &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	struct imap_view *v = s->view;
	if (v->readonly) {
		free(idx);
		imap_no(s, tag, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	uint32_t *uids = xcalloc(n ? n : 1, sizeof *uids);
	for (size_t i = 0; i < n; i++)
		uids[i] = v->msgs[idx[i]].msg.uid;
	struct store_flag_result *res = NULL;
	size_t nres = 0;
	enum store_err err = n == 0 ? STORE_OK
				    : store_set_flags(s->acct, v->name, uids, n, op, flags, kw, nkw,
						      0, &res, &nres);
	free(uids);
	if (err == STORE_INVALID) {
		free(idx);
		imap_bad(s, tag, "Invalid keyword");
		return;
	}
	if (err != STORE_OK) {
		free(idx);
		imap_no_store(s, tag, err, "STORE failed");
		return;
	}
	struct buf out = {0};
	for (size_t r = 0, i = 0; r < nres; r++) {
		while (i < n && v->msgs[idx[i]].msg.uid != res[r].uid)
			i++;
		if (i == n)
			break;
		struct store_msg_full *m = &v->msgs[idx[i]];
		m->msg.flags = res[r].flags;
		m->msg.modseq = res[r].modseq;
		free(m->keywords);
		m->keywords = res[r].keywords;
		res[r].keywords = NULL;
		if (silent)
			continue;
		buf_printf(&out, "* %u FETCH (", idx[i] + 1);
		if (uid)
			buf_printf(&out, "UID %u ", m->msg.uid);
		buf_append_str(&out, "FLAGS ");
		imap_format_flags(&out, m->msg.flags, m->keywords, imap_view_recent(s, m));
		buf_append_str(&out, ")\r\n");
	}
	store_flag_results_free(res, nres);
	free(idx);
	imap_send_buf(s, &out);
	buf_free(&out);
	imap_ok(s, tag, "STORE completed");
}

void imap_cmd_store(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	store_common(s, tag, args, nargs, false);
}

void imap_cmd_uid_store(struct imap *s, const char *tag, const struct imap_arg *args,
			size_t nargs)
{
	store_common(s, tag, args, nargs, true);
}
