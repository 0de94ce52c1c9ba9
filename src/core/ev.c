#include "core/ev.h"

#include "core/buf.h"
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct ev_call {
	ev_fn *fn;
	void *arg;
	struct ev_call *next;
};

struct ev_loop {
	int epfd;
	int wakefd;
	struct ev_io wake_io;
	atomic_bool stop;

	struct ev_timer **heap;
	int heap_len, heap_cap;

	pthread_mutex_t post_lock;
	struct ev_call *posted, *posted_tail;
	struct ev_call *deferred, *deferred_tail;
};

uint64_t ev_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void drain_wakefd(void *arg, int events)
{
	(void)events;
	struct ev_loop *loop = arg;
	uint64_t v;
	while (read(loop->wakefd, &v, sizeof v) > 0)
		;
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = xcalloc(1, sizeof *loop);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->epfd < 0 || loop->wakefd < 0) {
		log_error("event=ev_loop_new error=\"%s\"", strerror(errno));
		abort();
	}
	pthread_mutex_init(&loop->post_lock, NULL);
	ev_io_start(loop, &loop->wake_io, loop->wakefd, EV_READ, drain_wakefd, loop);
	return loop;
}

static void free_calls(struct ev_call *c)
{
	while (c != NULL) {
		struct ev_call *next = c->next;
		free(c);
		c = next;
	}
}

void ev_loop_free(struct ev_loop **loopp)
{
	struct ev_loop *loop = *loopp;
	if (loop == NULL)
		return;
	close(loop->epfd);
	close(loop->wakefd);
	free(loop->heap);
	free_calls(loop->posted);
	free_calls(loop->deferred);
	pthread_mutex_destroy(&loop->post_lock);
	free(loop);
	*loopp = NULL;
}

static uint32_t to_epoll(int events)
{
	return ((events & EV_READ) ? EPOLLIN : 0) | ((events & EV_WRITE) ? EPOLLOUT : 0) |
	       ((events & EV_EXCLUSIVE) ? EPOLLEXCLUSIVE : 0);
}

int ev_io_start(struct ev_loop *loop, struct ev_io *io, int fd, int events, ev_io_cb *cb, void *arg)
{
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	struct epoll_event ee = {.events = to_epoll(events), .data.ptr = io};
	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee);
}

int ev_io_modify(struct ev_loop *loop, struct ev_io *io, int events)
{
	if (io->events == events)
		return 0;
	io->events = events;
	struct epoll_event ee = {.events = to_epoll(events), .data.ptr = io};
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ee);
}

