#include "config/config.h"

#include "core/buf.h"

#include <ini.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const listener_names[LISTEN_COUNT] = {
	"imap", "imaps", "pop3", "pop3s", "smtp", "submission", "submissions", "lmtp",
};

static const char *const default_listen[LISTEN_COUNT] = {
	"127.0.0.1:1143", "127.0.0.1:1993", "127.0.0.1:1110", "127.0.0.1:1995",
	"127.0.0.1:2525", "127.0.0.1:1587", "127.0.0.1:1465", "127.0.0.1:2424",
};

const char *listener_name(enum listener_kind kind)
{
	return listener_names[kind];
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->data_dir = xstrdup("./sarn-data");
	cfg->hostname = xstrdup("localhost");
	cfg->workers = 0;
	cfg->auth_threads = 2;
	cfg->delivery_threads = 8;
	cfg->log_level = LOG_INFO;
	for (int i = 0; i < LISTEN_COUNT; i++)
		cfg->listen[i] = xstrdup(default_listen[i]);
	cfg->max_message_size = 50 * 1024 * 1024;
	cfg->max_line_length = 8192;
	cfg->max_connections = 10000;
	cfg->max_connections_per_ip = 200;
	cfg->max_connections_per_user = 50;
	cfg->max_recipients = 1000;
	cfg->max_bad_commands = 20;
	cfg->pop3_idle_timeout = 600;
	cfg->imap_idle_timeout = 1800;
	cfg->smtp_idle_timeout = 300;
	cfg->auth_fail_delay_ms = 1000;
	cfg->auth_max_failures = 10;
	cfg->plaintext_auth = PLAINTEXT_AUTH_LOOPBACK;
	cfg->pop3_retention_days = 0;
	cfg->pop3_lock = true;
	cfg->save_sent = false;
	cfg->max_remote_rcpts_per_hour = 1000;
	cfg->smarthost_tls = OUTBOUND_TLS_OPPORTUNISTIC;
	cfg->remote_port = 25;
	cfg->retry_min = 60;
	cfg->retry_max = 3600;
	cfg->queue_expire = 5 * 86400;
	cfg->delay_warning = 4 * 3600;
	cfg->max_per_domain = 4;
	cfg->queue_workers = 16;
	cfg->connect_timeout = 30;
	cfg->command_timeout = 300;
}

void config_free(struct config *cfg)
{
	free(cfg->data_dir);
	free(cfg->hostname);
	free(cfg->run_user);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->smarthost);
	free(cfg->smarthost_user);
	free(cfg->smarthost_password);
	free(cfg->smarthost_ca);
	free(cfg->dns_server);
	for (int i = 0; i < LISTEN_COUNT; i++)
		free(cfg->listen[i]);
	memset(cfg, 0, sizeof *cfg);
}

struct load_ctx {
	struct config *cfg;
	char *err;
};

static int set_str(char **dst, const char *value)
{
	free(*dst);
	*dst = value[0] ? xstrdup(value) : NULL;
	return 0;
}

static int set_u64(uint64_t *dst, const char *value, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v = strtoull(value, &end, 10);
	uint64_t mult = 1;
	if (end == value)
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		mult = 1024 * 1024 * 1024, end++;
	if (*end != '\0' || value[0] == '-' || v > max / mult || v * mult < min || v * mult > max)
		return -1;
	*dst = v * mult;
	return 0;
}

static int set_u32(uint32_t *dst, const char *value, uint32_t min, uint32_t max)
{
	uint64_t v;
	if (set_u64(&v, value, min, max) < 0)
		return -1;
	*dst = (uint32_t)v;
	return 0;
}

static int set_int(int *dst, const char *value, int min, int max)
{
	uint64_t v;
	if (set_u64(&v, value, (uint64_t)min, (uint64_t)max) < 0)
		return -1;
	*dst = (int)v;
	return 0;
}

static int set_bool(bool *dst, const char *value)
{
	if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
		*dst = true;
	else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
		*dst = false;
	else
		return -1;
	return 0;
}

