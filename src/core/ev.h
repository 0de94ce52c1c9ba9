/* Event loop: one per worker thread, epoll-based, with timers and a cross-thread post queue. */
#ifndef SARN_CORE_EV_H
#define SARN_CORE_EV_H

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;

enum {
	EV_READ = 1,
	EV_WRITE = 2,
	EV_EXCLUSIVE = 4, /* one fd watched by several loops: wake only one (EPOLLEXCLUSIVE) */
};

typedef void ev_io_cb(void *arg, int events);
typedef void ev_fn(void *arg);

/* An fd watcher; the owner embeds it and keeps it alive while registered. */
struct ev_io {
	int fd;
	int events;
	ev_io_cb *cb;
	void *arg;
};

/* A one-shot timer; the owner embeds it. heap_index is the loop's business. */
struct ev_timer {
	uint64_t when_ms;
	ev_fn *cb;
	void *arg;
	int heap_index; /* -1 when not armed */
};

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop **loop);

int ev_io_start(struct ev_loop *loop, struct ev_io *io, int fd, int events, ev_io_cb *cb, void *arg);
int ev_io_modify(struct ev_loop *loop, struct ev_io *io, int events);
void ev_io_stop(struct ev_loop *loop, struct ev_io *io);

void ev_timer_init(struct ev_timer *t, ev_fn *cb, void *arg);
void ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
bool ev_timer_armed(const struct ev_timer *t);

/* Runs fn(arg) on the loop's thread at its next iteration. Safe from any thread. */
void ev_post(struct ev_loop *loop, ev_fn *fn, void *arg);
/* Runs fn(arg) after the current batch of events: the place for deferred frees. */
void ev_defer(struct ev_loop *loop, ev_fn *fn, void *arg);

/* Runs the posted and deferred calls still queued on a stopped loop (from the thread that
 * owns it now), so their owners can clean up before ev_loop_free. */
void ev_loop_drain(struct ev_loop *loop);

/* Runs until ev_loop_stop is called (from any thread). */
void ev_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);

uint64_t ev_now_ms(void);

#endif
