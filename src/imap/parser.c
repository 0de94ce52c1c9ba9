/* IMAP command tokenizer: a byte-at-a-time state machine (see parser.h). Literal data is
 * taken in bulk. Arguments are kept as a flat node array while parsing and turned into the
 * public tree when the command is complete. */
#include "imap/parser.h"

#include <stdlib.h>
#include <string.h>

#include "imap/utf7.h"

const struct imap_parser_limits imap_parser_limits_default = {
	.max_line_length = 64 * 1024,
	.max_literal_size = 64 * 1024,
	.max_literal_total = 1024 * 1024,
	.max_literal_discard = 256 * 1024 * 1024,
	.max_args = 4096,
	.max_list_depth = 16,
};

const struct imap_parser_limits imap_parser_limits_preauth = {
	.max_line_length = 8192,
	.max_literal_size = 8192,
	.max_literal_total = 16384,
	.max_literal_discard = 65536,
	.max_args = 100,
	.max_list_depth = 2,
};

enum state {
	ST_TAG,
	ST_NAME,
	ST_ARG_START,   /* after SP or "(" */
	ST_AFTER_ARG,
	ST_ATOM,
	ST_TILDE,       /* "~" at an argument start: literal8 or an atom */
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_LIT_SIZE,    /* after "{": digits */
	ST_LIT_CLOSE,   /* after "+": "}" */
	ST_LIT_CR,      /* after "}": CR or LF */
	ST_LIT_LF,      /* after "}" CR: LF */
	ST_LIT_DATA,
	ST_LIT_DISCARD, /* a refused or invalid literal: drop its bytes, then report */
	ST_LINE_LF,     /* CR at the end of the command: LF */
	ST_DONE,
	ST_FAILED,
	ST_SKIP,        /* dropping the rest of a failed command's line */
	ST_SKIP_LITERAL,
};

enum node_flag {
	NODE_LITERAL = 1,
	NODE_LITERAL8 = 2,
};

struct node {
	enum imap_arg_type type;
	unsigned flags;
	size_t parent; /* index + 1 of the enclosing list, 0 at top level */
	size_t off;    /* in parser->text */
	size_t len;
	size_t nchildren;
	size_t block; /* while building the tree: where the children go */
	size_t fill;
};

/* Follows literal announcements ("{123+}" CRLF) over every byte of a line that the parser takes
 * as line text, so that a line skipped after an error still skips its literals' bytes and never
 * reads literal data as commands. */
struct lit_track {
	enum { TR_NONE, TR_SIZE, TR_PLUS, TR_CLOSE, TR_CR } st;
	bool plus;
	bool digits;
	uint64_t size;
};

struct imap_parser {
	struct imap_parser_limits limits;
	enum imap_literal_mode literal_mode;
	bool utf8;
	bool literal8_ok;

	/* per command (reset) */
	imap_literal_sink_fn *sink;
	void *sink_ctx;
	uint64_t sink_threshold;

	enum state state;
	enum imap_parse_result result; /* repeated once DONE or FAILED */
	struct buf tag;
	struct buf name;
	bool have_tag;
	bool name_reported;
	struct buf text;
	struct node *nodes;
	size_t nnodes, nodes_cap;
	size_t ntop;
	size_t cur_list; /* index + 1 of the innermost open list, 0 at top level */
	unsigned depth;
	bool after_open; /* ST_ARG_START right after "(" */
	size_t line_len;
	uint64_t literal_total;
	bool list_closed; /* the last thing read was a list's ")" */
	bool quoted_8bit;

	/* literal being announced or read */
	uint64_t lit_size;
	bool lit_digits;
	bool lit_plus;
	bool lit_binary;
	uint64_t lit_remaining;
	bool lit_stream;
	bool lit_check_nul;
	struct imap_literal_info lit_info;

	struct lit_track track;
	uint64_t skip_remaining;

	struct imap_parse_error error;
	bool error_took_byte; /* the failing byte was used (a literal's LF), else it is unread */
	struct imap_parse_error pending; /* reported once ST_LIT_DISCARD ends */

	struct imap_arg *args;
	size_t nargs;
};

#define SAT_MAX UINT64_MAX

static uint64_t sat_mul10_add(uint64_t v, unsigned d)
{
	if (v > (SAT_MAX - d) / 10)
		return SAT_MAX;
	return v * 10 + d;
}