void ev_io_stop(struct ev_loop *loop, struct ev_io *io)
{
	if (io->fd >= 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
}

/* --- timers: a binary min-heap of embedded timer structs --- */

void ev_timer_init(struct ev_timer *t, ev_fn *cb, void *arg)
{
	t->cb = cb;
	t->arg = arg;
	t->when_ms = 0;
	t->heap_index = -1;
}

bool ev_timer_armed(const struct ev_timer *t)
{
	return t->heap_index >= 0;
}

static void heap_set(struct ev_loop *loop, int i, struct ev_timer *t)
{
	loop->heap[i] = t;
	t->heap_index = i;
}

static void heap_up(struct ev_loop *loop, int i)
{
	struct ev_timer *t = loop->heap[i];
	while (i > 0) {
		int parent = (i - 1) / 2;
		if (loop->heap[parent]->when_ms <= t->when_ms)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void heap_down(struct ev_loop *loop, int i)
{
	struct ev_timer *t = loop->heap[i];
	for (;;) {
		int child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    loop->heap[child + 1]->when_ms < loop->heap[child]->when_ms)
			child++;
		if (loop->heap[child]->when_ms >= t->when_ms)
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	int i = t->heap_index;
	if (i < 0)
		return;
	t->heap_index = -1;
	loop->heap_len--;
	if (i == loop->heap_len)
		return;
	heap_set(loop, i, loop->heap[loop->heap_len]);
	heap_down(loop, i);
	heap_up(loop, i);
}

void ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	ev_timer_stop(loop, t);
	t->when_ms = ev_now_ms() + after_ms;
	if (loop->heap_len == loop->heap_cap) {
		loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		loop->heap = xrealloc(loop->heap, (size_t)loop->heap_cap * sizeof *loop->heap);
	}
	heap_set(loop, loop->heap_len++, t);
	heap_up(loop, t->heap_index);
}

static void run_timers(struct ev_loop *loop)
{
	uint64_t now = ev_now_ms();
	while (loop->heap_len > 0 && loop->heap[0]->when_ms <= now) {
		struct ev_timer *t = loop->heap[0];
		ev_timer_stop(loop, t);
		t->cb(t->arg);
	}
}

/* --- posted and deferred calls --- */

static struct ev_call *call_new(ev_fn *fn, void *arg)
{
	struct ev_call *c = xmalloc(sizeof *c);
	c->fn = fn;
	c->arg = arg;
	c->next = NULL;
	return c;
}

void ev_post(struct ev_loop *loop, ev_fn *fn, void *arg)
{
	struct ev_call *c = call_new(fn, arg);
	pthread_mutex_lock(&loop->post_lock);
	if (loop->posted_tail)
		loop->posted_tail->next = c;
	else
		loop->posted = c;
	loop->posted_tail = c;
	pthread_mutex_unlock(&loop->post_lock);
	uint64_t one = 1;
	ssize_t n = write(loop->wakefd, &one, sizeof one);
	(void)n; /* a full counter still wakes the loop */
}

void ev_defer(struct ev_loop *loop, ev_fn *fn, void *arg)
{
	struct ev_call *c = call_new(fn, arg);
	if (loop->deferred_tail)
		loop->deferred_tail->next = c;
	else
		loop->deferred = c;
	loop->deferred_tail = c;
}

static void run_calls(struct ev_call *c)
{
	while (c != NULL) {
		struct ev_call *next = c->next;
		c->fn(c->arg);
		free(c);
		c = next;
	}
}

static void run_posted(struct ev_loop *loop)
{
	pthread_mutex_lock(&loop->post_lock);
	struct ev_call *c = loop->posted;
	loop->posted = loop->posted_tail = NULL;
	pthread_mutex_unlock(&loop->post_lock);
	run_calls(c);
}

static void run_deferred(struct ev_loop *loop)
{
	while (loop->deferred != NULL) {
		struct ev_call *c = loop->deferred;
		loop->deferred = loop->deferred_tail = NULL;
		run_calls(c);
	}
}

void ev_loop_drain(struct ev_loop *loop)
{
	run_posted(loop);
	run_deferred(loop);
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = true;
	uint64_t one = 1;
	ssize_t n = write(loop->wakefd, &one, sizeof one);
	(void)n;
}

void ev_run(struct ev_loop *loop)
{
	struct epoll_event events[128];
	while (!loop->stop) {
		int timeout = -1;
		if (loop->heap_len > 0) {
			uint64_t now = ev_now_ms();
			uint64_t when = loop->heap[0]->when_ms;
			timeout = when <= now ? 0 : (int)(when - now > 60000 ? 60000 : when - now);
		}
		int n = epoll_wait(loop->epfd, events, 128, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("event=epoll_wait error=\"%s\"", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct ev_io *io = events[i].data.ptr;
			int ev = 0;
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				ev |= EV_READ;
			if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				ev |= EV_WRITE;
			/* An earlier callback in this batch may have stopped this watcher. */
			if (io->fd >= 0 && (ev & io->events))
				io->cb(io->arg, ev & io->events);
		}
		/* Frees are deferred past the batch, so no watcher above can be freed early. */
		run_deferred(loop);
		run_posted(loop);
		run_timers(loop);
		run_deferred(loop);
	}
}
