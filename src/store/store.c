#include "store/store-private.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *store_strerror(enum store_err err)
{
	switch (err) {
	case STORE_OK: return "ok";
	case STORE_TEMP: return "temporary failure";
	case STORE_NOTFOUND: return "not found";
	case STORE_EXISTS: return "already exists";
	case STORE_PERM: return "not permitted";
	case STORE_OVERQUOTA: return "quota exceeded";
	case STORE_NOSPACE: return "disk full";
	case STORE_LIMIT: return "limit exceeded";
	case STORE_EXPUNGED: return "message was expunged";
	case STORE_INUSE: return "in use by another session";
	case STORE_INVALID: return "invalid name or argument";
	}
	return "unknown error";
}

enum store_err store_open(const char *data_dir, struct store **store_r)
{
	struct store *s = xcalloc(1, sizeof *s);
	s->data_dir = xstrdup(data_dir);
	s->mail_dir = xasprintf("%s/mail", data_dir);
	s->spool_dir = xasprintf("%s/spool", data_dir);
	s->writers_fd = -1;
	char *tmp = xasprintf("%s/tmp", s->spool_dir);
	int r = mkdir_p(s->mail_dir, 0700) | mkdir_p(tmp, 0700);
	free(tmp);
	char *lock = xasprintf("%s/writers.lock", data_dir);
	if (r == 0)
		s->writers_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lock);
	if (r < 0 || s->writers_fd < 0 || flock(s->writers_fd, LOCK_SH) < 0) {
		log_error("event=store_open dir=%s error=\"%s\"", data_dir, strerror(errno));
		store_close(&s);
		return STORE_TEMP;
	}
	*store_r = s;
	return STORE_OK;
}

void store_close(struct store **sp)
{
	struct store *s = *sp;
	if (s == NULL)
		return;
	if (s->writers_fd >= 0)
		close(s->writers_fd);
	free(s->data_dir);
	free(s->mail_dir);
	free(s->spool_dir);
	free(s);
	*sp = NULL;
}

static bool path_part_ok(const char *p, size_t len)
{
	if (len == 0 || len > 255 || p[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\')
			return false;
	}
	return true;
}

char *store_account_dir(struct store *store, const char *account)
{
	const char *at = strrchr(account, '@');
	if (at == NULL || strchr(account, '@') != at)
		return NULL;
	size_t local_len = (size_t)(at - account);
	if (!path_part_ok(account, local_len) || !path_part_ok(at + 1, strlen(at + 1)))
		return NULL;
	char *local = xstrndup(account, local_len);
	char *domain = xstrdup(at + 1);
	ascii_lower(local);
	ascii_lower(domain);
	char *dir = xasprintf("%s/%s/%s", store->mail_dir, domain, local);
	free(local);
	free(domain);
	return dir;
}

uint32_t store_next_uidvalidity(struct store *store)
{
	char *path = xasprintf("%s/uidvalidity", store->data_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	char text[16] = {0};
	ssize_t n = pread(fd, text, sizeof text - 1, 0);
	uint32_t last = n > 0 ? (uint32_t)strtoul(text, NULL, 10) : 0;
	/* Time-based so values stay unique even if this file is lost; +1 within a second. */
	uint32_t next = (uint32_t)time(NULL);
	if (next <= last)
		next = last + 1;
	int len = snprintf(text, sizeof text, "%u\n", next);
	uint32_t result = next;
	if (pwrite(fd, text, (size_t)len, 0) != len || ftruncate(fd, len) < 0 || fsync(fd) < 0)
		result = 0;
	close(fd); /* releases the lock */
	return result;
}

static const struct {
	const char *name;
	const char *special_use;
} default_mailboxes[] = {
	{"INBOX", NULL},
	{"Sent", "\\Sent"},
	{"Drafts", "\\Drafts"},
	{"Trash", "\\Trash"},
	{"Junk", "\\Junk"},
	{"Archive", "\\Archive"},
};

enum store_err store_account_create(struct store *store, const char *account)
{
	char *dir = store_account_dir(store, account);
	if (dir == NULL)
		return STORE_INVALID;
	char *blobs = xasprintf("%s/blobs", dir);
	enum store_err err = STORE_OK;
	sqlite3 *db = NULL;
	if (mkdir_p(blobs, 0700) < 0) {
		log_error("event=account_create dir=%s error=\"%s\"", blobs, strerror(errno));
		err = errno == ENOSPC ? STORE_NOSPACE : STORE_TEMP;
		goto out;
	}
	err = index_open(dir, true, &db);
	if (err != STORE_OK)
		goto out;
	err = index_begin(db);
	for (size_t i = 0; err == STORE_OK && i < sizeof default_mailboxes / sizeof default_mailboxes[0]; i++) {
		uint32_t uidvalidity = store_next_uidvalidity(store);
		err = uidvalidity == 0 ? STORE_TEMP
			: index_create_mailbox(db, default_mailboxes[i].name,
					       default_mailboxes[i].special_use, uidvalidity);
		if (err == STORE_EXISTS)
			err = STORE_OK;
	}
	/* The default mailboxes start subscribed. */
	if (err == STORE_OK)
		err = index_exec(db, "INSERT OR IGNORE INTO subscription(name)"
				 " SELECT name FROM mailbox WHERE subscribed", "account_subscribe", 0,
				 NULL, NULL);
	if (err == STORE_OK)
		err = index_commit(db);
	else
		index_rollback(db);
out:
	sqlite3_close(db);
	free(blobs);
	free(dir);
	return err;
}

static int remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	int r = 0;
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *child = xasprintf("%s/%s", path, de->d_name);
			r |= remove_tree(child);
			free(child);
		}
		closedir(d);
	}
	return r | rmdir(path);
}

