/* Stateful session harness shared by fuzz-imap-session and fuzz-pop3-session.
 *
 * Everything below the protocol is the real server code: conn_accept() takes one end of a
 * socketpair on a worker of our own, and the session runs on src/net/conn.c and the epoll
 * loop of src/core/ev.c, in the fuzzing thread. The other end is the "client": a posted tick
 * writes the fuzz input into it chunk by chunk (a chunk only once the connection has read
 * the previous one and is not paused, so a line split across chunks arrives in pieces),
 * then half-closes; an EV_READ watcher reads and discards every response. The loop stops
 * when the connection has been freed, i.e. when the session, its login job and its timers
 * are all gone. How the input is cut is derived from a hash of the input (so a crash
 * reproduces): all at once (pipelining), line by line, every line in two halves, or chunks
 * of 1 to 13 bytes; after MAX_CHUNKS chunks the rest goes at once.
 *
 * Set up once per process, in a temporary directory (under /dev/shm when writable, as the
 * store fsyncs): the store and accounts database, one account FUZZ_USER / FUZZ_PASSWORD, a
 * job pool for logins. The account's mailboxes are made once (built-in messages and a few of
 * ../shared/corpus/public, with various flags) and DATA/mail is saved as a copy; after a
 * session that changed the account, the copy is put back. The failed-login counters start
 * afresh for every session. So no session sees what an earlier one did.
 *
 * Passwords: yescrypt costs tens of milliseconds per check, on purpose. The link wraps
 * auth_verify (-Wl,--wrap=auth_verify, harness only) with an equivalent without the hash:
 * the account is looked up with auth_user_canonical and the password compared with
 * FUZZ_PASSWORD. Start-up checks the stand-in against the real auth_verify on a few
 * inputs and aborts if they disagree.
 *
 * Environment: SARN_FUZZ_ECHO=1 copies the server's responses to stderr (to read what a
 * crashing input did), SARN_FUZZ_LOG=debug sets the log level (default error),
 * SARN_FUZZ_MAIL_DIR replaces ../shared/corpus/public, SARN_FUZZ_TMPDIR is where the
 * temporary directory goes (default /dev/shm). A crash leaves that directory behind. */
#include "session-harness.h"

#include "app.h"
#include "core/buf.h"
#include "core/log.h"
#include "net/conn-private.h"
#include "net/server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SARN_FUZZ_CORPUS
#define SARN_FUZZ_CORPUS "../shared/corpus/public"
#endif

#define MAX_MESSAGES 16
#define CORPUS_MESSAGES 6
#define CORPUS_MAX_SIZE 32768
/* After this many chunks the rest of the input goes at once (1-byte chunks of 64 KiB would
 * be slow without finding more). */
#define MAX_CHUNKS 96
#define RESTORE_EVERY 256

int __real_auth_verify(struct auth_db *db, const char *address, const char *password,
		       char **account_r);
int __wrap_auth_verify(struct auth_db *db, const char *address, const char *password,
		       char **account_r);

static struct {
	bool ready;
	char dir[256];
	char *mail, *saved; /* DATA/mail, and its copy made after set-up */
	struct store_watcher *watcher; /* notices of commits to the account */
	int watch_wd;
	struct app app;
	struct server *server;
	struct store_blob *blobs[MAX_MESSAGES];
	size_t nblobs;
	unsigned long runs;
	int base_fds;
	bool echo; /* SARN_FUZZ_ECHO: the server's responses go to stderr */
} H;

/* ---- the password check without the hash ---- */

int __wrap_auth_verify(struct auth_db *db, const char *address, const char *password,
		       char **account_r)
{
	*account_r = NULL;
	char *account = NULL;
	int r = auth_user_canonical(db, address, &account);
	if (r <= 0)
		return r;
	if (strcmp(password, FUZZ_PASSWORD) != 0) {
		free(account);
		return 0;
	}
	*account_r = account;
	return 1;
}

