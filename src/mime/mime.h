/* Streaming RFC 5322 / MIME parser.
 *
 * A message is parsed once, when it is stored. The parser is fed the message bytes in
 * chunks of any size (any split gives the same result) and never buffers bodies, so
 * memory is bounded by the limits below, not by the message size. The result holds
 * everything IMAP FETCH needs without reading the message again:
 *   - the ENVELOPE, BODY and BODYSTRUCTURE strings exactly as sent after the item name
 *     (RFC 3501 §7.4.2, RFC 9051 §7.5.2),
 *   - byte offsets and sizes of the header and body of every MIME entity, so that
 *     BODY[section]<partial>, BINARY[section] and BINARY.SIZE[section] are served by
 *     seeking in the stored file,
 *   - the normalised header fields used by SORT, SEARCH and THREAD.
 * The result serialises to a compact versioned byte string for the store.
 *
 * Malformed input never makes parsing fail: the parser returns the best structure it can.
 * Offsets are exact on the original bytes; lines may end in CRLF or in a bare LF.
 */
#ifndef SARN_MIME_MIME_H
#define SARN_MIME_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mime_limits {
	/* Nesting of multipart and message/rfc822 entities; deeper entities are treated as
	 * opaque leaves. */
	unsigned int max_depth;
	/* MIME entities per message; once reached, the rest is part of the last body. */
	unsigned int max_parts;
	/* Bytes of one header block that are looked at; the rest is counted, not parsed. */
	size_t max_header_size;
	/* Bytes kept of one header field (after that, the field is truncated). */
	size_t max_field_size;
	/* Parameters kept per Content-Type / Content-Disposition field. */
	unsigned int max_params;
};

#define MIME_DEFAULT_MAX_DEPTH 100
#define MIME_DEFAULT_MAX_PARTS 10000
#define MIME_DEFAULT_MAX_HEADER_SIZE (1024 * 1024)
#define MIME_DEFAULT_MAX_FIELD_SIZE (64 * 1024)
#define MIME_DEFAULT_MAX_PARAMS 64

/* Fills in the defaults above. */
void mime_limits_default(struct mime_limits *limits);

enum mime_encoding {
	MIME_ENC_7BIT = 0,
	MIME_ENC_8BIT,
	MIME_ENC_BINARY,
	MIME_ENC_BASE64,
	MIME_ENC_QP,
	/* A Content-Transfer-Encoding sarn does not know: BINARY[] must answer
	 * [UNKNOWN-CTE] (RFC 3516 §4.3). */
	MIME_ENC_UNKNOWN,
};

enum mime_part_kind {
	MIME_PART_LEAF = 0,      /* text/..., application/..., anything not below */
	MIME_PART_MULTIPART,     /* children are the body parts */
	MIME_PART_MESSAGE,       /* message/rfc822 or message/global: one child, the message */
};

#define MIME_NO_PART UINT32_MAX

/* One MIME entity: a header and a body. Part 0 is the whole message. Parts are stored
 * in pre-order (a parent before its children). Read-only for callers. */
struct mime_part {
	uint32_t parent;         /* MIME_NO_PART for part 0 */
	uint32_t first_child;    /* MIME_NO_PART if none */
	uint32_t next_sibling;   /* MIME_NO_PART if none */
	uint32_t child_count;
	uint16_t depth;          /* 0 for the message */
	uint8_t kind;            /* enum mime_part_kind */
	uint8_t encoding;        /* enum mime_encoding of the body */
	/* Absolute byte offsets in the message and sizes in bytes of the original data. */
	uint64_t header_offset;  /* first byte of the header (the MIME header of a body part) */
	uint64_t header_size;    /* includes the empty line that ends the header */
	uint64_t body_offset;
	uint64_t body_size;      /* excludes the line break before a boundary line */
	uint64_t body_lines;     /* lines in the body, as BODYSTRUCTURE counts them */
	/* Size of the body after Content-Transfer-Encoding decoding (BINARY.SIZE). Valid for
	 * leaves with a known encoding; for others it equals body_size. */
	uint64_t decoded_size;
};

