/* A small pool of job threads for blocking work (password hashing). */
#ifndef SARN_CORE_WORKQ_H
#define SARN_CORE_WORKQ_H

#include "core/ev.h"

struct workq;

struct workq *workq_new(int threads);
/* Finishes queued jobs, then joins the threads. */
void workq_free(struct workq **wq);
/* Runs run(arg) on a job thread, then done(arg) on done_loop's thread. */
void workq_submit(struct workq *wq, ev_fn *run, struct ev_loop *done_loop, ev_fn *done, void *arg);

#endif