static void check_verify_standin(void)
{
	static const char *const cases[][2] = {
		{FUZZ_USER, FUZZ_PASSWORD},     {"A@EXAMPLE.COM", FUZZ_PASSWORD},
		{"a@Example.Com", FUZZ_PASSWORD}, {FUZZ_USER, "Secret"},
		{FUZZ_USER, ""},                 {"b@example.com", FUZZ_PASSWORD},
		{"a@example.com.", FUZZ_PASSWORD}, {"a", FUZZ_PASSWORD},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *a = NULL, *b = NULL;
		int ra = __real_auth_verify(H.app.auth, cases[i][0], cases[i][1], &a);
		int rb = __wrap_auth_verify(H.app.auth, cases[i][0], cases[i][1], &b);
		if (ra != rb || (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
			fprintf(stderr, "session-harness: auth_verify stand-in disagrees on "
					"\"%s\" \"%s\": %d vs %d\n", cases[i][0], cases[i][1], ra, rb);
			abort();
		}
		free(a);
		free(b);
	}
}

/* ---- messages ---- */

static const char *const builtin_messages[] = {
	"From: Bob <bob@example.org>\r\n"
	"To: a@example.com\r\n"
	"Subject: Hello there\r\n"
	"Date: Mon, 6 Nov 2023 10:00:00 +0000\r\n"
	"Message-ID: <1@example.org>\r\n"
	"\r\n"
	"Hi,\r\n"
	"just a short note.\r\n",

	"From: =?UTF-8?B?w4RsaWNl?= <alice@example.net>\r\n"
	"To: a@example.com, Carol <carol@example.org>\r\n"
	"Cc: dave@example.org\r\n"
	"Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9?= and report\r\n"
	"Date: Tue, 7 Nov 2023 11:30:00 +0100\r\n"
	"Message-ID: <2@example.net>\r\n"
	"In-Reply-To: <1@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--outer\r\n"
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
	"\r\n"
	"--inner\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Caf=C3=A9 au lait, s'il vous pla=C3=AEt.\r\n"
	"--inner\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"\r\n"
	"<p>Caf\xc3\xa9</p>\r\n"
	"--inner--\r\n"
	"--outer\r\n"
	"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
	"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n"
	"--outer\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"From: inner@example.org\r\n"
	"Subject: forwarded\r\n"
	"\r\n"
	"inner body\r\n"
	"--outer--\r\n"
	"epilogue\r\n",

	/* Dot-stuffing for POP3, a folded header, and a lone "." line. */
	"From: dots@example.org\r\n"
	"To: a@example.com\r\n"
	"Subject: dots and\r\n"
	" a folded subject\r\n"
	"X-Long: folded\r\n"
	"\tcontinuation\r\n"
	"\r\n"
	"first\r\n"
	".leading dot\r\n"
	"..two dots\r\n"
	".\r\n"
	"after lone dot\r\n"
	"body line 5\r\n"
	"body line 6\r\n",

	/* Bare LF, no final newline (normalised when stored, as SMTP does). */
	"From: lf@example.org\nSubject: no eol\n\nline one\nline two\nno newline at the end",

	/* Header only. */
	"From: hdr@example.org\r\nSubject: header only\r\n",
};

static void add_blob(const void *data, size_t len)
{
	if (H.nblobs == MAX_MESSAGES)
		return;
	struct store_blob *b = NULL;
	if (store_blob_begin(H.app.store, &b) != STORE_OK)
		abort();
	if (store_blob_write_lines(b, data, len) != STORE_OK || store_blob_finish(b) != STORE_OK)
		abort();
	H.blobs[H.nblobs++] = b;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A few messages of the shared corpus, spread over it in name order (the same ones every
 * time). */
static void add_corpus_messages(void)
{
	const char *dir = getenv("SARN_FUZZ_MAIL_DIR");
	if (dir == NULL)
		dir = SARN_FUZZ_CORPUS;
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = xrealloc(names, cap * sizeof *names);
		}
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof *names, name_cmp);
	size_t added = 0;
	for (size_t i = 0; i < n && added < CORPUS_MESSAGES; i += n / CORPUS_MESSAGES + 1) {
		char *path = xasprintf("%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		free(path);
		if (f == NULL)
			continue;
		char *buf = xmalloc(CORPUS_MAX_SIZE + 1);
		size_t len = fread(buf, 1, CORPUS_MAX_SIZE + 1, f);
		fclose(f);
		if (len > 0 && len <= CORPUS_MAX_SIZE) {
			add_blob(buf, len);
			added++;
		}
		free(buf);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* The account's mailboxes as at start: INBOX with every message (various flags and
 * keywords), one in Archive, the other special-use folders empty. Made once, then saved as
 * a copy of DATA/mail (delivering again every time would parse and index every message). */
static void make_account(void)
{
	enum store_err err = store_account_delete(H.app.store, FUZZ_USER);
	if (err != STORE_OK && err != STORE_NOTFOUND)
		abort();
	if (store_account_create(H.app.store, FUZZ_USER) != STORE_OK)
		abort();
	struct store_account *acct = NULL;
	if (store_account_open(H.app.store, FUZZ_USER, &acct) != STORE_OK)
		abort();
	static const char *const kw_fwd[] = {"$Forwarded"};
	static const char *const kw_work[] = {"work", "$Important"};
	struct store_append_msg msgs[MAX_MESSAGES];
	uint32_t uids[MAX_MESSAGES];
	for (size_t i = 0; i < H.nblobs; i++) {
		msgs[i] = (struct store_append_msg){.blob = H.blobs[i],
						    .internaldate = 1700000000 + (int64_t)i * 86400};
		switch (i % 5) {
		case 1: msgs[i].flags = STORE_FLAG_SEEN; break;
		case 2:
			msgs[i].flags = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED;
			msgs[i].keywords = kw_fwd;
			msgs[i].nkw = 1;
			break;
		case 3:
			msgs[i].flags = STORE_FLAG_ANSWERED;
			msgs[i].keywords = kw_work;
			msgs[i].nkw = 2;
			break;
		case 4: msgs[i].flags = STORE_FLAG_DRAFT | STORE_FLAG_DELETED; break;
		default: break;
		}
	}
	if (store_append_many(acct, "INBOX", msgs, H.nblobs, uids) != STORE_OK ||
	    store_deliver(acct, "Archive", H.blobs[0], STORE_FLAG_SEEN, 1690000000, NULL) != STORE_OK)
		abort();
	store_account_close(&acct);
}

static void copy_tree(const char *src, const char *dst)
{
	if (mkdir(dst, 0700) < 0 && errno != EEXIST)
		abort();
	DIR *d = opendir(src);
	if (d == NULL)
		abort();
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *from = xasprintf("%s/%s", src, e->d_name);
		char *to = xasprintf("%s/%s", dst, e->d_name);
		struct stat st;
		if (lstat(from, &st) < 0)
			abort();
		if (S_ISDIR(st.st_mode)) {
			copy_tree(from, to);
		} else if (S_ISREG(st.st_mode)) {
			int in = open(from, O_RDONLY | O_CLOEXEC);
			int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
			if (in < 0 || out < 0)
				abort();
			char buf[65536];
			ssize_t n;
			while ((n = read(in, buf, sizeof buf)) > 0)
				if (write(out, buf, (size_t)n) != n)
					abort();
			if (n < 0)
				abort();
			close(in);
			close(out);
		} else {
			abort(); /* the store makes only directories and files */
		}
		free(from);
		free(to);
	}
	closedir(d);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void note_change(void *ctx, int wd)
{
	(void)wd;
	*(bool *)ctx = true;
}

/* Back to the saved state, so no session sees what an earlier one did. Only needed after a
 * session that committed something to the account: every commit notifies the account's
 * watchers (store_watcher_*, what IDLE uses), and the harness keeps one on it. A restore
 * happens anyway every RESTORE_EVERY sessions. */
static void reset_account(void)
{
	bool changed = H.runs % RESTORE_EVERY == 0;
	store_watcher_read(H.watcher, note_change, &changed);
	if (!changed)
		return;
	remove_tree(H.mail);
	copy_tree(H.saved, H.mail);
	struct store_account *acct = NULL;
	if (store_account_open(H.app.store, FUZZ_USER, &acct) != STORE_OK ||
	    store_watcher_add(H.watcher, acct, &H.watch_wd) != STORE_OK)
		abort();
	store_account_close(&acct);
	/* The notices of the restore itself (the old file's removal). */
	store_watcher_read(H.watcher, note_change, &changed);
}

/* ---- set-up and tear-down, once per process ---- */

static void teardown(void)
{
	for (size_t i = 0; i < H.nblobs; i++)
		store_blob_free(&H.blobs[i]);
	workq_free(&H.app.jobs);
	workq_free(&H.app.deliveries);
	usercount_free(&H.app.user_sessions);
	store_watcher_free(&H.watcher);
	server_free(&H.server);
	auth_db_close(&H.app.auth);
	store_close(&H.app.store);
	config_retire_all();
	if (H.dir[0] != '\0')
		remove_tree(H.dir);
	free(H.mail);
	free(H.saved);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	enum log_level level = LOG_ERROR;
	const char *lv = getenv("SARN_FUZZ_LOG");
	if (lv != NULL)
		log_level_parse(lv, &level);
	log_set_level(level);

	const char *base = getenv("SARN_FUZZ_TMPDIR");
	if (base == NULL)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(H.dir, sizeof H.dir, "%s/sarn-fuzz-XXXXXX", base ? base : "/tmp");
	if (mkdtemp(H.dir) == NULL) {
		perror("session-harness: mkdtemp");
		abort();
	}
	atexit(teardown);
	H.echo = getenv("SARN_FUZZ_ECHO") != NULL;

	struct config cfg;
	config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(H.dir);
	cfg.workers = 1;
	cfg.auth_threads = 1;
	cfg.log_level = level;
	cfg.plaintext_auth = PLAINTEXT_AUTH_ALWAYS;
	cfg.auth_fail_delay_ms = 0; /* the timer still runs, without the wait */
	cfg.pop3_retention_days = 30;
	config_publish(config_dup(&cfg));

	if (store_open(H.dir, &H.app.store) != STORE_OK || auth_db_open(H.dir, &H.app.auth) < 0 ||
	    auth_user_add(H.app.auth, FUZZ_USER, FUZZ_PASSWORD) != 1) {
		fprintf(stderr, "session-harness: cannot set up the store in %s\n", H.dir);
		abort();
	}
	check_verify_standin();
	/* One thread per pool: the barrier at the end of a session relies on jobs running in
	 * order. */
	H.app.jobs = workq_new(1);
	H.app.deliveries = workq_new(1);
	H.app.user_sessions = usercount_new();

	/* No listeners: the server only counts connections for conn.c. */
	struct server_params params = {.cfg = &cfg, .app = &H.app};
	char *err = NULL;
	if (server_start(&params, &H.server, &err) < 0) {
		fprintf(stderr, "session-harness: %s\n", err);
		abort();
	}
	config_free(&cfg);

	for (size_t i = 0; i < sizeof builtin_messages / sizeof builtin_messages[0]; i++)
		add_blob(builtin_messages[i], strlen(builtin_messages[i]));
	add_corpus_messages();
	make_account();
	H.mail = xasprintf("%s/mail", H.dir);
	H.saved = xasprintf("%s/saved-mail", H.dir);
	copy_tree(H.mail, H.saved);
	if (store_watcher_new(&H.watcher) != STORE_OK)
		abort();
	H.ready = true;
}

/* ---- one session ---- */

struct client {
	struct worker *w;
	int fd;
	struct ev_io io;
	struct ev_timer wait;
	const uint8_t *data;
	size_t size, pos;
	unsigned mode, step, chunks;
	unsigned idle_ticks; /* rounds of the loop since the client last did something */
	size_t line_end; /* mode 2: end of the line being sent in two halves */
	bool eof;
	const struct fuzz_session_hooks *hooks;
	unsigned change;     /* what change_account does */
	uint64_t changed_ms; /* when it did, 0 = not yet */
	bool seen_pending;   /* the session has seen the change and is about to announce it */
};

static void client_read(void *arg, int events)
{
	(void)events;
	struct client *cl = arg;
	char buf[65536];
	ssize_t n;
	while ((n = read(cl->fd, buf, sizeof buf)) > 0)
		if (H.echo)
			fwrite(buf, 1, (size_t)n, stderr);
}

static size_t line_len(const struct client *cl)
{
	const uint8_t *p = cl->data + cl->pos;
	const uint8_t *lf = memchr(p, '\n', cl->size - cl->pos);
	return lf != NULL ? (size_t)(lf - p) + 1 : cl->size - cl->pos;
}

/* How the input is cut: decided by the input itself, so a crash reproduces. */
static size_t chunk_len(struct client *cl)
{
	size_t left = cl->size - cl->pos;
	if (cl->chunks >= MAX_CHUNKS)
		return left;
	switch (cl->mode) {
	case 0: /* everything in one go: pipelining */
		return left;
	case 1: /* line by line */
		return line_len(cl);
	case 2: /* every line in two halves */
		if (cl->pos < cl->line_end)
			return cl->line_end - cl->pos;
		cl->line_end = cl->pos + line_len(cl);
		return (cl->line_end - cl->pos + 1) / 2;
	default: /* small fixed chunks */
		return cl->step < left ? cl->step : left;
	}
}

static void client_tick(void *arg);

/* What another session or a delivery does to the account while this one waits at the end of
 * its input: chosen by the input's hash. */
static void change_account(unsigned what)
{
	struct store_account *acct = NULL;
	if (store_account_open(H.app.store, FUZZ_USER, &acct) != STORE_OK)
		abort();
	static const uint32_t uids[] = {1, 2, 3};
	static const char *const kw[] = {"$Fuzz"};
	if (what == 0 || what == 3)
		store_deliver(acct, "INBOX", H.blobs[0], 0, 1700000000, NULL);
	if (what == 1 || what == 3) {
		struct store_flag_result *res = NULL;
		size_t n = 0;
		if (store_set_flags(acct, "INBOX", uids, 3, STORE_FLAGS_ADD,
				    STORE_FLAG_SEEN | STORE_FLAG_FLAGGED, kw, 1, 0, &res,
				    &n) == STORE_OK)
			store_flag_results_free(res, n);
	}
	if (what == 2 || what == 3)
		store_expunge(acct, "INBOX", uids + 1, 1);
	store_account_close(&acct);
}

/* All input is sent. If the session waits for news (IMAP IDLE), the account changes once,
 * and the client waits until the session has announced it (or 200 ms). True when the
 * client may half-close. */
static bool news_done(struct client *cl, struct conn *c)
{
	if (cl->hooks == NULL || cl->hooks->news == NULL || c->sess == NULL)
		return true;
	int state = cl->hooks->news(c->sess);
	if (cl->changed_ms == 0) {
		if (state != FUZZ_NEWS_WAITING)
			return true;
		change_account(cl->change);
		cl->changed_ms = ev_now_ms();
		return false;
	}
	if (state == FUZZ_NEWS_PENDING)
		cl->seen_pending = true;
	return (cl->seen_pending && state != FUZZ_NEWS_PENDING) || state == FUZZ_NEWS_NONE ||
	       ev_now_ms() - cl->changed_ms > 200;
}

static void client_tick(void *arg)
{
	struct client *cl = arg;
	struct conn *c = cl->w->conns;
	struct ev_loop *loop = cl->w->loop;
	if (c == NULL) { /* freed: the session and all it started are over */
		ev_loop_stop(loop);
		return;
	}
	int unread = 0;
	bool progress = false;
	bool waiting = c->dead || c->paused > 0 || c->yield_pending;
	if (!waiting && !cl->eof && !c->closing && ioctl(c->fd, FIONREAD, &unread) == 0 &&
	    unread == 0) {
		if (cl->pos < cl->size) {
			size_t n = chunk_len(cl);
			ssize_t w = send(cl->fd, cl->data + cl->pos, n, MSG_NOSIGNAL);
			if (w > 0) {
				cl->pos += (size_t)w;
				cl->chunks++;
				progress = true;
			}
		} else if (!news_done(cl, c)) {
			/* still announcing another session's change */
		} else {
			shutdown(cl->fd, SHUT_WR);
			cl->eof = true;
			progress = true;
		}
	} else if (!cl->eof && c->closing) {
		/* The server is closing (LOGOUT, QUIT, too many errors): the rest is never read. */
		shutdown(cl->fd, SHUT_WR);
		cl->eof = true;
		progress = true;
	}
	/* Look again at the loop's next round; while that keeps finding nothing to do (a job
	 * thread or a timer is awaited), only every millisecond. */
	if (progress)
		cl->idle_ticks = 0;
	if (++cl->idle_ticks > 200)
		ev_timer_start(loop, &cl->wait, 1);
	else
		ev_post(loop, client_tick, cl);
}

static void job_barrier(void *arg)
{
	sem_post(arg);
}

static unsigned fnv1a(const uint8_t *data, size_t size)
{
	unsigned h = 2166136261u;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	return h;
}

void fuzz_session_run(const struct proto *proto, const struct fuzz_session_hooks *hooks,
		      const uint8_t *data, size_t size)
{
	if (!H.ready)
		setup();
	reset_account();
	H.app.auth_fail_ip = ratelimit_new(600);
	H.app.auth_fail_user = ratelimit_new(600);

	struct worker w = {.server = H.server, .loop = ev_loop_new(), .app = &H.app};
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("session-harness: socketpair");
		abort();
	}
	unsigned h = fnv1a(data, size);
	struct client cl = {.w = &w, .fd = sv[1], .data = data, .size = size, .mode = h % 4,
			    .step = 1 + (h >> 8) % 13, .hooks = hooks, .change = (h >> 12) % 4};
	ev_timer_init(&cl.wait, client_tick, &cl);
	ev_io_start(w.loop, &cl.io, cl.fd, EV_READ, client_read, &cl);
	conn_accept(&w, sv[0], proto, false);
	ev_post(w.loop, client_tick, &cl);
	ev_run(w.loop);

	if (w.conns != NULL || w.nconns != 0)
		abort();
	ev_timer_stop(w.loop, &cl.wait);
	ev_io_stop(w.loop, &cl.io);
	client_read(&cl, EV_READ); /* the last responses */
	close(cl.fd);
	/* A job thread hands its result to the loop with ev_post, which still touches the loop
	 * after the result may have been run here: the loop is freed only once each pool's
	 * thread has taken a later job. (The server's loops outlive its job pools.) */
	struct workq *pools[] = {H.app.jobs, H.app.deliveries};
	for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
		sem_t done;
		sem_init(&done, 0, 0);
		workq_submit(pools[i], job_barrier, NULL, NULL, &done);
		while (sem_wait(&done) < 0)
			;
		sem_destroy(&done);
	}
	ev_loop_drain(w.loop);
	ev_loop_free(&w.loop);
	ratelimit_free(&H.app.auth_fail_ip);
	ratelimit_free(&H.app.auth_fail_user);

	/* Descriptors leak silently: compare with the count after the first session. */
	if (H.runs == 0)
		H.base_fds = count_fds();
	else if ((H.runs & 63) == 0 && count_fds() > H.base_fds + 8) {
		fprintf(stderr, "session-harness: file descriptors leak (%d, were %d)\n",
			count_fds(), H.base_fds);
		abort();
	}
	H.runs++;
}
