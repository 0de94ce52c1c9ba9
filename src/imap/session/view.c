/* The selected mailbox as the client knows it, and the untagged responses that bring the
 * client up to date with changes by anyone (RFC 9051 §5.2, §7.5.1). */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* IMAP4rev1 sessions take the messages no session has seen yet as their \Recent ones
 * (EXAMINE only looks). */
static void claim_recent(struct imap *s, struct imap_view *v)
{
	uint32_t from = 0, to = 0;
	if (!s->rev2 && store_recent(s->acct, v->name, !v->readonly, &from, &to) == STORE_OK &&
	    from < to)
		imap_seqset_add(&v->recent, from, to - 1);
}

enum store_err imap_view_open(struct imap *s, const char *name, bool readonly,
			      struct imap_view **view_r)
{
	struct store_mailbox_info info;
	enum store_err err = store_mailbox_info(s->acct, name, &info);
	if (err != STORE_OK)
		return err;
	struct imap_view *v = xcalloc(1, sizeof *v);
	/* Read after info: anything newer is announced again by the first sync, which is
	 * harmless, while nothing older can be missed. */
	err = store_mailbox_messages_full(s->acct, name, &v->msgs, &v->count);
	if (err != STORE_OK) {
		free(v);
		return err;
	}
	v->cap = v->count;
	v->name = xstrdup(name);
	v->readonly = readonly;
	v->uidvalidity = info.uidvalidity;
	v->uidnext = info.uidnext;
	if (v->count > 0 && v->msgs[v->count - 1].msg.uid >= v->uidnext)
		v->uidnext = v->msgs[v->count - 1].msg.uid + 1;
	v->modseq = info.highestmodseq;
	*view_r = v;
	claim_recent(s, v);
	return STORE_OK;
}

void imap_view_free(struct imap_view **vp)
{
	struct imap_view *v = *vp;
	if (v == NULL)
		return;
	store_msgs_full_free(v->msgs, v->count);
	free(v->pending_expunges);
	imap_seqset_free(&v->saved);
	imap_seqset_free(&v->recent);
	free(v->name);
	free(v);
	*vp = NULL;
}

long imap_view_find(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t u = v->msgs[mid].msg.uid;
		if (u == uid)
			return (long)mid;
		if (u < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

bool imap_view_recent(const struct imap *s, const struct store_msg_full *m)
{
	return !s->rev2 && imap_seqset_contains(&s->view->recent, m->msg.uid, 0);
}

size_t imap_view_recent_count(const struct imap *s)
{
	size_t n = 0;
	for (size_t i = 0; s->view->recent.count > 0 && i < s->view->count; i++)
		n += imap_view_recent(s, &s->view->msgs[i]);
	return n;
}

static void expunge_one(struct imap *s, struct buf *out, uint32_t uid)
{
	struct imap_view *v = s->view;
	long i = imap_view_find(v, uid);
	if (i < 0)
		return;
	buf_printf(out, "* %ld EXPUNGE\r\n", i + 1);
	free(v->msgs[i].keywords);
	memmove(&v->msgs[i], &v->msgs[i + 1], (v->count - (size_t)i - 1) * sizeof *v->msgs);
	v->count--;
}

static void defer_expunge(struct imap_view *v, uint32_t uid)
{
	if (imap_view_find(v, uid) < 0)
		return;
	for (size_t i = 0; i < v->npending; i++)
		if (v->pending_expunges[i] == uid)
			return;
	if (v->npending == v->pending_cap) {
		v->pending_cap = v->pending_cap ? v->pending_cap * 2 : 16;
		v->pending_expunges =
			xrealloc(v->pending_expunges, v->pending_cap * sizeof *v->pending_expunges);
	}
	v->pending_expunges[v->npending++] = uid;
}

static bool same_keywords(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL || a[0] == '\0') && (b == NULL || b[0] == '\0');
	return strcmp(a, b) == 0;
}

static void closed_under_us(struct imap *s)
{
	imap_send(s, "* BYE The selected mailbox was deleted or renamed by another session");
	conn_close(s->c);
}

void imap_view_sync(struct imap *s, bool allow_expunge)
{
	struct imap_view *v = s->view;
	struct buf out = {0};
	if (allow_expunge && v->npending > 0) {
		for (size_t i = 0; i < v->npending; i++)
			expunge_one(s, &out, v->pending_expunges[i]);
		v->npending = 0;
	}
	struct store_mailbox_info info;
	enum store_err err = store_mailbox_info(s->acct, v->name, &info);
	if (err == STORE_NOTFOUND || (err == STORE_OK && info.uidvalidity != v->uidvalidity)) {
		imap_send_buf(s, &out);
		buf_free(&out);
		closed_under_us(s);
		return;
	}
	if (err != STORE_OK || info.highestmodseq == v->modseq) {
		imap_send_buf(s, &out);
		buf_free(&out);
		return;
	}
	struct store_change *ch = NULL;
	uint32_t *ex = NULL;
	size_t nch = 0, nex = 0;
	if (store_changes_since(s->acct, v->name, v->modseq, &ch, &nch, &ex, &nex) != STORE_OK) {
		imap_send_buf(s, &out);
		buf_free(&out);
		return;
	}
	for (size_t i = 0; i < nex; i++) {
		if (allow_expunge)
			expunge_one(s, &out, ex[i]);
		else
			defer_expunge(v, ex[i]);
	}
	uint32_t last = v->count ? v->msgs[v->count - 1].msg.uid : 0;
	for (size_t i = 0; i < nch; i++) {
		long idx = ch[i].uid <= last ? imap_view_find(v, ch[i].uid) : -1;
		if (idx < 0)
			continue;
		struct store_msg_full *m = &v->msgs[idx];
		m->msg.modseq = ch[i].modseq;
		if (m->msg.flags == ch[i].flags && same_keywords(m->keywords, ch[i].keywords))
			continue;
		m->msg.flags = ch[i].flags;
		free(m->keywords);
		m->keywords = ch[i].keywords;
		ch[i].keywords = NULL;
		buf_printf(&out, "* %ld FETCH (UID %u FLAGS ", idx + 1, m->msg.uid);
		imap_format_flags(&out, m->msg.flags, m->keywords, imap_view_recent(s, m));
		buf_append_str(&out, ")\r\n");
	}
	store_changes_free(ch, nch);
	free(ex);

	struct store_msg_full *fresh = NULL;
	size_t nfresh = 0;
	if (store_mailbox_messages_from(s->acct, v->name, last + 1, &fresh, &nfresh) == STORE_OK &&
	    nfresh > 0) {
		if (v->count + nfresh > v->cap) {
			v->cap = v->count + nfresh + v->count / 8 + 16;
			v->msgs = xrealloc(v->msgs, v->cap * sizeof *v->msgs);
		}
		memcpy(&v->msgs[v->count], fresh, nfresh * sizeof *fresh);
		v->count += nfresh;
		free(fresh); /* the keywords moved into v->msgs */
		buf_printf(&out, "* %zu EXISTS\r\n", v->count);
		if (!s->rev2) {
			claim_recent(s, v);
			buf_printf(&out, "* %zu RECENT\r\n", imap_view_recent_count(s));
		}
		uint32_t top = v->msgs[v->count - 1].msg.uid;
		if (top >= v->uidnext)
			v->uidnext = top + 1;
	}
	if (info.uidnext > v->uidnext)
		v->uidnext = info.uidnext;
	v->modseq = info.highestmodseq;
	imap_send_buf(s, &out);
	buf_free(&out);
}

static void add_index(uint32_t **idx, size_t *n, size_t *cap, size_t i)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*idx = xrealloc(*idx, *cap * sizeof **idx);
	}
	(*idx)[(*n)++] = (uint32_t)i;
}

