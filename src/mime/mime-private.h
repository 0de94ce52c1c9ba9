/* Internals of src/mime; included only by files in this directory. */
#ifndef SARN_MIME_MIME_PRIVATE_H
#define SARN_MIME_MIME_PRIVATE_H

#include "core/buf.h"
#include "mime/mime.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- rfc822.c: RFC 5322 §3.2 lexical tokens over a counted, NUL-free string ---- */

struct rfc822_lexer {
	const unsigned char *p;
	const unsigned char *end;
	/* Last comment text seen by rfc822_skip_cfws (used for obsolete "addr (Name)"). */
	struct buf *comment;
};

void rfc822_lexer_init(struct rfc822_lexer *lx, const char *s, size_t len);
/* Skips whitespace and (nested) comments; returns false at end of input. */
bool rfc822_skip_cfws(struct rfc822_lexer *lx);
bool rfc822_is_atext(unsigned char c);
/* RFC 2045 token chars (tspecials excluded). */
bool rfc822_is_ttext(unsigned char c);
/* Appends an atom; returns false if none is there. */
bool rfc822_parse_atom(struct rfc822_lexer *lx, struct buf *out);
/* Appends the contents of a quoted string (unescaped, folding removed). An unterminated
 * string runs to the end and returns false, as does a missing '"'. */
bool rfc822_parse_quoted(struct rfc822_lexer *lx, struct buf *out);
/* dot-atom allowing obsolete CFWS around dots; appends it. */
bool rfc822_parse_dot_atom(struct rfc822_lexer *lx, struct buf *out);
/* Appends a MIME token (RFC 2045 §5.1). */
bool rfc822_parse_token(struct rfc822_lexer *lx, struct buf *out);
/* Appends "[...]" including the brackets. */
bool rfc822_parse_domain_literal(struct rfc822_lexer *lx, struct buf *out);

/* ---- imapstr.c: IMAP string output (RFC 3501 §4.3, §9 formal syntax) ---- */

/* string: quoted when possible, else a literal; NULL gives NIL. */
void imap_append_nstring(struct buf *out, const char *s);
/* Same, after removing CR and LF (header values written in ENVELOPE/BODYSTRUCTURE). */
void imap_append_nstring_nolf(struct buf *out, const char *s);
/* For phrases and subjects: whitespace runs become one space, leading and trailing
 * whitespace go, and the result is written quoted or as a literal. */
void imap_append_string_for_humans(struct buf *out, const char *s);

/* ---- address.c ---- */

struct mime_address {
	struct mime_address *next;
	char *name;      /* display name as written (unquoted), NULL if none */
	char *route;     /* obsolete source route "@a,@b", NULL if none */
	char *mailbox;   /* local part; group name at group start; NULL at group end */
	char *domain;    /* NULL at group start and end */
	bool invalid;    /* syntax could not be fully parsed */
	bool group_start;
	bool group_end;
};

/* Parses an address-list. With fill_missing, absent local parts and domains are
 * "MISSING_MAILBOX" / "MISSING_DOMAIN" (as Dovecot sends them in ENVELOPE). */
struct mime_address *mime_address_parse(const char *s, size_t len, bool fill_missing);
void mime_address_free(struct mime_address **list);
/* Writes an ENVELOPE address list: "((name adl mailbox host)...)" or NIL. */
void mime_address_write_imap(struct buf *out, const struct mime_address *list);

/* ---- date.c ---- */

/* Parses an RFC 5322 date-time (with obsolete forms and common broken ones). Returns
 * false when no date could be read. */
bool mime_date_parse(const char *s, size_t len, int64_t *time_r, int *tz_offset_r);

/* ---- rfc2047.c ---- */

/* Converts len bytes in charset to UTF-8, appending to out. Returns false when the
 * charset is unknown to iconv (nothing appended). Invalid sequences become U+FFFD. */
bool mime_charset_to_utf8(const char *charset, const unsigned char *data, size_t len,
			  struct buf *out);