static void track_reset(struct lit_track *t)
{
	t->st = TR_NONE;
}

/* Returns true when c completes a literal announcement ("}" CRLF or "}" LF). */
static bool track_byte(struct lit_track *t, unsigned char c)
{
	if (c == '{') {
		t->st = TR_SIZE;
		t->plus = false;
		t->digits = false;
		t->size = 0;
		return false;
	}
	switch (t->st) {
	case TR_NONE:
		return false;
	case TR_SIZE:
		if (c >= '0' && c <= '9') {
			t->size = sat_mul10_add(t->size, (unsigned)(c - '0'));
			t->digits = true;
		} else if (c == '+' && t->digits) {
			t->plus = true;
			t->st = TR_PLUS;
		} else if (c == '}' && t->digits) {
			t->st = TR_CLOSE;
		} else {
			t->st = TR_NONE;
		}
		return false;
	case TR_PLUS:
		t->st = c == '}' ? TR_CLOSE : TR_NONE;
		return false;
	case TR_CLOSE:
		if (c == '\r') {
			t->st = TR_CR;
			return false;
		}
		t->st = TR_NONE;
		return c == '\n';
	case TR_CR:
		t->st = TR_NONE;
		return c == '\n';
	}
	return false;
}

/* ATOM-CHAR: any CHAR except atom-specials (RFC 9051 §9). */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
	case ']':
		return false;
	default:
		return true;
	}
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool is_tag_char(unsigned char c)
{
	return c == ']' || (c != '+' && is_atom_char(c));
}

/* Atoms among the arguments also hold list wildcards (LIST patterns, "*" in sequence sets)
 * and resp-specials (astring). A backslash may only start one (flags). */
static bool is_arg_atom_char(unsigned char c)
{
	return is_atom_char(c) || c == '%' || c == '*' || c == ']';
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	p->limits = *limits;
	p->literal_mode = IMAP_LITERAL_SYNC_ONLY;
	p->state = ST_TAG;
	return p;
}

void imap_parser_free(struct imap_parser **parser)
{
	struct imap_parser *p = *parser;
	if (p == NULL)
		return;
	buf_free(&p->tag);
	buf_free(&p->name);
	buf_free(&p->text);
	free(p->nodes);
	free(p->args);
	free(p);
	*parser = NULL;
}

void imap_parser_set_limits(struct imap_parser *p, const struct imap_parser_limits *limits)
{
	p->limits = *limits;
}

void imap_parser_set_literal_mode(struct imap_parser *p, enum imap_literal_mode mode)
{
	p->literal_mode = mode;
}

void imap_parser_set_utf8(struct imap_parser *p, bool utf8)
{
	p->utf8 = utf8;
}

void imap_parser_set_literal8(struct imap_parser *p, bool allow)
{
	p->literal8_ok = allow;
}

void imap_parser_set_literal_sink(struct imap_parser *p, uint64_t threshold,
				  imap_literal_sink_fn *fn, void *ctx)
{
	p->sink = fn;
	p->sink_ctx = ctx;
	p->sink_threshold = threshold;
}

/* Buffers of a big command are not kept for the next one: idle connections own little. */
#define KEEP_BUF 4096

static void shrink_buf(struct buf *b)
{
	if (b->cap > KEEP_BUF)
		buf_free(b);
	else
		buf_clear(b);
}

void imap_parser_reset(struct imap_parser *p)
{
	if (p->state == ST_FAILED && p->error.fatal)
		return;
	bool skip = p->state == ST_FAILED && p->error.skip_line;

	p->sink = NULL;
	p->sink_ctx = NULL;
	p->sink_threshold = 0;
	shrink_buf(&p->tag);
	shrink_buf(&p->name);
	shrink_buf(&p->text);
	if (p->nodes_cap * sizeof(*p->nodes) > KEEP_BUF) {
		free(p->nodes);
		p->nodes = NULL;
		p->nodes_cap = 0;
	}
	p->nnodes = 0;
	p->ntop = 0;
	free(p->args);
	p->args = NULL;
	p->nargs = 0;
	p->have_tag = false;
	p->name_reported = false;
	p->cur_list = 0;
	p->depth = 0;
	p->after_open = false;
	p->line_len = 0;
	p->literal_total = 0;
	p->list_closed = false;
	p->quoted_8bit = false;
	p->lit_remaining = 0;
	p->lit_stream = false;
	memset(&p->error, 0, sizeof(p->error));
	memset(&p->pending, 0, sizeof(p->pending));
	if (skip) {
		/* The tracker keeps its state: the byte that failed has not been taken yet. */
		p->state = ST_SKIP;
	} else {
		track_reset(&p->track);
		p->state = ST_TAG;
	}
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	return p->have_tag ? (const char *)p->tag.data : NULL;
}

