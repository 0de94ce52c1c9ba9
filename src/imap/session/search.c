/* SEARCH and UID SEARCH on the SEARCH engine, with ESEARCH and SEARCHRES. */
#include "imap/session/imap-private.h"

#include "core/util.h"
#include "imap/search/search.h"

#include <stdlib.h>

static void search_common(struct imap *s, const char *tag, const struct imap_arg *args,
			  size_t nargs, bool uid)
{
	struct imap_view *v = s->view;
	struct imap_search_query *q = NULL;
	struct imap_search_error error = {0};
	if (imap_search_parse(args, nargs, !s->rev2, &q, &error) < 0) {
		if (error.badcharset)
			imap_no(s, tag, "[BADCHARSET " IMAP_SEARCH_CHARSETS "] %s", error.reason);
		else
			imap_bad(s, tag, "%s", error.reason);
		return;
	}
	struct imap_search_ctx ctx = {
		.acct = s->acct,
		.mailbox = v->name,
		.msgs = v->msgs,
		.count = v->count,
		.saved = v->have_saved ? &v->saved : NULL,
		.recent = !s->rev2 && v->recent.count ? &v->recent : NULL,
	};
	struct imap_search_result result = {0};
	store_read_batch_begin(s->acct);
	enum store_err err = imap_search_run(q, &ctx, &result);
	store_read_batch_end(s->acct);
	bool save = q->ret & IMAP_SEARCH_RET_SAVE;
	if (err != STORE_OK) {
		if (save) {
			/* RFC 5182 §2.1: a failed SEARCH with SAVE leaves an empty saved result. */
			imap_seqset_free(&v->saved);
			v->have_saved = true;
		}
		imap_search_query_free(&q);
		imap_no_store(s, tag, err, "SEARCH failed");
		return;
	}
	struct buf out = {0};
	if (q->esearch || (s->rev2 && !save))
		imap_search_format_esearch(q, &result, tag, uid, &out);
	else if (!q->esearch)
		imap_search_format_search(q, &result, uid, &out);
	if (save) {
		imap_seqset_free(&v->saved);
		imap_search_saved_result(q, &result, &v->saved);
		imap_seqset_normalize(&v->saved);
		v->have_saved = true;
	}
	imap_search_result_free(&result);
	imap_search_query_free(&q);
	imap_send_buf(s, &out);
	buf_free(&out);
	imap_ok(s, tag, "SEARCH completed");
}

void imap_cmd_search(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	search_common(s, tag, args, nargs, false);
}

void imap_cmd_uid_search(struct imap *s, const char *tag, const struct imap_arg *args,
			 size_t nargs)
{
	search_common(s, tag, args, nargs, true);
}
