/* IMAP SEARCH: criteria parsing, evaluation and responses. See search.h. */
#include "imap/search/search.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imap/quote.h"
#include "mime/mime.h"

enum key_type {
	K_ALL,
	K_AND,        /* a parenthesised group or the top level */
	K_OR,
	K_NOT,
	K_FLAG,       /* flag set */
	K_UNFLAG,     /* flag not set */
	K_KEYWORD,
	K_UNKEYWORD,
	K_LARGER,
	K_SMALLER,
	K_BEFORE,
	K_ON,
	K_SINCE,
	K_SENTBEFORE,
	K_SENTON,
	K_SENTSINCE,
	K_SEQSET,
	K_UIDSET,
	K_SAVED,      /* "$" */
	K_RECENT,
	K_MODSEQ,
	K_SUBJECT,
	K_HEADER,     /* FROM, TO, CC, BCC and HEADER: a field's decoded value */
	K_BODY,
	K_TEXT,
};

/* Evaluation cost classes: cheap keys first in AND and OR. */
enum {
	COST_CHEAP = 0,  /* the message list only, or a precomputed index answer */
	COST_PARSED = 1, /* the stored parse result */
	COST_HEADER = 2, /* reads the message header from the file */
};

struct imap_search_key {
	enum key_type type;
	int cost;
	struct imap_search_key **kids;
	size_t nkids;
	uint32_t flag;
	char *name;     /* KEYWORD/UNKEYWORD keyword, HEADER field name */
	char *needle;   /* folded search string (string keys and BODY/TEXT as sent) */
	size_t needle_len;
	uint64_t num;   /* LARGER, SMALLER, MODSEQ */
	int64_t day;    /* date keys: days since 1970-01-01 */
	struct imap_seqset set;
	size_t text_idx; /* BODY/TEXT: index of its answer in a run */
};

struct query_priv {
	struct imap_search_query pub;
	size_t ntext;
};

/* ------------------------------------------------------------------ keys */

static struct imap_search_key *key_new(enum key_type type)
{
	struct imap_search_key *k = xcalloc(1, sizeof *k);
	k->type = type;
	return k;
}

static void key_free(struct imap_search_key *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->nkids; i++)
		key_free(k->kids[i]);
	free(k->kids);
	free(k->name);
	free(k->needle);
	imap_seqset_free(&k->set);
	free(k);
}

static void key_add(struct imap_search_key *parent, struct imap_search_key *kid)
{
	parent->kids = xrealloc(parent->kids, (parent->nkids + 1) * sizeof *parent->kids);
	parent->kids[parent->nkids++] = kid;
}

/* Sets the cost of a group from its members and orders them cheap first (stable). */
static void key_finish_group(struct imap_search_key *k)
{
	for (size_t i = 1; i < k->nkids; i++) {
		struct imap_search_key *x = k->kids[i];
		size_t j = i;
		while (j > 0 && k->kids[j - 1]->cost > x->cost) {
			k->kids[j] = k->kids[j - 1];
			j--;
		}
		k->kids[j] = x;
	}
	k->cost = 0;
	for (size_t i = 0; i < k->nkids; i++)
		if (k->kids[i]->cost > k->cost)
			k->cost = k->kids[i]->cost;
}

/* ------------------------------------------------------------------ parsing */

struct pstate {
	const struct imap_arg *args;
	size_t count;
	size_t pos;
	bool rev1;
	const char *err;
	struct query_priv *q;
};

static const struct imap_arg *next_arg(struct pstate *ps, const char *missing)
{
	if (ps->pos >= ps->count) {
		ps->err = missing;
		return NULL;
	}
	return &ps->args[ps->pos++];
}

static const char *next_astring(struct pstate *ps, const char *missing)
{
	const struct imap_arg *a = next_arg(ps, missing);
	if (a == NULL)
		return NULL;
	const char *s = imap_arg_astring(a);
	if (s == NULL)
		ps->err = missing;
	return s;
}

