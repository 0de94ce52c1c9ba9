#include "core/workq.h"

#include "core/buf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
	ev_fn *run;
	ev_fn *done;
	struct ev_loop *done_loop;
	void *arg;
	struct job *next;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stopping;
	int nthreads;
	pthread_t *threads;
};

static void *worker_main(void *arg)
{
	struct workq *wq = arg;
	for (;;) {
		pthread_mutex_lock(&wq->lock);
		while (wq->head == NULL && !wq->stopping)
			pthread_cond_wait(&wq->cond, &wq->lock);
		struct job *j = wq->head;
		if (j == NULL) {
			pthread_mutex_unlock(&wq->lock);
			return NULL;
		}
		wq->head = j->next;
		if (wq->head == NULL)
			wq->tail = NULL;
		pthread_mutex_unlock(&wq->lock);
		j->run(j->arg);
		if (j->done != NULL)
			ev_post(j->done_loop, j->done, j->arg);
		free(j);
	}
}

struct workq *workq_new(int threads)
{
	struct workq *wq = xcalloc(1, sizeof *wq);
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->nthreads = threads < 1 ? 1 : threads;
	wq->threads = xcalloc((size_t)wq->nthreads, sizeof *wq->threads);
	for (int i = 0; i < wq->nthreads; i++)
		pthread_create(&wq->threads[i], NULL, worker_main, wq);
	return wq;
}

void workq_free(struct workq **wqp)
{
	struct workq *wq = *wqp;
	if (wq == NULL)
		return;
	pthread_mutex_lock(&wq->lock);
	wq->stopping = true;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (int i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	free(wq->threads);
	pthread_mutex_destroy(&wq->lock);
	pthread_cond_destroy(&wq->cond);
	free(wq);
	*wqp = NULL;
}

void workq_submit(struct workq *wq, ev_fn *run, struct ev_loop *done_loop, ev_fn *done, void *arg)
{
	struct job *j = xcalloc(1, sizeof *j);
	j->run = run;
	j->done = done;
	j->done_loop = done_loop;
	j->arg = arg;
	pthread_mutex_lock(&wq->lock);
	if (wq->tail)
		wq->tail->next = j;
	else
		wq->head = j;
	wq->tail = j;
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}