static int apply_queue(struct config *cfg, const char *name, const char *value)
{
	if (!strcmp(name, "smarthost"))
		return set_str(&cfg->smarthost, value);
	if (!strcmp(name, "smarthost_user"))
		return set_str(&cfg->smarthost_user, value);
	if (!strcmp(name, "smarthost_password"))
		return set_str(&cfg->smarthost_password, value);
	if (!strcmp(name, "smarthost_tls")) {
		if (!strcmp(value, "opportunistic"))
			cfg->smarthost_tls = OUTBOUND_TLS_OPPORTUNISTIC;
		else if (!strcmp(value, "required"))
			cfg->smarthost_tls = OUTBOUND_TLS_REQUIRED;
		else if (!strcmp(value, "verify"))
			cfg->smarthost_tls = OUTBOUND_TLS_VERIFY;
		else if (!strcmp(value, "none"))
			cfg->smarthost_tls = OUTBOUND_TLS_NONE;
		else
			return -1;
		return 0;
	}
	if (!strcmp(name, "smarthost_ca"))
		return set_str(&cfg->smarthost_ca, value);
	if (!strcmp(name, "dns_server"))
		return set_str(&cfg->dns_server, value);
	if (!strcmp(name, "remote_port"))
		return set_u32(&cfg->remote_port, value, 1, 65535);
	if (!strcmp(name, "retry_min"))
		return set_u32(&cfg->retry_min, value, 1, 86400);
	if (!strcmp(name, "retry_max"))
		return set_u32(&cfg->retry_max, value, 1, 7 * 86400);
	if (!strcmp(name, "expire"))
		return set_u32(&cfg->queue_expire, value, 1, 60 * 86400);
	if (!strcmp(name, "delay_warning"))
		return set_u32(&cfg->delay_warning, value, 0, 60 * 86400);
	if (!strcmp(name, "max_per_domain"))
		return set_u32(&cfg->max_per_domain, value, 1, 1000);
	if (!strcmp(name, "workers"))
		return set_u32(&cfg->queue_workers, value, 1, 256);
	if (!strcmp(name, "connect_timeout"))
		return set_u32(&cfg->connect_timeout, value, 1, 3600);
	if (!strcmp(name, "command_timeout"))
		return set_u32(&cfg->command_timeout, value, 1, 3600);
	return -2;
}

/* Returns 0 ok, -1 bad value, -2 unknown key. */
static int apply(struct config *cfg, const char *section, const char *name, const char *value)
{
	if (!strcmp(section, "server")) {
		if (!strcmp(name, "data_dir"))
			return value[0] ? set_str(&cfg->data_dir, value) : -1;
		if (!strcmp(name, "hostname"))
			return value[0] ? set_str(&cfg->hostname, value) : -1;
		if (!strcmp(name, "user")) {
			free(cfg->run_user);
			cfg->run_user = value[0] ? xstrdup(value) : NULL;
			return 0;
		}
		if (!strcmp(name, "workers"))
			return set_int(&cfg->workers, value, 0, 256);
		if (!strcmp(name, "auth_threads"))
			return set_int(&cfg->auth_threads, value, 1, 64);
		if (!strcmp(name, "delivery_threads"))
			return set_int(&cfg->delivery_threads, value, 1, 256);
		if (!strcmp(name, "log_level"))
			return log_level_parse(value, &cfg->log_level);
	} else if (!strcmp(section, "tls")) {
		if (!strcmp(name, "cert"))
			return set_str(&cfg->tls_cert, value);
		if (!strcmp(name, "key"))
			return set_str(&cfg->tls_key, value);
	} else if (!strcmp(section, "listen")) {
		for (int i = 0; i < LISTEN_COUNT; i++)
			if (!strcmp(name, listener_names[i]))
				return set_str(&cfg->listen[i], value);
	} else if (!strcmp(section, "limits")) {
		if (!strcmp(name, "max_message_size"))
			return set_u64(&cfg->max_message_size, value, 1024, (uint64_t)4 << 30);
		if (!strcmp(name, "max_line_length"))
			return set_u32(&cfg->max_line_length, value, 1024, 16 << 20);
		if (!strcmp(name, "max_connections"))
			return set_u32(&cfg->max_connections, value, 1, 1000000);
		if (!strcmp(name, "max_connections_per_ip"))
			return set_u32(&cfg->max_connections_per_ip, value, 1, 1000000);
		if (!strcmp(name, "max_connections_per_user"))
			return set_u32(&cfg->max_connections_per_user, value, 1, 1000000);
		if (!strcmp(name, "max_recipients"))
			return set_u32(&cfg->max_recipients, value, 1, 100000);
		if (!strcmp(name, "max_bad_commands"))
			return set_u32(&cfg->max_bad_commands, value, 1, 100000);
		if (!strcmp(name, "pop3_idle_timeout"))
			return set_u32(&cfg->pop3_idle_timeout, value, 1, 86400);
		if (!strcmp(name, "imap_idle_timeout"))
			return set_u32(&cfg->imap_idle_timeout, value, 1800, 86400);
		if (!strcmp(name, "smtp_idle_timeout"))
			return set_u32(&cfg->smtp_idle_timeout, value, 1, 86400);
		if (!strcmp(name, "auth_fail_delay_ms"))
			return set_u32(&cfg->auth_fail_delay_ms, value, 0, 60000);
		if (!strcmp(name, "auth_max_failures"))
			return set_u32(&cfg->auth_max_failures, value, 1, 1000000);
	} else if (!strcmp(section, "auth")) {
		if (!strcmp(name, "plaintext_auth")) {
			if (!strcmp(value, "never"))
				cfg->plaintext_auth = PLAINTEXT_AUTH_NEVER;
			else if (!strcmp(value, "loopback"))
				cfg->plaintext_auth = PLAINTEXT_AUTH_LOOPBACK;
			else if (!strcmp(value, "always"))
				cfg->plaintext_auth = PLAINTEXT_AUTH_ALWAYS;
			else
				return -1;
			return 0;
		}
	} else if (!strcmp(section, "pop3")) {
		if (!strcmp(name, "retention_days"))
			return set_int(&cfg->pop3_retention_days, value, 0, 100000);
		if (!strcmp(name, "lock"))
			return set_bool(&cfg->pop3_lock, value);
	} else if (!strcmp(section, "submission")) {
		if (!strcmp(name, "save_sent"))
			return set_bool(&cfg->save_sent, value);
		if (!strcmp(name, "max_remote_recipients_per_hour"))
			return set_u32(&cfg->max_remote_rcpts_per_hour, value, 0, 10000000);
	} else if (!strcmp(section, "queue")) {
		return apply_queue(cfg, name, value);
	}
	return -2;
}

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	if (ctx->err != NULL)
		return 0;
	int r = apply(ctx->cfg, section, name, value);
	if (r == -1)
		ctx->err = xasprintf("[%s] %s: invalid value \"%s\"", section, name, value);
	else if (r == -2)
		ctx->err = xasprintf("[%s] %s: unknown setting", section, name);
	return r == 0;
}

