/* Whole IMAP sessions against the real session code, connection and store: the input is
 * everything a client sends (LOGIN a@example.com secret, SELECT, FETCH, APPEND, IDLE, STORE,
 * SEARCH, COPY, EXPUNGE, LOGOUT ...). See session-harness.c. */
#include <stddef.h>
#include <stdint.h>

#include "imap/session/imap.h"
#include "session-harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session_run(&imap_proto, data, size);
	return 0;
}