/* One address of an address list, with its display name decoded for sorting. */
struct mime_sort_addr {
	char *addr;      /* "local@domain" lowercased, NULL if the field had no address */
	char *mailbox;   /* local part lowercased (RFC 5256 §3 SORT FROM/TO/CC key) */
	char *display;   /* RFC 5957 display name: decoded phrase, else the addr-spec */
};

/* Normalised fields for SORT/SEARCH/THREAD (from the top-level header). Strings are
 * UTF-8 or NULL when the field was absent. */
struct mime_sort_fields {
	char *base_subject;      /* RFC 5256 §2.1 base subject, decoded, "" if none */
	char *subject;           /* decoded Subject, NULL if absent */
	bool subject_is_reply;   /* RFC 5256 §2.1 step (6) saw Re:/Fw:/[fwd:] */
	struct mime_sort_addr from, to, cc;
	bool has_date;           /* false when Date is absent or unparseable */
	int64_t date;            /* seconds since the epoch, UTC */
	int tz_offset;           /* minutes east of UTC as written in the Date field */
	char *message_id;        /* first msg-id "<...>" of Message-ID */
	char *in_reply_to;       /* msg-ids of In-Reply-To, space separated */
	char *references;        /* msg-ids of References, space separated */
};

struct mime_parser;
struct mime_result;

/* limits may be NULL for the defaults. */
struct mime_parser *mime_parser_new(const struct mime_limits *limits);
/* Feeds the next chunk of the message. Any chunking gives the same result. */
void mime_parser_feed(struct mime_parser *parser, const unsigned char *data, size_t len);
/* Ends the message and returns the result (never NULL); the parser can then only be
 * freed. The result is the caller's. */
struct mime_result *mime_parser_finish(struct mime_parser *parser);
void mime_parser_free(struct mime_parser **parser);

/* Reads fd to its end and parses it. Returns NULL only on a read error (errno set). */
struct mime_result *mime_parse_fd(int fd, const struct mime_limits *limits);
/* Parses a whole message held in memory. */
struct mime_result *mime_parse_buffer(const unsigned char *data, size_t len,
				      const struct mime_limits *limits);

void mime_result_free(struct mime_result **result);

/* The values sent after "ENVELOPE ", "BODYSTRUCTURE " and "BODY " in a FETCH response,
 * NUL-terminated; they may contain literals ({n}CRLF...), so send them as bytes. */
const char *mime_result_envelope(const struct mime_result *result);
const char *mime_result_bodystructure(const struct mime_result *result);
const char *mime_result_body(const struct mime_result *result);
/* RFC822.SIZE: total bytes of the message. */
uint64_t mime_result_size(const struct mime_result *result);
/* True when a limit was hit (the structure is then truncated, but still valid). */
bool mime_result_truncated(const struct mime_result *result);
/* True when a header or body holds 8-bit data or a NUL (hint for BINARY / UTF8=ACCEPT). */
bool mime_result_has_8bit(const struct mime_result *result);
bool mime_result_has_nul(const struct mime_result *result);

const struct mime_sort_fields *mime_result_sort_fields(const struct mime_result *result);

unsigned int mime_result_part_count(const struct mime_result *result);
/* Part by index (0 = the message), NULL past the end. */
const struct mime_part *mime_result_part(const struct mime_result *result, unsigned int idx);
/* The IMAP section number of a part ("" for the message, "1.2", ...) written into buf
 * (NUL-terminated, truncated to size). A message/rfc822 part and the message inside it
 * share their number. */
void mime_result_part_section(const struct mime_result *result, unsigned int idx,
			      char *buf, size_t size);

/* Resolves an IMAP section part number (RFC 3501 §6.4.5), e.g. {1, 2} for "1.2", to a
 * part; n == 0 is the whole message. Returns NULL when there is no such part. */
const struct mime_part *mime_result_find(const struct mime_result *result,
					 const uint32_t *path, size_t n);

enum mime_section_text {
	MIME_SECTION_NONE = 0,   /* BODY[1.2]: the body of the part (BODY[] for n == 0) */
	MIME_SECTION_HEADER,     /* BODY[HEADER], BODY[2.HEADER] (message/rfc822 parts only) */
	MIME_SECTION_TEXT,       /* BODY[TEXT], BODY[2.TEXT] */
	MIME_SECTION_MIME,       /* BODY[1.2.MIME]: the part's own MIME header */
};

