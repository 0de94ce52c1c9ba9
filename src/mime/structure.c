/* The streaming parser: lines, header blocks, boundaries and the entity tree.
 *
 * Bytes are fed in chunks of any size. The parser keeps a stack of open entities (the
 * message, multiparts, message/rfc822 parts and the innermost part), at most
 * limits.max_depth deep. A body line is examined only as far as needed to know whether
 * it is a boundary, then its bytes go straight to the Content-Transfer-Encoding decoder
 * of the innermost leaf (which only counts them, for BINARY.SIZE). Nothing of a body is
 * kept, so memory does not grow with the message.
 *
 * Rules (RFC 2046 §5.1.1, with Dovecot's tolerance so both give the same structure):
 *   - a boundary line starts with "--" and one of the boundaries of the open
 *     multiparts; when several match, the longest wins, then the innermost;
 *   - the line break before a boundary line belongs to the boundary, not to the body;
 *   - a boundary of an outer multipart closes the inner ones;
 *   - lines may end in CRLF or a bare LF; offsets are exact either way.
 */
#include "mime/mime-private.h"

#include <stdlib.h>
#include <string.h>

#define LINE_PREFIX_MAX 256
#define BOUNDARY_MAX 200

enum mp_state { MP_PREAMBLE = 0, MP_PART, MP_EPILOGUE };

struct entity {
	uint32_t idx;
	uint32_t last_child;
	struct mime_entity_hdr hdr;
	bool is_message;   /* RFC 5322 header: the message or the one inside message/rfc822 */
	bool in_digest;    /* parent is multipart/digest: default type message/rfc822 */
	bool is_digest;
	bool in_header;
	bool truncated;    /* a multipart or message treated as a leaf because of a limit */
	uint8_t kind;
	uint8_t mp_state;
	char *boundary;
	size_t boundary_len;
	bool boundary_active;
	struct mime_decoder dec;
	uint64_t decoded;
	uint64_t body_lf_start;
	struct buf bs;     /* children's BODYSTRUCTURE */
	struct buf body;   /* children's BODY */
};

enum boundary_action { BA_NONE = 0, BA_NEW_PART, BA_END };

struct mime_parser {
	struct mime_limits limits;
	struct mime_result *res;
	bool finished;
	uint64_t offset;     /* of the next byte */
	uint64_t lf_total;   /* LFs before offset */
	struct entity *stack;
	unsigned int depth, alloc;

	/* the current line */
	uint64_t line_start;
	uint64_t line_lf;    /* lf_total at line_start */
	unsigned char lp[LINE_PREFIX_MAX];
	size_t lp_len;
	bool decided;        /* body line known to be content or a boundary */
	bool line_is_boundary;
	bool cr_held;        /* CR at the end of fed content, held until we see what follows */
	bool last_cr;        /* the last byte seen of the current line is a CR */
	enum boundary_action pending_action;
	unsigned int pending_level;
	/* line break that ended the previous line of the current header or body, 0 if none;
	 * for a leaf it has not yet been given to the decoder */
	unsigned int prev_eol;

	/* header state */
	struct buf hline;
	struct buf field;
	bool field_active;
	uint64_t header_seen;
	bool header_overflow;
	bool any_boundary;   /* some open multipart has an active boundary */
};

/* ---- helpers ---- */

static struct entity *top(struct mime_parser *mp)
{
	return &mp->stack[mp->depth - 1];
}

static struct mime_part *part_of(struct mime_parser *mp, const struct entity *e)
{
	return &mp->res->parts[e->idx];
}

static void update_any_boundary(struct mime_parser *mp)
{
	mp->any_boundary = false;
	for (unsigned int i = 0; i < mp->depth; i++) {
		if (mp->stack[i].boundary_active)
			mp->any_boundary = true;
	}
}

