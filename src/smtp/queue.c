/* Queue files. The .env is a text file of tab-separated lines:
 *   sarn-queue 1
 *   from <addr>            envid <id>          ret FULL|HDRS       smtputf8 0|1
 *   created <t>            next <t>            attempts <n>        warned 0|1
 *   rcpt <state> <notify> <reported> <status|-> <address> <orcpt|-> <reply|->
 * Values never hold tabs or line breaks (addresses are parsed, replies are cleaned). */
#include "smtp/queue.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENV_MAX (1024 * 1024)

char *queue_dir(const char *data_dir)
{
	return xasprintf("%s/queue", data_dir);
}

int queue_init(const char *data_dir)
{
	char *dir = queue_dir(data_dir);
	int r = mkdir_p(dir, 0700);
	free(dir);
	return r;
}

static char *file_path(const char *data_dir, const char *id, const char *ext)
{
	return xasprintf("%s/queue/%s.%s", data_dir, id, ext);
}

bool queue_id_valid(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return false;
	return n == QUEUE_ID_LEN;
}

void queue_rcpt_add(struct queue_msg *msg, const char *address, unsigned notify, const char *orcpt)
{
	msg->rcpts = xrealloc(msg->rcpts, (msg->nrcpts + 1) * sizeof *msg->rcpts);
	msg->rcpts[msg->nrcpts++] = (struct queue_rcpt){
		.address = xstrdup(address),
		.notify = notify,
		.orcpt = orcpt ? xstrdup(orcpt) : NULL,
	};
}

void queue_msg_free(struct queue_msg *msg)
{
	free(msg->from);
	free(msg->envid);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		free(msg->rcpts[i].address);
		free(msg->rcpts[i].orcpt);
		free(msg->rcpts[i].reply);
	}
	free(msg->rcpts);
	memset(msg, 0, sizeof *msg);
}

static const char *const state_names[] = {"pending", "sent", "failed"};

static void serialize(const struct queue_msg *m, struct buf *b)
{
	buf_printf(b, "sarn-queue 1\nfrom\t%s\n", m->from);
	if (m->envid != NULL)
		buf_printf(b, "envid\t%s\n", m->envid);
	buf_printf(b, "ret\t%s\nsmtputf8\t%d\ncreated\t%lld\nnext\t%lld\nattempts\t%u\nwarned\t%d\n",
		   m->ret_hdrs ? "HDRS" : "FULL", m->smtputf8, (long long)m->created,
		   (long long)m->next_attempt, m->attempts, m->warned);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		buf_printf(b, "rcpt\t%s\t%u\t%d\t%s\t%s\t%s\t", state_names[r->state], r->notify,
			   r->reported, r->status[0] ? r->status : "-", r->address,
			   r->orcpt ? r->orcpt : "-");
		/* Replies come from remote servers: no control characters go to the file. */
		const char *p = r->reply ? r->reply : "-";
		for (; *p; p++) {
			char c = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
			buf_append(b, &c, 1);
		}
		buf_append(b, "\n", 1);
	}
}

static char *dash_null(const char *v)
{
	return strcmp(v, "-") == 0 ? NULL : xstrdup(v);
}

static int parse_rcpt(struct queue_msg *m, char *rest)
{
	char *f[7];
	for (int i = 0; i < 7; i++) {
		f[i] = rest;
		if (rest == NULL)
			return -1;
		char *tab = strchr(rest, '\t');
		if (tab != NULL)
			*tab = '\0';
		rest = tab ? tab + 1 : NULL;
		if (i == 6 && tab != NULL)
			return -1;
	}
	int state = -1;
	for (int i = 0; i < 3; i++)
		if (strcmp(f[0], state_names[i]) == 0)
			state = i;
	if (state < 0 || strlen(f[3]) >= sizeof m->rcpts[0].status)
		return -1;
	queue_rcpt_add(m, f[4], (unsigned)strtoul(f[1], NULL, 10), strcmp(f[5], "-") ? f[5] : NULL);
	struct queue_rcpt *r = &m->rcpts[m->nrcpts - 1];
	r->state = (enum queue_rcpt_state)state;
	r->reported = strcmp(f[2], "1") == 0;
	if (strcmp(f[3], "-") != 0)
		strcpy(r->status, f[3]);
	r->reply = dash_null(f[6]);
	return 0;
}

