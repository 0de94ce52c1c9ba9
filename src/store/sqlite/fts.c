/* The full-text index of an account (docs/MIME.md, "Full-text index").
 *
 * Two tables:
 *   fts_text(docid, blob, header, body)  the folded text of each blob (src/mime/text.c)
 *   fts(grams)                           FTS5, trigram tokenizer, detail=none, rowid = docid
 *
 * A search is two steps: the FTS5 index selects the rows that hold every trigram of the
 * needle (a few of them, ANDed), then instr() on fts_text keeps the messages that really
 * contain the needle. Needles of one or two characters have no trigram: the texts of the
 * mailbox are scanned with instr(). Either way the result is exact substring matching on
 * folded text, which is what IMAP SEARCH asks (RFC 9051 §6.4.4), also for scripts written
 * without spaces (Thai, Chinese, Japanese).
 *
 * With detail=none the index only records which trigrams each row holds, so the document
 * given to FTS5 is not the text but its distinct trigrams: a 1 MB text has about a million
 * trigrams but typically a few ten thousand distinct ones, and FTS5 spends its time per
 * token. Consecutive new trigrams are written as the run of text they come from ("abcd"
 * for abc, bcd); runs are separated by two U+0001, which folded text never contains, so
 * the tokens that span a separator match no needle (and, with two, they take few distinct
 * values). The text is folded already, so the tokenizer is case-sensitive (it must not
 * fold again). This makes indexing a 1 MB text about ten times faster than giving FTS5
 * the text itself.
 */
#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Trigrams of the needle given to the index (spread over it); instr() checks the rest. */
#define MAX_QUERY_TRIGRAMS 12

static const char fts_schema[] =
	"CREATE TABLE IF NOT EXISTS fts_text("
	" docid INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused: FTS rows follow it */
	" blob TEXT NOT NULL UNIQUE,"
	" header TEXT NOT NULL,"
	" body TEXT NOT NULL);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(grams,"
	" tokenize = 'trigram case_sensitive 1', detail = none, columnsize = 0);";

enum store_err index_fts_ensure(sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db,
		"SELECT count(*) FROM sqlite_master WHERE name IN ('fts', 'fts_text')", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return index_err(db, rc, "fts_ensure");
	int have = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (have == 2)
		return STORE_OK;
	/* An index made before the full-text index: `sarn check --repair` (and start-up
	 * recovery) index its messages. */
	enum store_err err = index_begin(db);
	if (err != STORE_OK)
		return err;
	rc = sqlite3_exec(db, fts_schema, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = index_err(db, rc, "fts_create");
		index_rollback(db);
		return err;
	}
	return index_commit(db);
}

/* --- The document of distinct trigrams --- */

struct gram_set {
	uint64_t *slots; /* 0 = empty; a key is three code points (each >= 1) of 21 bits */
	size_t cap;      /* a power of two */
	size_t count;
};

static size_t gram_slot(const struct gram_set *g, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & (g->cap - 1);
}

/* Adds key; returns false if it was there already. */
static bool gram_add(struct gram_set *g, uint64_t key)
{
	if ((g->count + 1) * 2 > g->cap) {
		struct gram_set n = {xcalloc(g->cap * 2, sizeof *n.slots), g->cap * 2, g->count};
		for (size_t i = 0; i < g->cap; i++) {
			if (g->slots[i] == 0)
				continue;
			size_t j = gram_slot(&n, g->slots[i]);
			while (n.slots[j] != 0)
				j = (j + 1) & (n.cap - 1);
			n.slots[j] = g->slots[i];
		}
		free(g->slots);
		*g = n;
	}
	size_t j = gram_slot(g, key);
	while (g->slots[j] != 0) {
		if (g->slots[j] == key)
			return false;
		j = (j + 1) & (g->cap - 1);
	}
	g->slots[j] = key;
	g->count++;
	return true;
}

/* Decodes the character at s[*i] of valid UTF-8 and advances *i. */
static uint32_t next_char(const unsigned char *s, size_t len, size_t *i)
{
	uint32_t c = s[(*i)++];
	int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	c &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
	for (; more > 0 && *i < len; more--)
		c = (c << 6) | (s[(*i)++] & 0x3f);
	return c;
}