const char *imap_parser_name(const struct imap_parser *p)
{
	return p->name_reported ? (const char *)p->name.data : NULL;
}

const struct imap_arg *imap_parser_args(const struct imap_parser *p, size_t *count_r)
{
	*count_r = p->state == ST_DONE ? p->nargs : 0;
	return p->state == ST_DONE ? p->args : NULL;
}

const struct imap_parse_error *imap_parser_error(const struct imap_parser *p)
{
	return &p->error;
}

static enum imap_parse_result fail(struct imap_parser *p, enum imap_parse_error_code code,
				   const char *reason, bool skip_line)
{
	p->error.code = code;
	p->error.reason = reason;
	p->error.skip_line = skip_line;
	p->error.fatal = false;
	p->error_took_byte = false;
	p->state = ST_FAILED;
	p->result = IMAP_PARSE_ERROR;
	return IMAP_PARSE_ERROR;
}

static enum imap_parse_result fail_fatal(struct imap_parser *p, enum imap_parse_error_code code,
					 const char *reason)
{
	fail(p, code, reason, false);
	p->error.fatal = true;
	return IMAP_PARSE_ERROR;
}

/* A syntax error at the current byte, which stays unread for the line skipper. */
static enum imap_parse_result syntax(struct imap_parser *p, const char *reason)
{
	return fail(p, IMAP_PARSE_ERR_SYNTAX, reason, true);
}

static struct node *add_node(struct imap_parser *p, enum imap_arg_type type)
{
	if (p->nnodes == p->nodes_cap) {
		p->nodes_cap = p->nodes_cap ? p->nodes_cap * 2 : 16;
		p->nodes = xrealloc(p->nodes, p->nodes_cap * sizeof(*p->nodes));
	}
	struct node *n = &p->nodes[p->nnodes++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->parent = p->cur_list;
	n->off = p->text.len;
	p->list_closed = false;
	if (p->cur_list == 0)
		p->ntop++;
	else
		p->nodes[p->cur_list - 1].nchildren++;
	return n;
}

static struct node *cur_node(struct imap_parser *p)
{
	return &p->nodes[p->nnodes - 1];
}

/* Ends the text of the last node (atom, quoted string or buffered literal). */
static void end_text(struct imap_parser *p)
{
	struct node *n = cur_node(p);
	n->len = p->text.len - n->off;
	buf_append(&p->text, "", 1);
}

static bool ascii_ieq(const unsigned char *a, size_t len, const char *b)
{
	size_t i;
	for (i = 0; i < len && b[i] != '\0'; i++) {
		unsigned char x = a[i], y = (unsigned char)b[i];
		if (x >= 'a' && x <= 'z')
			x -= 32;
		if (y >= 'a' && y <= 'z')
			y -= 32;
		if (x != y)
			return false;
	}
	return i == len && b[i] == '\0';
}

static void build_tree(struct imap_parser *p)
{
	p->args = xcalloc(p->nnodes ? p->nnodes : 1, sizeof(*p->args));
	p->nargs = p->ntop;
	size_t cursor = p->ntop, top_fill = 0;
	for (size_t i = 0; i < p->nnodes; i++) {
		struct node *n = &p->nodes[i];
		size_t slot;
		if (n->parent == 0) {
			slot = top_fill++;
		} else {
			struct node *par = &p->nodes[n->parent - 1];
			slot = par->block + par->fill++;
		}
		struct imap_arg *a = &p->args[slot];
		a->type = n->type;
		a->literal = (n->flags & NODE_LITERAL) != 0;
		a->literal8 = (n->flags & NODE_LITERAL8) != 0;
		a->len = n->len;
		switch (n->type) {
		case IMAP_ARG_LIST:
			n->block = cursor;
			n->fill = 0;
			cursor += n->nchildren;
			a->list = &p->args[n->block];
			a->list_count = n->nchildren;
			a->len = 0;
			break;
		case IMAP_ARG_STREAMED:
			break;
		default:
			a->data = p->text.data + n->off;
			break;
		}
	}
}

static enum imap_parse_result complete(struct imap_parser *p)
{
	build_tree(p);
	p->state = ST_DONE;
	p->result = IMAP_PARSE_COMPLETE;
	return IMAP_PARSE_COMPLETE;
}

/* Checked where an argument starts, so that the error points at its first byte. */
static const char *arg_limit(struct imap_parser *p, enum imap_parse_error_code *code_r)
{
	if (p->nnodes >= p->limits.max_args) {
		*code_r = IMAP_PARSE_ERR_TOO_MANY_ARGS;
		return "Too many arguments";
	}
	return NULL;
}

static void close_list(struct imap_parser *p)
{
	p->list_closed = true;
	p->cur_list = p->nodes[p->cur_list - 1].parent;
	p->depth--;
}

static void end_literal(struct imap_parser *p)
{
	if (p->lit_stream) {
		p->sink(p->sink_ctx, IMAP_LITERAL_END, &p->lit_info, NULL, 0);
		p->lit_stream = false;
	} else {
		end_text(p);
	}
	track_reset(&p->track);
	p->state = ST_AFTER_ARG;
}

/* A literal whose bytes must not be kept. A synchronising one is refused now (the client waits
 * for "+" and sends nothing); a non-synchronising one is on its way and is read and dropped
 * first, unless it is too big even for that. */
static enum imap_parse_result refuse_literal(struct imap_parser *p,
					     enum imap_parse_error_code code, const char *reason)
{
	enum imap_parse_result r = IMAP_PARSE_NEED_MORE;

