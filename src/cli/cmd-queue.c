/* sarn queue list|flush|delete: the outbound queue, also while the server runs (a message
 * being delivered is locked and left alone). Exit codes: 0 success, 1 error, 2 usage. */
#include "cli/cli.h"

#include "config/config.h"
#include "core/buf.h"
#include "smtp/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char queue_usage[] =
	"usage: sarn queue list            show queued messages and their recipients\n"
	"       sarn queue flush           try every message now\n"
	"       sarn queue delete ID       remove a message without notice\n"
	"options: -c FILE, --data DIR\n";

static const char *const state_names[] = {"pending", "sent", "failed"};

static void format_time(int64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static int list(const struct config *cfg)
{
	char **ids;
	size_t n;
	if (queue_ids(cfg->data_dir, &ids, &n) < 0) {
		fprintf(stderr, "sarn: cannot read the queue: %s\n", strerror(errno));
		return 1;
	}
	if (n == 0)
		printf("queue is empty\n");
	for (size_t i = 0; i < n; i++) {
		struct queue_msg m;
		if (queue_load(cfg->data_dir, ids[i], &m) < 0)
			continue; /* delivered meanwhile */
		char *path = xasprintf("%s/queue/%s.msg", cfg->data_dir, ids[i]);
		struct stat st;
		long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
		free(path);
		char created[32], next[32];
		format_time(m.created, created, sizeof created);
		format_time(m.next_attempt, next, sizeof next);
		printf("%s  %lld bytes  from <%s>  queued %s  attempts %u  next %s\n", m.id, size,
		       m.from, created, m.attempts, m.next_attempt <= time(NULL) ? "now" : next);
		for (size_t k = 0; k < m.nrcpts; k++)
			printf("    <%s>  %s  %s%s%s\n", m.rcpts[k].address, state_names[m.rcpts[k].state],
			       m.rcpts[k].status, m.rcpts[k].status[0] ? " " : "",
			       m.rcpts[k].reply ? m.rcpts[k].reply : "");
		queue_msg_free(&m);
	}
	queue_ids_free(ids, n);
	return 0;
}

static int flush(const struct config *cfg)
{
	char **ids;
	size_t n;
	if (queue_ids(cfg->data_dir, &ids, &n) < 0) {
		fprintf(stderr, "sarn: cannot read the queue: %s\n", strerror(errno));
		return 1;
	}
	size_t due = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = queue_lock(cfg->data_dir, ids[i]);
		if (fd < 0)
			continue; /* being delivered right now, or gone */
		struct queue_msg m;
		if (queue_load(cfg->data_dir, ids[i], &m) == 0) {
			m.next_attempt = 0;
			if (queue_save(cfg->data_dir, &m) == 0)
				due++;
			queue_msg_free(&m);
		}
		close(fd);
	}
	printf("%zu of %zu messages due now\n", due, n);
	queue_ids_free(ids, n);
	return 0;
}

static int delete(const struct config *cfg, const char *id)
{
	if (!queue_id_valid(id)) {
		fprintf(stderr, "sarn: invalid queue id \"%s\"\n", id);
		return 1;
	}
	int fd = queue_lock(cfg->data_dir, id);
	if (fd < 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "sarn: %s is being delivered right now; try again\n", id);
		else
			fprintf(stderr, "sarn: no such message in the queue: %s\n", id);
		return 1;
	}
	char *env = xasprintf("%s/queue/%s.env", cfg->data_dir, id);
	bool exists = access(env, F_OK) == 0;
	free(env);
	if (exists)
		queue_remove(cfg->data_dir, id);
	close(fd);
	if (!exists) {
		fprintf(stderr, "sarn: no such message in the queue: %s\n", id);
		return 1;
	}
	printf("deleted %s\n", id);
	return 0;
}

int cmd_queue(int argc, char **argv)
{
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0 || cli_become_user(&cfg) < 0) {
		config_free(&cfg);
		return 1;
	}
	const char *sub = argc >= 2 ? argv[1] : "";
	int ret;
	if (!strcmp(sub, "list") && argc == 2)
		ret = list(&cfg);
	else if (!strcmp(sub, "flush") && argc == 2)
		ret = flush(&cfg);
	else if (!strcmp(sub, "delete") && argc == 3)
		ret = delete(&cfg, argv[2]);
	else {
		fputs(queue_usage, stderr);
		ret = 2;
	}
	config_free(&cfg);
	return ret;
}