/* Opens a new entity whose header starts at the current offset. */
static void push_entity(struct mime_parser *mp, bool is_message, bool in_digest)
{
	if (mp->depth == mp->alloc) {
		mp->alloc = mp->alloc ? mp->alloc * 2 : 8;
		mp->stack = xrealloc(mp->stack, mp->alloc * sizeof(*mp->stack));
	}
	uint32_t idx = mime_result_add_part(mp->res);
	struct mime_part *p = &mp->res->parts[idx];
	p->header_offset = mp->offset;
	p->depth = (uint16_t)mp->depth;
	if (mp->depth > 0) {
		struct entity *parent = top(mp);
		p->parent = parent->idx;
		struct mime_part *pp = part_of(mp, parent);
		if (pp->first_child == MIME_NO_PART)
			pp->first_child = idx;
		else
			mp->res->parts[parent->last_child].next_sibling = idx;
		parent->last_child = idx;
		pp->child_count++;
	}
	struct entity *e = &mp->stack[mp->depth++];
	memset(e, 0, sizeof(*e));
	e->idx = idx;
	e->last_child = MIME_NO_PART;
	e->is_message = is_message;
	e->in_digest = in_digest;
	e->in_header = true;
	mp->prev_eol = 0;
	buf_clear(&mp->field);
	mp->field_active = false;
	mp->header_seen = 0;
	mp->header_overflow = false;
}

/* ---- header fields ---- */

static void dispatch_field(struct mime_parser *mp)
{
	if (!mp->field_active)
		return;
	mp->field_active = false;
	struct buf *f = &mp->field;
	size_t len = f->len;
	/* drop the line break that ended the field */
	if (len > 0 && f->data[len - 1] == '\n')
		len--;
	if (len > 0 && f->data[len - 1] == '\r')
		len--;
	const char *s = (const char *)f->data;
	const char *colon = len > 0 ? memchr(s, ':', len) : NULL;
	size_t name_len = colon != NULL ? (size_t)(colon - s) : 0;
	while (name_len > 0 && (s[name_len - 1] == ' ' || s[name_len - 1] == '\t'))
		name_len--;
	if (name_len == 0) {
		buf_clear(f); /* not a header field: ignored */
		return;
	}
	const char *v = colon + 1;
	const char *end = s + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	struct entity *e = top(mp);
	mime_entity_hdr_field(&e->hdr, s, name_len, v, (size_t)(end - v), e->is_message,
			      &mp->limits);
	buf_clear(f);
}

static void field_append(struct mime_parser *mp, const unsigned char *p, size_t n)
{
	static const unsigned char replacement[] = {0xef, 0xbf, 0xbd};
	size_t room = mp->limits.max_field_size > mp->field.len ?
			      mp->limits.max_field_size - mp->field.len : 0;
	if (n > room)
		n = room;
	/* header values are text: a NUL becomes U+FFFD (as Dovecot does) */
	while (n > 0) {
		const unsigned char *nul = memchr(p, '\0', n);
		size_t k = nul != NULL ? (size_t)(nul - p) : n;
		buf_append(&mp->field, p, k);
		if (nul == NULL)
			break;
		buf_append(&mp->field, replacement, sizeof(replacement));
		p += k + 1;
		n -= k + 1;
	}
}

/* ---- closing entities and writing BODY / BODYSTRUCTURE ---- */

static void params_write(struct buf *out, const struct mime_params *params, bool default_charset)
{
	if (!default_charset && params->count == 0) {
		buf_append_str(out, "NIL");
		return;
	}
	bool seen_charset = false;
	buf_append(out, "(", 1);
	for (unsigned int i = 0; i < params->count; i++) {
		if (i > 0)
			buf_append(out, " ", 1);
		if (mime_ascii_ieq(params->items[i].name, "charset"))
			seen_charset = true;
		imap_append_nstring(out, params->items[i].name);
		buf_append(out, " ", 1);
		imap_append_nstring(out, params->items[i].value);
	}
	if (default_charset && !seen_charset) {
		/* RFC 2045 §5.2: text defaults to charset us-ascii */
		if (params->count > 0)
			buf_append(out, " ", 1);
		buf_append_str(out, "\"charset\" \"us-ascii\"");
	}
	buf_append(out, ")", 1);
}

