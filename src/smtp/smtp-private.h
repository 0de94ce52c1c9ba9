#ifndef SARN_SMTP_PRIVATE_H
#define SARN_SMTP_PRIVATE_H

#include "app.h"
#include "core/buf.h"
#include "smtp/delivery.h"
#include "smtp/smtp.h"
#include "smtp/unstuff.h"

#include <stdbool.h>
#include <stdint.h>

/* DSN NOTIFY (RFC 3461 §4.1); none set = the default, FAILURE and DELAY. */
enum {
	DSN_NOTIFY_NEVER = 1 << 0,
	DSN_NOTIFY_SUCCESS = 1 << 1,
	DSN_NOTIFY_FAILURE = 1 << 2,
	DSN_NOTIFY_DELAY = 1 << 3,
};

struct smtp_rcpt {
	char *address; /* as given (without angle brackets) */
	char *account; /* local account it resolves to; NULL = remote (submission only) */
	unsigned notify;
	char *orcpt;   /* DSN ORCPT ("rfc822;addr" decoded), NULL if not given */
};

enum sasl_state { SASL_IDLE, SASL_WAIT_PLAIN, SASL_WAIT_USER, SASL_WAIT_PASS, SASL_CHECKING };

struct smtp {
	struct conn *c;
	struct app *app;
	bool lmtp;
	bool submission;       /* RFC 6409: AUTH required, any destination, header fix-ups */
	char *account;         /* authenticated account (submission) */
	enum sasl_state sasl;
	char *sasl_user;       /* AUTH LOGIN: the user name until the password comes */
	char *helo;            /* NULL until HELO/EHLO/LHLO */
	bool esmtp;
	bool have_mail;
	char *mail_from;
	uint64_t declared_size;
	bool smtputf8;         /* MAIL ... SMTPUTF8 (RFC 6531) */
	bool ret_hdrs;         /* MAIL ... RET=HDRS (RFC 3461) */
	char *envid;           /* MAIL ... ENVID=, decoded */
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	uint32_t bad_commands;
	struct buf line;
	/* DATA */
	bool in_data;
	bool delivering;       /* a delivery job has the message; input waits */
	struct store_blob *blob;
	enum store_err data_err;
	uint64_t data_size;
	bool data_too_big;
	struct unstuff unstuff;
	/* BDAT (RFC 3030) */
	bool bdat;             /* a BDAT transaction is open (DATA is then refused) */
	uint64_t chunk_left;   /* octets of the current chunk still to come */
	bool chunk_last;
	bool chunk_discard;    /* the chunk was refused: its octets are read and dropped */
};

void smtp_reply(struct smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_bad_command(struct smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_reset_transaction(struct smtp *s);

/* Parses "FROM:<path> params" / "TO:<path> params" in place (see commands.c). 0 or -1;
 * on success *addr_r is a new string and *params_r points into args. */
int smtp_parse_path(char *args, const char *prefix, char **addr_r, char **params_r);
/* The reverse: "local@domain" as it goes between angle brackets, the local part quoted when
 * it is not a dot-atom. */
void smtp_format_path(const char *address, struct buf *out);

void smtp_cmd_helo(struct smtp *s, const char *verb, char *args);
void smtp_cmd_mail(struct smtp *s, char *args);
void smtp_cmd_rcpt(struct smtp *s, char *args);
void smtp_cmd_data(struct smtp *s, char *args);
void smtp_cmd_bdat(struct smtp *s, char *args);
/* Consumes BDAT chunk bytes; returns true when the chunk is complete. */
bool smtp_chunk_input(struct smtp *s);
void smtp_cmd_auth(struct smtp *s, char *args);
/* A line of a SASL exchange (AUTH in progress). */
void smtp_sasl_input(struct smtp *s, char *line);
/* "xtext" (RFC 3461 §4): decodes "+XX" escapes in place; -1 if malformed. */
int smtp_xtext_decode(char *s);
/* Consumes DATA bytes from the input; returns true when the data has ended. */
bool smtp_data_input(struct smtp *s);

#endif
