/* IDLE (RFC 2177, RFC 9051 §6.3.13): changes by anyone are pushed while the client waits.
 * The store's watch fd wakes the session after any commit to the account, from any thread
 * or process. */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <strings.h>

static void on_change(void *arg, int events)
{
	struct imap *s = arg;
	(void)events;
	store_watch_drain(s->watch_fd);
	if (!s->idling || conn_closed(s->c) || s->view == NULL)
		return;
	imap_view_sync(s, true);
	conn_flush(s->c);
}

void imap_cmd_idle(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "IDLE takes no arguments");
		return;
	}
	if (s->watch_fd < 0 && store_watch_open(s->acct, &s->watch_fd) != STORE_OK) {
		imap_no(s, tag, "[UNAVAILABLE] Cannot watch the mailbox for changes");
		return;
	}
	store_watch_drain(s->watch_fd);
	ev_io_start(conn_loop(s->c), &s->watch_io, s->watch_fd, EV_READ, on_change, s);
	s->watch_started = true;
	free(s->tag);
	s->tag = xstrdup(tag);
	s->idling = true;
	imap_send(s, "+ idling");
	if (s->view != NULL)
		imap_view_sync(s, true);
}

void imap_idle_stop(struct imap *s)
{
	if (s->watch_started) {
		ev_io_stop(conn_loop(s->c), &s->watch_io);
		s->watch_started = false;
	}
	s->idling = false;
}

void imap_idle_line(struct imap *s, char *line)
{
	imap_idle_stop(s);
	char *tag = s->tag;
	s->tag = NULL;
	if (strcasecmp(line, "DONE") == 0)
		imap_ok(s, tag, "IDLE terminated");
	else
		imap_bad(s, tag, "Expected DONE to end IDLE");
	free(tag);
}
