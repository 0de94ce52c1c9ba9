/* The FETCH response cursor: produces "* n FETCH (...)" for one message in bounded pieces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imap/fetch/fetch-private.h"
#include "imap/flags.h"
#include "imap/quote.h"

enum phase {
	PH_START, /* nothing loaded or written yet */
	PH_ITEM,  /* the next item (or the closing ")") is to be started */
	PH_DATA,  /* the current item's literal data is being sent */
	PH_DONE,  /* the closing ")\r\n" is out or being drained */
};

/* Where an item's data comes from: memory, or a byte range of the file (raw or decoded). */
struct source {
	bool file;
	const unsigned char *mem; /* !file: data still to send */
	size_t mem_len;
	uint64_t file_off; /* file: next byte to read */
	uint64_t raw_left; /* file: bytes of the range still to read */
	bool decode;
	bool dec_finished;
	struct mime_decoder dec;
	uint64_t skip;     /* decoded bytes to drop first (partial origin) */
	uint64_t left;     /* bytes still to send */
	bool nul_to_80;
};

struct imap_fetch_cursor {
	const struct imap_fetch_plan *plan;
	struct store_account *acct;
	char *mailbox;
	struct store_msg_full msg;
	uint32_t seqno;
	unsigned flags;
	enum imap_fetch_error error;

	struct mime_result *res;
	int fd;
	/* The header kept in the index, read instead of the file when the plan is header_only. */
	unsigned char *header;
	size_t header_len;
	enum phase phase;
	size_t idx;        /* next plan item */
	bool implicit_uid; /* UID first though not asked for */
	bool implicit_flags;
	bool any_item;     /* an item was written (a space goes before the next) */
	size_t chunk;      /* bytes read per step */

	struct buf tmp;    /* produced bytes; view points into it or into res */
	const unsigned char *view;
	size_t view_len;
	struct buf mem;    /* HEADER.FIELDS result */
	unsigned char *rbuf; /* raw bytes for decoding */
	struct source src;
};

int imap_fetch_begin(const struct imap_fetch_plan *plan, struct store_account *acct,
		     const char *mailbox, const struct store_msg_full *msg, uint32_t seqno,
		     unsigned flags, struct imap_fetch_cursor **cursor_r)
{
	struct imap_fetch_cursor *c = xcalloc(1, sizeof *c);
	c->plan = plan;
	c->acct = acct;
	c->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	c->msg = *msg;
	c->msg.keywords = msg->keywords != NULL ? xstrdup(msg->keywords) : NULL;
	c->seqno = seqno;
	c->flags = flags;
	c->fd = -1;
	c->phase = PH_START;
	if (flags & IMAP_FETCH_UID) {
		c->implicit_uid = true;
		for (size_t i = 0; i < plan->count; i++) {
			if (plan->items[i].kind == FETCH_UID)
				c->implicit_uid = false;
		}
	}
	if (flags & IMAP_FETCH_ADD_FLAGS) {
		c->implicit_flags = true;
		for (size_t i = 0; i < plan->count; i++) {
			if (plan->items[i].kind == FETCH_FLAGS)
				c->implicit_flags = false;
		}
	}
	*cursor_r = c;
	return 0;
}

void imap_fetch_end(struct imap_fetch_cursor **cp)
{
	struct imap_fetch_cursor *c = *cp;
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->header);
	mime_result_free(&c->res);
	free(c->mailbox);
	free(c->msg.keywords);
	buf_free(&c->tmp);
	buf_free(&c->mem);
	free(c->rbuf);
	free(c);
	*cp = NULL;
}

enum imap_fetch_error imap_fetch_error(const struct imap_fetch_cursor *c)
{
	return c->error;
}

static int fail(struct imap_fetch_cursor *c, enum imap_fetch_error err)
{
	c->error = err;
	return -1;
}

static enum imap_fetch_error store_error(enum store_err err)
{
	return err == STORE_EXPUNGED || err == STORE_NOTFOUND ? IMAP_FETCH_ERR_EXPUNGED
							      : IMAP_FETCH_ERR_IO;
}