/* Appends the distinct trigrams of text t (not yet in g) to out. */
static void grams_of(struct gram_set *g, const struct buf *t, struct buf *out)
{
	const unsigned char *s = t->data;
	size_t len = t->len;
	size_t start[3] = {0}; /* byte offsets of the last three characters */
	uint32_t cp[3] = {0};
	size_t n = 0, i = 0;
	bool in_run = false;
	while (i < len) {
		size_t at = i;
		uint32_t c = next_char(s, len, &i);
		if (c == 0)
			c = 0xfffd; /* cannot happen in folded text; keeps keys non-zero */
		start[0] = start[1];
		start[1] = start[2];
		start[2] = at;
		cp[0] = cp[1];
		cp[1] = cp[2];
		cp[2] = c;
		if (++n < 3)
			continue;
		uint64_t key = ((uint64_t)cp[0] << 42) | ((uint64_t)cp[1] << 21) | cp[2];
		if (!gram_add(g, key)) {
			in_run = false;
		} else if (in_run) {
			buf_append(out, s + at, i - at); /* the run goes on: one more character */
		} else {
			if (out->len > 0)
				buf_append(out, "\x01\x01", 2);
			buf_append(out, s + start[0], i - start[0]);
			in_run = true;
		}
	}
}

enum store_err index_fts_insert(sqlite3 *db, const char *blob_id, const struct buf *header,
				const struct buf *body)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "INSERT INTO fts_text(blob, header, body) VALUES(?, ?, ?)",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, blob_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, header->len ? (const char *)header->data : "",
				  (int)header->len, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, body->len ? (const char *)body->data : "", (int)body->len,
				  SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		return index_err(db, rc, "fts_insert_text");
	sqlite3_int64 docid = sqlite3_last_insert_rowid(db);

	struct gram_set g = {xcalloc(4096, sizeof *g.slots), 4096, 0};
	struct buf grams = {0};
	grams_of(&g, header, &grams);
	grams_of(&g, body, &grams);
	free(g.slots);
	rc = sqlite3_prepare_v2(db, "INSERT INTO fts(rowid, grams) VALUES(?, ?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, docid);
		sqlite3_bind_text(st, 2, grams.len ? (const char *)grams.data : "", (int)grams.len,
				  SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	buf_free(&grams);
	return rc == SQLITE_DONE ? STORE_OK : index_err(db, rc, "fts_insert");
}

enum store_err index_fts_delete(sqlite3 *db, const char *blob_id)
{
	static const char *const sql[] = {
		"DELETE FROM fts WHERE rowid = (SELECT docid FROM fts_text WHERE blob = ?)",
		"DELETE FROM fts_text WHERE blob = ?",
	};
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		int rc = sqlite3_prepare_v2(db, sql[i], -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, blob_id, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			sqlite3_finalize(st);
		}
		if (rc != SQLITE_DONE)
			return index_err(db, rc, "fts_delete");
	}
	return STORE_OK;
}

enum store_err fts_extract_file(const char *path, const void *parsed, size_t parsed_len,
				struct buf *header, struct buf *body)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? STORE_NOTFOUND : STORE_TEMP;
	struct mime_result *r = parsed != NULL ? mime_result_deserialize(parsed, parsed_len) : NULL;
	if (r == NULL)
		r = mime_parse_fd(fd, NULL);
	enum store_err err = STORE_TEMP;
	if (r != NULL && mime_text_extract(r, fd, 0, header, body, NULL) == 0)
		err = STORE_OK;
	if (err != STORE_OK)
		log_error("event=fts_extract path=%s error=\"%s\"", path, strerror(errno));
	mime_result_free(&r);
	close(fd);
	return err;
}

/* --- Searching --- */

/* Byte offsets of the characters of valid UTF-8 s; returns the count. offs has room
 * for len + 1 entries; offs[count] = len. */
static size_t char_offsets(const unsigned char *s, size_t len, size_t *offs)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			offs[n++] = i;
	}
	offs[n] = len;
	return n;
}

