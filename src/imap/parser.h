/* The IMAP command tokenizer (RFC 9051 §9, RFC 3501 §9, LITERAL+/LITERAL- RFC 7888, literal8
 * RFC 3516). A resumable parser that never does I/O: the session feeds it whatever it read and
 * gets back one of the results below; feeding the input in any split gives the same results at
 * the same input positions.
 *
 * A command is "tag SP name [SP arguments] CRLF". The arguments come back as a tree of atoms,
 * strings (quoted or literal), NIL and parenthesised lists. The parser knows no command: it does
 * not check what a command's arguments mean, only that they are well-formed tokens.
 *
 * Lenient on input in one point only: a bare LF ends a line like CRLF does.
 *
 * FETCH sections: "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>" is the one place where the
 * grammar puts a space and a list inside an atom. It comes back as three arguments: the atom
 * "BODY.PEEK[HEADER.FIELDS", the list (FROM TO) and the atom "]<0.100>". For that, an atom
 * starting with "]" may follow a list's ")" with no space. "[" and "]" are otherwise ordinary
 * atom characters (ATOM-CHAR and resp-specials): checking a section's shape is FETCH's job.
 *
 * Not for AUTHENTICATE continuation lines or IDLE's DONE: those are plain lines. */
#ifndef SARN_IMAP_PARSER_H
#define SARN_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* RFC 7888 §4: with LITERAL- a non-synchronising literal may be at most this big. */
#define IMAP_LITERAL_MINUS_MAX 4096
/* A sensible threshold above which APPEND literals go to the literal sink. */
#define IMAP_LITERAL_STREAM_THRESHOLD (64 * 1024)

/* Every limit of the parser. A protocol limit gives the client an error and the session goes
 * on; only max_literal_discard is an abuse limit that ends the connection. */
struct imap_parser_limits {
	/* Bytes of one command outside literal data (all its lines, CRLFs and "{n}" included). */
	size_t max_line_length;
	/* One literal kept in memory. Bigger ones get [TOOBIG] unless a sink streams them. */
	uint64_t max_literal_size;
	/* All literals of one command kept in memory (streamed ones do not count). */
	uint64_t max_literal_total;
	/* A refused non-synchronising literal still arrives; the parser reads and drops up to this
	 * many bytes of it. Above this the error is fatal: close the connection. */
	uint64_t max_literal_discard;
	/* Arguments of one command, counting list members and the lists themselves. */
	size_t max_args;
	/* Nesting of parenthesised lists. */
	unsigned max_list_depth;
};

/* Defaults after login, and the tighter ones before. */
extern const struct imap_parser_limits imap_parser_limits_default;
extern const struct imap_parser_limits imap_parser_limits_preauth;

/* Which literal forms the server advertised (RFC 7888). */
enum imap_literal_mode {
	IMAP_LITERAL_SYNC_ONLY, /* neither: "{n+}" is refused */
	IMAP_LITERAL_MINUS,     /* LITERAL-: "{n+}" only up to IMAP_LITERAL_MINUS_MAX */
	IMAP_LITERAL_PLUS,      /* LITERAL+: "{n+}" of any size the limits allow */
};

enum imap_parse_result {
	/* All input was consumed; feed more. */
	IMAP_PARSE_NEED_MORE,
	/* The tag and command name are known (imap_parser_tag, imap_parser_name). Set per-command
	 * options now (imap_parser_set_literal_sink), then call feed again with the rest. */
	IMAP_PARSE_HAVE_NAME,
	/* A synchronising literal was announced and accepted: send "+ ..." then feed the rest. */
	IMAP_PARSE_NEED_CONTINUATION,
	/* A whole command, literals included, has been parsed: read it with the accessors, then
	 * call imap_parser_reset before feeding the rest of the input. */
	IMAP_PARSE_COMPLETE,
	/* See imap_parser_error. Unless fatal, reply, call imap_parser_reset and feed on. */
	IMAP_PARSE_ERROR,
};

enum imap_parse_error_code {
	IMAP_PARSE_ERR_SYNTAX,           /* BAD */
	IMAP_PARSE_ERR_EMPTY_LINE,       /* an empty line; BAD or ignore it */
	IMAP_PARSE_ERR_LINE_TOO_LONG,    /* BAD (max_line_length) */
	IMAP_PARSE_ERR_TOO_MANY_ARGS,    /* BAD (max_args) */
	IMAP_PARSE_ERR_TOO_DEEP,         /* BAD (max_list_depth) */
	IMAP_PARSE_ERR_LITERAL_TOO_BIG,  /* "NO [TOOBIG]" (RFC 9051 §7.1); BAD [TOOBIG] for LITERAL- */
	IMAP_PARSE_ERR_LITERAL_REFUSED,  /* the literal sink refused it; the sink's owner knows why */
};

struct imap_parse_error {
	enum imap_parse_error_code code;
	const char *reason; /* static English text, fit for the client */
	/* The rest of the command's line is still to come. imap_parser_reset makes the parser drop
	 * it (honouring "{n+}" literals in it) before the next command: the caller does nothing. */
	bool skip_line;
	/* Close the connection (send BYE): the input can no longer be followed. */
	bool fatal;
};

enum imap_arg_type {
	IMAP_ARG_ATOM,
	IMAP_ARG_STRING,   /* quoted or literal; a literal8 may hold NUL bytes */
	IMAP_ARG_NIL,      /* the atom NIL, in any case */
	IMAP_ARG_LIST,
	IMAP_ARG_STREAMED, /* a literal whose bytes went to the literal sink: only its size is here */
};