static void write_common_ext(struct buf *out, const struct mime_entity_hdr *h)
{
	buf_append(out, " ", 1);
	if (h->disposition == NULL) {
		buf_append_str(out, "NIL");
	} else {
		buf_append(out, "(", 1);
		imap_append_nstring(out, h->disposition);
		buf_append(out, " ", 1);
		params_write(out, &h->disposition_params, false);
		buf_append(out, ")", 1);
	}
	buf_append(out, " ", 1);
	if (h->language == NULL) {
		buf_append_str(out, "NIL");
	} else {
		buf_append(out, "(", 1);
		for (char **l = h->language; *l != NULL; l++) {
			if (l != h->language)
				buf_append(out, " ", 1);
			imap_append_nstring(out, *l);
		}
		buf_append(out, ")", 1);
	}
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->location);
}

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
#define EMPTY_BODYSTRUCTURE \
	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)"

static bool is_plain_7bit(const struct mime_entity_hdr *h)
{
	if (h->type != NULL && (!mime_ascii_ieq(h->type, "text") || !mime_ascii_ieq(h->subtype, "plain")))
		return false;
	if (h->type_params.count > 1 ||
	    (h->type_params.count == 1 &&
	     (!mime_ascii_ieq(h->type_params.items[0].name, "charset") ||
	      !mime_ascii_ieq(h->type_params.items[0].value, "us-ascii"))))
		return false;
	if (h->encoding != NULL && !mime_ascii_ieq(h->encoding, "7bit"))
		return false;
	return h->id == NULL && h->description == NULL && h->md5 == NULL &&
	       h->disposition == NULL && h->language == NULL && h->location == NULL;
}

/* Writes one entity's BODY (ext == false) or BODYSTRUCTURE, without the outer
 * parentheses. child holds the children's strings. */
static void write_entity(struct buf *out, const struct entity *e, const struct mime_part *p,
			 const struct buf *child, bool ext)
{
	const struct mime_entity_hdr *h = &e->hdr;

	if (e->kind == MIME_PART_MULTIPART) {
		if (child->len > 0)
			buf_append(out, child->data, child->len);
		else
			buf_append_str(out, ext ? EMPTY_BODYSTRUCTURE : EMPTY_BODY);
		buf_append(out, " ", 1);
		imap_append_nstring(out, h->subtype);
		if (!ext)
			return;
		buf_append(out, " ", 1);
		params_write(out, &h->type_params, false);
		write_common_ext(out, h);
		return;
	}

	bool text = false;
	if (e->idx == 0 && is_plain_7bit(h)) {
		/* the whole message is plain us-ascii text: sent in the default form, as
		 * Dovecot does (only letter case can differ from what is written) */
		buf_printf(out, "\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" %llu %llu",
			   (unsigned long long)p->body_size, (unsigned long long)p->body_lines);
		if (ext)
			buf_append_str(out, " NIL NIL NIL NIL");
		return;
	}
	if (e->kind == MIME_PART_MESSAGE) {
		buf_append_str(out, "\"message\" \"rfc822\"");
	} else if (h->type == NULL) {
		text = true;
		buf_append_str(out, "\"text\" \"plain\"");
	} else if (e->truncated || mime_ascii_ieq(h->type, "multipart") ||
		   (mime_ascii_ieq(h->type, "message") && mime_ascii_ieq(h->subtype, "rfc822"))) {
		/* a multipart or message we could not parse is sent as opaque data */
		buf_append_str(out, "\"application\" \"octet-stream\"");
	} else {
		text = mime_ascii_ieq(h->type, "text");
		imap_append_nstring(out, h->type);
		buf_append(out, " ", 1);
		imap_append_nstring(out, h->subtype);
	}
	buf_append(out, " ", 1);
	params_write(out, &h->type_params, text);
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->id);
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->description);
	buf_append(out, " ", 1);
	if (h->encoding != NULL)
		imap_append_nstring(out, h->encoding);
	else
		buf_append_str(out, "\"7bit\"");
	buf_printf(out, " %llu", (unsigned long long)p->body_size);
	if (text) {
		buf_printf(out, " %llu", (unsigned long long)p->body_lines);
	} else if (e->kind == MIME_PART_MESSAGE) {
		buf_append(out, " ", 1);
		buf_append(out, child->data, child->len);
		buf_printf(out, " %llu", (unsigned long long)p->body_lines);
	}
	if (!ext)
		return;
	buf_append(out, " ", 1);
	imap_append_nstring_nolf(out, h->md5);
	write_common_ext(out, h);
}