/* days since the epoch of a proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int64_t day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* RFC 9051 date-text: "d-Mon-yyyy" with a one or two digit day. */
static int parse_date(const char *s, int64_t *day_r)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	size_t i = 0;
	unsigned d = 0;
	while (s[i] >= '0' && s[i] <= '9' && i < 2)
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || s[i] != '-' || d == 0)
		return -1;
	i++;
	unsigned m = 0;
	for (; m < 12; m++)
		if (strncasecmp(s + i, months[m], 3) == 0)
			break;
	if (m == 12 || s[i + 3] != '-')
		return -1;
	i += 4;
	unsigned y = 0;
	for (size_t n = 0; n < 4; n++, i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		y = y * 10 + (unsigned)(s[i] - '0');
	}
	if (s[i] != '\0')
		return -1;
	static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[m] || (m == 1 && d == 29 && !leap))
		return -1;
	*day_r = days_from_civil(y, m + 1, d);
	return 0;
}

static int parse_number(const char *s, bool allow_zero, uint64_t *n_r)
{
	uint64_t n = 0;
	if (s == NULL || *s == '\0')
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned dg = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - dg) / 10)
			return -1;
		n = n * 10 + dg;
	}
	if (n == 0 && !allow_zero)
		return -1;
	*n_r = n;
	return 0;
}

static void set_needle(struct imap_search_key *k, const char *s)
{
	struct buf b = {0};
	mime_text_fold(s, strlen(s), &b);
	k->needle_len = b.len;
	k->needle = xstrndup(b.data != NULL ? (const char *)b.data : "", b.len);
	buf_free(&b);
}

struct flag_word {
	const char *name;
	uint32_t flag;
	bool set;
};

static const struct flag_word flag_words[] = {
	{"ANSWERED", STORE_FLAG_ANSWERED, true}, {"UNANSWERED", STORE_FLAG_ANSWERED, false},
	{"DELETED", STORE_FLAG_DELETED, true},   {"UNDELETED", STORE_FLAG_DELETED, false},
	{"DRAFT", STORE_FLAG_DRAFT, true},       {"UNDRAFT", STORE_FLAG_DRAFT, false},
	{"FLAGGED", STORE_FLAG_FLAGGED, true},   {"UNFLAGGED", STORE_FLAG_FLAGGED, false},
	{"SEEN", STORE_FLAG_SEEN, true},         {"UNSEEN", STORE_FLAG_SEEN, false},
};

struct date_word {
	const char *name;
	enum key_type type;
	int cost;
};

static const struct date_word date_words[] = {
	{"BEFORE", K_BEFORE, COST_CHEAP},
	{"ON", K_ON, COST_CHEAP},
	{"SINCE", K_SINCE, COST_CHEAP},
	{"SENTBEFORE", K_SENTBEFORE, COST_PARSED},
	{"SENTON", K_SENTON, COST_PARSED},
	{"SENTSINCE", K_SENTSINCE, COST_PARSED},
};

static struct imap_search_key *parse_key(struct pstate *ps, unsigned depth);

/* One or more keys up to the end of ps: an AND group. */
static struct imap_search_key *parse_group(struct pstate *ps, unsigned depth)
{
	if (ps->pos >= ps->count) {
		ps->err = "Missing search key";
		return NULL;
	}
	struct imap_search_key *g = key_new(K_AND);
	while (ps->pos < ps->count) {
		struct imap_search_key *k = parse_key(ps, depth);
		if (k == NULL) {
			key_free(g);
			return NULL;
		}
		key_add(g, k);
	}
	if (g->nkids == 1) {
		struct imap_search_key *k = g->kids[0];
		g->nkids = 0;
		key_free(g);
		return k;
	}
	key_finish_group(g);
	return g;
}

static struct imap_search_key *parse_string_key(struct pstate *ps, enum key_type type,
						const char *header, int cost)
{
	const char *s = next_astring(ps, "Missing search string");
	if (s == NULL)
		return NULL;
	struct imap_search_key *k = key_new(type);
	k->cost = cost;
	if (header != NULL)
		k->name = xstrdup(header);
	set_needle(k, s);
	if (type == K_BODY || type == K_TEXT)
		k->text_idx = ps->q->ntext++;
	return k;
}

/* A sequence-set or UID-set key; "$" makes it the saved result (RFC 5182). */
static struct imap_search_key *set_key(struct pstate *ps, enum key_type type, const char *text,
				       size_t len, const char *what)
{
	struct imap_search_key *k = key_new(type);
	const char *err = NULL;
	if (imap_seqset_parse(&k->set, text, len, IMAP_SEQSET_MAX_RANGES_DEFAULT,
			      IMAP_SEQSET_ALLOW_STAR | IMAP_SEQSET_ALLOW_LAST, &err) < 0) {
		ps->err = err != NULL ? err : what;
		key_free(k);
		return NULL;
	}
	if (k->set.last_result) {
		k->type = K_SAVED;
		ps->q->pub.uses_saved = true;
	}
	return k;
}

