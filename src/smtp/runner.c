#include "smtp/runner.h"

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/notice.h"
#include "smtp/outbound.h"
#include "smtp/queue.h"
#include "smtp/smtp-private.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCAN_INTERVAL_MS 1000
#define ORPHAN_SWEEP_SECONDS 3600
#define IDLE_SESSION_SECONDS 2 /* an unused outbound session is ended after this */

struct domain_slot {
	char *domain;
	unsigned active;
	char **waiting;  /* ids of due messages parked until a delivery to the domain ends */
	size_t nwaiting;
};

struct queue_runner {
	struct store *store;
	struct auth_db *auth;
	struct resolver *resolver;
	SSL_CTX *tls;
	struct outbound_pool *pool;
	pthread_t scheduler;
	pthread_t *workers;
	size_t nworkers;
	pthread_mutex_t lock;
	pthread_cond_t wake_scheduler;
	pthread_cond_t wake_workers;
	bool stopping;
	char **ready; /* ids for the delivery threads, first come first served */
	size_t nready;
	char **busy; /* ids queued or being delivered */
	size_t nbusy;
	struct domain_slot *slots;
	size_t nslots;
};

static bool busy_has(struct queue_runner *r, const char *id)
{
	for (size_t i = 0; i < r->nbusy; i++)
		if (strcmp(r->busy[i], id) == 0)
			return true;
	return false;
}

static void busy_remove(struct queue_runner *r, const char *id)
{
	for (size_t i = 0; i < r->nbusy; i++)
		if (strcmp(r->busy[i], id) == 0) {
			free(r->busy[i]);
			r->busy[i] = r->busy[--r->nbusy];
			return;
		}
}

/* Gives a due message to the delivery threads unless it is already theirs. Under r->lock. */
/* Under r->lock; takes id. */
static void push_ready(struct queue_runner *r, char *id)
{
	r->ready = xrealloc(r->ready, (r->nready + 1) * sizeof *r->ready);
	r->ready[r->nready++] = id;
	pthread_cond_signal(&r->wake_workers);
}

static void hand_out(struct queue_runner *r, const char *id)
{
	if (busy_has(r, id))
		return;
	r->busy = xrealloc(r->busy, (r->nbusy + 1) * sizeof *r->busy);
	r->busy[r->nbusy++] = xstrdup(id);
	push_ready(r, xstrdup(id));
}

static bool slot_acquire(struct queue_runner *r, const char *domain, unsigned limit)
{
	pthread_mutex_lock(&r->lock);
	struct domain_slot *s = NULL;
	for (size_t i = 0; i < r->nslots && s == NULL; i++)
		if (strcmp(r->slots[i].domain, domain) == 0)
			s = &r->slots[i];
	if (s == NULL) {
		r->slots = xrealloc(r->slots, (r->nslots + 1) * sizeof *r->slots);
		s = &r->slots[r->nslots++];
		*s = (struct domain_slot){.domain = xstrdup(domain)};
	}
	bool ok = s->active < limit;
	if (ok)
		s->active++;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

static void slot_release(struct queue_runner *r, const char *domain)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->nslots; i++) {
		struct domain_slot *sl = &r->slots[i];
		if (strcmp(sl->domain, domain) != 0)
			continue;
		sl->active--;
		if (sl->nwaiting > 0) {
			/* The next parked message goes out now; it stays in r->busy. */
			push_ready(r, sl->waiting[0]);
			memmove(sl->waiting, sl->waiting + 1, --sl->nwaiting * sizeof *sl->waiting);
		}
		if (sl->active == 0 && sl->nwaiting == 0) {
			free(sl->domain);
			free(sl->waiting);
			*sl = r->slots[--r->nslots];
		}
		break;
	}
	pthread_mutex_unlock(&r->lock);
}

/* A message that found its domain at the limit waits in memory (no file is rewritten) until
 * a delivery to that domain ends. Takes id; under r->lock. */
static void park(struct queue_runner *r, const char *domain, char *id)
{
	for (size_t i = 0; i < r->nslots; i++) {
		struct domain_slot *sl = &r->slots[i];
		if (strcmp(sl->domain, domain) == 0 && sl->active > 0) {
			sl->waiting = xrealloc(sl->waiting, (sl->nwaiting + 1) * sizeof *sl->waiting);
			sl->waiting[sl->nwaiting++] = id;
			return;
		}
	}
	/* The deliveries ended meanwhile: out again at once. */
	push_ready(r, id);
}