enum store_err store_account_delete(struct store *store, const char *account)
{
	char *dir = store_account_dir(store, account);
	if (dir == NULL)
		return STORE_INVALID;
	struct stat st;
	enum store_err err = STORE_OK;
	if (stat(dir, &st) < 0)
		err = STORE_NOTFOUND;
	else if (remove_tree(dir) < 0)
		err = STORE_TEMP;
	free(dir);
	return err;
}

static int committed(void *ctx, sqlite3 *db, const char *name, int wal_pages);

enum store_err store_account_open(struct store *store, const char *account,
				  struct store_account **acct_r)
{
	char *dir = store_account_dir(store, account);
	if (dir == NULL)
		return STORE_INVALID;
	sqlite3 *db = NULL;
	enum store_err err = index_open(dir, false, &db);
	if (err != STORE_OK) {
		free(dir);
		return err;
	}
	struct store_account *a = xcalloc(1, sizeof *a);
	a->store = store;
	a->name = xstrdup(account);
	a->dir = dir;
	a->db = db;
	a->pop3_lock_fd = -1;
	a->changes_fd = -1;
	sqlite3_wal_hook(db, committed, a);
	*acct_r = a;
	return STORE_OK;
}

static char *changes_path(const struct store_account *a)
{
	return xasprintf("%s/changes", a->dir);
}

/* After every commit of this handle (any thread or process has its own handle): one byte
 * written to DATA/mail/<account>/changes wakes the watchers (IMAP IDLE) through inotify.
 * A WAL hook replaces SQLite's automatic checkpoint, so it checkpoints here as that would. */
static int committed(void *ctx, sqlite3 *db, const char *name, int wal_pages)
{
	struct store_account *a = ctx;
	if (wal_pages >= 1000)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (a->changes_fd < 0) {
		char *path = changes_path(a);
		a->changes_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		free(path);
	}
	if (a->changes_fd >= 0 && pwrite(a->changes_fd, "c", 1, 0) < 0)
		log_warn("event=changes_notify error=\"%s\"", strerror(errno));
	return SQLITE_OK;
}

struct store_watcher {
	int fd; /* inotify */
};

enum store_err store_watcher_new(struct store_watcher **w_r)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		log_error("event=watcher_new error=\"%s\"", strerror(errno));
		return STORE_TEMP;
	}
	struct store_watcher *w = xcalloc(1, sizeof *w);
	w->fd = fd;
	*w_r = w;
	return STORE_OK;
}

void store_watcher_free(struct store_watcher **wp)
{
	if (*wp == NULL)
		return;
	close((*wp)->fd);
	free(*wp);
	*wp = NULL;
}

int store_watcher_fd(const struct store_watcher *w)
{
	return w->fd;
}

enum store_err store_watcher_add(struct store_watcher *w, struct store_account *a, int *wd_r)
{
	char *path = changes_path(a);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	int wd = inotify_add_watch(w->fd, path, IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF);
	if (wd < 0)
		log_error("event=watch_add path=%s error=\"%s\"", path, strerror(errno));
	free(path);
	if (wd < 0)
		return STORE_TEMP;
	*wd_r = wd;
	return STORE_OK;
}

void store_watcher_remove(struct store_watcher *w, int wd)
{
	inotify_rm_watch(w->fd, wd);
}

void store_watcher_read(struct store_watcher *w, void (*fn)(void *ctx, int wd), void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(w->fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (!(ev->mask & IN_IGNORED))
				fn(ctx, ev->wd);
			p += sizeof *ev + ev->len;
		}
	}
}

void store_account_trim(struct store_account *a)
{
	sqlite3_db_release_memory(a->db);
}

void store_account_close(struct store_account **ap)
{
	struct store_account *a = *ap;
	if (a == NULL)
		return;
	store_pop3_unlock(a);
	store_read_batch_end(a);
	sqlite3_close(a->db);
	if (a->changes_fd >= 0)
		close(a->changes_fd);
	free(a->name);
	free(a->dir);
	free(a);
	*ap = NULL;
}

/* flock locks belong to the open file description, so two sessions of one process
 * exclude each other just as two processes do. */
enum store_err store_pop3_lock(struct store_account *a)
{
	if (a->pop3_lock_fd >= 0)
		return STORE_OK;
	char *path = xasprintf("%s/pop3.lock", a->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return STORE_TEMP;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return errno == EWOULDBLOCK ? STORE_INUSE : STORE_TEMP;
	}
	a->pop3_lock_fd = fd;
	return STORE_OK;
}

void store_pop3_unlock(struct store_account *a)
{
	if (a->pop3_lock_fd >= 0) {
		close(a->pop3_lock_fd);
		a->pop3_lock_fd = -1;
	}
}
