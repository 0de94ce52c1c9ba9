/* Header fields of one MIME entity (RFC 2045 Content-* fields, and for messages the RFC
 * 5322 fields of the IMAP ENVELOPE), the ENVELOPE writer (RFC 3501 §7.4.2, RFC 9051
 * §7.5.2) and the SORT/THREAD fields (RFC 5256). */
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool mime_ascii_ieq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static void set_str(char **dst, const char *value, size_t len)
{
	free(*dst);
	*dst = xstrndup(value, len);
}

/* Address fields that occur more than once are all used, one list after the other (as
 * Dovecot does). */
static void add_addr(struct mime_hdr_addrs *f, const char *value, size_t len)
{
	f->values = xrealloc(f->values, (f->count + 1) * sizeof(*f->values));
	f->values[f->count++] = xstrndup(value, len);
}

static void parse_content_type(struct mime_entity_hdr *h, const char *value, size_t len,
			       const struct mime_limits *limits)
{
	struct rfc822_lexer lx;
	struct buf type = {0}, sub = {0};
	bool ok = false, params = false;

	/* RFC 2045 §5.1: type "/" subtype *(";" parameter), comments allowed. A broken
	 * field is kept as "" "" without parameters, as Dovecot does; "text" alone gives
	 * type "text" with an empty subtype. */
	rfc822_lexer_init(&lx, value, len);
	if (rfc822_skip_cfws(&lx) && rfc822_parse_token(&lx, &type)) {
		if (!rfc822_skip_cfws(&lx)) {
			ok = true;
		} else if (*lx.p == '/') {
			lx.p++;
			if (!rfc822_skip_cfws(&lx)) {
				ok = true;
			} else if (rfc822_parse_token(&lx, &sub)) {
				if (!rfc822_skip_cfws(&lx)) {
					ok = true;
				} else if (*lx.p == ';') {
					ok = true;
					params = true;
				}
			}
		}
	}
	if (!ok) {
		buf_clear(&type);
		buf_clear(&sub);
	}
	h->type = xstrdup(type.len > 0 ? buf_cstr(&type) : "");
	h->subtype = xstrdup(sub.len > 0 ? buf_cstr(&sub) : "");
	h->type_invalid = !ok;
	if (params)
		mime_params_parse(&lx, limits->max_params, &h->type_params);
	buf_free(&type);
	buf_free(&sub);
}

static void parse_disposition(struct mime_entity_hdr *h, const char *value, size_t len,
			      const struct mime_limits *limits)
{
	struct rfc822_lexer lx;
	struct buf tok = {0};

	rfc822_lexer_init(&lx, value, len);
	if (rfc822_skip_cfws(&lx) && rfc822_parse_token(&lx, &tok)) {
		h->disposition = xstrdup(buf_cstr(&tok));
		rfc822_skip_cfws(&lx);
		mime_params_parse(&lx, limits->max_params, &h->disposition_params);
	}
	buf_free(&tok);
}

static void parse_encoding(struct mime_entity_hdr *h, const char *value, size_t len)
{
	struct rfc822_lexer lx;
	struct buf tok = {0};

	rfc822_lexer_init(&lx, value, len);
	if (rfc822_skip_cfws(&lx) && rfc822_parse_token(&lx, &tok) && !rfc822_skip_cfws(&lx))
		h->encoding = xstrdup(buf_cstr(&tok));
	buf_free(&tok);
}

static void parse_language(struct mime_entity_hdr *h, const char *value, size_t len)
{
	struct rfc822_lexer lx;
	struct buf tok = {0};
	size_t n = 0;
	char **list = NULL;

	/* RFC 3282: Content-Language: en-US, az-arabic */
	rfc822_lexer_init(&lx, value, len);
	rfc822_skip_cfws(&lx);
	while (n < 64 && rfc822_parse_atom(&lx, &tok)) {
		list = xrealloc(list, (n + 2) * sizeof(*list));
		list[n++] = xstrdup(buf_cstr(&tok));
		list[n] = NULL;
		buf_clear(&tok);
		rfc822_skip_cfws(&lx);
		if (lx.p >= lx.end || *lx.p != ',')
			break;
		lx.p++;
		rfc822_skip_cfws(&lx);
	}
	h->language = list;
	buf_free(&tok);
}

