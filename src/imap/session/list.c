/* LIST (RFC 9051 §6.3.9 with LIST-EXTENDED RFC 5258, SPECIAL-USE RFC 6154, LIST-STATUS
 * RFC 5819) and LSUB (RFC 3501 §6.3.9). */
#include "imap/session/imap-private.h"

#include "core/util.h"
#include "imap/utf7.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	SEL_SUBSCRIBED = 1,
	SEL_SPECIAL_USE = 2,
	SEL_RECURSIVE = 4,
	RET_SUBSCRIBED = 8,
	RET_CHILDREN = 16,
	RET_SPECIAL_USE = 32,
	RET_STATUS = 64,
};

/* Reference and pattern as the client sent them, joined, in UTF-8, INBOX canonical. */
static char *full_pattern(struct imap *s, const char *ref, const char *pat)
{
	char *joined = xasprintf("%s%s", ref, pat);
	if (!s->rev2) {
		char *utf8 = NULL;
		const char *error = NULL;
		if (imap_utf7_to_utf8(joined, strlen(joined), &utf8, &error) < 0) {
			free(joined);
			return NULL;
		}
		free(joined);
		joined = utf8;
	}
	if (strncasecmp(joined, "INBOX", 5) == 0 && (joined[5] == '\0' || joined[5] == '/'))
		memcpy(joined, "INBOX", 5);
	return joined;
}

static bool any_match(char **pats, size_t npats, const char *name)
{
	for (size_t i = 0; i < npats; i++)
		if (imap_list_match(pats[i], name))
			return true;
	return false;
}

static bool has_subscribed_child(char **subs, size_t nsubs, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < nsubs; i++)
		if (strncmp(subs[i], name, len) == 0 && subs[i][len] == '/')
			return true;
	return false;
}

