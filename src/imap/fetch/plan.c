/* FETCH attribute parsing (RFC 9051 §6.4.5 fetch-att, RFC 3501 §6.4.5, RFC 3516, RFC 7162). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/fetch/fetch-private.h"
#include "imap/quote.h"

/* Deeper part numbers than any stored structure can have (MIME_DEFAULT_MAX_DEPTH). */
#define MAX_PATH 128

static bool word_eq(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static struct fetch_item *add_item(struct imap_fetch_plan *plan, enum fetch_kind kind)
{
	if (plan->count == plan->cap) {
		plan->cap = plan->cap ? plan->cap * 2 : 8;
		plan->items = xrealloc(plan->items, plan->cap * sizeof *plan->items);
	}
	struct fetch_item *it = &plan->items[plan->count++];
	memset(it, 0, sizeof *it);
	it->kind = kind;
	return it;
}

static void add_simple(struct imap_fetch_plan *plan, enum fetch_kind kind)
{
	/* a repeated simple item is sent once */
	for (size_t i = 0; i < plan->count; i++) {
		if (plan->items[i].kind == kind)
			return;
	}
	add_item(plan, kind);
	if (kind == FETCH_ENVELOPE || kind == FETCH_BODY || kind == FETCH_BODYSTRUCTURE)
		plan->needs_result = true;
}

/* number64 / nz-number64 of RFC 9051. */
static int parse_num(const char **p, const char *end, bool nonzero, uint64_t *v_r)
{
	const char *s = *p;
	if (s == end || !isdigit((unsigned char)*s) || (nonzero && *s == '0'))
		return -1;
	uint64_t v = 0;
	while (s < end && isdigit((unsigned char)*s)) {
		if (v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		s++;
	}
	*p = s;
	*v_r = v;
	return 0;
}

/* tail is what follows "]": "" or "<o.n>". */
static int parse_partial(struct fetch_item *it, const char *tail, bool allowed, const char **error_r)
{
	if (*tail == '\0')
		return 0;
	const char *end = tail + strlen(tail);
	const char *p = tail;
	if (!allowed || *p != '<') {
		*error_r = "Invalid characters after section";
		return -1;
	}
	p++;
	if (parse_num(&p, end, false, &it->p_off) < 0 || p == end || *p != '.') {
		*error_r = "Invalid partial range";
		return -1;
	}
	p++;
	if (parse_num(&p, end, true, &it->p_len) < 0 || p == end || *p != '>' || p + 1 != end) {
		*error_r = "Invalid partial range";
		return -1;
	}
	it->partial = true;
	return 0;
}

/* The text between "[" and "]" (or the atom's end, before a header list). */
static int parse_section(struct fetch_item *it, const char *s, size_t len, bool binary,
			 const char **error_r)
{
	size_t pos = 0;
	uint32_t path[MAX_PATH];
	size_t n = 0;
	*error_r = "Invalid section";
	while (pos < len && isdigit((unsigned char)s[pos])) {
		if (s[pos] == '0' || n == MAX_PATH)
			return -1;
		uint64_t v = 0;
		while (pos < len && isdigit((unsigned char)s[pos])) {
			v = v * 10 + (uint64_t)(s[pos] - '0');
			if (v > UINT32_MAX)
				return -1;
			pos++;
		}
		path[n++] = (uint32_t)v;
		if (pos == len)
			break;
		if (s[pos] != '.' || pos + 1 == len)
			return -1;
		pos++;
	}
	const char *rest = s + pos;
	size_t rlen = len - pos;
	if (binary && rlen > 0)
		return -1;
	if (rlen == 0)
		it->text = MIME_SECTION_NONE;
	else if (word_eq(rest, rlen, "HEADER"))
		it->text = MIME_SECTION_HEADER;
	else if (word_eq(rest, rlen, "TEXT"))
		it->text = MIME_SECTION_TEXT;
	else if (word_eq(rest, rlen, "MIME") && n > 0)
		it->text = MIME_SECTION_MIME;
	else if (word_eq(rest, rlen, "HEADER.FIELDS"))
		it->text = MIME_SECTION_HEADER, it->fields = true;
	else if (word_eq(rest, rlen, "HEADER.FIELDS.NOT"))
		it->text = MIME_SECTION_HEADER, it->fields = true, it->fields_not = true;
	else
		return -1;
	it->npath = n;
	if (n > 0) {
		it->path = xcalloc(n, sizeof *it->path);
		memcpy(it->path, path, n * sizeof *path);
	}
	return 0;
}

static int parse_header_list(struct fetch_item *it, const struct imap_arg *list,
			     const char **error_r)
{
	if (list->type != IMAP_ARG_LIST || list->list_count == 0) {
		*error_r = "Invalid header list";
		return -1;
	}
	it->names = xcalloc(list->list_count, sizeof *it->names);
	for (size_t i = 0; i < list->list_count; i++) {
		const char *name = imap_arg_astring(&list->list[i]);
		if (name == NULL || *name == '\0') {
			*error_r = "Invalid header field name";
			return -1;
		}
		for (const char *c = name; *c != '\0'; c++) {
			if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == ':') {
				*error_r = "Invalid header field name";
				return -1;
			}
		}
		it->names[it->nnames++] = xstrdup(name);
	}
	return 0;
}

/* The response name without the partial: "BODY[1.HEADER.FIELDS (A B)]", "BINARY[2]". */
static void make_name(struct fetch_item *it, const char *prefix)
{
	struct buf b = {0};
	buf_append_str(&b, prefix);
	buf_append(&b, "[", 1);
	for (size_t i = 0; i < it->npath; i++)
		buf_printf(&b, "%s%u", i ? "." : "", it->path[i]);
	const char *text = NULL;
	switch (it->text) {
	case MIME_SECTION_NONE:
		break;
	case MIME_SECTION_HEADER:
		text = it->fields_not ? "HEADER.FIELDS.NOT" : it->fields ? "HEADER.FIELDS" : "HEADER";
		break;
	case MIME_SECTION_TEXT:
		text = "TEXT";
		break;
	case MIME_SECTION_MIME:
		text = "MIME";
		break;
	}
	if (text != NULL)
		buf_printf(&b, "%s%s", it->npath ? "." : "", text);
	if (it->fields) {
		buf_append_str(&b, " (");
		for (size_t i = 0; i < it->nnames; i++) {
			if (i)
				buf_append(&b, " ", 1);
			imap_write_astring(&b, it->names[i], strlen(it->names[i]), 0);
		}
		buf_append(&b, ")", 1);
	}
	buf_append(&b, "]", 1);
	it->name = xstrdup(buf_cstr(&b));
	buf_free(&b);
}

static void add_rfc822(struct imap_fetch_plan *plan, const char *name, enum mime_section_text text,
		       bool seen)
{
	struct fetch_item *it = add_item(plan, FETCH_SECTION);
	it->text = text;
	it->name = xstrdup(name);
	plan->needs_result = plan->needs_file = true;
	if (seen)
		plan->sets_seen = true;
}

/* One fetch-att at args[*i]; advances *i past what it used. */
static int parse_att(struct imap_fetch_plan *plan, const struct imap_arg *args, size_t count,
		     size_t *i, unsigned flags, const char **error_r)
{
	const char *atom = imap_arg_atom(&args[*i]);
	(*i)++;
	if (atom == NULL) {
		*error_r = "Invalid fetch attribute";
		return -1;
	}
	static const struct {
		const char *name;
		enum fetch_kind kind;
	} simple[] = {
		{"FLAGS", FETCH_FLAGS},
		{"INTERNALDATE", FETCH_INTERNALDATE},
		{"RFC822.SIZE", FETCH_RFC822_SIZE},
		{"ENVELOPE", FETCH_ENVELOPE},
		{"BODY", FETCH_BODY},
		{"BODYSTRUCTURE", FETCH_BODYSTRUCTURE},
		{"UID", FETCH_UID},
		{"MODSEQ", FETCH_MODSEQ},
	};
	for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
		if (strcasecmp(atom, simple[k].name) != 0)
			continue;
		if (simple[k].kind == FETCH_MODSEQ && !(flags & IMAP_FETCH_PARSE_CONDSTORE))
			break;
		add_simple(plan, simple[k].kind);
		return 0;
	}
	if (strcasecmp(atom, "RFC822") == 0) {
		add_rfc822(plan, "RFC822", MIME_SECTION_NONE, true);
		return 0;
	}
	if (strcasecmp(atom, "RFC822.HEADER") == 0) {
		add_rfc822(plan, "RFC822.HEADER", MIME_SECTION_HEADER, false);
		return 0;
	}
	if (strcasecmp(atom, "RFC822.TEXT") == 0) {
		add_rfc822(plan, "RFC822.TEXT", MIME_SECTION_TEXT, true);
		return 0;
	}
	const char *lb = strchr(atom, '[');
	if (lb == NULL) {
		*error_r = "Unknown fetch attribute";
		return -1;
	}
	size_t plen = (size_t)(lb - atom);
	enum fetch_kind kind;
	bool peek = false;
	if (word_eq(atom, plen, "BODY"))
		kind = FETCH_SECTION;
	else if (word_eq(atom, plen, "BODY.PEEK"))
		kind = FETCH_SECTION, peek = true;
	else if (word_eq(atom, plen, "BINARY"))
		kind = FETCH_BINARY;
	else if (word_eq(atom, plen, "BINARY.PEEK"))
		kind = FETCH_BINARY, peek = true;
	else if (word_eq(atom, plen, "BINARY.SIZE"))
		kind = FETCH_BINARY_SIZE;
	else {
		*error_r = "Unknown fetch attribute";
		return -1;
	}
	struct fetch_item *it = add_item(plan, kind);
	const char *sec = lb + 1;
	const char *rb = strchr(sec, ']');
	const char *tail;
	if (rb != NULL) {
		if (parse_section(it, sec, (size_t)(rb - sec), kind != FETCH_SECTION, error_r) < 0)
			return -1;
		if (it->fields) {
			*error_r = "HEADER.FIELDS needs a list of field names";
			return -1;
		}
		tail = rb + 1;
	} else {
		/* "BODY[HEADER.FIELDS" (list) "]<o.n>" */
		if (kind != FETCH_SECTION ||
		    parse_section(it, sec, strlen(sec), false, error_r) < 0 || !it->fields) {
			*error_r = "Invalid section";
			return -1;
		}
		if (*i + 2 > count) {
			*error_r = "Missing header list";
			return -1;
		}
		if (parse_header_list(it, &args[*i], error_r) < 0)
			return -1;
		const char *close = imap_arg_atom(&args[*i + 1]);
		if (close == NULL || close[0] != ']') {
			*error_r = "Invalid section";
			return -1;
		}
		*i += 2;
		tail = close + 1;
	}
	if (parse_partial(it, tail, kind != FETCH_BINARY_SIZE, error_r) < 0)
		return -1;
	make_name(it, kind == FETCH_SECTION ? "BODY" : kind == FETCH_BINARY ? "BINARY" : "BINARY.SIZE");
	plan->needs_result = true;
	if (kind != FETCH_BINARY_SIZE)
		plan->needs_file = true;
	if ((kind == FETCH_SECTION || kind == FETCH_BINARY) && !peek)
		plan->sets_seen = true;
	return 0;
}

