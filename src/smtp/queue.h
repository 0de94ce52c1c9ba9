/* The outbound queue on disk: DATA/queue/<id>.msg (the message, a hard link of the spool
 * blob) and DATA/queue/<id>.env (envelope and per-recipient state, replaced atomically).
 * A message is in the queue once its .env exists; both are fsync'ed before that. */
#ifndef SARN_SMTP_QUEUE_H
#define SARN_SMTP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_LEN 16

enum queue_rcpt_state { QUEUE_PENDING, QUEUE_SENT, QUEUE_FAILED };

struct queue_rcpt {
	char *address;
	unsigned notify;      /* DSN_NOTIFY_* bits, 0 = default */
	char *orcpt;          /* NULL if none */
	enum queue_rcpt_state state;
	bool reported;        /* a notice for the final state has been sent (or was not wanted) */
	char status[16];      /* enhanced status of the last outcome, "" if none yet */
	char *reply;          /* last reply or reason, NULL if none */
};

struct queue_msg {
	char id[QUEUE_ID_LEN + 1];
	char *from;           /* "" = null sender (a notice itself) */
	char *envid;          /* NULL if none */
	bool ret_hdrs;
	bool smtputf8;
	int64_t created;
	int64_t next_attempt;
	uint32_t attempts;
	bool warned;          /* the delay notice has been sent */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

/* DATA/queue (caller frees). */
char *queue_dir(const char *data_dir);
/* Creates DATA/queue if needed. 0 or -1 (errno). */
int queue_init(const char *data_dir);

/* Adds a message: links the finished file at msg_path as <id>.msg, writes <id>.env, fsyncs
 * both and the directory. Sets msg->id. 0, or -1 with errno (ENOSPC for a full disk). */
int queue_enqueue(const char *data_dir, const char *msg_path, struct queue_msg *msg);
/* 0 ok, -1 (errno ENOENT: no such message, EINVAL: malformed). */
int queue_load(const char *data_dir, const char *id, struct queue_msg *msg);
/* Parses the text of an .env file (exposed for tests and fuzzing). 0, or -1 (EINVAL). */
int queue_parse(const void *text, size_t len, struct queue_msg *msg);
/* Replaces <id>.env atomically. 0 or -1. */
int queue_save(const char *data_dir, const struct queue_msg *msg);
/* Removes the message (.env first, so a crash leaves only an orphan file). */
void queue_remove(const char *data_dir, const char *id);
void queue_msg_free(struct queue_msg *msg);
void queue_rcpt_add(struct queue_msg *msg, const char *address, unsigned notify, const char *orcpt);

/* The ids in the queue, sorted (caller frees with queue_ids_free). 0 or -1. */
int queue_ids(const char *data_dir, char ***ids_r, size_t *n_r);
void queue_ids_free(char **ids, size_t n);
bool queue_id_valid(const char *id);

/* The message file, opened read-only and locked (LOCK_EX|LOCK_NB) for a delivery or a
 * delete. Returns the fd, -1 with errno EWOULDBLOCK if another process holds it. */
int queue_lock(const char *data_dir, const char *id);
/* Removes what a crash can leave: a .msg without its .env (killed between the two writes of
 * an enqueue, or of a removal) and .env.tmp files, if at least min_age seconds old. At
 * start-up, before anything is queued, min_age is 0. */
void queue_remove_orphans(const char *data_dir, int64_t min_age);

#endif