static void append_fts_string(struct buf *q, const unsigned char *s, size_t len)
{
	buf_append(q, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			buf_append(q, "\"", 1); /* a quote inside an FTS5 string is doubled */
		buf_append(q, &s[i], 1);
	}
	buf_append(q, "\"", 1);
}

/* FTS5 query: up to MAX_QUERY_TRIGRAMS distinct trigrams of the needle, ANDed. */
static void trigram_query(const unsigned char *s, const size_t *offs, size_t nchars,
			  struct buf *q)
{
	size_t ntri = nchars - 2;
	size_t take = ntri < MAX_QUERY_TRIGRAMS ? ntri : MAX_QUERY_TRIGRAMS;
	size_t prev = (size_t)-1;
	for (size_t k = 0; k < take; k++) {
		/* spread evenly, the first and the last trigram included */
		size_t t = take == 1 ? 0 : k * (ntri - 1) / (take - 1);
		if (t == prev)
			continue;
		prev = t;
		/* skip a trigram already in the query */
		size_t len = offs[t + 3] - offs[t];
		bool dup = false;
		for (size_t j = 0; j < t && !dup; j++)
			dup = offs[j + 3] - offs[j] == len && memcmp(s + offs[j], s + offs[t], len) == 0;
		if (dup)
			continue;
		if (q->len > 0)
			buf_append_str(q, " AND ");
		append_fts_string(q, s + offs[t], len);
	}
}

enum store_err store_search_text(struct store_account *a, const char *mailbox,
				 enum store_search_field field, const char *needle_utf8,
				 uint32_t **uids_r, size_t *count_r)
{
	*uids_r = NULL;
	*count_r = 0;
	if (needle_utf8 == NULL ||
	    (field != STORE_SEARCH_BODY && field != STORE_SEARCH_TEXT && field != STORE_SEARCH_HEADER))
		return STORE_INVALID;
	int64_t mbox;
	enum store_err err = index_mailbox_id(a->db, mailbox, &mbox);
	if (err != STORE_OK)
		return err;

	struct buf folded = {0}, query = {0};
	mime_text_fold(needle_utf8, strlen(needle_utf8), &folded);
	size_t *offs = xmalloc((folded.len + 1) * sizeof *offs);
	size_t nchars = char_offsets(folded.data, folded.len, offs);

	const char *cond = field == STORE_SEARCH_BODY ? "instr(t.body, ?2) > 0"
		: field == STORE_SEARCH_HEADER ? "instr(t.header, ?2) > 0"
		: "(instr(t.header, ?2) > 0 OR instr(t.body, ?2) > 0)";
	char *sql;
	if (nchars == 0) {
		/* RFC 9051 §6.4.4: every message contains the empty string */
		sql = xstrdup("SELECT uid FROM message WHERE mailbox_id = ?1 ORDER BY uid");
	} else if (nchars < 3) {
		sql = xasprintf("SELECT m.uid FROM message m JOIN fts_text t ON t.blob = m.blob"
				" WHERE m.mailbox_id = ?1 AND %s ORDER BY m.uid", cond);
	} else {
		trigram_query(folded.data, offs, nchars, &query);
		sql = xasprintf("SELECT m.uid FROM message m JOIN fts_text t ON t.blob = m.blob"
				" WHERE m.mailbox_id = ?1 AND t.docid IN"
				" (SELECT rowid FROM fts WHERE fts MATCH ?3) AND %s"
				" ORDER BY m.uid", cond);
	}
	free(offs);

	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK) {
		buf_free(&folded);
		buf_free(&query);
		return index_err(a->db, rc, "search_text");
	}
	sqlite3_bind_int64(st, 1, mbox);
	if (nchars > 0)
		sqlite3_bind_text(st, 2, (const char *)folded.data, (int)folded.len, SQLITE_STATIC);
	if (query.len > 0)
		sqlite3_bind_text(st, 3, (const char *)query.data, (int)query.len, SQLITE_STATIC);
	err = index_collect_uids(a->db, st, "search_text", uids_r, count_r);
	buf_free(&folded);
	buf_free(&query);
	return err;
}
