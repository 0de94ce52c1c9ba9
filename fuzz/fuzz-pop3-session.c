/* Whole POP3 sessions against the real session code, connection and store: the input is
 * everything a client sends (USER a@example.com / PASS secret or AUTH, STAT, LIST, UIDL,
 * RETR, TOP, DELE, RSET, QUIT ...). See session-harness.c. */
#include <stddef.h>
#include <stdint.h>

#include "pop3/pop3.h"
#include "session-harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session_run(&pop3_proto, NULL, data, size);
	return 0;
}
