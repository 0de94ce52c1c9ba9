#ifndef SARN_SMTP_PRIVATE_H
#define SARN_SMTP_PRIVATE_H

#include "app.h"
#include "core/buf.h"
#include "smtp/delivery.h"
#include "smtp/smtp.h"
#include "smtp/unstuff.h"

#include <stdbool.h>
#include <stdint.h>

struct smtp_rcpt {
	char *address; /* as given (without angle brackets) */
	char *account; /* local account it resolves to */
};

struct smtp {
	struct conn *c;
	struct app *app;
	bool lmtp;
	char *helo;            /* NULL until HELO/EHLO/LHLO */
	bool esmtp;
	bool have_mail;
	char *mail_from;
	uint64_t declared_size;
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
};

void smtp_reply(struct smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_bad_command(struct smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_reset_transaction(struct smtp *s);

/* Parses "FROM:<path> params" / "TO:<path> params" in place (see commands.c). 0 or -1;
 * on success *addr_r is a new string and *params_r points into args. */
int smtp_parse_path(char *args, const char *prefix, char **addr_r, char **params_r);

void smtp_cmd_helo(struct smtp *s, const char *verb, char *args);
void smtp_cmd_mail(struct smtp *s, char *args);
void smtp_cmd_rcpt(struct smtp *s, char *args);
void smtp_cmd_data(struct smtp *s, char *args);
/* Consumes DATA bytes from the input; returns true when the data has ended. */
bool smtp_data_input(struct smtp *s);

#endif