static char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	char *d = xstrdup(at ? at + 1 : "");
	ascii_lower(d);
	return d;
}

/* Whether the sender wants a notice of this kind for the recipient (RFC 3461 §4.1: without
 * NOTIFY, failures and delays are reported). */
static bool wants(const struct queue_rcpt *rc, unsigned kind)
{
	if (rc->notify == 0)
		return kind != DSN_NOTIFY_SUCCESS;
	return (rc->notify & kind) != 0;
}

/* Sends one notice for the recipients in state `state` not yet reported, and marks them. */
static void report(struct queue_runner *r, const struct config *cfg, struct queue_msg *m,
		   const char *msg_path, enum queue_rcpt_state state, enum notice_action action,
		   unsigned kind)
{
	struct notice_rcpt *list = xcalloc(m->nrcpts, sizeof *list);
	size_t n = 0;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *rc = &m->rcpts[i];
		bool due = action == NOTICE_DELAYED ? rc->state == QUEUE_PENDING
						    : rc->state == state && !rc->reported;
		if (!due)
			continue;
		if (action != NOTICE_DELAYED)
			rc->reported = true;
		if (!wants(rc, kind))
			continue;
		list[n++] = (struct notice_rcpt){rc->address, rc->orcpt, action,
						 rc->status[0] ? rc->status : "4.0.0", rc->reply};
	}
	if (n > 0 && m->from[0] != '\0') {
		struct notice note = {
			.to = m->from,
			.envid = m->envid,
			.headers_only = action != NOTICE_FAILED || m->ret_hdrs,
			.msg_path = msg_path,
			.arrival = m->created,
			.retry_until = m->created + cfg->queue_expire,
			.rcpts = list,
			.nrcpts = n,
		};
		notice_send(r->store, r->auth, cfg, &note);
	}
	free(list);
}

/* Returns the domain the message must wait for (caller frees), or NULL. */
static char *deliver_message(struct queue_runner *r, struct queue_msg *m, int fd)
{
	const struct config *cfg = config_current();
	struct outbound o = {.cfg = cfg, .resolver = r->resolver, .tls = r->tls, .pool = r->pool};
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	int64_t now = (int64_t)time(NULL);
	bool tried = false;
	char *busy_domain = NULL;
	struct outbound_rcpt *out = xcalloc(m->nrcpts, sizeof *out);
	bool *done = xcalloc(m->nrcpts, sizeof *done);
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].state != QUEUE_PENDING || done[i])
			continue;
		char *domain = domain_of(m->rcpts[i].address);
		size_t n = 0;
		for (size_t k = i; k < m->nrcpts; k++) {
			if (m->rcpts[k].state != QUEUE_PENDING || done[k])
				continue;
			char *dk = domain_of(m->rcpts[k].address);
			if (strcmp(dk, domain) == 0) {
				done[k] = true;
				out[n++] = (struct outbound_rcpt){.rcpt = &m->rcpts[k]};
			}
			free(dk);
		}
		if (!slot_acquire(r, domain, cfg->max_per_domain)) {
			if (busy_domain == NULL)
				busy_domain = domain;
			else
				free(domain);
			continue;
		}
		tried = true;
		outbound_deliver(&o, m, fd, (uint64_t)st.st_size, domain, out, n);
		slot_release(r, domain);
		for (size_t k = 0; k < n; k++) {
			struct queue_rcpt *rc = out[k].rcpt;
			if (out[k].result == OUTBOUND_SENT) {
				rc->state = QUEUE_SENT;
				/* The next hop reports success itself when it took the request. */
				rc->reported = out[k].next_hop_notifies;
			} else if (out[k].result == OUTBOUND_PERM) {
				rc->state = QUEUE_FAILED;
			}
			log_info("event=delivery id=%s rcpt=\"%s\" result=%s status=%s", m->id, rc->address,
				 rc->state == QUEUE_SENT ? "sent" : rc->state == QUEUE_FAILED ? "failed" : "deferred",
				 rc->status);
		}
		free(domain);
	}
	free(out);
	free(done);

	char *msg_path = xasprintf("%s/queue/%s.msg", cfg->data_dir, m->id);
	bool pending = false;
	for (size_t i = 0; i < m->nrcpts; i++)
		pending |= m->rcpts[i].state == QUEUE_PENDING;
	if (pending && now >= m->created + (int64_t)cfg->queue_expire) {
		for (size_t i = 0; i < m->nrcpts; i++) {
			struct queue_rcpt *rc = &m->rcpts[i];
			if (rc->state != QUEUE_PENDING)
				continue;
			rc->state = QUEUE_FAILED;
			snprintf(rc->status, sizeof rc->status, "4.4.7");
			char *why = xasprintf("Delivery time expired; last error: %s",
					      rc->reply ? rc->reply : "none");
			free(rc->reply);
			rc->reply = why;
		}
		pending = false;
		log_info("event=expired id=%s", m->id);
	}
	report(r, cfg, m, msg_path, QUEUE_FAILED, NOTICE_FAILED, DSN_NOTIFY_FAILURE);
	report(r, cfg, m, msg_path, QUEUE_SENT, NOTICE_RELAYED, DSN_NOTIFY_SUCCESS);
	if (pending && tried) {
		m->attempts++;
		uint64_t delay = cfg->retry_min;
		for (uint32_t a = 1; a < m->attempts && delay < cfg->retry_max; a++)
			delay *= 2;
		if (delay > cfg->retry_max)
			delay = cfg->retry_max;
		m->next_attempt = now + (int64_t)delay;
		if (cfg->delay_warning > 0 && !m->warned && now >= m->created + (int64_t)cfg->delay_warning) {
			report(r, cfg, m, msg_path, QUEUE_PENDING, NOTICE_DELAYED, DSN_NOTIFY_DELAY);
			m->warned = true;
		}
	}
	if (!pending)
		queue_remove(cfg->data_dir, m->id);
	else if (tried || busy_domain == NULL)
		queue_save(cfg->data_dir, m);
	free(msg_path);
	if (!pending) {
		free(busy_domain);
		busy_domain = NULL;
	}
	return busy_domain;
}