void mime_entity_hdr_field(struct mime_entity_hdr *h, const char *name, size_t name_len,
			   const char *value, size_t value_len, bool is_message,
			   const struct mime_limits *limits)
{
	if (name_len > 8 && strncasecmp(name, "Content-", 8) == 0) {
		const char *n = name + 8;
		size_t l = name_len - 8;
		/* the first field of each kind counts */
		if (name_is(n, l, "Type")) {
			if (h->type == NULL)
				parse_content_type(h, value, value_len, limits);
		} else if (name_is(n, l, "Transfer-Encoding")) {
			if (h->encoding == NULL)
				parse_encoding(h, value, value_len);
		} else if (name_is(n, l, "ID")) {
			if (h->id == NULL)
				h->id = xstrndup(value, value_len);
		} else if (name_is(n, l, "Description")) {
			if (h->description == NULL)
				h->description = xstrndup(value, value_len);
		} else if (name_is(n, l, "MD5")) {
			if (h->md5 == NULL)
				h->md5 = xstrndup(value, value_len);
		} else if (name_is(n, l, "Location")) {
			if (h->location == NULL)
				h->location = xstrndup(value, value_len);
		} else if (name_is(n, l, "Disposition")) {
			/* the last one counts (as in Dovecot) */
			free(h->disposition);
			h->disposition = NULL;
			mime_params_free(&h->disposition_params);
			parse_disposition(h, value, value_len, limits);
		} else if (name_is(n, l, "Language")) {
			if (h->language == NULL)
				parse_language(h, value, value_len);
		}
		return;
	}
	if (!is_message)
		return;
	if (name_is(name, name_len, "MIME-Version")) {
		h->mime_version = true;
		return;
	}
	/* Envelope fields: a later field replaces an earlier one (as Dovecot does). */
	switch (name[0] | 0x20) {
	case 'b':
		if (name_is(name, name_len, "Bcc"))
			add_addr(&h->bcc, value, value_len);
		break;
	case 'c':
		if (name_is(name, name_len, "Cc"))
			add_addr(&h->cc, value, value_len);
		break;
	case 'd':
		if (name_is(name, name_len, "Date"))
			set_str(&h->date, value, value_len);
		break;
	case 'f':
		if (name_is(name, name_len, "From"))
			add_addr(&h->from, value, value_len);
		break;
	case 'i':
		if (name_is(name, name_len, "In-Reply-To"))
			set_str(&h->in_reply_to, value, value_len);
		break;
	case 'm':
		if (name_is(name, name_len, "Message-ID"))
			set_str(&h->message_id, value, value_len);
		break;
	case 'r':
		if (name_is(name, name_len, "Reply-To"))
			add_addr(&h->reply_to, value, value_len);
		else if (name_is(name, name_len, "References") && h->references == NULL)
			set_str(&h->references, value, value_len);
		break;
	case 's':
		if (name_is(name, name_len, "Subject"))
			set_str(&h->subject, value, value_len);
		else if (name_is(name, name_len, "Sender"))
			add_addr(&h->sender, value, value_len);
		break;
	case 't':
		if (name_is(name, name_len, "To"))
			add_addr(&h->to, value, value_len);
		break;
	default:
		break;
	}
}

void mime_entity_hdr_end(struct mime_entity_hdr *h, bool is_message)
{
	if (!is_message || h->mime_version || h->type != NULL)
		return;
	free(h->encoding);
	free(h->id);
	free(h->description);
	free(h->md5);
	free(h->location);
	free(h->disposition);
	h->encoding = h->id = h->description = h->md5 = h->location = h->disposition = NULL;
	mime_params_free(&h->disposition_params);
	if (h->language != NULL) {
		for (char **l = h->language; *l != NULL; l++)
			free(*l);
		free(h->language);
		h->language = NULL;
	}
}

static void addrs_free(struct mime_hdr_addrs *f)
{
	for (unsigned int i = 0; i < f->count; i++)
		free(f->values[i]);
	free(f->values);
}

void mime_entity_hdr_free(struct mime_entity_hdr *h)
{
	free(h->type);
	free(h->subtype);
	mime_params_free(&h->type_params);
	free(h->encoding);
	free(h->id);
	free(h->description);
	free(h->md5);
	free(h->location);
	free(h->disposition);
	mime_params_free(&h->disposition_params);
	if (h->language != NULL) {
		for (char **l = h->language; *l != NULL; l++)
			free(*l);
		free(h->language);
	}
	free(h->date);
	free(h->subject);
	free(h->message_id);
	free(h->in_reply_to);
	free(h->references);
	addrs_free(&h->from);
	addrs_free(&h->sender);
	addrs_free(&h->reply_to);
	addrs_free(&h->to);
	addrs_free(&h->cc);
	addrs_free(&h->bcc);
	memset(h, 0, sizeof(*h));
}

static struct mime_address *parse_addr_field(const struct mime_hdr_addrs *f)
{
	struct mime_address *head = NULL, **tail = &head;
	for (unsigned int i = 0; i < f->count; i++) {
		*tail = mime_address_parse(f->values[i], strlen(f->values[i]), true);
		while (*tail != NULL)
			tail = &(*tail)->next;
	}
	return head;
}