static void setup_entity(struct mime_parser *mp, struct entity *e);

/* Ends the header of the top entity at end (exclusive). */
static void end_header(struct mime_parser *mp, uint64_t end, uint64_t lf_at_end)
{
	struct entity *e = top(mp);
	struct mime_part *p = part_of(mp, e);

	dispatch_field(mp);
	e->in_header = false;
	p->header_size = end - p->header_offset;
	p->body_offset = end;
	e->body_lf_start = lf_at_end;
	mp->prev_eol = 0;
	setup_entity(mp, e);
}

static void close_top(struct mime_parser *mp, uint64_t end, uint64_t lf_at_end)
{
	struct entity *e = top(mp);
	struct mime_part *p = part_of(mp, e);

	p->body_size = end - p->body_offset;
	p->body_lines = lf_at_end - e->body_lf_start;
	if (e->kind == MIME_PART_LEAF && p->encoding != MIME_ENC_UNKNOWN)
		p->decoded_size = e->decoded + mime_decoder_count_finish(&e->dec);
	else
		p->decoded_size = p->body_size;

	struct buf bs = {0}, body = {0};
	struct buf *obs, *obody;
	if (mp->depth > 1) {
		struct entity *parent = &mp->stack[mp->depth - 2];
		obs = &parent->bs;
		obody = &parent->body;
	} else {
		obs = &bs;
		obody = &body;
	}
	if (e->is_message && mp->depth > 1) {
		/* the message inside message/rfc822: its envelope precedes its body */
		mime_envelope_write(obs, &e->hdr);
		buf_append(obs, " ", 1);
		mime_envelope_write(obody, &e->hdr);
		buf_append(obody, " ", 1);
	}
	buf_append(obs, "(", 1);
	write_entity(obs, e, p, &e->bs, true);
	buf_append(obs, ")", 1);
	buf_append(obody, "(", 1);
	write_entity(obody, e, p, &e->body, false);
	buf_append(obody, ")", 1);
	if (mp->depth == 1) {
		buf_cstr(&bs);
		buf_cstr(&body);
		mp->res->bodystructure = (char *)bs.data;
		mp->res->body = (char *)body.data;
		struct buf env = {0};
		mime_envelope_write(&env, &e->hdr);
		buf_cstr(&env);
		mp->res->envelope = (char *)env.data;
	}
	if (e->boundary_active)
		e->boundary_active = false;
	free(e->boundary);
	buf_free(&e->bs);
	buf_free(&e->body);
	mime_entity_hdr_free(&e->hdr);
	mp->depth--;
	update_any_boundary(mp);
}

/* Closes entities until the one at stack level keep is on top (keep = -1 closes all). */
static void close_to(struct mime_parser *mp, int keep, uint64_t end, uint64_t lf_at_end)
{
	while ((int)mp->depth - 1 > keep) {
		if (top(mp)->in_header)
			end_header(mp, end, lf_at_end); /* may open the message of a message/rfc822 */
		else
			close_top(mp, end, lf_at_end);
	}
}