/* The messages whose UIDs are in set (sorted and merged): one walk over both. */
static void add_uids_in(const struct imap_view *v, const struct imap_seqset *set, uint32_t **idx,
			size_t *n, size_t *cap)
{
	size_t r = 0;
	for (size_t i = 0; i < v->count; i++) {
		uint32_t u = v->msgs[i].msg.uid;
		while (r < set->count && set->ranges[r].hi < u)
			r++;
		if (r == set->count)
			return;
		if (u >= set->ranges[r].lo)
			add_index(idx, n, cap, i);
	}
}

int imap_view_resolve(struct imap *s, const struct imap_arg *arg, bool uid, uint32_t **idx_r,
		      size_t *n_r, const char **error_r)
{
	struct imap_view *v = s->view;
	const char *text = imap_arg_atom(arg);
	if (text == NULL) {
		*error_r = "Sequence set expected";
		return -1;
	}
	struct imap_seqset set;
	if (imap_seqset_parse(&set, text, strlen(text), IMAP_SEQSET_MAX_RANGES_DEFAULT,
			      IMAP_SEQSET_ALLOW_STAR | IMAP_SEQSET_ALLOW_LAST, error_r) < 0)
		return -1;
	uint32_t *idx = NULL;
	size_t n = 0, cap = 0;
	if (set.last_result) {
		/* "$" holds UIDs whichever command uses it (RFC 5182 §2.1). */
		if (v->have_saved)
			add_uids_in(v, &v->saved, &idx, &n, &cap);
	} else if (uid) {
		uint32_t star = v->count ? v->msgs[v->count - 1].msg.uid : v->uidnext;
		struct imap_seqset plain;
		imap_seqset_resolve(&set, star, &plain);
		add_uids_in(v, &plain, &idx, &n, &cap);
		imap_seqset_free(&plain);
	} else {
		/* RFC 9051 §9 seq-number: BAD for a number beyond the messages, "*" in an empty
		 * mailbox included. */
		struct imap_seqset plain;
		if (imap_seqset_resolve(&set, (uint32_t)v->count, &plain) < 0 ||
		    imap_seqset_last(&plain) > v->count) {
			imap_seqset_free(&plain);
			imap_seqset_free(&set);
			free(idx);
			*error_r = "Message sequence number out of range";
			return -1;
		}
		struct imap_seqset_iter it;
		imap_seqset_iter_init(&it, &plain);
		uint32_t seq;
		while (imap_seqset_iter_next(&it, &seq))
			add_index(&idx, &n, &cap, seq - 1);
		imap_seqset_free(&plain);
	}
	imap_seqset_free(&set);
	*idx_r = idx;
	*n_r = n;
	return 0;
}
