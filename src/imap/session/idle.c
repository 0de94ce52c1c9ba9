/* IDLE (RFC 2177, RFC 9051 §6.3.13): changes by anyone are pushed while the client waits.
 *
 * Each worker thread has one hub: a store watcher (one inotify fd however many sessions idle)
 * and the list of its idling sessions. A commit to an account, from any thread or process,
 * wakes the hub, which wakes the sessions of that account. */
#include "imap/session/imap-private.h"

#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <strings.h>

/* Changes often come in bursts (a client appends, flags and expunges in a row): waiting a
 * moment announces them together, expunges before the new EXISTS, which some clients (neomutt)
 * need to keep their sequence numbers right. */
#define IDLE_SETTLE_MS 30

struct idle_hub {
	struct store_watcher *watcher;
	struct ev_loop *loop;
	struct ev_io io;
	struct imap **sessions; /* idling on this thread */
	size_t n, cap;
};

/* Sessions never leave their worker thread, so a hub per thread needs no lock. It goes away
 * with its last idling session. */
static _Thread_local struct idle_hub *hub;

static void announce_changes(void *arg)
{
	struct imap *s = arg;
	if (!s->idling || conn_closed(s->c) || s->view == NULL)
		return;
	imap_view_sync(s, true);
	conn_flush(s->c);
}

static void wake(void *ctx, int wd)
{
	struct idle_hub *h = ctx;
	for (size_t i = 0; i < h->n; i++) {
		struct imap *s = h->sessions[i];
		if (s->watch_wd == wd && !ev_timer_armed(&s->settle))
			ev_timer_start(h->loop, &s->settle, IDLE_SETTLE_MS);
	}
}

static void on_watcher(void *arg, int events)
{
	(void)events;
	struct idle_hub *h = arg;
	store_watcher_read(h->watcher, wake, h);
}

static struct idle_hub *hub_get(struct ev_loop *loop)
{
	if (hub != NULL)
		return hub;
	struct idle_hub *h = xcalloc(1, sizeof *h);
	if (store_watcher_new(&h->watcher) != STORE_OK) {
		free(h);
		return NULL;
	}
	h->loop = loop;
	ev_io_start(loop, &h->io, store_watcher_fd(h->watcher), EV_READ, on_watcher, h);
	hub = h;
	return h;
}

static void hub_free(struct idle_hub *h)
{
	ev_io_stop(h->loop, &h->io);
	store_watcher_free(&h->watcher);
	free(h->sessions);
	free(h);
	hub = NULL;
}

static void hub_leave(struct imap *s)
{
	struct idle_hub *h = hub;
	bool wd_in_use = false;
	for (size_t i = 0; i < h->n; i++) {
		if (h->sessions[i] == s)
			h->sessions[i--] = h->sessions[--h->n];
		else if (h->sessions[i]->watch_wd == s->watch_wd)
			wd_in_use = true;
	}
	if (!wd_in_use)
		store_watcher_remove(h->watcher, s->watch_wd);
	if (h->n == 0)
		hub_free(h);
}

void imap_cmd_idle(struct imap *s, const char *tag, const struct imap_arg *args, size_t nargs)
{
	(void)args;
	if (nargs != 0) {
		imap_bad(s, tag, "IDLE takes no arguments");
		return;
	}
	struct idle_hub *h = hub_get(conn_loop(s->c));
	if (h == NULL || store_watcher_add(h->watcher, s->acct, &s->watch_wd) != STORE_OK) {
		if (h != NULL && h->n == 0)
			hub_free(h);
		imap_no(s, tag, "[UNAVAILABLE] Cannot watch the mailbox for changes");
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->sessions = xrealloc(h->sessions, h->cap * sizeof *h->sessions);
	}
	h->sessions[h->n++] = s;
	ev_timer_init(&s->settle, announce_changes, s);
	free(s->tag);
	s->tag = xstrdup(tag);
	s->idling = true;
	imap_send(s, "+ idling");
	if (s->view != NULL)
		imap_view_sync(s, true);
	store_account_trim(s->acct); /* an idle session keeps only its view */
}

void imap_idle_stop(struct imap *s)
{
	if (!s->idling)
		return;
	ev_timer_stop(conn_loop(s->c), &s->settle);
	hub_leave(s);
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