static void setup_entity(struct mime_parser *mp, struct entity *e)
{
	struct mime_entity_hdr *h = &e->hdr;
	struct mime_part *p = part_of(mp, e);
	enum mime_part_kind want = MIME_PART_LEAF;
	const char *boundary = NULL;

	mime_entity_hdr_end(h, e->is_message);
	p->encoding = (uint8_t)(h->encoding != NULL ?
					mime_encoding_parse(h->encoding, strlen(h->encoding)) :
					MIME_ENC_7BIT);
	if (h->type == NULL) {
		/* RFC 2046 §5.1.5: in a digest the default is message/rfc822 */
		if (e->in_digest)
			want = MIME_PART_MESSAGE;
	} else if (mime_ascii_ieq(h->type, "multipart")) {
		/* without a usable boundary it is a multipart without parts */
		boundary = mime_params_get(&h->type_params, "boundary");
		if (boundary != NULL && (boundary[0] == '\0' || strlen(boundary) > BOUNDARY_MAX))
			boundary = NULL;
		want = MIME_PART_MULTIPART;
	} else if (mime_ascii_ieq(h->type, "message") && mime_ascii_ieq(h->subtype, "rfc822")) {
		/* message/global stays a basic part: one stored BODYSTRUCTURE serves IMAP4rev1
		 * clients too, whose grammar has only MESSAGE/RFC822 (RFC 3501 §9) */
		want = MIME_PART_MESSAGE;
	}
	if (want != MIME_PART_LEAF &&
	    (mp->depth >= mp->limits.max_depth || mp->res->part_count >= mp->limits.max_parts)) {
		e->truncated = true;
		mp->res->truncated = true;
		want = MIME_PART_LEAF;
	}
	e->kind = (uint8_t)want;
	p->kind = (uint8_t)want;
	if (mp->depth == 1 && e->is_message && e->idx == 0)
		mime_sort_fields_fill(&mp->res->sort, h);
	if (want == MIME_PART_MULTIPART) {
		e->is_digest = mime_ascii_ieq(h->subtype, "digest");
		e->mp_state = MP_PREAMBLE;
		if (boundary != NULL) {
			e->boundary = xstrdup(boundary);
			e->boundary_len = strlen(boundary);
			e->boundary_active = true;
			mp->any_boundary = true;
		}
	} else if (want == MIME_PART_MESSAGE) {
		/* The body is parsed as a message whatever its Content-Transfer-Encoding
		 * says (RFC 2046 §5.2.1 allows only 7bit, 8bit, binary); an encoded one
		 * gives a message whose header is the encoded text (as Dovecot does). */
		uint64_t start = p->body_offset;
		push_entity(mp, true, false); /* e and p are stale from here */
		mp->res->parts[top(mp)->idx].header_offset = start;
	} else {
		mime_decoder_init(&e->dec, (enum mime_encoding)p->encoding);
	}
}

/* ---- boundaries ---- */

/* Looks for a boundary at the start of line[0..len). Returns the stack level of the
 * multipart it belongs to, or -1. */
static int find_boundary(struct mime_parser *mp, const unsigned char *line, size_t len,
			 bool *is_end)
{
	if (len < 2 || line[0] != '-' || line[1] != '-' || !mp->any_boundary)
		return -1;
	if (mp->res->part_count >= mp->limits.max_parts) {
		/* no more parts: boundaries are not looked for any more (as Dovecot) */
		mp->res->truncated = true;
		return -1;
	}
	line += 2;
	len -= 2;
	int best = -1;
	size_t best_len = 0;
	for (int i = (int)mp->depth - 1; i >= 0; i--) {
		const struct entity *e = &mp->stack[i];
		if (!e->boundary_active || e->boundary_len > len)
			continue;
		if (memcmp(e->boundary, line, e->boundary_len) == 0 &&
		    (best < 0 || e->boundary_len > best_len)) {
			best = i;
			best_len = e->boundary_len;
		}
	}
	if (best >= 0)
		*is_end = len >= best_len + 2 && line[best_len] == '-' && line[best_len + 1] == '-';
	return best;
}

