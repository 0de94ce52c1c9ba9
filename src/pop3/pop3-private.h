#ifndef SARN_POP3_PRIVATE_H
#define SARN_POP3_PRIVATE_H

#include "app.h"
#include "core/buf.h"
#include "pop3/pop3.h"

#include <stdbool.h>
#include <stdint.h>

enum pop3_state {
	POP3_AUTHORIZATION = 1,
	POP3_TRANSACTION = 2,
	POP3_LOGIN_PENDING = 4, /* a password check is running */
};

enum pop3_sasl {
	SASL_STEP_NONE,
	SASL_STEP_PLAIN,      /* waiting for the PLAIN response */
	SASL_STEP_LOGIN_USER, /* waiting for the LOGIN user name */
	SASL_STEP_LOGIN_PASS, /* waiting for the LOGIN password */
};

struct pop3_msg {
	uint32_t uid;
	uint64_t size; /* octets RETR sends before dot-stuffing */
	bool deleted;
	bool already_downloaded; /* downloaded in an earlier session */
	bool downloaded;         /* first complete download in this session, not yet recorded */
};

/* A RETR or TOP being streamed from the message file. */
struct pop3_retr {
	int fd;
	uint32_t msgno;
	bool active;
	bool whole;          /* RETR, not TOP: counts as a download */
	bool bol;            /* at the beginning of a line */
	bool in_header;
	bool last_was_crlf;  /* the message so far ends with CRLF */
	bool header_blank;   /* the current line is empty so far (header end check) */
	unsigned char prev_byte; /* last byte of the previous chunk */
	uint64_t body_lines; /* TOP: body lines still to send */
};

struct pop3 {
	struct conn *c;
	struct app *app;
	enum pop3_state state;
	enum pop3_sasl sasl;
	struct buf line;
	char *user;     /* from USER or AUTH LOGIN, until login */
	char *account;  /* canonical account once logged in */
	bool counted;   /* holds one of the account's app->user_sessions */
	struct store_account *acct;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t nmsgs;
	int retention_days;
	uint32_t bad_commands;
	struct pop3_retr retr;
};

void pop3_reply_ok(struct pop3 *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pop3_reply_err(struct pop3 *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts a bad command; closes the connection past the limit. */
void pop3_bad_command(struct pop3 *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Commands, by family. args is the rest of the line (may be empty, never NULL). */
void pop3_cmd_capa(struct pop3 *p, char *args);
void pop3_cmd_stls(struct pop3 *p, char *args);
void pop3_cmd_user(struct pop3 *p, char *args);
void pop3_cmd_pass(struct pop3 *p, char *args);
void pop3_cmd_auth(struct pop3 *p, char *args);
void pop3_sasl_continue(struct pop3 *p, char *line);
void pop3_cmd_quit(struct pop3 *p, char *args);
void pop3_cmd_stat(struct pop3 *p, char *args);
void pop3_cmd_list(struct pop3 *p, char *args);
void pop3_cmd_uidl(struct pop3 *p, char *args);
void pop3_cmd_dele(struct pop3 *p, char *args);
void pop3_cmd_rset(struct pop3 *p, char *args);
void pop3_cmd_noop(struct pop3 *p, char *args);
void pop3_cmd_retr(struct pop3 *p, char *args);
void pop3_cmd_top(struct pop3 *p, char *args);

/* Parses a message-number argument; replies and returns NULL if bad or deleted. */
struct pop3_msg *pop3_arg_single(struct pop3 *p, const char *args, uint32_t *msgno_r);
/* Copies message bytes to out with dot-stuffing; for TOP stops after the requested body
 * lines and returns false. Resumable across chunks (state in r). */
bool pop3_stuff(struct pop3_retr *r, const unsigned char *in, size_t len, struct buf *out);
/* Streams more of the current RETR/TOP; returns true when it has finished. */
bool pop3_retr_continue(struct pop3 *p);
void pop3_retr_abort(struct pop3 *p);
/* Records this session's first downloads (for retention) in one transaction. */
void pop3_record_downloads(struct pop3 *p);
/* Processes pending command lines. */
void pop3_input(void *sess);

#endif
