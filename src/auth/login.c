#include "auth/login.h"

#include "core/buf.h"
#include "core/log.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct login_job {
	struct conn *c;
	struct app *app;
	char *user;
	char *password;
	char *account;
	int verify;
	bool pipelined;  /* commands after the login were already received */
	bool peer_gone;  /* the client left before its password was checked */
	enum login_result result;
	login_done_fn *done;
	void *sess;
	struct ev_timer delay;
};

static void job_free(struct login_job *j)
{
	free(j->user);
	if (j->password != NULL) {
		OPENSSL_cleanse(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->account);
	free(j);
}

static void finish(void *arg)
{
	struct login_job *j = arg;
	struct conn *c = j->c;
	if (!conn_closed(c)) {
		if (j->result == LOGIN_OK)
			conn_set_user(c, j->account);
		log_info("sess=%08x event=login user=\"%s\" result=%s", conn_id(c), j->user,
			 j->result == LOGIN_OK ? "ok" : j->result == LOGIN_THROTTLED ? "throttled"
				: j->result == LOGIN_TEMPFAIL ? "tempfail" : "failed");
		j->done(j->sess, j->result, j->account);
		conn_resume(c); /* also processes pipelined input and flushes the reply */
	}
	conn_unref(c);
	job_free(j);
}

static void verify_on_job_thread(void *arg)
{
	struct login_job *j = arg;
	/* Clients that sent a login and hung up must not keep the others waiting behind
	 * password hashes nobody will read (the connection is paused, so it cannot notice). */
	if (!j->pipelined && conn_peer_gone(j->c)) {
		j->peer_gone = true;
		return;
	}
	j->verify = auth_verify(j->app->auth, j->user, j->password, &j->account);
}

static void verified(void *arg)
{
	struct login_job *j = arg;
	const struct config *cfg = conn_config(j->c);
	if (j->peer_gone) {
		conn_close(j->c);
		j->result = LOGIN_FAILED;
		finish(j);
		return;
	}
	if (j->verify == 1) {
		j->result = LOGIN_OK;
		ratelimit_clear(j->app->auth_fail_user, j->user);
		finish(j);
		return;
	}
	if (j->verify < 0) {
		j->result = LOGIN_TEMPFAIL;
		finish(j);
		return;
	}
	j->result = LOGIN_FAILED;
	uint32_t n = ratelimit_fail(j->app->auth_fail_ip, conn_peer_ip(j->c));
	uint32_t m = ratelimit_fail(j->app->auth_fail_user, j->user);
	/* The delay grows with the failures, so guessing gets slower; it is a timer, not a sleep. */
	uint32_t failures = n > m ? n : m;
	uint64_t delay = (uint64_t)cfg->auth_fail_delay_ms * (failures < 5 ? failures : 5);
	ev_timer_init(&j->delay, finish, j);
	ev_timer_start(conn_loop(j->c), &j->delay, delay);
}

void login_start(struct conn *c, struct app *app, const char *user, const char *password,
		 login_done_fn *done, void *sess)
{
	struct login_job *j = xcalloc(1, sizeof *j);
	j->c = c;
	j->app = app;
	j->user = xstrdup(user);
	j->password = xstrdup(password);
	j->done = done;
	j->sess = sess;
	j->pipelined = conn_input(c)->len > 0;
	conn_ref(c);
	conn_pause(c);
	uint32_t max = conn_config(c)->auth_max_failures;
	if (ratelimit_blocked(app->auth_fail_ip, conn_peer_ip(c), max) ||
	    ratelimit_blocked(app->auth_fail_user, user, max)) {
		j->result = LOGIN_THROTTLED;
		ev_post(conn_loop(c), finish, j);
		return;
	}
	workq_submit(app->jobs, verify_on_job_thread, conn_loop(c), verified, j);
}

bool login_plaintext_allowed(struct conn *c)
{
	switch (conn_config(c)->plaintext_auth) {
	case PLAINTEXT_AUTH_ALWAYS:
		return true;
	case PLAINTEXT_AUTH_LOOPBACK:
		return conn_tls_active(c) || conn_is_loopback(c);
	case PLAINTEXT_AUTH_NEVER:
		break;
	}
	return conn_tls_active(c);
}