/* Byte range of a section in the stored message. Returns false when the section does
 * not exist (the caller then sends an empty string, RFC 3501 §6.4.5). For
 * HEADER.FIELDS use MIME_SECTION_HEADER and filter the bytes with
 * mime_header_filter(). */
bool mime_result_section(const struct mime_result *result, const uint32_t *path, size_t n,
			 enum mime_section_text text, uint64_t *offset_r, uint64_t *size_r);

/* Parses "1.2.3" (digits and dots only) into path[max]; returns the count or -1. */
int mime_section_parse(const char *s, uint32_t *path, size_t max);

/* Writes to out the header fields of header (a header block as stored) whose names are
 * (not == false) or are not (not == true) in names[count], compared case-insensitively,
 * followed by the empty line, as BODY[HEADER.FIELDS (...)] returns them. */
struct buf;
void mime_header_filter(const unsigned char *header, size_t len, const char *const *names,
			size_t count, bool not, struct buf *out);

/* Serialised form for the store (versioned, compact). deserialize returns NULL on bad or
 * unknown-version data. */
void mime_result_serialize(const struct mime_result *result, struct buf *out);
struct mime_result *mime_result_deserialize(const unsigned char *data, size_t len);

/* Streaming Content-Transfer-Encoding decoder for BINARY[]: feed the raw body in chunks,
 * decoded bytes are appended to out. 7bit/8bit/binary copy through. Invalid base64
 * characters are skipped and invalid quoted-printable is passed through, as RFC 2045
 * §6.7 and §6.8 suggest. */
struct mime_decoder {
	enum mime_encoding encoding;
	unsigned int state;
	unsigned int bits;
	unsigned char pending[80];
	size_t pending_len;
};
void mime_decoder_init(struct mime_decoder *dec, enum mime_encoding encoding);
void mime_decoder_feed(struct mime_decoder *dec, const unsigned char *data, size_t len,
		       struct buf *out);
/* Flushes what is pending at the end of the body. */
void mime_decoder_finish(struct mime_decoder *dec, struct buf *out);
/* Maps a Content-Transfer-Encoding value ("base64", ...) to the enum. */
enum mime_encoding mime_encoding_parse(const char *value, size_t len);

/* Decodes RFC 2047 encoded-words in an unstructured header value (after unfolding) to a
 * new UTF-8 string. Undecodable words stay as written; other 8-bit bytes that are not
 * valid UTF-8 are taken as Latin-1 (they are still made valid UTF-8). */
char *mime_decode_header(const char *value, size_t len);

/* Decodes a Content-Type / Content-Disposition parameter value as BODYSTRUCTURE sends
 * it to UTF-8: "name*" values are RFC 2231 charset'language'%XX text; other values get
 * RFC 2047 decoding (common in filenames, though not standard). */
char *mime_param_decode(const char *name, const char *value);

/* --- Full-text index text (text.c; docs/MIME.md "Full-text index") --- */

/* Default cap on the folded text indexed per message (header and body together). */
#define MIME_TEXT_MAX_SIZE (4 * 1024 * 1024)

/* Extracts the searchable text of a message: the decoded header fields of the message
 * ("Name: value" lines) are appended to header; the text of every text/... part
 * (transfer-decoded, converted from its charset to UTF-8) and the header fields and text
 * of attached messages (message/rfc822) are appended to body, pieces separated by a line
 * break. Other parts (images, applications, ...) are skipped. Both are folded with
 * mime_text_fold(). The message is read from fd with pread(); memory stays bounded
 * whatever its size. At most max_size bytes (0 = MIME_TEXT_MAX_SIZE) are produced in
 * total; *truncated_r (may be NULL) tells whether the cap was reached. Returns 0, or -1
 * on a read error (errno set). */
int mime_text_extract(const struct mime_result *result, int fd, size_t max_size,
		      struct buf *header, struct buf *body, bool *truncated_r);

/* Appends to out the folded form of UTF-8 text (invalid bytes read as Latin-1): Unicode
 * NFKC with full case folding, default-ignorable and control characters removed, line
 * breaks as LF, tabs as spaces. The index holds folded text and a search needle is folded the
 * same way, so a substring test is case- and normalisation-insensitive. */
void mime_text_fold(const char *s, size_t len, struct buf *out);

#endif