/* The longest boundary that could still match decides how much of a line is needed. */
static size_t boundary_need(struct mime_parser *mp)
{
	size_t need = 0;
	for (unsigned int i = 0; i < mp->depth; i++) {
		if (mp->stack[i].boundary_active && mp->stack[i].boundary_len > need)
			need = mp->stack[i].boundary_len;
	}
	return need + 4;
}

/* A boundary line of the multipart at level starts at line_start. */
static void boundary_found(struct mime_parser *mp, int level, bool is_end)
{
	struct entity *e = top(mp);
	/* A header line keeps its line break even when a boundary follows; a body line
	 * gives it to the boundary. */
	unsigned int eol = e->in_header ? 0 : mp->prev_eol;
	uint64_t end = mp->line_start - eol;
	uint64_t lf_end = mp->line_lf - (eol > 0 ? 1 : 0);

	/* a held line break of a leaf is not part of it: drop it */
	if (!e->in_header && e->kind == MIME_PART_LEAF)
		mp->cr_held = false;
	close_to(mp, level, end, lf_end);
	mp->pending_action = is_end ? BA_END : BA_NEW_PART;
	mp->pending_level = (unsigned int)level;
}

/* The boundary line ended (eol_len bytes of line break, already consumed). */
static void boundary_line_end(struct mime_parser *mp, unsigned int eol_len)
{
	struct entity *e = top(mp);
	enum boundary_action a = mp->pending_action;

	mp->pending_action = BA_NONE;
	(void)eol_len;
	if (a == BA_END) {
		/* The close-delimiter line, its line break included, is the start of the
		 * epilogue: a following outer boundary does not take that line break. */
		e->mp_state = MP_EPILOGUE;
		e->boundary_active = false;
		update_any_boundary(mp);
		mp->prev_eol = 0;
	} else if (a == BA_NEW_PART) {
		e->mp_state = MP_PART;
		push_entity(mp, false, e->is_digest);
	}
}

/* ---- body data ---- */

static void leaf_feed(struct mime_parser *mp, const unsigned char *p, size_t n)
{
	struct entity *e = top(mp);
	if (e->kind != MIME_PART_LEAF || e->in_header || n == 0)
		return;
	if (mp->res->parts[e->idx].encoding == MIME_ENC_BASE64 ||
	    mp->res->parts[e->idx].encoding == MIME_ENC_QP)
		e->decoded += mime_decoder_count(&e->dec, p, n);
	else
		e->decoded += n;
}

/* The current body line is content: give the held line break and the line's first
 * bytes (lp) to the leaf. The CR at the end of lp, if any, is held. */
static void line_is_content(struct mime_parser *mp)
{
	static const unsigned char crlf[] = "\r\n";
	if (mp->prev_eol > 0)
		leaf_feed(mp, crlf + (2 - mp->prev_eol), mp->prev_eol);
	mp->prev_eol = 0;
	size_t n = mp->lp_len;
	if (n > 0 && mp->lp[n - 1] == '\r') {
		n--;
		mp->cr_held = true;
	}
	leaf_feed(mp, mp->lp, n);
	mp->decided = true;
	mp->line_is_boundary = false;
}

static void content_bytes(struct mime_parser *mp, const unsigned char *p, size_t n)
{
	if (n == 0)
		return;
	if (mp->cr_held) {
		leaf_feed(mp, (const unsigned char *)"\r", 1);
		mp->cr_held = false;
	}
	if (p[n - 1] == '\r') {
		n--;
		mp->cr_held = true;
	}
	leaf_feed(mp, p, n);
}

static void new_line(struct mime_parser *mp)
{
	mp->line_start = mp->offset;
	mp->line_lf = mp->lf_total;
	mp->lp_len = 0;
	mp->decided = false;
	mp->line_is_boundary = false;
	mp->cr_held = false;
	mp->last_cr = false;
}

/* Tries to decide whether the current body line (first lp_len bytes seen) is a
 * boundary; complete tells that the whole line is in lp. */
