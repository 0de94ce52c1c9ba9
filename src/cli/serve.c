/* sarn serve: opens the store, binds the listeners, runs the workers until SIGTERM. */
#include "cli/cli.h"

#include "app.h"
#include "core/log.h"
#include "core/util.h"
#include "net/server.h"
#include "net/tls.h"
#include "pop3/pop3.h"
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
	params->protos[LISTEN_POP3] = &pop3_proto;
	params->protos[LISTEN_POP3S] = &pop3_proto;
	params->implicit_tls[LISTEN_POP3S] = true;
	params->protos[LISTEN_SMTP] = &smtp_proto;
	params->protos[LISTEN_LMTP] = &lmtp_proto;
}

static void reload(const char *config_file, struct config *cfg)
{
	/* Certificates and the log level change at once; listeners and limits need a restart. */
	if (config_file != NULL) {
		struct config fresh;
		char *err = NULL;
		config_defaults(&fresh);
		if (config_load(&fresh, config_file, &err) < 0) {
			log_error("event=reload result=failed error=\"%s\"", err);
			free(err);
			config_free(&fresh);
			return;
		}
		log_set_level(fresh.log_level);
		free(cfg->tls_cert);
		free(cfg->tls_key);
		cfg->tls_cert = fresh.tls_cert ? xstrdup(fresh.tls_cert) : NULL;
		cfg->tls_key = fresh.tls_key ? xstrdup(fresh.tls_key) : NULL;
		config_free(&fresh);
	}
	char *err = NULL;
	if (tls_load(cfg, &err) < 0) {
		log_error("event=reload result=failed error=\"%s\"", err);
		free(err);
		return;
	}
	log_info("event=reload result=ok");
}

static const char *find_config_arg(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
			return argv[i + 1];
	return NULL;
}

int cmd_serve(int argc, char **argv)
{
	const char *cf = find_config_arg(argc, argv);
	char *config_file = cf ? xstrdup(cf) : NULL;
	struct config cfg;
	if (config_from_args(&cfg, &argc, argv) < 0) {
		free(config_file);
		return 1;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: sarn serve [-c FILE] [--data DIR]\n");
		free(config_file);
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

	struct app app = {.cfg = &cfg};
	struct server *server = NULL;
	char *err = NULL;
	int rc = 1;
	if (mkdir_p(cfg.data_dir, 0700) < 0) {
		fprintf(stderr, "sarn: cannot create %s\n", cfg.data_dir);
		goto out;
	}
	if (store_open(cfg.data_dir, &app.store) != STORE_OK ||
	    auth_db_open(cfg.data_dir, &app.auth) < 0) {
		fprintf(stderr, "sarn: cannot open the store in %s\n", cfg.data_dir);
		goto out;
	}
	store_recover(app.store);
	if (tls_load(&cfg, &err) < 0) {
		fprintf(stderr, "sarn: tls: %s\n", err);
		goto out;
	}
	app.jobs = workq_new(cfg.auth_threads);
	app.auth_fail_ip = ratelimit_new(cfg.auth_max_failures, 600);
	app.auth_fail_user = ratelimit_new(cfg.auth_max_failures, 600);

	struct server_params params = {.cfg = &cfg, .app = &app};
	fill_protocols(&params);
	if (server_start(&params, &server, &err) < 0) {
		fprintf(stderr, "sarn: %s\n", err);
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
			reload(config_file, &cfg);
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
	server_free(&server);
	ratelimit_free(&app.auth_fail_ip);
	ratelimit_free(&app.auth_fail_user);
	tls_unload();
	auth_db_close(&app.auth);
	store_close(&app.store);
	config_free(&cfg);
	free(config_file);
	return rc;
}