static int load_result(struct load_ctx *ctx, int r, const char *name, char **err_r)
{
	if (r == -1) {
		*err_r = xasprintf("%s: cannot open", name);
		return -1;
	}
	if (ctx->err != NULL) {
		*err_r = xasprintf("%s: line %d: %s", name, r, ctx->err);
		free(ctx->err);
		return -1;
	}
	if (r != 0) {
		*err_r = xasprintf("%s: line %d: syntax error", name, r);
		return -1;
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, char **err_r)
{
	struct load_ctx ctx = {.cfg = cfg};
	return load_result(&ctx, ini_parse(path, on_ini_entry, &ctx), path, err_r);
}

int config_load_string(struct config *cfg, const char *text, const char *name, char **err_r)
{
	struct load_ctx ctx = {.cfg = cfg};
	return load_result(&ctx, ini_parse_string(text, on_ini_entry, &ctx), name, err_r);
}

int config_from_args(struct config *cfg, int *argc, char **argv)
{
	const char *file = NULL, *data = NULL;
	int out = 0;
	for (int i = 0; i < *argc; i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < *argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "--data") && i + 1 < *argc)
			data = argv[++i];
		else
			argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	config_defaults(cfg);
	if (file != NULL) {
		char *err = NULL;
		if (config_load(cfg, file, &err) < 0) {
			fprintf(stderr, "sarn: config: %s\n", err);
			free(err);
			return -1;
		}
	}
	if (data != NULL)
		set_str(&cfg->data_dir, data);
	return 0;
}

struct snapshot {
	struct config *cfg;
	struct snapshot *next;
};

static _Atomic(struct config *) current;
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *published;

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct config *config_dup(const struct config *cfg)
{
	struct config *c = xmalloc(sizeof *c);
	*c = *cfg;
	c->data_dir = dup_or_null(cfg->data_dir);
	c->hostname = dup_or_null(cfg->hostname);
	c->run_user = dup_or_null(cfg->run_user);
	c->tls_cert = dup_or_null(cfg->tls_cert);
	c->tls_key = dup_or_null(cfg->tls_key);
	c->smarthost = dup_or_null(cfg->smarthost);
	c->smarthost_user = dup_or_null(cfg->smarthost_user);
	c->smarthost_password = dup_or_null(cfg->smarthost_password);
	c->smarthost_ca = dup_or_null(cfg->smarthost_ca);
	c->dns_server = dup_or_null(cfg->dns_server);
	for (int i = 0; i < LISTEN_COUNT; i++)
		c->listen[i] = dup_or_null(cfg->listen[i]);
	return c;
}

void config_publish(struct config *cfg)
{
	struct snapshot *sn = xcalloc(1, sizeof *sn);
	sn->cfg = cfg;
	pthread_mutex_lock(&retired_lock);
	sn->next = published;
	published = sn;
	pthread_mutex_unlock(&retired_lock);
	atomic_store(&current, cfg);
}

const struct config *config_current(void)
{
	return atomic_load(&current);
}

void config_retire_all(void)
{
	atomic_store(&current, NULL);
	pthread_mutex_lock(&retired_lock);
	while (published != NULL) {
		struct snapshot *sn = published;
		published = sn->next;
		config_free(sn->cfg);
		free(sn->cfg);
		free(sn);
	}
	pthread_mutex_unlock(&retired_lock);
}