static void try_decide(struct mime_parser *mp, bool complete)
{
	size_t n = mp->lp_len;
	if (!mp->any_boundary || (n >= 1 && mp->lp[0] != '-') || (n >= 2 && mp->lp[1] != '-')) {
		line_is_content(mp);
		return;
	}
	if (!complete && n < boundary_need(mp) && n < LINE_PREFIX_MAX)
		return;
	size_t len = n;
	if (complete && len > 0 && mp->lp[len - 1] == '\r')
		len--;
	bool is_end = false;
	int level = find_boundary(mp, mp->lp, len, &is_end);
	if (level < 0) {
		line_is_content(mp);
		return;
	}
	mp->decided = true;
	mp->line_is_boundary = true;
	boundary_found(mp, level, is_end);
}

/* ---- header lines ---- */

/* A complete header line is in hline (without its line break, which is eol bytes long;
 * eol == 0 at the end of the input). */
static void header_line(struct mime_parser *mp, unsigned int eol)
{
	const unsigned char *l = mp->hline.data;
	size_t content = mp->hline.len;
	if (eol == 2 && content > 0 && l[content - 1] == '\r')
		content--;

	bool is_end = false;
	int level = find_boundary(mp, l, content, &is_end);
	if (level >= 0) {
		/* a boundary ends a header that had no empty line */
		boundary_found(mp, level, is_end);
		if (eol > 0)
			boundary_line_end(mp, eol);
		return;
	}
	if (content == 0 && eol > 0) {
		/* the empty line ends the header */
		end_header(mp, mp->offset, mp->lf_total);
		return;
	}
	static const char *const eols[] = {"", "\n", "\r\n"};
	if (mp->header_seen > mp->limits.max_header_size) {
		if (!mp->header_overflow) {
			dispatch_field(mp);
			mp->header_overflow = true;
			mp->res->truncated = true;
		}
	} else if ((l[0] == ' ' || l[0] == '\t') && mp->field_active) {
		/* folded continuation (RFC 5322 §2.2.3) */
		field_append(mp, l, content);
		field_append(mp, (const unsigned char *)eols[eol], eol);
	} else {
		dispatch_field(mp);
		field_append(mp, l, content);
		field_append(mp, (const unsigned char *)eols[eol], eol);
		mp->field_active = true;
	}
	mp->prev_eol = eol;
}

/* ---- feeding ---- */

struct mime_parser *mime_parser_new(const struct mime_limits *limits)
{
	struct mime_parser *mp = xcalloc(1, sizeof(*mp));
	if (limits != NULL)
		mp->limits = *limits;
	else
		mime_limits_default(&mp->limits);
	if (mp->limits.max_depth == 0)
		mp->limits.max_depth = 1;
	if (mp->limits.max_parts == 0)
		mp->limits.max_parts = 1;
	if (mp->limits.max_field_size < LINE_PREFIX_MAX)
		mp->limits.max_field_size = LINE_PREFIX_MAX;
	mp->res = mime_result_new();
	push_entity(mp, true, false);
	new_line(mp);
	return mp;
}

static size_t feed_header(struct mime_parser *mp, const unsigned char *p, size_t n)
{
	const unsigned char *lf = memchr(p, '\n', n);
	size_t seg = lf != NULL ? (size_t)(lf - p) : n;
	/* keep at most what a field may hold (the rest is counted, not parsed) */
	size_t room = mp->limits.max_field_size > mp->hline.len ?
			      mp->limits.max_field_size - mp->hline.len : 0;
	buf_append(&mp->hline, p, seg < room ? seg : room);
	if (seg > 0)
		mp->last_cr = p[seg - 1] == '\r';
	mp->header_seen += seg;
	mp->offset += seg;
	if (lf == NULL)
		return seg;
	mp->offset++;
	mp->lf_total++;
	mp->header_seen++;
	header_line(mp, mp->last_cr ? 2 : 1);
	buf_clear(&mp->hline);
	new_line(mp);
	return seg + 1;
}