static int parse_text(char *text, struct queue_msg *m)
{
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	if (line == NULL || strcmp(line, "sarn-queue 1") != 0)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		char *tab = strchr(line, '\t');
		if (tab == NULL)
			return -1;
		*tab = '\0';
		char *v = tab + 1;
		if (strcmp(line, "from") == 0) {
			free(m->from);
			m->from = xstrdup(v);
		} else if (strcmp(line, "envid") == 0) {
			free(m->envid);
			m->envid = xstrdup(v);
		} else if (strcmp(line, "ret") == 0) {
			m->ret_hdrs = strcmp(v, "HDRS") == 0;
		} else if (strcmp(line, "smtputf8") == 0) {
			m->smtputf8 = strcmp(v, "1") == 0;
		} else if (strcmp(line, "created") == 0) {
			m->created = strtoll(v, NULL, 10);
		} else if (strcmp(line, "next") == 0) {
			m->next_attempt = strtoll(v, NULL, 10);
		} else if (strcmp(line, "attempts") == 0) {
			m->attempts = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(line, "warned") == 0) {
			m->warned = strcmp(v, "1") == 0;
		} else if (strcmp(line, "rcpt") == 0) {
			if (parse_rcpt(m, v) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return m->from != NULL && m->nrcpts > 0 ? 0 : -1;
}

int queue_load(const char *data_dir, const char *id, struct queue_msg *msg)
{
	memset(msg, 0, sizeof *msg);
	if (!queue_id_valid(id)) {
		errno = ENOENT;
		return -1;
	}
	char *path = file_path(data_dir, id, "env");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -1;
	struct buf b = {0};
	for (;;) {
		buf_reserve(&b, 4096);
		ssize_t n = read(fd, b.data + b.len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || b.len + (size_t)n > ENV_MAX) {
			if (n > 0)
				n = -1, errno = EINVAL;
			if (n < 0) {
				int e = errno;
				close(fd);
				buf_free(&b);
				errno = e;
				return -1;
			}
			break;
		}
		b.len += (size_t)n;
	}
	close(fd);
	int r = queue_parse(b.data, b.len, msg);
	buf_free(&b);
	if (r == 0)
		memcpy(msg->id, id, QUEUE_ID_LEN + 1);
	return r;
}

int queue_parse(const void *text, size_t len, struct queue_msg *msg)
{
	memset(msg, 0, sizeof *msg);
	char *copy = xstrndup(text, len);
	int r = strlen(copy) == len ? parse_text(copy, msg) : -1;
	free(copy);
	if (r < 0) {
		queue_msg_free(msg);
		errno = EINVAL;
	}
	return r;
}

/* Writes <id>.env through a temp file, fsync and rename; the caller fsyncs the directory. */
static int write_env(const char *data_dir, const struct queue_msg *msg)
{
	struct buf b = {0};
	serialize(msg, &b);
	char *tmp = xasprintf("%s/queue/%s.env.tmp", data_dir, msg->id);
	char *path = file_path(data_dir, msg->id, "env");
	int r = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		r = write_full(fd, b.data, b.len) == 0 && fsync(fd) == 0 ? 0 : -1;
		int e = errno;
		close(fd);
		if (r == 0)
			r = rename(tmp, path);
		else
			unlink(tmp);
		errno = e;
	}
	if (r < 0)
		log_error("event=queue_write id=%s error=\"%s\"", msg->id, strerror(errno));
	free(tmp);
	free(path);
	buf_free(&b);
	return r;
}

int queue_save(const char *data_dir, const struct queue_msg *msg)
{
	if (write_env(data_dir, msg) < 0)
		return -1;
	char *path = file_path(data_dir, msg->id, "env");
	int r = fsync_parent_dir(path);
	free(path);
	return r;
}

int queue_enqueue(const char *data_dir, const char *msg_path, struct queue_msg *msg)
{
	char *id = random_hex(QUEUE_ID_LEN / 2);
	memcpy(msg->id, id, QUEUE_ID_LEN + 1);
	free(id);
	char *dst = file_path(data_dir, msg->id, "msg");
	int r = link(msg_path, dst);
	if (r < 0 && errno == ENOENT && queue_init(data_dir) == 0)
		r = link(msg_path, dst); /* the directory was removed while the server ran */
	if (r < 0)
		log_error("event=queue_link id=%s error=\"%s\"", msg->id, strerror(errno));
	if (r == 0 && (r = write_env(data_dir, msg)) < 0) {
		int e = errno;
		unlink(dst);
		errno = e;
	}
	if (r == 0)
		r = fsync_parent_dir(dst);
	if (r == 0)
		log_info("event=queued id=%s from=\"%s\" rcpts=%zu", msg->id, msg->from, msg->nrcpts);
	free(dst);
	return r;
}

void queue_remove(const char *data_dir, const char *id)
{
	char *env = file_path(data_dir, id, "env");
	char *msg = file_path(data_dir, id, "msg");
	unlink(env);
	fsync_parent_dir(env);
	unlink(msg);
	free(env);
	free(msg);
}

int queue_lock(const char *data_dir, const char *id)
{
	if (!queue_id_valid(id)) {
		errno = ENOENT;
		return -1;
	}
	char *path = file_path(data_dir, id, "msg");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int queue_ids(const char *data_dir, char ***ids_r, size_t *n_r)
{
	static const char ext[] = "env";
	char *dir = queue_dir(data_dir);
	DIR *d = opendir(dir);
	free(dir);
	*ids_r = NULL;
	*n_r = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	size_t elen = strlen(ext);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len != QUEUE_ID_LEN + 1 + elen || de->d_name[QUEUE_ID_LEN] != '.' ||
		    strcmp(de->d_name + QUEUE_ID_LEN + 1, ext) != 0)
			continue;
		char *id = xstrndup(de->d_name, QUEUE_ID_LEN);
		if (!queue_id_valid(id)) {
			free(id);
			continue;
		}
		*ids_r = xrealloc(*ids_r, (*n_r + 1) * sizeof **ids_r);
		(*ids_r)[(*n_r)++] = id;
	}
	closedir(d);
	if (*n_r > 0)
		qsort(*ids_r, *n_r, sizeof **ids_r, cmp_str);
	return 0;
}

void queue_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void queue_remove_orphans(const char *data_dir, int64_t min_age)
{
	char *dir = queue_dir(data_dir);
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t now = (int64_t)time(NULL);
	while (d != NULL && (de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		bool msg = len == QUEUE_ID_LEN + 4 && strcmp(name + QUEUE_ID_LEN, ".msg") == 0;
		bool tmp = len == QUEUE_ID_LEN + 8 && strcmp(name + QUEUE_ID_LEN, ".env.tmp") == 0;
		if (!msg && !tmp)
			continue;
		char *path = xasprintf("%s/%s", dir, name);
		char *env = xasprintf("%s/%.*s.env", dir, QUEUE_ID_LEN, name);
		struct stat st;
		bool orphan = tmp || (stat(env, &st) < 0 && errno == ENOENT);
		if (orphan && stat(path, &st) == 0 && now - (int64_t)st.st_mtime >= min_age) {
			log_warn("event=queue_orphan file=%s action=removed", name);
			unlink(path);
		}
		free(env);
		free(path);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
}