	track_reset(&p->track);
	if (!p->lit_plus) {
		r = fail(p, code, reason, false);
	} else if (p->lit_size > p->limits.max_literal_discard) {
		r = fail_fatal(p, code, reason);
	} else if (p->lit_size == 0) {
		r = fail(p, code, reason, true);
	} else {
		p->pending.code = code;
		p->pending.reason = reason;
		p->lit_remaining = p->lit_size;
		p->state = ST_LIT_DISCARD;
	}
	p->error_took_byte = true;
	return r;
}

/* The LF after "{n}" has been read. Returns NEED_MORE to go on parsing. */
static enum imap_parse_result literal_announced(struct imap_parser *p)
{
	uint64_t n = p->lit_size;
	if (p->lit_binary && !p->literal8_ok)
		return refuse_literal(p, IMAP_PARSE_ERR_SYNTAX, "literal8 not allowed here");
	if (p->lit_plus && p->literal_mode == IMAP_LITERAL_SYNC_ONLY)
		return refuse_literal(p, IMAP_PARSE_ERR_SYNTAX,
				      "Non-synchronizing literals are not supported");
	/* RFC 7888 §4 */
	if (p->lit_plus && p->literal_mode == IMAP_LITERAL_MINUS && n > IMAP_LITERAL_MINUS_MAX)
		return refuse_literal(p, IMAP_PARSE_ERR_LITERAL_TOO_BIG,
				      "Non-synchronizing literal over 4096 bytes (LITERAL-)");

	bool stream = p->sink != NULL && n > p->sink_threshold;
	if (stream) {
		struct node *parent = p->cur_list ? &p->nodes[p->cur_list - 1] : NULL;
		p->lit_info.size = n;
		p->lit_info.literal8 = p->lit_binary;
		p->lit_info.nonsync = p->lit_plus;
		p->lit_info.depth = p->depth;
		p->lit_info.index = parent ? parent->nchildren : p->ntop;
		if (p->sink(p->sink_ctx, IMAP_LITERAL_BEGIN, &p->lit_info, NULL, 0) < 0)
			return refuse_literal(p, IMAP_PARSE_ERR_LITERAL_REFUSED, "Literal refused");
	} else {
		if (n > p->limits.max_literal_size)
			return refuse_literal(p, IMAP_PARSE_ERR_LITERAL_TOO_BIG, "Literal too big");
		if (n > p->limits.max_literal_total - p->literal_total)
			return refuse_literal(p, IMAP_PARSE_ERR_LITERAL_TOO_BIG,
					      "Literals of the command too big");
		p->literal_total += n;
	}

