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

/* Runs one session of proto with data as everything the client sends, then the client
 * half-closes; returns once the connection and everything it started are gone. */
void fuzz_session_run(const struct proto *proto, const uint8_t *data, size_t size);

#endif
