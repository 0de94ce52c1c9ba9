/* Mailbox commands: SELECT, EXAMINE, CLOSE, UNSELECT, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE, STATUS. */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"
#include "imap/utf7.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void deselect(struct imap *s)
{
	imap_view_free(&s->view);
	s->state = IMAP_AUTHENTICATED;
}

static void select_common(struct imap *s, const char *tag, const struct imap_arg *args,
			  size_t nargs, bool readonly)
{
	if (nargs != 1) {
		imap_bad(s, tag, "Usage: %s mailbox", readonly ? "EXAMINE" : "SELECT");
		return;
	}
	bool had = s->view != NULL;
	if (had) {
		/* RFC 9051 §6.3.2: the current mailbox is closed first, even if this fails. */
		deselect(s);
		imap_send(s, "* OK [CLOSED] Previous mailbox closed");
	}
	char *name = imap_arg_mailbox(s, tag, &args[0]);
	if (name == NULL)
		return;
	struct imap_view *v = NULL;
	enum store_err err = imap_view_open(s, name, readonly, &v);
	if (err != STORE_OK) {
		imap_no_store(s, tag, err, "Cannot select the mailbox");
		free(name);
		return;
	}
	free(name);
	s->view = v;
	s->state = IMAP_SELECTED;
	char **kw = NULL;
	size_t nkw = 0;
	store_mailbox_keywords(s->acct, v->name, &kw, &nkw);
	struct buf b = {0};
	buf_append_str(&b, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t i = 0; i < nkw; i++)
		buf_printf(&b, " %s", kw[i]);
	buf_printf(&b, ")\r\n* %zu EXISTS\r\n", v->count);
	if (readonly) {
		buf_append_str(&b, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	} else {
		buf_append_str(&b, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		for (size_t i = 0; i < nkw; i++)
			buf_printf(&b, " %s", kw[i]);
		buf_append_str(&b, " \\*)] Flags permitted\r\n");
	}
	store_names_free(kw, nkw);
	buf_printf(&b, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
		   v->uidvalidity, v->uidnext);
	if (s->rev2) {
		buf_append_str(&b, "* LIST () \"/\" ");
		imap_write_mailbox(s, &b, v->name);
		buf_append_str(&b, "\r\n");
	} else {
		buf_printf(&b, "* %zu RECENT\r\n", imap_view_recent_count(s));
		for (size_t i = 0; i < v->count; i++) {
			if (!(v->msgs[i].msg.flags & STORE_FLAG_SEEN)) {
				buf_printf(&b, "* OK [UNSEEN %zu] First unseen\r\n", i + 1);
				break;
			}
		}
	}
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_tagged_raw(s, tag, "OK", "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
			readonly ? "EXAMINE" : "SELECT");
}

void imap_cmd_select(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	select_common(s, tag, args, nargs, false);
}

void imap_cmd_examine(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	select_common(s, tag, args, nargs, true);
}

/* UIDs of the view's messages flagged \Deleted (of idx[0..n) if idx is not NULL). */
static uint32_t *deleted_uids(const struct imap_view *v, const uint32_t *idx, size_t n,
			      size_t *count_r)
{
	size_t total = idx ? n : v->count;
	uint32_t *uids = xcalloc(total ? total : 1, sizeof *uids);
	size_t k = 0;
	for (size_t i = 0; i < total; i++) {
		const struct store_msg_full *m = &v->msgs[idx ? idx[i] : i];
		if (m->msg.flags & STORE_FLAG_DELETED)
			uids[k++] = m->msg.uid;
	}
	*count_r = k;
	return uids;
}

void imap_cmd_close(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "CLOSE takes no arguments");
		return;
	}
	/* RFC 9051 §6.4.1: expunge silently, unless the mailbox is read-only. */
	if (!s->view->readonly) {
		size_t n = 0;
		uint32_t *uids = deleted_uids(s->view, NULL, 0, &n);
		enum store_err err = n ? store_expunge(s->acct, s->view->name, uids, n) : STORE_OK;
		free(uids);
		if (err != STORE_OK)
			log_warn("sess=%08x event=close_expunge error=\"%s\"", conn_id(s->c),
				 store_strerror(err));
	}
	deselect(s);
	imap_tagged_raw(s, tag, "OK", "CLOSE completed");
}

void imap_cmd_unselect(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "UNSELECT takes no arguments");
		return;
	}
	deselect(s);
	imap_tagged_raw(s, tag, "OK", "UNSELECT completed");
}