int imap_fetch_plan_parse(const struct imap_arg *args, size_t count, unsigned flags,
			  struct imap_fetch_plan **plan_r, size_t *used_r, const char **error_r)
{
	*plan_r = NULL;
	if (count == 0) {
		*error_r = "Missing fetch attributes";
		return -1;
	}
	struct imap_fetch_plan *plan = xcalloc(1, sizeof *plan);
	size_t used = 0;
	int ret = 0;
	if (args[0].type == IMAP_ARG_LIST) {
		used = 1;
		if (args[0].list_count == 0) {
			*error_r = "Empty fetch attribute list";
			ret = -1;
		}
		size_t i = 0;
		while (ret == 0 && i < args[0].list_count)
			ret = parse_att(plan, args[0].list, args[0].list_count, &i, flags, error_r);
	} else if (imap_arg_atom_eq(&args[0], "ALL") || imap_arg_atom_eq(&args[0], "FAST") ||
		   imap_arg_atom_eq(&args[0], "FULL")) {
		used = 1;
		add_simple(plan, FETCH_FLAGS);
		add_simple(plan, FETCH_INTERNALDATE);
		add_simple(plan, FETCH_RFC822_SIZE);
		if (!imap_arg_atom_eq(&args[0], "FAST"))
			add_simple(plan, FETCH_ENVELOPE);
		if (imap_arg_atom_eq(&args[0], "FULL"))
			add_simple(plan, FETCH_BODY);
	} else {
		ret = parse_att(plan, args, count, &used, flags, error_r);
	}
	if (ret < 0) {
		imap_fetch_plan_free(&plan);
		return -1;
	}
	plan->header_only = plan->needs_file;
	for (size_t k = 0; k < plan->count; k++) {
		const struct fetch_item *it = &plan->items[k];
		if (it->kind == FETCH_BINARY ||
		    (it->kind == FETCH_SECTION && (it->npath > 0 || it->text != MIME_SECTION_HEADER)))
			plan->header_only = false;
	}
	if (used_r != NULL)
		*used_r = used;
	*plan_r = plan;
	return 0;
}

