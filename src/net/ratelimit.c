#include "net/ratelimit.h"

#include "core/buf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 1024

struct rl_entry {
	char *key;
	uint32_t failures;
	time_t window_start;
	struct rl_entry *next;
};

struct ratelimit {
	pthread_mutex_t lock;
	uint32_t window;
	struct rl_entry *buckets[BUCKETS];
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

struct ratelimit *ratelimit_new(uint32_t window_seconds)
{
	struct ratelimit *rl = xcalloc(1, sizeof *rl);
	pthread_mutex_init(&rl->lock, NULL);
	rl->window = window_seconds;
	return rl;
}

void ratelimit_free(struct ratelimit **rlp)
{
	struct ratelimit *rl = *rlp;
	if (rl == NULL)
		return;
	for (int i = 0; i < BUCKETS; i++) {
		while (rl->buckets[i]) {
			struct rl_entry *e = rl->buckets[i];
			rl->buckets[i] = e->next;
			free(e->key);
			free(e);
		}
	}
	pthread_mutex_destroy(&rl->lock);
	free(rl);
	*rlp = NULL;
}

/* Finds key's entry, dropping expired entries of its bucket on the way. Lock held. */
static struct rl_entry **find(struct ratelimit *rl, const char *key, time_t now)
{
	struct rl_entry **pp = &rl->buckets[hash(key)];
	while (*pp != NULL) {
		struct rl_entry *e = *pp;
		if (now - e->window_start >= (time_t)rl->window) {
			*pp = e->next;
			free(e->key);
			free(e);
			continue;
		}
		if (strcmp(e->key, key) == 0)
			return pp;
		pp = &e->next;
	}
	return pp;
}

bool ratelimit_blocked(struct ratelimit *rl, const char *key, uint32_t max_failures)
{
	pthread_mutex_lock(&rl->lock);
	struct rl_entry *e = *find(rl, key, time(NULL));
	bool blocked = e != NULL && e->failures >= max_failures;
	pthread_mutex_unlock(&rl->lock);
	return blocked;
}

uint32_t ratelimit_fail(struct ratelimit *rl, const char *key)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&rl->lock);
	struct rl_entry **pp = find(rl, key, now);
	if (*pp == NULL) {
		struct rl_entry *e = xcalloc(1, sizeof *e);
		e->key = xstrdup(key);
		e->window_start = now;
		*pp = e;
	}
	uint32_t n = ++(*pp)->failures;
	pthread_mutex_unlock(&rl->lock);
	return n;
}

void ratelimit_clear(struct ratelimit *rl, const char *key)
{
	pthread_mutex_lock(&rl->lock);
	struct rl_entry **pp = find(rl, key, time(NULL));
	if (*pp != NULL) {
		struct rl_entry *e = *pp;
		*pp = e->next;
		free(e->key);
		free(e);
	}
	pthread_mutex_unlock(&rl->lock);
}