void imap_cmd_expunge(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "EXPUNGE takes no arguments");
		return;
	}
	if (s->view->readonly) {
		imap_no(s, tag, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	size_t n = 0;
	uint32_t *uids = deleted_uids(s->view, NULL, 0, &n);
	enum store_err err = n ? store_expunge(s->acct, s->view->name, uids, n) : STORE_OK;
	free(uids);
	if (err != STORE_OK) {
		imap_no_store(s, tag, err, "EXPUNGE failed");
		return;
	}
	imap_ok(s, tag, "EXPUNGE completed"); /* the sync announces the expunges */
}

void imap_cmd_uid_expunge(struct imap *s, const char *tag, const struct imap_arg *args,
			  size_t nargs)
{
	if (nargs != 1) {
		imap_bad(s, tag, "Usage: UID EXPUNGE uid-set");
		return;
	}
	if (s->view->readonly) {
		imap_no(s, tag, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	uint32_t *idx = NULL;
	size_t nidx = 0;
	const char *error = NULL;
	if (imap_view_resolve(s, &args[0], true, &idx, &nidx, &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	size_t n = 0;
	uint32_t *uids = deleted_uids(s->view, idx, nidx, &n);
	free(idx);
	enum store_err err = n ? store_expunge(s->acct, s->view->name, uids, n) : STORE_OK;
	free(uids);
	if (err != STORE_OK) {
		imap_no_store(s, tag, err, "EXPUNGE failed");
		return;
	}
	imap_ok(s, tag, "UID EXPUNGE completed");
}

void imap_cmd_create(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	const char *raw = nargs == 1 ? imap_arg_astring(&args[0]) : NULL;
	if (raw == NULL) {
		imap_bad(s, tag, "Usage: CREATE mailbox");
		return;
	}
	/* RFC 9051 §6.3.4: a trailing delimiter says the name will have inferiors. */
	size_t len = strlen(raw);
	if (len > 1 && raw[len - 1] == '/')
		len--;
	char *canon = NULL;
	const char *error = NULL;
	if (imap_mailbox_from_client(raw, len, s->rev2, &canon, &error) < 0) {
		imap_no(s, tag, "[CANNOT] Invalid mailbox name: %s", error);
		return;
	}
	enum store_err err = store_mailbox_create(s->acct, canon, NULL);
	free(canon);
	if (err != STORE_OK) {
		imap_no_store(s, tag, err, "Cannot create the mailbox");
		return;
	}
	imap_ok(s, tag, "CREATE completed");
}

static bool is_or_under(const char *name, const char *top)
{
	size_t n = strlen(top);
	return strncmp(name, top, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

void imap_cmd_delete(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	if (nargs != 1) {
		imap_bad(s, tag, "Usage: DELETE mailbox");
		return;
	}
	char *name = imap_arg_mailbox(s, tag, &args[0]);
	if (name == NULL)
		return;
	enum store_err err = store_mailbox_delete(s->acct, name);
	if (err == STORE_OK && s->view != NULL && strcmp(s->view->name, name) == 0) {
		deselect(s);
		imap_send(s, "* OK [CLOSED] The selected mailbox was deleted");
	}
	free(name);
	if (err == STORE_PERM)
		imap_no(s, tag, "[CANNOT] INBOX, or a mailbox that has inferiors and no messages, "
				"cannot be deleted");
	else if (err != STORE_OK)
		imap_no_store(s, tag, err, "Cannot delete the mailbox");
	else
		imap_ok(s, tag, "DELETE completed");
}

void imap_cmd_rename(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	if (nargs != 2) {
		imap_bad(s, tag, "Usage: RENAME old new");
		return;
	}
	char *from = imap_arg_mailbox(s, tag, &args[0]);
	if (from == NULL)
		return;
	char *to = imap_arg_mailbox(s, tag, &args[1]);
	if (to == NULL) {
		free(from);
		return;
	}
	enum store_err err = store_mailbox_rename(s->acct, from, to);
	if (err == STORE_OK && s->view != NULL && is_or_under(s->view->name, from)) {
		if (strcmp(from, "INBOX") == 0) {
			deselect(s); /* INBOX stays, emptied: its messages moved */
			imap_send(s, "* OK [CLOSED] INBOX was renamed");
		} else {
			char *renamed = xasprintf("%s%s", to, s->view->name + strlen(from));
			free(s->view->name);
			s->view->name = renamed;
		}
	}
	free(from);
	free(to);
	if (err == STORE_INVALID)
		imap_no(s, tag, "[CANNOT] A mailbox cannot be renamed to itself or its inferior");
	else if (err != STORE_OK)
		imap_no_store(s, tag, err, "Cannot rename the mailbox");
	else
		imap_ok(s, tag, "RENAME completed");
}

static void subscribe(struct imap *s, const char *tag, const struct imap_arg *args,
		      size_t nargs, bool on)
{
	if (nargs != 1) {
		imap_bad(s, tag, "Usage: %s mailbox", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
		return;
	}
	char *name = imap_arg_mailbox(s, tag, &args[0]);
	if (name == NULL)
		return;
	enum store_err err = store_subscribe(s->acct, name, on);
	free(name);
	if (err != STORE_OK)
		imap_no_store(s, tag, err, "Cannot change the subscription");
	else
		imap_ok(s, tag, "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

void imap_cmd_subscribe(struct imap *s, const char *tag, const struct imap_arg *args,
			size_t nargs)
{
	subscribe(s, tag, args, nargs, true);
}

void imap_cmd_unsubscribe(struct imap *s, const char *tag, const struct imap_arg *args,
			  size_t nargs)
{
	subscribe(s, tag, args, nargs, false);
}