/* Appends data to out, replacing bytes that are not valid UTF-8 by their Latin-1
 * reading. */
void mime_append_utf8_sanitized(struct buf *out, const unsigned char *data, size_t len);
/* Decodes a phrase (display name) or unstructured text to UTF-8, appending to out. */
void mime_rfc2047_decode(const char *s, size_t len, struct buf *out);

/* ---- rfc2231.c: Content-Type / Content-Disposition parameters ---- */

struct mime_param {
	char *name;   /* lowercased */
	char *value;  /* RFC 2231 continuations joined; charset-encoded values decoded */
};

struct mime_params {
	struct mime_param *items;
	unsigned int count;
};

/* Parses ";" name "=" value ... after the type (lx positioned after it). */
void mime_params_parse(struct rfc822_lexer *lx, unsigned int max_params,
		       struct mime_params *params);
void mime_params_free(struct mime_params *params);
const char *mime_params_get(const struct mime_params *params, const char *name);

/* ---- decode.c ---- */

/* Counts decoded bytes without producing them. */
uint64_t mime_decoder_count(struct mime_decoder *dec, const unsigned char *data, size_t len);
uint64_t mime_decoder_count_finish(struct mime_decoder *dec);

/* ---- subject.c ---- */

/* RFC 5256 §2.1 base subject of an already decoded (UTF-8) subject. */
char *mime_base_subject(const char *subject, bool *is_reply_r);

/* ---- result.c ---- */

struct mime_result {
	uint32_t version;
	uint64_t size;
	bool truncated;
	bool has_8bit;
	bool has_nul;
	char *envelope;
	char *bodystructure;
	char *body;
	struct mime_part *parts;
	unsigned int part_count;
	unsigned int part_alloc;
	struct mime_sort_fields sort;
};

struct mime_result *mime_result_new(void);
uint32_t mime_result_add_part(struct mime_result *res);

/* ---- envelope.c: per-entity header data and ENVELOPE / BODYSTRUCTURE writers ---- */

struct mime_hdr_addrs {
	char **values;
	unsigned int count;
};

/* Header fields of one entity kept while its body is parsed. */
struct mime_entity_hdr {
	/* Content-Type */
	char *type;          /* NULL if the field was absent */
	char *subtype;
	bool type_invalid;   /* present but unparseable */
	struct mime_params type_params;
	char *encoding;      /* Content-Transfer-Encoding token as written */
	char *id, *description, *md5, *location;
	char *disposition;
	struct mime_params disposition_params;
	char **language;     /* NULL-terminated list, NULL if absent */
	bool mime_version;   /* a MIME-Version field was seen */
	/* Envelope fields (messages only), raw values without the leading whitespace. */
	char *date, *subject, *message_id, *in_reply_to, *references;
	struct mime_hdr_addrs from, sender, reply_to, to, cc, bcc;
};

void mime_entity_hdr_free(struct mime_entity_hdr *h);
/* Handles one unfolded header field. is_message selects the envelope fields. */
void mime_entity_hdr_field(struct mime_entity_hdr *h, const char *name, size_t name_len,
			   const char *value, size_t value_len, bool is_message,
			   const struct mime_limits *limits);
/* At the end of a message header: without MIME-Version and Content-Type the message
 * is not MIME (RFC 2045 §4), so its other Content-* fields are dropped. */
void mime_entity_hdr_end(struct mime_entity_hdr *h, bool is_message);
/* Writes the ENVELOPE list (with parentheses). */
void mime_envelope_write(struct buf *out, const struct mime_entity_hdr *h);
/* Fills the sort fields from a message header. */
void mime_sort_fields_fill(struct mime_sort_fields *sf, const struct mime_entity_hdr *h);
void mime_sort_fields_free(struct mime_sort_fields *sf);

/* ---- structure.c helpers used by the writers ---- */

bool mime_ascii_ieq(const char *a, const char *b);

#endif
