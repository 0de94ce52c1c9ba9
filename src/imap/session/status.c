/* STATUS (RFC 9051 §6.3.11, STATUS=SIZE RFC 8438), also used by LIST-STATUS. */
#include "imap/session/imap-private.h"

#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	ST_MESSAGES = 1,
	ST_UIDNEXT = 2,
	ST_UIDVALIDITY = 4,
	ST_UNSEEN = 8,
	ST_DELETED = 16,
	ST_SIZE = 32,
	ST_RECENT = 64,
	ST_APPENDLIMIT = 128,
};

static const struct {
	const char *name;
	unsigned bit;
} status_items[] = {
	{"MESSAGES", ST_MESSAGES}, {"UIDNEXT", ST_UIDNEXT}, {"UIDVALIDITY", ST_UIDVALIDITY},
	{"UNSEEN", ST_UNSEEN},     {"DELETED", ST_DELETED}, {"SIZE", ST_SIZE},
	{"RECENT", ST_RECENT},     {"APPENDLIMIT", ST_APPENDLIMIT},
};

int imap_status_parse(const struct imap_arg *list, unsigned *items_r, const char **error_r)
{
	if (list->type != IMAP_ARG_LIST || list->list_count == 0) {
		*error_r = "STATUS items must be a non-empty list";
		return -1;
	}
	unsigned items = 0;
	for (size_t i = 0; i < list->list_count; i++) {
		const char *a = imap_arg_atom(&list->list[i]);
		size_t j;
		for (j = 0; a != NULL && j < sizeof status_items / sizeof status_items[0]; j++)
			if (strcasecmp(a, status_items[j].name) == 0)
				break;
		if (a == NULL || j == sizeof status_items / sizeof status_items[0]) {
			*error_r = "Unknown STATUS item";
			return -1;
		}
		items |= status_items[j].bit;
	}
	*items_r = items;
	return 0;
}

enum store_err imap_status_write(struct imap *s, const char *name, unsigned items,
				 struct buf *out)
{
	struct store_mailbox_info info;
	enum store_err err = store_mailbox_info(s->acct, name, &info);
	if (err != STORE_OK)
		return err;
	uint64_t unseen = 0, deleted = 0, size = 0, recent = 0;
	uint32_t recent_from = UINT32_MAX, recent_to = 0;
	if ((items & ST_RECENT) &&
	    (err = store_recent(s->acct, name, false, &recent_from, &recent_to)) != STORE_OK)
		return err;
	if (items & (ST_UNSEEN | ST_DELETED | ST_SIZE | ST_RECENT)) {
		struct store_msg *msgs = NULL;
		size_t n = 0;
		err = store_mailbox_messages(s->acct, name, &msgs, &n);
		if (err != STORE_OK)
			return err;
		for (size_t i = 0; i < n; i++) {
			unseen += !(msgs[i].flags & STORE_FLAG_SEEN);
			deleted += (msgs[i].flags & STORE_FLAG_DELETED) != 0;
			size += msgs[i].size;
			recent += msgs[i].uid >= recent_from;
		}
		free(msgs);
	}
	buf_append_str(out, "* STATUS ");
	imap_write_mailbox(s, out, name);
	buf_append_str(out, " (");
	size_t start = out->len;
	for (size_t j = 0; j < sizeof status_items / sizeof status_items[0]; j++) {
		unsigned bit = status_items[j].bit;
		if (!(items & bit))
			continue;
		uint64_t value = bit == ST_MESSAGES      ? info.messages
				 : bit == ST_UIDNEXT     ? info.uidnext
				 : bit == ST_UIDVALIDITY ? info.uidvalidity
				 : bit == ST_UNSEEN      ? unseen
				 : bit == ST_DELETED     ? deleted
				 : bit == ST_SIZE        ? size
				 : bit == ST_APPENDLIMIT ? conn_config(s->c)->max_message_size
							 : recent;
		buf_printf(out, "%s%s %llu", out->len > start ? " " : "", status_items[j].name,
			   (unsigned long long)value);
	}
	buf_append_str(out, ")\r\n");
	return STORE_OK;
}

void imap_cmd_status(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	if (nargs != 2) {
		imap_bad(s, tag, "Usage: STATUS mailbox (items)");
		return;
	}
	unsigned items = 0;
	const char *error = NULL;
	if (imap_status_parse(&args[1], &items, &error) < 0) {
		imap_bad(s, tag, "%s", error);
		return;
	}
	char *name = imap_arg_mailbox(s, tag, &args[0]);
	if (name == NULL)
		return;
	struct buf b = {0};
	enum store_err err = imap_status_write(s, name, items, &b);
	free(name);
	if (err != STORE_OK) {
		buf_free(&b);
		imap_no_store(s, tag, err, "STATUS failed");
		return;
	}
	imap_send_buf(s, &b);
	buf_free(&b);
	imap_ok(s, tag, "STATUS completed");
}