static struct imap_search_key *parse_key(struct pstate *ps, unsigned depth)
{
	if (depth >= IMAP_SEARCH_MAX_DEPTH) {
		ps->err = "Search criteria nested too deeply";
		return NULL;
	}
	const struct imap_arg *a = next_arg(ps, "Missing search key");
	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_LIST) {
		if (a->list_count == 0) {
			ps->err = "Empty search key list";
			return NULL;
		}
		struct pstate sub = *ps;
		sub.args = a->list;
		sub.count = a->list_count;
		sub.pos = 0;
		struct imap_search_key *k = parse_group(&sub, depth + 1);
		ps->err = sub.err;
		return k;
	}
	const char *w = imap_arg_atom(a);
	if (w == NULL) {
		ps->err = "Search key expected";
		return NULL;
	}

	if ((*w >= '0' && *w <= '9') || *w == '*' || *w == '$') {
		return set_key(ps, K_SEQSET, w, a->len, "Invalid sequence set");
	}

	for (size_t i = 0; i < sizeof flag_words / sizeof flag_words[0]; i++) {
		if (strcasecmp(w, flag_words[i].name) == 0) {
			struct imap_search_key *k = key_new(flag_words[i].set ? K_FLAG : K_UNFLAG);
			k->flag = flag_words[i].flag;
			return k;
		}
	}
	for (size_t i = 0; i < sizeof date_words / sizeof date_words[0]; i++) {
		if (strcasecmp(w, date_words[i].name) == 0) {
			const char *s = next_astring(ps, "Missing date");
			if (s == NULL)
				return NULL;
			struct imap_search_key *k = key_new(date_words[i].type);
			k->cost = date_words[i].cost;
			if (parse_date(s, &k->day) < 0) {
				ps->err = "Invalid date (expected d-Mon-yyyy)";
				key_free(k);
				return NULL;
			}
			return k;
		}
	}

	if (strcasecmp(w, "ALL") == 0)
		return key_new(K_ALL);
	if (strcasecmp(w, "SUBJECT") == 0)
		return parse_string_key(ps, K_SUBJECT, NULL, COST_PARSED);
	if (strcasecmp(w, "FROM") == 0)
		return parse_string_key(ps, K_HEADER, "From", COST_HEADER);
	if (strcasecmp(w, "TO") == 0)
		return parse_string_key(ps, K_HEADER, "To", COST_HEADER);
	if (strcasecmp(w, "CC") == 0)
		return parse_string_key(ps, K_HEADER, "Cc", COST_HEADER);
	if (strcasecmp(w, "BCC") == 0)
		return parse_string_key(ps, K_HEADER, "Bcc", COST_HEADER);
	if (strcasecmp(w, "BODY") == 0)
		return parse_string_key(ps, K_BODY, NULL, COST_CHEAP);
	if (strcasecmp(w, "TEXT") == 0)
		return parse_string_key(ps, K_TEXT, NULL, COST_CHEAP);
	if (strcasecmp(w, "HEADER") == 0) {
		const char *name = next_astring(ps, "Missing header field name");
		if (name == NULL)
			return NULL;
		if (*name == '\0' || strpbrk(name, ": \t") != NULL) {
			ps->err = "Invalid header field name";
			return NULL;
		}
		char *copy = xstrdup(name);
		struct imap_search_key *k = parse_string_key(ps, K_HEADER, copy, COST_HEADER);
		free(copy);
		return k;
	}
	if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
		bool set = (w[0] == 'K' || w[0] == 'k');
		const struct imap_arg *ka = next_arg(ps, "Missing keyword");
		if (ka == NULL)
			return NULL;
		const char *kw = imap_arg_atom(ka);
		if (kw == NULL) {
			ps->err = "Invalid keyword";
			return NULL;
		}
		struct imap_search_key *k = key_new(set ? K_KEYWORD : K_UNKEYWORD);
		k->name = xstrdup(kw);
		return k;
	}
	if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0) {
		bool larger = (w[0] == 'L' || w[0] == 'l');
		const struct imap_arg *na = next_arg(ps, "Missing size");
		if (na == NULL)
			return NULL;
		struct imap_search_key *k = key_new(larger ? K_LARGER : K_SMALLER);
		if (parse_number(imap_arg_atom(na), true, &k->num) < 0) {
			ps->err = "Invalid size";
			key_free(k);
			return NULL;
		}
		return k;
	}
	if (strcasecmp(w, "UID") == 0) {
		const struct imap_arg *sa = next_arg(ps, "Missing UID set");
		if (sa == NULL)
			return NULL;
		const char *s = imap_arg_atom(sa);
		if (s == NULL) {
			ps->err = "Invalid UID set";
			return NULL;
		}
		return set_key(ps, K_UIDSET, s, sa->len, "Invalid UID set");
	}
	if (strcasecmp(w, "NOT") == 0) {
		struct imap_search_key *kid = parse_key(ps, depth + 1);
		if (kid == NULL)
			return NULL;
		struct imap_search_key *k = key_new(K_NOT);
		key_add(k, kid);
		k->cost = kid->cost;
		return k;
	}
	if (strcasecmp(w, "OR") == 0) {
		struct imap_search_key *k = key_new(K_OR);
		for (int i = 0; i < 2; i++) {
			struct imap_search_key *kid = parse_key(ps, depth + 1);
			if (kid == NULL) {
				key_free(k);
				return NULL;
			}
			key_add(k, kid);
		}
		key_finish_group(k);
		return k;
	}
	if (strcasecmp(w, "MODSEQ") == 0) {
		/* RFC 7162: MODSEQ [entry-name entry-type-req] mod-sequence-valzer. The entry
		 * (a flag's metadata) is accepted and ignored: sarn keeps one MODSEQ per
		 * message. */
		const struct imap_arg *ma = next_arg(ps, "Missing mod-sequence");
		if (ma == NULL)
			return NULL;
		if (ma->type == IMAP_ARG_STRING) {
			const struct imap_arg *ta = next_arg(ps, "Missing entry type");
			if (ta == NULL)
				return NULL;
			if (!imap_arg_atom_eq(ta, "priv") && !imap_arg_atom_eq(ta, "shared") &&
			    !imap_arg_atom_eq(ta, "all")) {
				ps->err = "Invalid entry type";
				return NULL;
			}
			ma = next_arg(ps, "Missing mod-sequence");
			if (ma == NULL)
				return NULL;
		}
		struct imap_search_key *k = key_new(K_MODSEQ);
		if (parse_number(imap_arg_atom(ma), true, &k->num) < 0 ||
		    k->num > INT64_MAX) {
			ps->err = "Invalid mod-sequence";
			key_free(k);
			return NULL;
		}
		ps->q->pub.uses_modseq = true;
		return k;
	}
	if (ps->rev1) {
		if (strcasecmp(w, "RECENT") == 0)
			return key_new(K_RECENT);
		if (strcasecmp(w, "OLD") == 0) {
			struct imap_search_key *k = key_new(K_NOT);
			key_add(k, key_new(K_RECENT));
			return k;
		}
		if (strcasecmp(w, "NEW") == 0) {
			struct imap_search_key *k = key_new(K_AND);
			key_add(k, key_new(K_RECENT));
			struct imap_search_key *u = key_new(K_UNFLAG);
			u->flag = STORE_FLAG_SEEN;
			key_add(k, u);
			return k;
		}
	}
	ps->err = "Unknown search key";
	return NULL;
}