static size_t feed_body(struct mime_parser *mp, const unsigned char *p, size_t n)
{
	if (!mp->decided) {
		size_t room = LINE_PREFIX_MAX - mp->lp_len;
		size_t avail = n < room ? n : room;
		const unsigned char *lf = memchr(p, '\n', avail);
		size_t take = lf != NULL ? (size_t)(lf - p) : avail;
		memcpy(mp->lp + mp->lp_len, p, take);
		mp->lp_len += take;
		mp->offset += take;
		if (take > 0)
			mp->last_cr = p[take - 1] == '\r';
		if (lf != NULL) {
			try_decide(mp, true);
			return take;
		}
		try_decide(mp, mp->lp_len == LINE_PREFIX_MAX);
		return take;
	}
	const unsigned char *lf = memchr(p, '\n', n);
	size_t seg = lf != NULL ? (size_t)(lf - p) : n;
	if (!mp->line_is_boundary)
		content_bytes(mp, p, seg);
	if (seg > 0)
		mp->last_cr = p[seg - 1] == '\r';
	mp->offset += seg;
	if (lf == NULL)
		return seg;
	/* the line break: CRLF or a bare LF */
	unsigned int eol = mp->last_cr ? 2 : 1;
	mp->offset++;
	mp->lf_total++;
	if (mp->line_is_boundary) {
		new_line(mp);
		boundary_line_end(mp, eol);
	} else {
		new_line(mp);
		mp->prev_eol = eol;
	}
	return seg + 1;
}

void mime_parser_feed(struct mime_parser *mp, const unsigned char *data, size_t len)
{
	if (mp->finished || len == 0)
		return;
	if (!mp->res->has_nul && memchr(data, '\0', len) != NULL)
		mp->res->has_nul = true;
	if (!mp->res->has_8bit) {
		unsigned char acc = 0;
		for (size_t i = 0; i < len; i++)
			acc |= data[i];
		if (acc & 0x80)
			mp->res->has_8bit = true;
	}
	while (len > 0) {
		size_t used;
		if (top(mp)->in_header)
			used = feed_header(mp, data, len);
		else
			used = feed_body(mp, data, len);
		data += used;
		len -= used;
	}
}

struct mime_result *mime_parser_finish(struct mime_parser *mp)
{
	if (mp->finished)
		return NULL;
	mp->finished = true;
	/* the last line, without line break */
	if (top(mp)->in_header) {
		if (mp->hline.len > 0)
			header_line(mp, 0);
		buf_clear(&mp->hline);
	} else if (!mp->decided) {
		if (mp->lp_len > 0)
			try_decide(mp, true);
	}
	if (mp->pending_action != BA_NONE) {
		/* a boundary line at the very end */
		boundary_line_end(mp, 0);
	} else if (!top(mp)->in_header) {
		/* everything up to the end belongs to the innermost body */
		static const unsigned char crlf[] = "\r\n";
		if (mp->prev_eol > 0)
			leaf_feed(mp, crlf + (2 - mp->prev_eol), mp->prev_eol);
		if (mp->cr_held)
			leaf_feed(mp, (const unsigned char *)"\r", 1);
	}
	mp->prev_eol = 0;
	mp->cr_held = false;
	close_to(mp, -1, mp->offset, mp->lf_total);
	struct mime_result *res = mp->res;
	res->size = mp->offset;
	mp->res = NULL;
	return res;
}

void mime_parser_free(struct mime_parser **mpp)
{
	struct mime_parser *mp = *mpp;
	if (mp == NULL)
		return;
	for (unsigned int i = 0; i < mp->depth; i++) {
		struct entity *e = &mp->stack[i];
		free(e->boundary);
		buf_free(&e->bs);
		buf_free(&e->body);
		mime_entity_hdr_free(&e->hdr);
	}
	free(mp->stack);
	buf_free(&mp->hline);
	buf_free(&mp->field);
	mime_result_free(&mp->res);
	free(mp);
	*mpp = NULL;
}