static void *worker_main(void *arg)
{
	struct queue_runner *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (r->nready == 0 && !r->stopping)
			pthread_cond_wait(&r->wake_workers, &r->lock);
		if (r->stopping)
			break;
		char *id = r->ready[0];
		memmove(r->ready, r->ready + 1, --r->nready * sizeof *r->ready);
		pthread_mutex_unlock(&r->lock);

		const char *data_dir = config_current()->data_dir;
		int fd = queue_lock(data_dir, id);
		struct queue_msg m;
		char *wait_for = NULL;
		if (fd >= 0 && queue_load(data_dir, id, &m) == 0) {
			wait_for = deliver_message(r, &m, fd);
			queue_msg_free(&m);
		} else if (fd >= 0) {
			log_error("event=queue_load id=%s error=\"%s\"", id, strerror(errno));
		}
		if (fd >= 0)
			close(fd);

		pthread_mutex_lock(&r->lock);
		if (wait_for != NULL) {
			park(r, wait_for, id);
		} else {
			busy_remove(r, id);
			free(id);
		}
		free(wait_for);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* next_attempt per message, so a scan reads only the .env files that changed. */
struct scan_entry {
	char id[QUEUE_ID_LEN + 1];
	struct timespec mtime;
	int64_t next;
};

static void scan(struct queue_runner *r, struct scan_entry **cache, size_t *ncache)
{
	const char *data_dir = config_current()->data_dir;
	char **ids;
	size_t n;
	if (queue_ids(data_dir, &ids, &n) < 0)
		return;
	struct scan_entry *fresh = n ? xcalloc(n, sizeof *fresh) : NULL;
	int64_t now = (int64_t)time(NULL);
	size_t old = 0;
	for (size_t i = 0; i < n; i++) {
		struct scan_entry *e = &fresh[i];
		memcpy(e->id, ids[i], QUEUE_ID_LEN + 1);
		char *path = xasprintf("%s/queue/%s.env", data_dir, ids[i]);
		struct stat st;
		int ok = stat(path, &st);
		free(path);
		if (ok < 0) {
			e->next = INT64_MAX;
			continue;
		}
		e->mtime = st.st_mtim;
		/* Both lists are sorted by id. */
		while (old < *ncache && strcmp((*cache)[old].id, ids[i]) < 0)
			old++;
		if (old < *ncache && strcmp((*cache)[old].id, ids[i]) == 0 &&
		    (*cache)[old].mtime.tv_sec == st.st_mtim.tv_sec &&
		    (*cache)[old].mtime.tv_nsec == st.st_mtim.tv_nsec) {
			e->next = (*cache)[old].next;
		} else {
			struct queue_msg m;
			e->next = queue_load(data_dir, ids[i], &m) == 0 ? m.next_attempt : INT64_MAX;
			queue_msg_free(&m);
		}
		if (e->next > now)
			continue;
		pthread_mutex_lock(&r->lock);
		hand_out(r, ids[i]);
		pthread_mutex_unlock(&r->lock);
	}
	free(*cache);
	*cache = fresh;
	*ncache = n;
	queue_ids_free(ids, n);
}

static void *scheduler_main(void *arg)
{
	struct queue_runner *r = arg;
	struct scan_entry *cache = NULL;
	size_t ncache = 0;
	time_t last_sweep = time(NULL);
	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		pthread_mutex_unlock(&r->lock);
		if (time(NULL) - last_sweep >= ORPHAN_SWEEP_SECONDS) {
			queue_remove_orphans(config_current()->data_dir, ORPHAN_SWEEP_SECONDS);
			last_sweep = time(NULL);
		}
		scan(r, &cache, &ncache);
		outbound_pool_close_idle(r->pool, IDLE_SESSION_SECONDS);
		pthread_mutex_lock(&r->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += SCAN_INTERVAL_MS / 1000;
		while (!r->stopping &&
		       pthread_cond_timedwait(&r->wake_scheduler, &r->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&r->lock);
	free(cache);
	return NULL;
}

struct queue_runner *queue_runner_start(struct store *store, struct auth_db *auth)
{
	const struct config *cfg = config_current();
	if (queue_init(cfg->data_dir) < 0) {
		log_error("event=queue_init error=\"%s\"", strerror(errno));
		return NULL;
	}
	/* Nothing is being queued yet: whatever a crash left half-written goes now. */
	queue_remove_orphans(cfg->data_dir, 0);
	struct resolver *resolver = resolver_new(cfg->dns_server);
	SSL_CTX *tls = SSL_CTX_new(TLS_client_method());
	if (resolver == NULL || tls == NULL) {
		resolver_free(&resolver);
		SSL_CTX_free(tls);
		return NULL;
	}
	/* Opportunistic TLS (RFC 7435): encryption without authentication beats plaintext.
	 * Sessions for smarthost_tls = verify turn verification on for themselves. */
	SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
	if (SSL_CTX_set_default_verify_paths(tls) != 1 ||
	    (cfg->smarthost_ca != NULL && SSL_CTX_load_verify_locations(tls, cfg->smarthost_ca, NULL) != 1)) {
		log_error("event=queue_init error=\"cannot load trusted certificates%s%s\"",
			  cfg->smarthost_ca ? " from " : "", cfg->smarthost_ca ? cfg->smarthost_ca : "");
		resolver_free(&resolver);
		SSL_CTX_free(tls);
		return NULL;
	}
	struct queue_runner *r = xcalloc(1, sizeof *r);
	r->store = store;
	r->auth = auth;
	r->resolver = resolver;
	r->tls = tls;
	r->pool = outbound_pool_new();
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake_scheduler, NULL);
	pthread_cond_init(&r->wake_workers, NULL);
	r->nworkers = cfg->queue_workers;
	r->workers = xcalloc(r->nworkers, sizeof *r->workers);
	for (size_t i = 0; i < r->nworkers; i++)
		pthread_create(&r->workers[i], NULL, worker_main, r);
	pthread_create(&r->scheduler, NULL, scheduler_main, r);
	return r;
}

void queue_runner_enqueued(struct queue_runner *r, const char *id)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	if (!r->stopping)
		hand_out(r, id);
	pthread_mutex_unlock(&r->lock);
}

void queue_runner_stop(struct queue_runner **rp)
{
	struct queue_runner *r = *rp;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->wake_scheduler);
	pthread_cond_broadcast(&r->wake_workers);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->scheduler, NULL);
	for (size_t i = 0; i < r->nworkers; i++)
		pthread_join(r->workers[i], NULL);
	for (size_t i = 0; i < r->nready; i++)
		free(r->ready[i]);
	for (size_t i = 0; i < r->nbusy; i++)
		free(r->busy[i]);
	for (size_t i = 0; i < r->nslots; i++) {
		for (size_t k = 0; k < r->slots[i].nwaiting; k++)
			free(r->slots[i].waiting[k]);
		free(r->slots[i].waiting);
		free(r->slots[i].domain);
	}
	free(r->ready);
	free(r->busy);
	free(r->slots);
	free(r->workers);
	outbound_pool_free(&r->pool);
	resolver_free(&r->resolver);
	SSL_CTX_free(r->tls);
	pthread_cond_destroy(&r->wake_scheduler);
	pthread_cond_destroy(&r->wake_workers);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}