static int parse_return(struct pstate *ps, const struct imap_arg *list)
{
	struct imap_search_query *q = &ps->q->pub;
	q->esearch = true;
	for (size_t i = 0; i < list->list_count; i++) {
		const struct imap_arg *o = &list->list[i];
		if (imap_arg_atom_eq(o, "MIN"))
			q->ret |= IMAP_SEARCH_RET_MIN;
		else if (imap_arg_atom_eq(o, "MAX"))
			q->ret |= IMAP_SEARCH_RET_MAX;
		else if (imap_arg_atom_eq(o, "ALL"))
			q->ret |= IMAP_SEARCH_RET_ALL;
		else if (imap_arg_atom_eq(o, "COUNT"))
			q->ret |= IMAP_SEARCH_RET_COUNT;
		else if (imap_arg_atom_eq(o, "SAVE"))
			q->ret |= IMAP_SEARCH_RET_SAVE;
		else {
			ps->err = "Unknown RETURN option";
			return -1;
		}
	}
	if (q->ret == 0)
		q->ret = IMAP_SEARCH_RET_ALL;
	return 0;
}

int imap_search_parse(const struct imap_arg *args, size_t count, bool rev1,
		      struct imap_search_query **query_r, struct imap_search_error *error_r)
{
	struct query_priv *q = xcalloc(1, sizeof *q);
	struct pstate ps = {.args = args, .count = count, .rev1 = rev1, .q = q};
	error_r->badcharset = false;
	error_r->reason = NULL;
	*query_r = NULL;

