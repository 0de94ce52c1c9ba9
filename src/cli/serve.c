/* sarn serve: opens the store, binds the listeners, runs the workers until SIGTERM. */
#include "cli/cli.h"

#include "app.h"
#include "core/log.h"
#include "core/util.h"
#include "net/server.h"
#include "net/tls.h"
#include "imap/session/imap.h"
#include "pop3/pop3.h"
#include "smtp/runner.h"
#include "smtp/smtp.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *run_server(void *arg)
{
	server_run(arg);
	return NULL;
}

/* Which protocol serves each listener kind; NULL kinds are not built yet and stay closed. */
static void fill_protocols(struct server_params *params)
{
	params->protos[LISTEN_IMAP] = &imap_proto;
	params->protos[LISTEN_IMAPS] = &imap_proto;
	params->implicit_tls[LISTEN_IMAPS] = true;
	params->protos[LISTEN_POP3] = &pop3_proto;
	params->protos[LISTEN_POP3S] = &pop3_proto;
	params->implicit_tls[LISTEN_POP3S] = true;
	params->protos[LISTEN_SMTP] = &smtp_proto;
	params->protos[LISTEN_LMTP] = &lmtp_proto;
	params->protos[LISTEN_SUBMISSION] = &submission_proto;
	params->protos[LISTEN_SUBMISSIONS] = &submission_proto;
	params->implicit_tls[LISTEN_SUBMISSIONS] = true;
}

/* SIGHUP: re-reads the file and publishes a new settings snapshot; limits, timeouts, auth
 * policy, hostname, TLS files and log level change at once. Listeners, workers and the data
 * directory are fixed for the life of the process (a change is logged and ignored). */
static void reload(const char *config_file, const char *data_override)
{
	const struct config *old = config_current();
	struct config fresh;
	config_defaults(&fresh);
	char *err = NULL;
	if (config_file != NULL && config_load(&fresh, config_file, &err) < 0) {
		log_error("event=reload result=failed error=\"%s\"", err);
		free(err);
		config_free(&fresh);
		return;
	}
	if (data_override != NULL) {
		free(fresh.data_dir);
		fresh.data_dir = xstrdup(data_override);
	}
	bool fixed_changed = strcmp(fresh.data_dir, old->data_dir) != 0 || fresh.workers != old->workers;
	for (int k = 0; k < LISTEN_COUNT; k++) {
		const char *a = fresh.listen[k] ? fresh.listen[k] : "", *b = old->listen[k] ? old->listen[k] : "";
		fixed_changed |= strcmp(a, b) != 0;
		free(fresh.listen[k]);
		fresh.listen[k] = old->listen[k] ? xstrdup(old->listen[k]) : NULL;
	}
	if (fixed_changed)
		log_warn("event=reload detail=\"listeners, workers and data_dir change only at restart\"");
	free(fresh.data_dir);
	fresh.data_dir = xstrdup(old->data_dir);
	fresh.workers = old->workers;
	if (tls_load(&fresh, &err) < 0) {
		log_error("event=reload result=failed error=\"%s\"", err);
		free(err);
		config_free(&fresh);
		return;
	}
	log_set_level(fresh.log_level);
	config_publish(config_dup(&fresh));
	config_free(&fresh);
	log_info("event=reload result=ok");
}

static const char *find_arg(int argc, char **argv, const char *a, const char *b)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], a) || !strcmp(argv[i], b))
			return argv[i + 1];
	return NULL;
}

int cmd_serve(int argc, char **argv)
{
	const char *cf = find_arg(argc, argv, "-c", "--config");
	const char *dd = find_arg(argc, argv, "--data", "--data");
	char *config_file = cf ? xstrdup(cf) : NULL;
	char *data_override = dd ? xstrdup(dd) : NULL;
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0) {
		free(config_file);
		free(data_override);
		return 1;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: sarn serve [-c FILE] [--data DIR]\n");
		free(config_file);
		free(data_override);
		config_free(&cfg);
		return 2;
	}
	log_set_level(cfg.log_level);

	/* Signals go to the main thread only, where sigwait handles them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	config_publish(config_dup(&cfg));
	struct app app = {0};
	struct server *server = NULL;
	char *err = NULL;
	int rc = 1;
	/* Bind first (ports below 1024 need root) and read the certificate (its key is often
	 * root's), then become the configured user before any file of the store is opened or
	 * made, so every file belongs to that user. No connection is accepted before
	 * server_run. */
	struct server_params params = {.cfg = &cfg, .app = &app};
	fill_protocols(&params);
	if (server_start(&params, &server, &err) < 0) {
		fprintf(stderr, "sarn: %s\n", err);
		goto out;
	}
	if (mkdir_p(cfg.data_dir, 0700) < 0) {
		fprintf(stderr, "sarn: cannot create %s\n", cfg.data_dir);
		goto out;
	}
	if (tls_load(&cfg, &err) < 0) {
		fprintf(stderr, "sarn: tls: %s\n", err);
		goto out;
	}
	if (cli_become_user(&cfg) < 0)
		goto out;
	if (store_open(cfg.data_dir, &app.store) != STORE_OK ||
	    auth_db_open(cfg.data_dir, &app.auth) < 0) {
		fprintf(stderr, "sarn: cannot open the store in %s\n", cfg.data_dir);
		goto out;
	}
	store_recover(app.store);
	app.jobs = workq_new(cfg.auth_threads);
	app.deliveries = workq_new(cfg.delivery_threads);
	app.auth_fail_ip = ratelimit_new(600);
	app.auth_fail_user = ratelimit_new(600);
	app.remote_rcpts = ratelimit_new(3600);
	app.user_sessions = usercount_new();
	app.queue = queue_runner_start(app.store, app.auth);
	if (app.queue == NULL) {
		fprintf(stderr, "sarn: cannot start the outbound queue (see the log)\n");
		goto out;
	}
	log_info("event=started data=%s hostname=%s", cfg.data_dir, cfg.hostname);
	pthread_t thread;
	pthread_create(&thread, NULL, run_server, server);
	for (;;) {
		/* Hourly, tidy leftovers that start-up recovery could not yet call orphans. */
		struct timespec hour = {.tv_sec = 3600};
		int sig = sigtimedwait(&sigs, NULL, &hour);
		if (sig < 0) {
			store_cleanup_leftovers(app.store);
			continue;
		}
		if (sig == SIGHUP) {
			reload(config_file, data_override);
			continue;
		}
		log_info("event=stopping signal=%d", sig);
		break;
	}
	server_stop(server);
	pthread_join(thread, NULL);
	log_info("event=stopped");
	rc = 0;
out:
	free(err);
	/* Jobs post their results to the workers' loops, so the pool ends before the loops. */
	workq_free(&app.jobs);
	workq_free(&app.deliveries);
	queue_runner_stop(&app.queue);
	server_free(&server);
	ratelimit_free(&app.auth_fail_ip);
	ratelimit_free(&app.auth_fail_user);
	ratelimit_free(&app.remote_rcpts);
	usercount_free(&app.user_sessions);
	tls_unload();
	auth_db_close(&app.auth);
	store_close(&app.store);
	config_free(&cfg);
	config_retire_all();
	free(config_file);
	free(data_override);
	return rc;
}
