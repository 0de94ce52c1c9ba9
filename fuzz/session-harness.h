/* Stateful fuzzing of a protocol state machine: a fuzz input is the client side of one whole
 * session, replayed through the real connection code (src/net/conn.c) and event loop over a
 * socketpair, against a real store and accounts database in a temporary directory. */
#ifndef SARN_FUZZ_SESSION_HARNESS_H
#define SARN_FUZZ_SESSION_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"

/* The account the store holds; its password is FUZZ_PASSWORD. */
#define FUZZ_USER "a@example.com"
#define FUZZ_PASSWORD "secret"

enum {
	FUZZ_NEWS_NONE,    /* the session does not wait for changes */
	FUZZ_NEWS_WAITING, /* it waits for changes to the account (IMAP IDLE) */
	FUZZ_NEWS_PENDING, /* it has been told of a change and will announce it shortly */
};

struct fuzz_session_hooks {
	/* Where the session stands with changes made by others; may be NULL. When it is
	 * FUZZ_NEWS_WAITING at the end of the input, the harness changes the account (a
	 * delivery, flags, an expunge) and lets the session announce it before the client
	 * leaves. */
	int (*news)(void *sess);
};

/* Runs one session of proto with data as everything the client sends, then the client
 * half-closes; returns once the connection and everything it started are gone. hooks may
 * be NULL. */
void fuzz_session_run(const struct proto *proto, const struct fuzz_session_hooks *hooks,
		      const uint8_t *data, size_t size);

#endif
