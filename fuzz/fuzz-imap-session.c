/* Whole IMAP sessions against the real session code, connection and store: the input is
 * everything a client sends (LOGIN a@example.com secret, SELECT, FETCH, APPEND, IDLE, STORE,
 * SEARCH, COPY, EXPUNGE, LOGOUT ...). A session still in IDLE when its input ends sees a
 * change to the account made from outside (a delivery, flags, an expunge) and announces it.
 * See session-harness.c. */
#include <stddef.h>
#include <stdint.h>

#include "imap/session/imap-private.h"
#include "session-harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int news(void *sess)
{
	const struct imap *s = sess;
	if (!s->idling)
		return FUZZ_NEWS_NONE;
	return ev_timer_armed(&s->settle) ? FUZZ_NEWS_PENDING : FUZZ_NEWS_WAITING;
}

static const struct fuzz_session_hooks hooks = {.news = news};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session_run(&imap_proto, &hooks, data, size);
	return 0;
}
