/* Shared between plan.c and cursor.c. */
#ifndef SARN_IMAP_FETCH_PRIVATE_H
#define SARN_IMAP_FETCH_PRIVATE_H

#include "imap/fetch/fetch.h"
#include "mime/mime.h"

enum fetch_kind {
	FETCH_FLAGS,
	FETCH_INTERNALDATE,
	FETCH_RFC822_SIZE,
	FETCH_ENVELOPE,
	FETCH_BODY,
	FETCH_BODYSTRUCTURE,
	FETCH_UID,
	FETCH_MODSEQ,
	FETCH_SECTION,     /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT */
	FETCH_BINARY,      /* BINARY[...], BINARY.PEEK[...] */
	FETCH_BINARY_SIZE, /* BINARY.SIZE[...] */
};

struct fetch_item {
	enum fetch_kind kind;
	/* Sections: the response name without the partial ("BODY[1.MIME]", "RFC822.TEXT");
	 * NULL for the simple items. */
	char *name;
	uint32_t *path;
	size_t npath;
	enum mime_section_text text;
	bool fields, fields_not; /* HEADER.FIELDS[.NOT] with names[0..nnames) */
	char **names;
	size_t nnames;
	bool partial;
	uint64_t p_off, p_len;
};

struct imap_fetch_plan {
	struct fetch_item *items;
	size_t count, cap;
	bool sets_seen;
	bool needs_result; /* the parse result is read */
	bool needs_file;   /* the message file is read */
	/* Of the file, only the message's own header is read (BODY[HEADER], HEADER.FIELDS,
	 * RFC822.HEADER): the copy kept in the index serves it, if there is one. */
	bool header_only;
};

const char *fetch_kind_name(enum fetch_kind kind);
/* Appends the item's name as the response gives it (with "<o>" for a partial BODY or BINARY). */
void fetch_item_name(const struct fetch_item *it, struct buf *out);

#endif