	struct node *node = add_node(p, stream ? IMAP_ARG_STREAMED : IMAP_ARG_STRING);
	node->flags = NODE_LITERAL | (p->lit_binary ? NODE_LITERAL8 : 0);
	if (stream)
		node->len = n;
	p->lit_stream = stream;
	p->lit_check_nul = !p->lit_binary;
	p->lit_remaining = n;
	track_reset(&p->track);
	p->state = ST_LIT_DATA;
	if (n == 0)
		end_literal(p);
	return p->lit_plus ? IMAP_PARSE_NEED_MORE : IMAP_PARSE_NEED_CONTINUATION;
}

/* Literal bytes: data[*pos..len). */
static enum imap_parse_result literal_data(struct imap_parser *p, const unsigned char *data,
					   size_t len, size_t *pos)
{
	size_t n = len - *pos;
	if (n > p->lit_remaining)
		n = (size_t)p->lit_remaining;
	const unsigned char *chunk = data + *pos;
	*pos += n;
	p->lit_remaining -= n;

	if (p->state == ST_LIT_DISCARD) {
		if (p->lit_remaining == 0)
			return fail(p, p->pending.code, p->pending.reason, true);
		return IMAP_PARSE_NEED_MORE;
	}
	/* CHAR8 excludes NUL: only literal8 may carry it (RFC 9051 §9). The sink still gets the
	 * bytes before the NUL, so that what it sees does not depend on the chunking. */
	const unsigned char *nul = p->lit_check_nul ? memchr(chunk, '\0', n) : NULL;
	size_t good = nul != NULL ? (size_t)(nul - chunk) : n;
	if (p->lit_stream) {
		if (good > 0)
			p->sink(p->sink_ctx, IMAP_LITERAL_DATA, &p->lit_info, chunk, good);
	} else {
		buf_append(&p->text, chunk, good);
	}
	if (nul != NULL) {
		if (p->lit_stream) {
			p->sink(p->sink_ctx, IMAP_LITERAL_ABORT, &p->lit_info, NULL, 0);
			p->lit_stream = false;
		}
		p->pending.code = IMAP_PARSE_ERR_SYNTAX;
		p->pending.reason = "NUL byte in literal";
		p->state = ST_LIT_DISCARD;
		if (p->lit_remaining == 0)
			return fail(p, p->pending.code, p->pending.reason, true);
		return IMAP_PARSE_NEED_MORE;
	}
	if (p->lit_remaining == 0)
		end_literal(p);
	return IMAP_PARSE_NEED_MORE;
}

/* Drops the rest of a failed line. Returns NEED_MORE when input ran out, or ERROR for a fatal
 * literal; when the line ends the parser is at ST_TAG. */
static enum imap_parse_result skip_input(struct imap_parser *p, const unsigned char *data,
					 size_t len, size_t *pos)
{
	while (*pos < len) {
		if (p->state == ST_SKIP_LITERAL) {
			size_t n = len - *pos;
			if (n > p->skip_remaining)
				n = (size_t)p->skip_remaining;
			*pos += n;
			p->skip_remaining -= n;
			if (p->skip_remaining == 0)
				p->state = ST_SKIP;
			continue;
		}
		unsigned char c = data[(*pos)++];
		bool plus = p->track.plus;
		uint64_t size = p->track.size;
		if (track_byte(&p->track, c)) {
			/* A synchronising literal's bytes are not sent: the line ends here. */
			if (!plus) {
				p->state = ST_TAG;
				return IMAP_PARSE_NEED_MORE;
			}
			if (size > p->limits.max_literal_discard)
				return fail_fatal(p, IMAP_PARSE_ERR_LITERAL_TOO_BIG,
						  "Literal too big");
			p->skip_remaining = size;
			if (size > 0)
				p->state = ST_SKIP_LITERAL;
		} else if (c == '\n') {
			track_reset(&p->track);
			p->state = ST_TAG;
			return IMAP_PARSE_NEED_MORE;
		}
	}
	return IMAP_PARSE_NEED_MORE;
}

/* Where an argument may start: after SP, after "(", or after the command name. */
static enum imap_parse_result arg_start(struct imap_parser *p, unsigned char c, bool *take)
{
	enum imap_parse_error_code code;
	const char *why;