static const struct mime_part *item_part(const struct imap_fetch_cursor *c,
					 const struct fetch_item *it)
{
	return mime_result_find(c->res, it->path, it->npath);
}

/* Loads the parse result and opens the file as the plan needs; checks BINARY encodings. */
static int load(struct imap_fetch_cursor *c)
{
	const struct imap_fetch_plan *plan = c->plan;
	if (plan->needs_result) {
		unsigned char *data = NULL;
		size_t len = 0;
		enum store_err err = store_msg_parsed_header(
			c->acct, c->mailbox, c->msg.msg.uid, &data, &len,
			plan->header_only ? &c->header : NULL, &c->header_len);
		if (err != STORE_OK)
			return fail(c, store_error(err));
		if (data != NULL) {
			c->res = mime_result_deserialize(data, len);
			free(data);
		}
	}
	bool from_index = plan->header_only && c->header != NULL && c->res != NULL;
	if ((plan->needs_file && !from_index) || (plan->needs_result && c->res == NULL)) {
		enum store_err err = store_msg_open(c->acct, c->mailbox, c->msg.msg.uid, &c->fd);
		if (err != STORE_OK) {
			c->fd = -1;
			return fail(c, store_error(err));
		}
	}
	if (plan->needs_result && c->res == NULL) {
		/* nothing (usable) was saved at delivery: parse the file */
		c->res = mime_parse_fd(c->fd, NULL);
		if (c->res == NULL)
			return fail(c, IMAP_FETCH_ERR_IO);
	}
	for (size_t i = 0; i < plan->count; i++) {
		const struct fetch_item *it = &plan->items[i];
		if ((it->kind == FETCH_BINARY || it->kind == FETCH_BINARY_SIZE) && it->npath > 0) {
			const struct mime_part *p = item_part(c, it);
			if (p != NULL && p->kind == MIME_PART_LEAF && p->encoding == MIME_ENC_UNKNOWN)
				return fail(c, IMAP_FETCH_ERR_UNKNOWN_CTE);
		}
	}
	return 0;
}