static bool in_names(char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static void list_line(struct imap *s, struct buf *b, const char *verb, const char *attrs,
		      const char *name, const char *extra)
{
	buf_printf(b, "* %s (%s) \"/\" ", verb, attrs);
	imap_write_mailbox(s, b, name);
	if (extra != NULL)
		buf_printf(b, " %s", extra);
	buf_append_str(b, "\r\n");
}

static void add_attr(struct buf *a, const char *attr)
{
	if (a->len > 0)
		buf_append_str(a, " ");
	buf_append_str(a, attr);
}

static int parse_options(const struct imap_arg *list, bool select, unsigned *opts,
			 unsigned *status_items, const char **error)
{
	for (size_t i = 0; i < list->list_count; i++) {
		const char *o = imap_arg_atom(&list->list[i]);
		if (o == NULL) {
			*error = "LIST options are atoms";
			return -1;
		}
		if (strcasecmp(o, "SUBSCRIBED") == 0)
			*opts |= select ? SEL_SUBSCRIBED : RET_SUBSCRIBED;
		else if (strcasecmp(o, "SPECIAL-USE") == 0)
			*opts |= select ? SEL_SPECIAL_USE : RET_SPECIAL_USE;
		else if (select && strcasecmp(o, "RECURSIVEMATCH") == 0)
			*opts |= SEL_RECURSIVE;
		else if (select && strcasecmp(o, "REMOTE") == 0)
			; /* no remote mailboxes here */
		else if (!select && strcasecmp(o, "CHILDREN") == 0)
			*opts |= RET_CHILDREN;
		else if (!select && strcasecmp(o, "STATUS") == 0 && i + 1 < list->list_count) {
			if (imap_status_parse(&list->list[++i], status_items, error) < 0)
				return -1;
			*opts |= RET_STATUS;
		} else {
			*error = "Unknown LIST option";
			return -1;
		}
	}
	/* RFC 5258 §3.1: RECURSIVEMATCH alone is an error. */
	if (select && (*opts & SEL_RECURSIVE) && !(*opts & (SEL_SUBSCRIBED | SEL_SPECIAL_USE))) {
		*error = "RECURSIVEMATCH needs another selection option";
		return -1;
	}
	return 0;
}

void imap_cmd_list(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	unsigned opts = 0, status_items = 0;
	const char *error = NULL;
	size_t i = 0;
	if (nargs > 0 && args[0].type == IMAP_ARG_LIST) {
		if (parse_options(&args[0], true, &opts, &status_items, &error) < 0) {
			imap_bad(s, tag, "%s", error);
			return;
		}
		i = 1;
	}
	const char *ref = nargs >= i + 2 ? imap_arg_astring(&args[i]) : NULL;
	if (ref == NULL) {
		imap_bad(s, tag, "Usage: LIST [(options)] reference pattern [RETURN (options)]");
		return;
	}
	const struct imap_arg *pat_arg = &args[i + 1];
	if (nargs == i + 4 && imap_arg_atom_eq(&args[i + 2], "RETURN") &&
	    args[i + 3].type == IMAP_ARG_LIST) {
		if (parse_options(&args[i + 3], false, &opts, &status_items, &error) < 0) {
			imap_bad(s, tag, "%s", error);
			return;
		}
	} else if (nargs != i + 2) {
		imap_bad(s, tag, "Usage: LIST [(options)] reference pattern [RETURN (options)]");
		return;
	}
	const struct imap_arg *pats_in = pat_arg->type == IMAP_ARG_LIST ? pat_arg->list : pat_arg;
	size_t npats = pat_arg->type == IMAP_ARG_LIST ? pat_arg->list_count : 1;
	if (npats == 0 || npats > 100) {
		imap_bad(s, tag, "Bad pattern list");
		return;
	}
	/* RFC 9051 §6.3.9: an empty pattern asks for the delimiter. */
	const char *first = imap_arg_astring(&pats_in[0]);
	if (npats == 1 && first != NULL && first[0] == '\0') {
		imap_send(s, "* LIST (\\Noselect) \"/\" \"\"");
		imap_ok(s, tag, "LIST completed");
		return;
	}
	char **pats = xcalloc(npats, sizeof *pats);
	for (size_t k = 0; k < npats; k++) {
		const char *p = imap_arg_astring(&pats_in[k]);
		pats[k] = p ? full_pattern(s, ref, p) : NULL;
		if (pats[k] == NULL) {
			store_names_free(pats, npats);
			imap_bad(s, tag, "Bad mailbox pattern");
			return;
		}
	}
	struct store_mailbox_entry *mb = NULL;
	size_t nmb = 0;
	char **subs = NULL;
	size_t nsubs = 0;
	enum store_err err = store_mailbox_list(s->acct, &mb, &nmb);
	if (err == STORE_OK)
		err = store_subscriptions(s->acct, &subs, &nsubs);
	if (err != STORE_OK) {
		store_names_free(pats, npats);
		store_mailbox_list_free(mb, nmb);
		imap_no_store(s, tag, err, "LIST failed");
		return;
	}
	struct buf out = {0}, attrs = {0};
	bool show_sub = opts & (SEL_SUBSCRIBED | RET_SUBSCRIBED);
	for (size_t k = 0; k < nmb; k++) {
		const struct store_mailbox_entry *e = &mb[k];
		if (!any_match(pats, npats, e->name))
			continue;
		bool subscribed = in_names(subs, nsubs, e->name);
		const char *extra = NULL;
		if ((opts & SEL_SUBSCRIBED) && !subscribed) {
			if (!(opts & SEL_RECURSIVE) || !has_subscribed_child(subs, nsubs, e->name))
				continue;
			extra = "(\"CHILDINFO\" (\"SUBSCRIBED\"))";
		}
		if ((opts & SEL_SPECIAL_USE) && e->special_use == NULL)
			continue;
		buf_clear(&attrs);
		if (e->noselect)
			add_attr(&attrs, "\\Noselect");
		add_attr(&attrs, e->has_children ? "\\HasChildren" : "\\HasNoChildren");
		if (e->special_use != NULL)
			add_attr(&attrs, e->special_use);
		if (show_sub && subscribed)
			add_attr(&attrs, "\\Subscribed");
		list_line(s, &out, "LIST", attrs.len ? (const char *)buf_cstr(&attrs) : "", e->name,
			  extra);
		if ((opts & RET_STATUS) && !e->noselect)
			imap_status_write(s, e->name, status_items, &out);
		if (out.len >= 64 * 1024)
			imap_send_buf(s, &out);
	}
	/* Subscribed names that no longer exist (RFC 5258 §3.1: \NonExistent). */
	for (size_t k = 0; (opts & SEL_SUBSCRIBED) && k < nsubs; k++) {
		bool exists = false;
		for (size_t j = 0; j < nmb && !exists; j++)
			exists = strcmp(mb[j].name, subs[k]) == 0;
		if (!exists && !(opts & SEL_SPECIAL_USE) && any_match(pats, npats, subs[k]))
			list_line(s, &out, "LIST", "\\NonExistent \\Subscribed", subs[k], NULL);
	}
	imap_send_buf(s, &out);
	buf_free(&out);
	buf_free(&attrs);
	store_names_free(pats, npats);
	store_names_free(subs, nsubs);
	store_mailbox_list_free(mb, nmb);
	imap_ok(s, tag, "LIST completed");
}

void imap_cmd_lsub(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	const char *ref = nargs == 2 ? imap_arg_astring(&args[0]) : NULL;
	const char *pat = nargs == 2 ? imap_arg_astring(&args[1]) : NULL;
	if (ref == NULL || pat == NULL) {
		imap_bad(s, tag, "Usage: LSUB reference pattern");
		return;
	}
	char *full = full_pattern(s, ref, pat);
	if (full == NULL) {
		imap_bad(s, tag, "Bad mailbox pattern");
		return;
	}
	struct store_mailbox_entry *mb = NULL;
	size_t nmb = 0;
	char **subs = NULL;
	size_t nsubs = 0;
	enum store_err err = store_mailbox_list(s->acct, &mb, &nmb);
	if (err == STORE_OK)
		err = store_subscriptions(s->acct, &subs, &nsubs);
	if (err != STORE_OK) {
		free(full);
		store_mailbox_list_free(mb, nmb);
		imap_no_store(s, tag, err, "LSUB failed");
		return;
	}
	struct buf out = {0};
	char **shown = NULL;
	size_t nshown = 0;
	bool parents = full[0] != '\0' && full[strlen(full) - 1] == '%';
	for (size_t k = 0; k < nsubs; k++) {
		/* RFC 3501 §6.3.9: with "%", a parent of a subscribed name that matches is shown
		 * \Noselect when it is not itself subscribed. */
		for (char *slash = parents ? strchr(subs[k], '/') : NULL; slash != NULL;
		     slash = strchr(slash + 1, '/')) {
			char *parent = xstrndup(subs[k], (size_t)(slash - subs[k]));
			if (!in_names(subs, nsubs, parent) && !in_names(shown, nshown, parent) &&
			    imap_list_match(full, parent)) {
				list_line(s, &out, "LSUB", "\\Noselect", parent, NULL);
				shown = xrealloc(shown, (nshown + 1) * sizeof *shown);
				shown[nshown++] = parent;
			} else {
				free(parent);
			}
		}
		if (!imap_list_match(full, subs[k]))
			continue;
		bool selectable = false;
		for (size_t j = 0; j < nmb; j++)
			if (strcmp(mb[j].name, subs[k]) == 0)
				selectable = !mb[j].noselect;
		list_line(s, &out, "LSUB", selectable ? "" : "\\Noselect", subs[k], NULL);
	}
	imap_send_buf(s, &out);
	buf_free(&out);
	store_names_free(shown, nshown);
	free(full);
	store_names_free(subs, nsubs);
	store_mailbox_list_free(mb, nmb);
	imap_ok(s, tag, "LSUB completed");
}