void mime_envelope_write(struct buf *out, const struct mime_entity_hdr *h)
{
	struct mime_address *from = parse_addr_field(&h->from);
	struct mime_address *sender = parse_addr_field(&h->sender);
	struct mime_address *reply_to = parse_addr_field(&h->reply_to);
	struct mime_address *to = parse_addr_field(&h->to);
	struct mime_address *cc = parse_addr_field(&h->cc);
	struct mime_address *bcc = parse_addr_field(&h->bcc);

	buf_append(out, "(", 1);
	imap_append_nstring_nolf(out, h->date);
	buf_append(out, " ", 1);
	if (h->subject == NULL)
		buf_append_str(out, "NIL");
	else
		imap_append_string_for_humans(out, h->subject);
	buf_append(out, " ", 1);
	mime_address_write_imap(out, from);
	/* RFC 3501 §7.4.2: absent or empty Sender and Reply-To are set to From */
	buf_append(out, " ", 1);
	mime_address_write_imap(out, sender != NULL ? sender : from);
	buf_append(out, " ", 1);
	mime_address_write_imap(out, reply_to != NULL ? reply_to : from);
	buf_append(out, " ", 1);
	mime_address_write_imap(out, to);
	buf_append(out, " ", 1);
	mime_address_write_imap(out, cc);
	buf_append(out, " ", 1);
	mime_address_write_imap(out, bcc);
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->in_reply_to);
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->message_id);
	buf_append(out, ")", 1);

	mime_address_free(&from);
	mime_address_free(&sender);
	mime_address_free(&reply_to);
	mime_address_free(&to);
	mime_address_free(&cc);
	mime_address_free(&bcc);
}

static char *lower_dup(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return r;
}

/* Collapses white space runs to one space and trims both ends, in place. */
static void squeeze_spaces(char *s)
{
	char *w = s;
	bool space = true;
	for (char *r = s; *r != '\0'; r++) {
		if (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n') {
			if (!space)
				*w++ = ' ';
			space = true;
		} else {
			*w++ = *r;
			space = false;
		}
	}
	if (w > s && w[-1] == ' ')
		w--;
	*w = '\0';
}

static void fill_sort_addr(struct mime_sort_addr *sa, const struct mime_hdr_addrs *f)
{
	if (f->count == 0)
		return;
	struct mime_address *list = mime_address_parse(f->values[0], strlen(f->values[0]), false);
	for (struct mime_address *a = list; a != NULL; a = a->next) {
		if (a->group_start || a->group_end || a->mailbox == NULL)
			continue;
		sa->mailbox = lower_dup(a->mailbox);
		char *spec = a->domain != NULL && a->domain[0] != '\0' ?
				     xasprintf("%s@%s", a->mailbox, a->domain) : xstrdup(a->mailbox);
		sa->addr = lower_dup(spec);
		if (a->name != NULL && a->name[0] != '\0') {
			/* RFC 5957 §3: the decoded display name, else the addr-spec */
			sa->display = mime_decode_header(a->name, strlen(a->name));
			squeeze_spaces(sa->display);
			free(spec);
		} else {
			sa->display = spec;
		}
		break;
	}
	mime_address_free(&list);
}

/* msg-id list: every "<...>", without CFWS; space separated. */
static char *msgids(const char *value, bool first_only)
{
	struct buf out = {0};
	const char *p = value;
	while ((p = strchr(p, '<')) != NULL) {
		const char *e = strchr(p + 1, '>');
		if (e == NULL)
			break;
		if (out.len > 0)
			buf_append(&out, " ", 1);
		for (const char *q = p; q <= e; q++) {
			if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
				buf_append(&out, q, 1);
		}
		p = e + 1;
		if (first_only)
			break;
	}
	if (out.len == 0)
		return NULL;
	buf_cstr(&out);
	return (char *)out.data;
}

void mime_sort_fields_fill(struct mime_sort_fields *sf, const struct mime_entity_hdr *h)
{
	if (h->subject != NULL) {
		sf->subject = mime_decode_header(h->subject, strlen(h->subject));
		sf->base_subject = mime_base_subject(sf->subject, &sf->subject_is_reply);
	} else {
		sf->base_subject = xstrdup("");
	}
	fill_sort_addr(&sf->from, &h->from);
	fill_sort_addr(&sf->to, &h->to);
	fill_sort_addr(&sf->cc, &h->cc);
	if (h->date != NULL)
		sf->has_date = mime_date_parse(h->date, strlen(h->date), &sf->date, &sf->tz_offset);
	if (h->message_id != NULL)
		sf->message_id = msgids(h->message_id, true);
	if (h->in_reply_to != NULL)
		sf->in_reply_to = msgids(h->in_reply_to, false);
	if (h->references != NULL)
		sf->references = msgids(h->references, false);
}

static void sort_addr_free(struct mime_sort_addr *sa)
{
	free(sa->addr);
	free(sa->mailbox);
	free(sa->display);
}

void mime_sort_fields_free(struct mime_sort_fields *sf)
{
	free(sf->base_subject);
	free(sf->subject);
	sort_addr_free(&sf->from);
	sort_addr_free(&sf->to);
	sort_addr_free(&sf->cc);
	free(sf->message_id);
	free(sf->in_reply_to);
	free(sf->references);
	memset(sf, 0, sizeof(*sf));
}