	if (ps.pos < count && imap_arg_atom_eq(&args[ps.pos], "RETURN")) {
		ps.pos++;
		if (ps.pos >= count || args[ps.pos].type != IMAP_ARG_LIST) {
			ps.err = "RETURN needs a list of options";
			goto fail;
		}
		if (parse_return(&ps, &args[ps.pos++]) < 0)
			goto fail;
	}
	if (ps.pos < count && imap_arg_atom_eq(&args[ps.pos], "CHARSET")) {
		ps.pos++;
		const char *cs = next_astring(&ps, "Missing charset");
		if (cs == NULL)
			goto fail;
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			error_r->badcharset = true;
			error_r->reason = "Unsupported charset";
			free(q);
			return -1;
		}
	}
	q->pub.root = parse_group(&ps, 0);
	if (q->pub.root == NULL)
		goto fail;
	*query_r = &q->pub;
	return 0;

fail:
	error_r->reason = ps.err != NULL ? ps.err : "Invalid search criteria";
	free(q);
	return -1;
}

void imap_search_query_free(struct imap_search_query **query)
{
	if (*query == NULL)
		return;
	key_free((*query)->root);
	free((struct query_priv *)*query);
	*query = NULL;
}

/* ------------------------------------------------------------------ evaluation */

struct run {
	const struct imap_search_ctx *ctx;
	uint32_t **text_uids;
	size_t *text_n;
	enum store_err err;
	size_t idx;             /* current message */
	uint32_t uid_star;
	/* Lazily loaded data of the current message. */
	bool parsed_loaded;
	struct mime_result *parsed; /* NULL when gone or unreadable */
	bool header_loaded;
	struct buf header;
};

static void run_reset_msg(struct run *r)
{
	mime_result_free(&r->parsed);
	r->parsed_loaded = false;
	buf_free(&r->header);
	r->header_loaded = false;
}

/* 0, or -1 with r->err set. A message expunged meanwhile just has no data. */
static int load_parsed(struct run *r)
{
	if (r->parsed_loaded)
		return 0;
	r->parsed_loaded = true;
	const struct store_msg *m = &r->ctx->msgs[r->idx].msg;
	unsigned char *data = NULL;
	size_t len = 0;
	enum store_err e = store_msg_parsed(r->ctx->acct, r->ctx->mailbox, m->uid, &data, &len);
	if (e == STORE_EXPUNGED || e == STORE_NOTFOUND)
		return 0;
	if (e != STORE_OK) {
		r->err = e;
		return -1;
	}
	if (data != NULL)
		r->parsed = mime_result_deserialize(data, len);
	free(data);
	if (r->parsed == NULL) {
		int fd = -1;
		e = store_msg_open(r->ctx->acct, r->ctx->mailbox, m->uid, &fd);
		if (e == STORE_EXPUNGED || e == STORE_NOTFOUND)
			return 0;
		if (e != STORE_OK) {
			r->err = e;
			return -1;
		}
		r->parsed = mime_parse_fd(fd, NULL);
		close(fd);
		if (r->parsed == NULL) {
			r->err = STORE_TEMP;
			return -1;
		}
	}
	return 0;
}