/* Reads exactly len bytes at off. */
static int read_at(struct imap_fetch_cursor *c, unsigned char *dst, size_t len, uint64_t off)
{
	if (c->fd < 0) {
		/* header_only plan served from the index copy */
		if (c->header == NULL || off > c->header_len || len > c->header_len - off)
			return -1;
		memcpy(dst, c->header + off, len);
		return 0;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(c->fd, dst + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void write_flags(struct imap_fetch_cursor *c, struct buf *b)
{
	buf_append_str(b, "FLAGS ");
	imap_format_flags(b, c->msg.msg.flags, c->msg.keywords, c->flags & IMAP_FETCH_RECENT);
}

static void write_date(int64_t when, struct buf *b)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)when;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof tm), tm.tm_mday = 1, tm.tm_year = 70;
	buf_printf(b, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		   months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Clamps a section of size bytes to the item's partial range: *start_r and *len_r. */
static void clamp(const struct fetch_item *it, uint64_t size, uint64_t *start_r, uint64_t *len_r)
{
	if (!it->partial) {
		*start_r = 0;
		*len_r = size;
		return;
	}
	uint64_t start = it->p_off < size ? it->p_off : size;
	uint64_t len = size - start;
	*start_r = start;
	*len_r = it->p_len < len ? it->p_len : len;
}

/* A pass over a decoded body without keeping it: its decoded size and whether a NUL is in
 * [from, from + n). */
static int scan_decoded(struct imap_fetch_cursor *c, const struct mime_part *p, uint64_t from,
			uint64_t n, uint64_t *size_r, bool *nul_r)
{
	struct mime_decoder dec;
	struct buf out = {0};
	mime_decoder_init(&dec, (enum mime_encoding)p->encoding);
	uint64_t pos = 0, off = p->body_offset, left = p->body_size;
	bool nul = false;
	for (bool last = false; !last;) {
		buf_clear(&out);
		if (left > 0) {
			size_t k = left < IMAP_FETCH_CHUNK ? (size_t)left : IMAP_FETCH_CHUNK;
			if (read_at(c, c->rbuf, k, off) < 0) {
				buf_free(&out);
				return -1;
			}
			mime_decoder_feed(&dec, c->rbuf, k, &out);
			off += k;
			left -= k;
		} else {
			mime_decoder_finish(&dec, &out);
			last = true;
		}
		/* the part of this output inside [from, from + n) */
		uint64_t a = from > pos ? from - pos : 0;
		uint64_t e = from + n > pos ? from + n - pos : 0;
		if (e > out.len)
			e = out.len;
		if (!nul && a < e && memchr(out.data + a, 0, (size_t)(e - a)) != NULL)
			nul = true;
		pos += out.len;
	}
	buf_free(&out);
	*size_r = pos;
	*nul_r = nul;
	return 0;
}

/* Whether raw bytes [off, off + len) of the file hold a NUL. */
static int scan_raw_nul(struct imap_fetch_cursor *c, uint64_t off, uint64_t len, bool *nul_r)
{
	*nul_r = false;
	while (len > 0) {
		size_t k = len < IMAP_FETCH_CHUNK ? (size_t)len : IMAP_FETCH_CHUNK;
		if (read_at(c, c->rbuf, k, off) < 0)
			return -1;
		if (memchr(c->rbuf, 0, k) != NULL) {
			*nul_r = true;
			return 0;
		}
		off += k;
		len -= k;
	}
	return 0;
}

static void start_literal(struct imap_fetch_cursor *c, uint64_t len, bool literal8)
{
	buf_printf(&c->tmp, " %s{%llu}\r\n", literal8 ? "~" : "", (unsigned long long)len);
	if (len > 0)
		c->phase = PH_DATA;
}

static int start_section(struct imap_fetch_cursor *c, const struct fetch_item *it)
{
	fetch_item_name(it, &c->tmp);
	uint64_t off, size;
	if (!mime_result_section(c->res, it->path, it->npath, it->text, &off, &size)) {
		buf_append_str(&c->tmp, " \"\"");
		return 0;
	}
	uint64_t start, len;
	memset(&c->src, 0, sizeof c->src);
	if (it->fields) {
		uint64_t hlen = size < IMAP_FETCH_MAX_HEADER ? size : IMAP_FETCH_MAX_HEADER;
		unsigned char *hdr = xmalloc(hlen + 1);
		if (read_at(c, hdr, (size_t)hlen, off) < 0) {
			free(hdr);
			return fail(c, IMAP_FETCH_ERR_IO);
		}
		buf_clear(&c->mem);
		mime_header_filter(hdr, (size_t)hlen, (const char *const *)it->names, it->nnames,
				   it->fields_not, &c->mem);
		free(hdr);
		for (size_t i = 0; i < c->mem.len; i++) {
			if (c->mem.data[i] == 0)
				c->mem.data[i] = 0x80;
		}
		clamp(it, c->mem.len, &start, &len);
		c->src.mem = c->mem.data + start;
		c->src.mem_len = (size_t)len;
		c->src.left = len;
	} else {
		clamp(it, size, &start, &len);
		c->src.file = true;
		c->src.file_off = off + start;
		c->src.raw_left = len;
		c->src.left = len;
		c->src.nul_to_80 = true;
	}
	start_literal(c, len, false);
	return 0;
}

static int start_binary(struct imap_fetch_cursor *c, const struct fetch_item *it)
{
	fetch_item_name(it, &c->tmp);
	const struct mime_part *p = item_part(c, it);
	if (p == NULL) {
		buf_append_str(&c->tmp, " NIL");
		return 0;
	}
	if (c->rbuf == NULL)
		c->rbuf = xmalloc(IMAP_FETCH_CHUNK);
	memset(&c->src, 0, sizeof c->src);
	uint64_t start, len;
	bool nul = false;
	c->src.file = true;
	if (it->npath == 0) {
		/* the whole message, as stored */
		uint64_t size = mime_result_size(c->res);
		clamp(it, size, &start, &len);
		if (mime_result_has_nul(c->res) && scan_raw_nul(c, start, len, &nul) < 0)
			return fail(c, IMAP_FETCH_ERR_IO);
		c->src.file_off = start;
		c->src.raw_left = len;
	} else {
		uint64_t dsize;
		uint64_t from = it->partial ? it->p_off : 0;
		uint64_t n = it->partial ? it->p_len : UINT64_MAX - from;
		if (scan_decoded(c, p, from, n, &dsize, &nul) < 0)
			return fail(c, IMAP_FETCH_ERR_IO);
		clamp(it, dsize, &start, &len);
		c->src.decode = true;
		mime_decoder_init(&c->src.dec, (enum mime_encoding)p->encoding);
		c->src.file_off = p->body_offset;
		c->src.raw_left = p->body_size;
		c->src.skip = start;
	}
	c->src.left = len;
	start_literal(c, len, nul);
	return 0;
}

static void start_binary_size(struct imap_fetch_cursor *c, const struct fetch_item *it)
{
	fetch_item_name(it, &c->tmp);
	const struct mime_part *p = item_part(c, it);
	uint64_t size = 0;
	if (p != NULL)
		size = it->npath == 0 ? mime_result_size(c->res) : p->decoded_size;
	buf_printf(&c->tmp, " %llu", (unsigned long long)size);
}

/* Starts the next item (or closes the response) into tmp. */
static int start_item(struct imap_fetch_cursor *c)
{
	const struct fetch_item *it = NULL;
	enum fetch_kind kind;
	if (c->implicit_uid) {
		kind = FETCH_UID;
		c->implicit_uid = false;
	} else if (c->idx < c->plan->count) {
		it = &c->plan->items[c->idx++];
		kind = it->kind;
	} else if (c->implicit_flags) {
		kind = FETCH_FLAGS;
		c->implicit_flags = false;
	} else {
		buf_append_str(&c->tmp, ")\r\n");
		c->phase = PH_DONE;
		return 0;
	}
	if (c->any_item)
		buf_append(&c->tmp, " ", 1);
	c->any_item = true;
	const char *big = NULL;
	switch (kind) {
	case FETCH_FLAGS:
		write_flags(c, &c->tmp);
		break;
	case FETCH_INTERNALDATE:
		write_date(c->msg.msg.internaldate, &c->tmp);
		break;
	case FETCH_RFC822_SIZE:
		buf_printf(&c->tmp, "RFC822.SIZE %llu", (unsigned long long)c->msg.msg.size);
		break;
	case FETCH_UID:
		buf_printf(&c->tmp, "UID %u", c->msg.msg.uid);
		break;
	case FETCH_MODSEQ:
		buf_printf(&c->tmp, "MODSEQ (%llu)", (unsigned long long)c->msg.msg.modseq);
		break;
	case FETCH_ENVELOPE:
		big = mime_result_envelope(c->res);
		break;
	case FETCH_BODY:
		big = mime_result_body(c->res);
		break;
	case FETCH_BODYSTRUCTURE:
		big = mime_result_bodystructure(c->res);
		break;
	case FETCH_SECTION:
		return start_section(c, it);
	case FETCH_BINARY:
		return start_binary(c, it);
	case FETCH_BINARY_SIZE:
		start_binary_size(c, it);
		break;
	}
	if (big != NULL) {
		/* sent from the result as it is, in pieces */
		buf_printf(&c->tmp, "%s ", fetch_kind_name(kind));
		memset(&c->src, 0, sizeof c->src);
		c->src.mem = (const unsigned char *)big;
		c->src.mem_len = strlen(big);
		c->src.left = c->src.mem_len;
		if (c->src.left > 0)
			c->phase = PH_DATA;
	}
	return 0;
}

/* The next piece of the current item's data, into the view. */
static int produce_data(struct imap_fetch_cursor *c)
{
	struct source *s = &c->src;
	if (!s->file) {
		size_t k = s->mem_len < c->chunk ? s->mem_len : c->chunk;
		c->view = s->mem;
		c->view_len = k;
		s->mem += k;
		s->mem_len -= k;
		s->left -= k;
		if (s->left == 0)
			c->phase = PH_ITEM;
		return 0;
	}
	buf_clear(&c->tmp);
	if (!s->decode) {
		size_t k = s->left < c->chunk ? (size_t)s->left : c->chunk;
		buf_reserve(&c->tmp, k);
		if (read_at(c, c->tmp.data, k, s->file_off) < 0)
			return fail(c, IMAP_FETCH_ERR_IO);
		c->tmp.len = k;
		if (s->nul_to_80) {
			unsigned char *z = c->tmp.data, *end = c->tmp.data + k;
			while ((z = memchr(z, 0, (size_t)(end - z))) != NULL)
				*z++ = 0x80;
		}
		s->file_off += k;
		s->left -= k;
	} else {
		/* decode raw chunks until some wanted output appears */
		while (c->tmp.len == 0) {
			if (s->raw_left > 0) {
				size_t k = s->raw_left < c->chunk ? (size_t)s->raw_left : c->chunk;
				if (read_at(c, c->rbuf, k, s->file_off) < 0)
					return fail(c, IMAP_FETCH_ERR_IO);
				mime_decoder_feed(&s->dec, c->rbuf, k, &c->tmp);
				s->file_off += k;
				s->raw_left -= k;
			} else if (!s->dec_finished) {
				mime_decoder_finish(&s->dec, &c->tmp);
				s->dec_finished = true;
			} else {
				/* fewer bytes than the size pass found: cannot happen */
				return fail(c, IMAP_FETCH_ERR_IO);
			}
			if (s->skip > 0) {
				size_t d = s->skip < c->tmp.len ? (size_t)s->skip : c->tmp.len;
				buf_consume(&c->tmp, d);
				s->skip -= d;
			}
		}
		if (c->tmp.len > s->left)
			c->tmp.len = (size_t)s->left;
		s->left -= c->tmp.len;
	}
	c->view = c->tmp.data;
	c->view_len = c->tmp.len;
	if (s->left == 0)
		c->phase = PH_ITEM;
	return 0;
}

/* Fills the view with the next bytes of the response. 1 when there are no more. */
static int produce(struct imap_fetch_cursor *c)
{
	switch (c->phase) {
	case PH_START:
		if (load(c) < 0)
			return -1;
		buf_clear(&c->tmp);
		buf_printf(&c->tmp, "* %u FETCH (", c->seqno);
		c->phase = PH_ITEM;
		break;
	case PH_ITEM:
		buf_clear(&c->tmp);
		if (start_item(c) < 0)
			return -1;
		break;
	case PH_DATA:
		return produce_data(c);
	case PH_DONE:
		return 1;
	}
	c->view = c->tmp.data;
	c->view_len = c->tmp.len;
	return 0;
}

int imap_fetch_next(struct imap_fetch_cursor *c, struct buf *out, size_t max_bytes)
{
	if (c->error != IMAP_FETCH_ERR_NONE)
		return -1;
	if (max_bytes == 0)
		max_bytes = 1;
	c->chunk = max_bytes < IMAP_FETCH_CHUNK ? max_bytes : IMAP_FETCH_CHUNK;
	if (c->chunk < 4096)
		c->chunk = 4096;
	size_t room = max_bytes;
	while (room > 0) {
		if (c->view_len == 0) {
			int r = produce(c);
			if (r != 0)
				return r;
			continue;
		}
		size_t k = c->view_len < room ? c->view_len : room;
		buf_append(out, c->view, k);
		c->view += k;
		c->view_len -= k;
		room -= k;
	}
	return c->view_len == 0 && c->phase == PH_DONE ? 1 : 0;
}
