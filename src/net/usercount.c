/* Sessions per account: a small open-addressing table under one mutex (logins and logouts
 * are rare next to the commands in between). */
#include "net/usercount.h"

#include "core/buf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char *account; /* NULL = free */
	uint32_t count;
};

struct usercount {
	pthread_mutex_t lock;
	struct entry *slots;
	size_t cap, used; /* used counts non-NULL slots, tombstones included */
};

struct usercount *usercount_new(void)
{
	struct usercount *uc = xcalloc(1, sizeof *uc);
	pthread_mutex_init(&uc->lock, NULL);
	uc->cap = 64;
	uc->slots = xcalloc(uc->cap, sizeof *uc->slots);
	return uc;
}

void usercount_free(struct usercount **ucp)
{
	struct usercount *uc = *ucp;
	if (uc == NULL)
		return;
	for (size_t i = 0; i < uc->cap; i++)
		free(uc->slots[i].account);
	free(uc->slots);
	pthread_mutex_destroy(&uc->lock);
	free(uc);
	*ucp = NULL;
}

static size_t hash(const char *s)
{
	size_t h = 1469598103934665603u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

/* The slot holding account, or the free slot where it would go. */
static struct entry *find(struct usercount *uc, const char *account)
{
	for (size_t i = hash(account) & (uc->cap - 1);; i = (i + 1) & (uc->cap - 1)) {
		struct entry *e = &uc->slots[i];
		if (e->account == NULL || strcmp(e->account, account) == 0)
			return e;
	}
}

/* Rebuilds the table without accounts whose count fell to zero, growing it if needed. */
static void rehash(struct usercount *uc)
{
	struct entry *old = uc->slots;
	size_t oldcap = uc->cap, live = 0;
	for (size_t i = 0; i < oldcap; i++)
		live += old[i].account != NULL && old[i].count > 0;
	while (live * 2 >= uc->cap)
		uc->cap *= 2;
	uc->slots = xcalloc(uc->cap, sizeof *uc->slots);
	uc->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].account == NULL)
			continue;
		if (old[i].count == 0) {
			free(old[i].account);
			continue;
		}
		*find(uc, old[i].account) = old[i];
		uc->used++;
	}
	free(old);
}

bool usercount_acquire(struct usercount *uc, const char *account, uint32_t max)
{
	pthread_mutex_lock(&uc->lock);
	if ((uc->used + 1) * 2 > uc->cap)
		rehash(uc);
	struct entry *e = find(uc, account);
	bool ok = e->account == NULL || e->count < max;
	if (ok) {
		if (e->account == NULL) {
			e->account = xstrdup(account);
			uc->used++;
		}
		e->count++;
	}
	pthread_mutex_unlock(&uc->lock);
	return ok;
}

void usercount_release(struct usercount *uc, const char *account)
{
	pthread_mutex_lock(&uc->lock);
	struct entry *e = find(uc, account);
	if (e->account != NULL && e->count > 0)
		e->count--;
	pthread_mutex_unlock(&uc->lock);
}