void imap_fetch_plan_free(struct imap_fetch_plan **planp)
{
	struct imap_fetch_plan *plan = *planp;
	if (plan == NULL)
		return;
	for (size_t i = 0; i < plan->count; i++) {
		struct fetch_item *it = &plan->items[i];
		free(it->name);
		free(it->path);
		for (size_t k = 0; k < it->nnames; k++)
			free(it->names[k]);
		free(it->names);
	}
	free(plan->items);
	free(plan);
	*planp = NULL;
}

bool imap_fetch_plan_sets_seen(const struct imap_fetch_plan *plan)
{
	return plan->sets_seen;
}

bool imap_fetch_plan_has_modseq(const struct imap_fetch_plan *plan)
{
	for (size_t i = 0; i < plan->count; i++) {
		if (plan->items[i].kind == FETCH_MODSEQ)
			return true;
	}
	return false;
}

const char *fetch_kind_name(enum fetch_kind kind)
{
	switch (kind) {
	case FETCH_FLAGS:
		return "FLAGS";
	case FETCH_INTERNALDATE:
		return "INTERNALDATE";
	case FETCH_RFC822_SIZE:
		return "RFC822.SIZE";
	case FETCH_ENVELOPE:
		return "ENVELOPE";
	case FETCH_BODY:
		return "BODY";
	case FETCH_BODYSTRUCTURE:
		return "BODYSTRUCTURE";
	case FETCH_UID:
		return "UID";
	case FETCH_MODSEQ:
		return "MODSEQ";
	case FETCH_SECTION:
	case FETCH_BINARY:
	case FETCH_BINARY_SIZE:
		break;
	}
	return "";
}

void fetch_item_name(const struct fetch_item *it, struct buf *out)
{
	if (it->name == NULL) {
		buf_append_str(out, fetch_kind_name(it->kind));
		return;
	}
	buf_append_str(out, it->name);
	/* BINARY too: RFC 3516 §4.2 and RFC 9051 §7.5.2 say "BINARY[...]<<number>>" (their
	 * ABNF leaves it out; erratum 7246), and it lets a client match the request. */
	if (it->partial && (it->kind == FETCH_SECTION || it->kind == FETCH_BINARY))
		buf_printf(out, "<%llu>", (unsigned long long)it->p_off);
}

void imap_fetch_plan_format(const struct imap_fetch_plan *plan, struct buf *out)
{
	for (size_t i = 0; i < plan->count; i++) {
		if (i)
			buf_append(out, " ", 1);
		fetch_item_name(&plan->items[i], out);
	}
}
