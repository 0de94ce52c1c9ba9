/* Flag names and flag lists. */
#include "imap/flags.h"

#include "store/store.h"

#include <strings.h>

static const struct {
	const char *name;
	uint32_t flag;
} system_flags[] = {
	{"\\Answered", STORE_FLAG_ANSWERED}, {"\\Flagged", STORE_FLAG_FLAGGED},
	{"\\Deleted", STORE_FLAG_DELETED},   {"\\Seen", STORE_FLAG_SEEN},
	{"\\Draft", STORE_FLAG_DRAFT},
};

uint32_t imap_system_flag(const char *name)
{
	for (size_t j = 0; j < sizeof system_flags / sizeof system_flags[0]; j++)
		if (strcasecmp(name, system_flags[j].name) == 0)
			return system_flags[j].flag;
	return 0;
}

void imap_format_flags(struct buf *out, uint32_t flags, const char *keywords, bool recent)
{
	size_t start = out->len;
	buf_append_str(out, "(");
	for (size_t j = 0; j < sizeof system_flags / sizeof system_flags[0]; j++) {
		if (!(flags & system_flags[j].flag))
			continue;
		if (out->len > start + 1)
			buf_append_str(out, " ");
		buf_append_str(out, system_flags[j].name);
	}
	if (keywords != NULL && keywords[0] != '\0') {
		if (out->len > start + 1)
			buf_append_str(out, " ");
		buf_append_str(out, keywords);
	}
	if (recent) {
		if (out->len > start + 1)
			buf_append_str(out, " ");
		buf_append_str(out, "\\Recent");
	}
	buf_append_str(out, ")");
}