struct imap_arg {
	enum imap_arg_type type;
	bool literal;  /* STRING or STREAMED sent as a literal */
	bool literal8; /* sent as "~{n}" */
	/* ATOM, STRING and NIL: the bytes, with a NUL after them (not counted in len). NULL for
	 * LIST and STREAMED. */
	const unsigned char *data;
	size_t len; /* bytes in data; for STREAMED the literal's size */
	/* LIST: the members. */
	const struct imap_arg *list;
	size_t list_count;
};

/* What the literal sink is told at IMAP_LITERAL_BEGIN. */
struct imap_literal_info {
	uint64_t size;
	bool literal8;
	bool nonsync;
	unsigned depth; /* 0 for a top-level argument, 1 inside one list, ... */
	size_t index;   /* position among its siblings (top-level: among the arguments) */
};

enum imap_literal_event {
	IMAP_LITERAL_BEGIN, /* info set; return -1 to refuse the literal, 0 to take it */
	IMAP_LITERAL_DATA,  /* data/len: the next bytes (any chunking) */
	IMAP_LITERAL_END,   /* all info->size bytes were delivered */
	/* The literal turned out invalid (a NUL in a non-literal8): drop it. The sink got the
	 * bytes before the NUL; the rest is read and dropped, then the command fails. */
	IMAP_LITERAL_ABORT,
};

/* Return value is only read for BEGIN. Called from inside imap_parser_feed. */
typedef int imap_literal_sink_fn(void *ctx, enum imap_literal_event ev,
				 const struct imap_literal_info *info, const unsigned char *data,
				 size_t len);

struct imap_parser;

/* A parser for one connection, ready for its first command: only synchronising literals, no
 * UTF-8 in quoted strings, no literal8 until the setters below say otherwise. limits is
 * copied. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
/* Frees the parser and sets *parser to NULL; NULL is fine. Never calls the literal sink: a
 * caller that frees the parser in the middle of a streamed literal cleans up its sink itself. */
void imap_parser_free(struct imap_parser **parser);

/* Connection-wide options; call between commands. */
void imap_parser_set_limits(struct imap_parser *parser, const struct imap_parser_limits *limits);
void imap_parser_set_literal_mode(struct imap_parser *parser, enum imap_literal_mode mode);
/* IMAP4rev2 or UTF8=ACCEPT: quoted strings may hold valid UTF-8 (RFC 9051 QUOTED-CHAR).
 * Otherwise 8-bit bytes in a quoted string are a syntax error (RFC 3501). */
void imap_parser_set_utf8(struct imap_parser *parser, bool utf8);
/* BINARY (RFC 3516): "~{n}" literal8 accepted. */
void imap_parser_set_literal8(struct imap_parser *parser, bool allow);

/* Per command (cleared by imap_parser_reset), typically at IMAP_PARSE_HAVE_NAME of an APPEND:
 * a literal bigger than threshold goes to fn instead of memory, and max_literal_size and
 * max_literal_total do not apply to it (fn's BEGIN decides). */
void imap_parser_set_literal_sink(struct imap_parser *parser, uint64_t threshold,
				  imap_literal_sink_fn *fn, void *ctx);

/* Parses from data; *consumed_r tells how many bytes were used. Bytes past *consumed_r belong
 * to later calls (after a reset for COMPLETE and ERROR). After COMPLETE or ERROR, feeding again
 * without a reset consumes nothing and repeats the result. */
enum imap_parse_result imap_parser_feed(struct imap_parser *parser, const unsigned char *data,
					size_t len, size_t *consumed_r);

/* Readies the parser for the next command and frees the last command's arguments. After a
 * non-fatal error with skip_line, the parser first drops the rest of that line. After a fatal
 * error the parser stays failed. */
void imap_parser_reset(struct imap_parser *parser);

/* The tag once it has been read (for a tagged error reply), else NULL. Valid until reset. */
const char *imap_parser_tag(const struct imap_parser *parser);
/* The command name as sent (compare case-insensitively) once read, else NULL. */
const char *imap_parser_name(const struct imap_parser *parser);
/* After COMPLETE: the arguments (after the name). Valid until reset or free. */
const struct imap_arg *imap_parser_args(const struct imap_parser *parser, size_t *count_r);
/* After ERROR. */
const struct imap_parse_error *imap_parser_error(const struct imap_parser *parser);

/* Argument helpers. */
/* The atom's text if arg is an ATOM, else NULL. */
const char *imap_arg_atom(const struct imap_arg *arg);
/* arg is an ATOM equal to word, ignoring ASCII case. */
bool imap_arg_atom_eq(const struct imap_arg *arg, const char *word);
/* RFC 9051 astring: an ATOM, NIL (as its text) or a STRING without NUL bytes; else NULL. */
const char *imap_arg_astring(const struct imap_arg *arg);
/* nstring: NIL gives true with *s_r NULL; a STRING without NUL gives true and its text. */
bool imap_arg_nstring(const struct imap_arg *arg, const char **s_r);

/* Appends a readable, unambiguous rendering of args (for logs and tests): atoms as they are,
 * strings quoted with \" \\ and \xHH escapes, literals prefixed by {n} or ~{n}, streamed
 * literals as {n}<streamed>, lists in parentheses, all separated by one space. */
void imap_args_dump(const struct imap_arg *args, size_t count, struct buf *out);

#endif
