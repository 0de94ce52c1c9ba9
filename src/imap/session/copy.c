/* COPY, MOVE and their UID forms, with UIDPLUS COPYUID (RFC 4315) and MOVE (RFC 6851). */
#include "imap/session/imap-private.h"

#include "core/util.h"

#include <stdlib.h>

static void copy_common(struct imap *s, const char *tag, const struct imap_arg *args,
			size_t nargs, bool uid, bool move)
{
	const char *verb = move ? "MOVE" : "COPY";
	if (nargs != 2) {
		imap_bad(s, tag, "Usage: %s sequence-set mailbox", verb);
		return;
	}
	struct imap_view *v = s->view;
	uint32_t *idx = NULL;
	size_t n = 0;
	const char *error = NULL;
	if (imap_view_resolve(s, &args[0], uid, &idx, &n, &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	char *dst = imap_arg_mailbox(s, tag, &args[1]);
	if (dst == NULL) {
		free(idx);
		return;
	}
	struct store_mailbox_info info;
	enum store_err err = store_mailbox_info(s->acct, dst, &info);
	if (err == STORE_OK && move && v->readonly) {
		free(idx);
		free(dst);
		imap_no(s, tag, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	uint32_t *uids = xcalloc(n ? n : 1, sizeof *uids);
	for (size_t i = 0; i < n; i++)
		uids[i] = v->msgs[idx[i]].msg.uid;
	free(idx);
	uint32_t *new_uids = NULL;
	if (err == STORE_OK && n > 0)
		err = move ? store_move(s->acct, v->name, dst, uids, n, &new_uids)
			   : store_copy(s->acct, v->name, dst, uids, n, &new_uids);
	free(dst);
	if (err != STORE_OK) {
		free(uids);
		if (err == STORE_NOTFOUND)
			imap_no(s, tag, "[TRYCREATE] The target mailbox does not exist");
		else
			imap_no_store(s, tag, err, move ? "MOVE failed" : "COPY failed");
		return;
	}
	struct imap_seqset from = {0}, to = {0};
	for (size_t i = 0; i < n; i++) {
		if (new_uids[i] == 0)
			continue;
		imap_seqset_add(&from, uids[i], uids[i]);
		imap_seqset_add(&to, new_uids[i], new_uids[i]);
	}
	free(uids);
	free(new_uids);
	struct buf code = {0};
	if (from.count > 0) {
		buf_printf(&code, "[COPYUID %u ", info.uidvalidity);
		imap_seqset_format(&from, &code);
		buf_append_str(&code, " ");
		imap_seqset_format(&to, &code);
		buf_append_str(&code, "] ");
	}
	imap_seqset_free(&from);
	imap_seqset_free(&to);
	if (move) {
		/* RFC 6851 §4.3: COPYUID comes in an untagged OK before the EXPUNGEs. */
		if (code.len > 0)
			imap_send(s, "* OK %sMoved", buf_cstr(&code));
		imap_ok(s, tag, "MOVE completed");
	} else {
		imap_ok(s, tag, "%sCOPY completed", code.len ? buf_cstr(&code) : "");
	}
	buf_free(&code);
}

void imap_cmd_copy(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	copy_common(s, tag, args, nargs, false, false);
}

void imap_cmd_uid_copy(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	copy_common(s, tag, args, nargs, true, false);
}

void imap_cmd_move(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	copy_common(s, tag, args, nargs, false, true);
}

void imap_cmd_uid_move(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	copy_common(s, tag, args, nargs, true, true);
}