static int load_header(struct run *r)
{
	if (r->header_loaded)
		return 0;
	if (load_parsed(r) < 0)
		return -1;
	r->header_loaded = true;
	if (r->parsed == NULL)
		return 0;
	const struct mime_part *p = mime_result_part(r->parsed, 0);
	if (p == NULL)
		return 0;
	uint64_t size = p->header_size;
	if (size > MIME_DEFAULT_MAX_HEADER_SIZE)
		size = MIME_DEFAULT_MAX_HEADER_SIZE;
	int fd = -1;
	const struct store_msg *m = &r->ctx->msgs[r->idx].msg;
	enum store_err e = store_msg_open(r->ctx->acct, r->ctx->mailbox, m->uid, &fd);
	if (e == STORE_EXPUNGED || e == STORE_NOTFOUND)
		return 0;
	if (e != STORE_OK) {
		r->err = e;
		return -1;
	}
	buf_reserve(&r->header, (size_t)size);
	uint64_t off = p->header_offset;
	while (r->header.len < size) {
		ssize_t n = pread(fd, r->header.data + r->header.len, (size_t)size - r->header.len,
				  (off_t)(off + r->header.len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			r->err = STORE_TEMP;
			return -1;
		}
		if (n == 0)
			break;
		r->header.len += (size_t)n;
	}
	close(fd);
	return 0;
}

/* The folded value contains the needle. */
static bool folded_contains(const char *value, size_t len, const struct imap_search_key *k)
{
	if (k->needle_len == 0)
		return true;
	struct buf b = {0};
	mime_text_fold(value, len, &b);
	bool found = b.len >= k->needle_len && memmem(b.data, b.len, k->needle, k->needle_len);
	buf_free(&b);
	return found;
}

/* Whether a field named k->name has a value that contains the needle once decoded. */
static bool header_match(const struct buf *h, const struct imap_search_key *k)
{
	const char *p = (const char *)h->data, *end = p + h->len;
	size_t nlen = strlen(k->name);
	struct buf val = {0};
	bool found = false;
	while (p < end && !found) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol != NULL ? eol : end;
		const char *next = eol != NULL ? eol + 1 : end;
		if (line_end == p || (line_end - p == 1 && *p == '\r'))
			break; /* the empty line ending the header */
		const char *colon = memchr(p, ':', (size_t)(line_end - p));
		if (*p == ' ' || *p == '\t' || colon == NULL) {
			p = next;
			continue;
		}
		const char *nend = colon;
		while (nend > p && (nend[-1] == ' ' || nend[-1] == '\t'))
			nend--;
		bool want = (size_t)(nend - p) == nlen && strncasecmp(p, k->name, nlen) == 0;
		/* The value with its continuation lines, unfolded. */
		buf_clear(&val);
		const char *v = colon + 1;
		for (;;) {
			const char *ve = line_end;
			if (ve > v && ve[-1] == '\r')
				ve--;
			if (want)
				buf_append(&val, v, (size_t)(ve - v));
			p = next;
			if (p >= end || (*p != ' ' && *p != '\t'))
				break;
			eol = memchr(p, '\n', (size_t)(end - p));
			line_end = eol != NULL ? eol : end;
			next = eol != NULL ? eol + 1 : end;
			v = p;
		}
		if (!want)
			continue;
		size_t s = 0;
		while (s < val.len && (val.data[s] == ' ' || val.data[s] == '\t'))
			s++;
		char *dec = mime_decode_header((const char *)val.data + s, val.len - s);
		found = folded_contains(dec, strlen(dec), k);
		free(dec);
	}
	buf_free(&val);
	return found;
}

static bool keyword_has(const char *list, const char *kw)
{
	if (list == NULL)
		return false;
	size_t kl = strlen(kw);
	const char *p = list;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		const char *e = p;
		while (*e != '\0' && *e != ' ')
			e++;
		if ((size_t)(e - p) == kl && strncasecmp(p, kw, kl) == 0)
			return true;
		p = e;
	}
	return false;
}