	*take = true;
	switch (c) {
	case ')':
		if (!p->after_open)
			return syntax(p, "Unexpected space before \")\"");
		close_list(p);
		p->after_open = false;
		p->state = ST_AFTER_ARG;
		return IMAP_PARSE_NEED_MORE;
	case ' ':
		return syntax(p, "Unexpected double space");
	case '\r':
	case '\n':
		if (p->after_open)
			return syntax(p, "Unterminated list");
		return syntax(p, "Unexpected space at end of line");
	default:
		break;
	}
	if ((why = arg_limit(p, &code)) != NULL)
		return fail(p, code, why, true);
	p->after_open = false;
	switch (c) {
	case '(':
		if (p->depth >= p->limits.max_list_depth)
			return fail(p, IMAP_PARSE_ERR_TOO_DEEP, "Lists nested too deep", true);
		add_node(p, IMAP_ARG_LIST);
		p->cur_list = p->nnodes;
		p->depth++;
		p->after_open = true;
		return IMAP_PARSE_NEED_MORE;
	case '"':
		add_node(p, IMAP_ARG_STRING);
		p->quoted_8bit = false;
		p->state = ST_QUOTED;
		return IMAP_PARSE_NEED_MORE;
	case '{':
		p->lit_binary = false;
		goto literal;
	case '~':
		p->state = ST_TILDE;
		return IMAP_PARSE_NEED_MORE;
	default:
		break;
	}
	if (c == '\\' || is_arg_atom_char(c)) {
		add_node(p, IMAP_ARG_ATOM);
		p->state = ST_ATOM;
		*take = false; /* ST_ATOM takes it */
		if (c == '\\') {
			buf_append(&p->text, &c, 1);
			*take = true;
		}
		return IMAP_PARSE_NEED_MORE;
	}
	return syntax(p, c >= 0x80 ? "8-bit character outside a string"
				   : "Invalid character at start of argument");
literal:
	p->lit_size = 0;
	p->lit_digits = false;
	p->lit_plus = false;
	p->state = ST_LIT_SIZE;
	return IMAP_PARSE_NEED_MORE;
}

static enum imap_parse_result end_atom(struct imap_parser *p)
{
	struct node *n = cur_node(p);
	end_text(p);
	if (ascii_ieq(p->text.data + n->off, n->len, "NIL"))
		n->type = IMAP_ARG_NIL;
	p->state = ST_AFTER_ARG;
	return IMAP_PARSE_NEED_MORE;
}

static enum imap_parse_result end_quoted(struct imap_parser *p)
{
	struct node *n = cur_node(p);
	size_t len = p->text.len - n->off;
	if (p->quoted_8bit && !imap_utf8_valid(p->text.data + n->off, len))
		return syntax(p, "Invalid UTF-8 in quoted string");
	end_text(p);
	p->state = ST_AFTER_ARG;
	return IMAP_PARSE_NEED_MORE;
}

/* One byte of line text in state p->state. Sets *take when the byte was used; when not, the
 * state changed and the same byte is looked at again (or the parser failed on it). */
static enum imap_parse_result line_byte(struct imap_parser *p, unsigned char c, bool *take)
{
	*take = true;
	switch (p->state) {
	case ST_TAG:
		if (is_tag_char(c)) {
			buf_append(&p->tag, &c, 1);
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == ' ' && p->tag.len > 0) {
			buf_cstr(&p->tag);
			p->have_tag = true;
			p->state = ST_NAME;
			return IMAP_PARSE_NEED_MORE;
		}
		if (p->tag.len == 0 && (c == '\r' || c == '\n'))
			return fail(p, IMAP_PARSE_ERR_EMPTY_LINE, "Empty line", true);
		if (p->tag.len == 0 && c == ' ')
			return syntax(p, "Empty tag");
		if (c == '\r' || c == '\n')
			return syntax(p, "Missing command name");
		return syntax(p, "Invalid character in tag");

	case ST_NAME:
		if (is_atom_char(c)) {
			buf_append(&p->name, &c, 1);
			return IMAP_PARSE_NEED_MORE;
		}
		if (c != ' ' && c != '\r' && c != '\n')
			return syntax(p, "Invalid character in command name");
		if (p->name.len == 0)
			return syntax(p, "Missing command name");
		if (!p->name_reported) {
			buf_cstr(&p->name);
			p->name_reported = true;
			*take = false;
			return IMAP_PARSE_HAVE_NAME;
		}
		if (c == ' ') {
			p->state = ST_ARG_START;
			p->after_open = false;
		} else if (c == '\r') {
			p->state = ST_LINE_LF;
		} else {
			return complete(p);
		}
		return IMAP_PARSE_NEED_MORE;

	case ST_ARG_START:
		return arg_start(p, c, take);

	case ST_AFTER_ARG:
		/* RFC 9051 §9 section-msgtext "HEADER.FIELDS" SP header-list: the one place where
		 * an atom continues after a list, as "]" or "]<0.100>". */
		if (c == ']' && p->list_closed) {
			enum imap_parse_error_code code;
			const char *why = arg_limit(p, &code);
			if (why != NULL)
				return fail(p, code, why, true);
			add_node(p, IMAP_ARG_ATOM);
			p->state = ST_ATOM;
			*take = false;
			return IMAP_PARSE_NEED_MORE;
		}
		switch (c) {
		case ' ':
			p->state = ST_ARG_START;
			p->after_open = false;
			return IMAP_PARSE_NEED_MORE;
		case ')':
			if (p->depth == 0)
				return syntax(p, "Unexpected \")\"");
			close_list(p);
			return IMAP_PARSE_NEED_MORE;
		case '\r':
		case '\n':
			if (p->depth > 0)
				return syntax(p, "Unterminated list");
			if (c == '\n')
				return complete(p);
			p->state = ST_LINE_LF;
			return IMAP_PARSE_NEED_MORE;
		default:
			return syntax(p, "Missing space between arguments");
		}

	case ST_ATOM:
		if (c == ' ' || c == ')' || c == '\r' || c == '\n') {
			*take = false;
			return end_atom(p);
		}
		if (!is_arg_atom_char(c)) {
			return syntax(p, c >= 0x80 ? "8-bit character in atom"
						   : "Invalid character in atom");
		}
		buf_append(&p->text, &c, 1);
		return IMAP_PARSE_NEED_MORE;

	case ST_TILDE:
		if (c == '{') {
			p->lit_binary = true;
			p->lit_size = 0;
			p->lit_digits = false;
			p->lit_plus = false;
			p->state = ST_LIT_SIZE;
			return IMAP_PARSE_NEED_MORE;
		}
		add_node(p, IMAP_ARG_ATOM);
		buf_append(&p->text, "~", 1);
		p->state = ST_ATOM;
		*take = false;
		return IMAP_PARSE_NEED_MORE;

	case ST_QUOTED:
		if (c == '"')
			return end_quoted(p);
		if (c == '\\') {
			p->state = ST_QUOTED_ESC;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\r' || c == '\n')
			return syntax(p, "Unterminated quoted string");
		if (c == '\0')
			return syntax(p, "NUL byte in quoted string");
		if (c >= 0x80) {
			/* RFC 3501 QUOTED-CHAR is 7-bit; RFC 9051 adds UTF-8. */
			if (!p->utf8)
				return syntax(p, "8-bit character in quoted string");
			p->quoted_8bit = true;
		}
		buf_append(&p->text, &c, 1);
		return IMAP_PARSE_NEED_MORE;

	case ST_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return syntax(p, "Invalid escape in quoted string");
		buf_append(&p->text, &c, 1);
		p->state = ST_QUOTED;
		return IMAP_PARSE_NEED_MORE;

	case ST_LIT_SIZE:
		if (c >= '0' && c <= '9') {
			/* number64 (RFC 9051): saturate; any size this big is refused anyway. */
			p->lit_size = sat_mul10_add(p->lit_size, (unsigned)(c - '0'));
			p->lit_digits = true;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '+' && p->lit_digits) {
			p->lit_plus = true;
			p->state = ST_LIT_CLOSE;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '}' && p->lit_digits) {
			p->state = ST_LIT_CR;
			return IMAP_PARSE_NEED_MORE;
		}
		return syntax(p, "Invalid literal size");

	case ST_LIT_CLOSE:
		if (c != '}')
			return syntax(p, "Invalid literal size");
		p->state = ST_LIT_CR;
		return IMAP_PARSE_NEED_MORE;

	case ST_LIT_CR:
		if (c == '\r') {
			p->state = ST_LIT_LF;
			return IMAP_PARSE_NEED_MORE;
		}
		if (c == '\n')
			return literal_announced(p);
		return syntax(p, "Literal size must end the line");

	case ST_LIT_LF:
		if (c == '\n')
			return literal_announced(p);
		return syntax(p, "Literal size must end the line");

	case ST_LINE_LF:
		if (c == '\n')
			return complete(p);
		return syntax(p, "CR without LF");

	default:
		break;
	}
	return syntax(p, "Internal parser state error");
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p, const unsigned char *data,
					size_t len, size_t *consumed_r)
{
	enum imap_parse_result r = IMAP_PARSE_NEED_MORE;
	size_t pos = 0;

	if (p->state == ST_DONE || p->state == ST_FAILED) {
		*consumed_r = 0;
		return p->result;
	}
	while (pos < len) {
		switch (p->state) {
		case ST_SKIP:
		case ST_SKIP_LITERAL:
			r = skip_input(p, data, len, &pos);
			if (r != IMAP_PARSE_NEED_MORE)
				goto out;
			continue;
		case ST_LIT_DATA:
		case ST_LIT_DISCARD:
			r = literal_data(p, data, len, &pos);
			if (r != IMAP_PARSE_NEED_MORE)
				goto out;
			continue;
		case ST_DONE:
		case ST_FAILED:
			r = p->result;
			goto out;
		default:
			break;
		}

		unsigned char c = data[pos];
		if (p->line_len >= p->limits.max_line_length) {
			r = fail(p, IMAP_PARSE_ERR_LINE_TOO_LONG, "Command line too long", true);
			goto out;
		}
		bool take;
		r = line_byte(p, c, &take);
		if (r == IMAP_PARSE_ERROR && !p->error_took_byte)
			take = false;
		if (take) {
			pos++;
			p->line_len++;
			/* Literal data that follows is not line text: the tracker restarts after it. */
			if (p->state != ST_LIT_DATA && p->state != ST_LIT_DISCARD)
				track_byte(&p->track, c);
			else
				track_reset(&p->track);
		}
		if (r != IMAP_PARSE_NEED_MORE)
			goto out;
	}
	r = IMAP_PARSE_NEED_MORE;
out:
	*consumed_r = pos;
	return r;
}

/* ---- argument helpers ---- */

const char *imap_arg_atom(const struct imap_arg *arg)
{
	return arg->type == IMAP_ARG_ATOM ? (const char *)arg->data : NULL;
}

bool imap_arg_atom_eq(const struct imap_arg *arg, const char *word)
{
	return arg->type == IMAP_ARG_ATOM && ascii_ieq(arg->data, arg->len, word);
}

const char *imap_arg_astring(const struct imap_arg *arg)
{
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_NIL:
		return (const char *)arg->data;
	case IMAP_ARG_STRING:
		if (memchr(arg->data, '\0', arg->len) != NULL)
			return NULL;
		return (const char *)arg->data;
	default:
		return NULL;
	}
}

bool imap_arg_nstring(const struct imap_arg *arg, const char **s_r)
{
	if (arg->type == IMAP_ARG_NIL) {
		*s_r = NULL;
		return true;
	}
	if (arg->type != IMAP_ARG_STRING || memchr(arg->data, '\0', arg->len) != NULL)
		return false;
	*s_r = (const char *)arg->data;
	return true;
}

static void dump_bytes(const unsigned char *s, size_t len, struct buf *out)
{
	buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(out, "\\x%02X", c);
		else
			buf_append(out, &c, 1);
	}
	buf_append(out, "\"", 1);
}

void imap_args_dump(const struct imap_arg *args, size_t count, struct buf *out)
{
	for (size_t i = 0; i < count; i++) {
		const struct imap_arg *a = &args[i];
		if (i > 0)
			buf_append(out, " ", 1);
		switch (a->type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_NIL:
			buf_append(out, a->data, a->len);
			break;
		case IMAP_ARG_STRING:
			if (a->literal)
				buf_printf(out, "%s{%zu}", a->literal8 ? "~" : "", a->len);
			dump_bytes(a->data, a->len, out);
			break;
		case IMAP_ARG_STREAMED:
			buf_printf(out, "%s{%zu}<streamed>", a->literal8 ? "~" : "", a->len);
			break;
		case IMAP_ARG_LIST:
			buf_append(out, "(", 1);
			imap_args_dump(a->list, a->list_count, out);
			buf_append(out, ")", 1);
			break;
		}
	}
}