static bool uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (uids[mid] < uid)
			lo = mid + 1;
		else if (uids[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* 1 match, 0 no match, -1 store error (r->err). */
static int eval(struct run *r, const struct imap_search_key *k)
{
	const struct store_msg_full *mf = &r->ctx->msgs[r->idx];
	const struct store_msg *m = &mf->msg;
	switch (k->type) {
	case K_ALL:
		return 1;
	case K_AND:
		for (size_t i = 0; i < k->nkids; i++) {
			int v = eval(r, k->kids[i]);
			if (v <= 0)
				return v;
		}
		return 1;
	case K_OR:
		for (size_t i = 0; i < k->nkids; i++) {
			int v = eval(r, k->kids[i]);
			if (v != 0)
				return v;
		}
		return 0;
	case K_NOT: {
		int v = eval(r, k->kids[0]);
		return v < 0 ? v : !v;
	}
	case K_FLAG:
		return (m->flags & k->flag) != 0;
	case K_UNFLAG:
		return (m->flags & k->flag) == 0;
	case K_KEYWORD:
		return keyword_has(mf->keywords, k->name);
	case K_UNKEYWORD:
		return !keyword_has(mf->keywords, k->name);
	case K_LARGER:
		return m->size > k->num;
	case K_SMALLER:
		return m->size < k->num;
	case K_BEFORE:
		return day_of(m->internaldate) < k->day;
	case K_ON:
		return day_of(m->internaldate) == k->day;
	case K_SINCE:
		return day_of(m->internaldate) >= k->day;
	case K_SENTBEFORE:
	case K_SENTON:
	case K_SENTSINCE: {
		if (load_parsed(r) < 0)
			return -1;
		const struct mime_sort_fields *sf =
			r->parsed != NULL ? mime_result_sort_fields(r->parsed) : NULL;
		if (sf == NULL || !sf->has_date)
			return 0;
		int64_t d = day_of(sf->date + (int64_t)sf->tz_offset * 60);
		if (k->type == K_SENTBEFORE)
			return d < k->day;
		if (k->type == K_SENTON)
			return d == k->day;
		return d >= k->day;
	}
	case K_SEQSET:
		return imap_seqset_contains(&k->set, (uint32_t)(r->idx + 1),
					    (uint32_t)r->ctx->count);
	case K_UIDSET:
		return imap_seqset_contains(&k->set, m->uid, r->uid_star);
	case K_SAVED:
		return r->ctx->saved != NULL && imap_seqset_contains(r->ctx->saved, m->uid, 0);
	case K_RECENT:
		return r->ctx->recent != NULL && imap_seqset_contains(r->ctx->recent, m->uid, 0);
	case K_MODSEQ:
		return m->modseq >= k->num;
	case K_SUBJECT: {
		if (load_parsed(r) < 0)
			return -1;
		const struct mime_sort_fields *sf =
			r->parsed != NULL ? mime_result_sort_fields(r->parsed) : NULL;
		if (sf == NULL || sf->subject == NULL)
			return 0;
		return folded_contains(sf->subject, strlen(sf->subject), k);
	}
	case K_HEADER:
		if (load_header(r) < 0)
			return -1;
		return header_match(&r->header, k);
	case K_BODY:
	case K_TEXT:
		return uid_in(r->text_uids[k->text_idx], r->text_n[k->text_idx], m->uid);
	}
	return 0;
}

/* Asks the index for every BODY and TEXT key. */
static enum store_err prefetch_text(struct run *r, const struct imap_search_key *k)
{
	for (size_t i = 0; i < k->nkids; i++) {
		enum store_err e = prefetch_text(r, k->kids[i]);
		if (e != STORE_OK)
			return e;
	}
	if (k->type != K_BODY && k->type != K_TEXT)
		return STORE_OK;
	return store_search_text(r->ctx->acct, r->ctx->mailbox,
				 k->type == K_BODY ? STORE_SEARCH_BODY : STORE_SEARCH_TEXT,
				 k->needle, &r->text_uids[k->text_idx], &r->text_n[k->text_idx]);
}

enum store_err imap_search_run(const struct imap_search_query *query,
			       const struct imap_search_ctx *ctx,
			       struct imap_search_result *result_r)
{
	const struct query_priv *q = (const struct query_priv *)query;
	memset(result_r, 0, sizeof *result_r);
	struct run r = {.ctx = ctx, .err = STORE_OK};
	size_t nt = q->ntext > 0 ? q->ntext : 1;
	r.text_uids = xcalloc(nt, sizeof *r.text_uids);
	r.text_n = xcalloc(nt, sizeof *r.text_n);
	r.uid_star = ctx->count > 0 ? ctx->msgs[ctx->count - 1].msg.uid : 0;
	size_t cap = ctx->count > 0 ? ctx->count : 1;
	result_r->uids = xcalloc(cap, sizeof *result_r->uids);
	result_r->seqs = xcalloc(cap, sizeof *result_r->seqs);
	result_r->modseqs = xcalloc(cap, sizeof *result_r->modseqs);

	enum store_err e = ctx->count > 0 ? prefetch_text(&r, query->root) : STORE_OK;
	for (size_t i = 0; e == STORE_OK && i < ctx->count; i++) {
		r.idx = i;
		int v = eval(&r, query->root);
		run_reset_msg(&r);
		if (v < 0) {
			e = r.err != STORE_OK ? r.err : STORE_TEMP;
			break;
		}
		if (v == 0)
			continue;
		const struct store_msg *m = &ctx->msgs[i].msg;
		result_r->uids[result_r->count] = m->uid;
		result_r->seqs[result_r->count] = (uint32_t)(i + 1);
		result_r->modseqs[result_r->count] = m->modseq;
		result_r->count++;
		if (m->modseq > result_r->highest_modseq)
			result_r->highest_modseq = m->modseq;
	}
	for (size_t i = 0; i < nt; i++)
		free(r.text_uids[i]);
	free(r.text_uids);
	free(r.text_n);
	if (e != STORE_OK)
		imap_search_result_free(result_r);
	return e;
}

void imap_search_result_free(struct imap_search_result *result)
{
	free(result->uids);
	free(result->seqs);
	free(result->modseqs);
	memset(result, 0, sizeof *result);
}

/* ------------------------------------------------------------------ responses */

void imap_search_format_search(const struct imap_search_query *query,
			       const struct imap_search_result *result, bool uid,
			       struct buf *out)
{
	const uint32_t *v = uid ? result->uids : result->seqs;
	buf_append_str(out, "* SEARCH");
	for (size_t i = 0; i < result->count; i++)
		buf_printf(out, " %u", v[i]);
	if (query->uses_modseq && result->count > 0)
		buf_printf(out, " (MODSEQ %llu)", (unsigned long long)result->highest_modseq);
	buf_append_str(out, "\r\n");
}

void imap_search_format_esearch(const struct imap_search_query *query,
				const struct imap_search_result *result, const char *tag,
				bool uid, struct buf *out)
{
	unsigned ret = query->ret != 0 ? query->ret : IMAP_SEARCH_RET_ALL;
	if (ret == IMAP_SEARCH_RET_SAVE)
		return;
	const uint32_t *v = uid ? result->uids : result->seqs;
	buf_append_str(out, "* ESEARCH");
	if (tag != NULL) {
		buf_append_str(out, " (TAG ");
		if (imap_write_string(out, tag, strlen(tag), 0) < 0)
			buf_append_str(out, "\"\"");
		buf_append_str(out, ")");
	}
	if (uid)
		buf_append_str(out, " UID");
	if (result->count > 0 && (ret & IMAP_SEARCH_RET_MIN))
		buf_printf(out, " MIN %u", v[0]);
	if (result->count > 0 && (ret & IMAP_SEARCH_RET_MAX))
		buf_printf(out, " MAX %u", v[result->count - 1]);
	if (ret & IMAP_SEARCH_RET_COUNT)
		buf_printf(out, " COUNT %zu", result->count);
	if (result->count > 0 && (ret & IMAP_SEARCH_RET_ALL)) {
		struct imap_seqset set = {0};
		for (size_t i = 0; i < result->count; i++)
			imap_seqset_add(&set, v[i], v[i]);
		buf_append_str(out, " ALL ");
		imap_seqset_format(&set, out);
		imap_seqset_free(&set);
	}
	if (query->uses_modseq && result->count > 0) {
		uint64_t ms = result->highest_modseq;
		if ((ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) != 0 &&
		    (ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT)) == 0) {
			ms = 0;
			if ((ret & IMAP_SEARCH_RET_MIN) && result->modseqs[0] > ms)
				ms = result->modseqs[0];
			if ((ret & IMAP_SEARCH_RET_MAX) && result->modseqs[result->count - 1] > ms)
				ms = result->modseqs[result->count - 1];
		}
		buf_printf(out, " MODSEQ %llu", (unsigned long long)ms);
	}
	buf_append_str(out, "\r\n");
}

void imap_search_saved_result(const struct imap_search_query *query,
			      const struct imap_search_result *result, struct imap_seqset *out)
{
	memset(out, 0, sizeof *out);
	unsigned ret = query->ret;
	bool minmax_only = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) != 0 &&
			   (ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT)) == 0;
	if (result->count > 0 && minmax_only) {
		if (ret & IMAP_SEARCH_RET_MIN)
			imap_seqset_add(out, result->uids[0], result->uids[0]);
		if (ret & IMAP_SEARCH_RET_MAX)
			imap_seqset_add(out, result->uids[result->count - 1],
					result->uids[result->count - 1]);
	} else {
		for (size_t i = 0; i < result->count; i++)
			imap_seqset_add(out, result->uids[i], result->uids[i]);
	}
	imap_seqset_normalize(out);
}
