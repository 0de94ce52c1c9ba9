/* Settings: embedded defaults, overridden by an INI file (sarn serve -c FILE).
 * Every key is listed in docs/CONFIG.md with its default. */
#ifndef SARN_CONFIG_CONFIG_H
#define SARN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/log.h"

enum listener_kind {
	LISTEN_IMAP,
	LISTEN_IMAPS,
	LISTEN_POP3,
	LISTEN_POP3S,
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SUBMISSIONS,
	LISTEN_LMTP,
	LISTEN_COUNT
};

enum plaintext_auth {
	PLAINTEXT_AUTH_NEVER,    /* only after TLS */
	PLAINTEXT_AUTH_LOOPBACK, /* after TLS, or on a loopback connection */
	PLAINTEXT_AUTH_ALWAYS,
};

enum outbound_tls {
	OUTBOUND_TLS_OPPORTUNISTIC, /* STARTTLS when offered (RFC 3207), else plaintext */
	OUTBOUND_TLS_REQUIRED,      /* STARTTLS or defer */
	OUTBOUND_TLS_VERIFY,        /* STARTTLS with a certificate valid for the host, or defer */
	OUTBOUND_TLS_NONE,
};

struct config {
	/* [server] */
	char *data_dir;
	char *hostname;
	char *run_user;     /* [server] user: switch to it after binding when started as root */
	int workers;        /* 0 = one per core */
	int auth_threads;   /* job threads for password hashing */
	int delivery_threads; /* job threads that store received messages (fsync-bound) */
	enum log_level log_level;
	/* [tls] */
	char *tls_cert;     /* NULL = DATA/tls/cert.pem, generated on first start */
	char *tls_key;
	/* [listen]: "host:port", "[v6]:port", or NULL when off */
	char *listen[LISTEN_COUNT];
	/* [limits] */
	uint64_t max_message_size;
	uint32_t max_line_length;
	uint32_t max_connections;
	uint32_t max_connections_per_ip;
	uint32_t max_connections_per_user; /* logged-in IMAP + POP3 sessions of one account */
	uint32_t max_recipients;
	uint32_t max_bad_commands;
	uint32_t pop3_idle_timeout;   /* seconds */
	uint32_t imap_idle_timeout;   /* seconds, at least 30 minutes (RFC 9051 §5.4) */
	uint32_t smtp_idle_timeout;
	uint32_t auth_fail_delay_ms;  /* base delay after a failed login, doubles per failure */
	uint32_t auth_max_failures;   /* per address or account in 10 minutes before refusing */
	/* [auth] */
	enum plaintext_auth plaintext_auth;
	/* [pop3] */
	int pop3_retention_days;      /* default for accounts without their own setting */
	bool pop3_lock;               /* exclusive maildrop lock ([IN-USE]) */
	/* [submission] */
	bool save_sent;               /* file a copy of each submission in the sender's Sent */
	uint32_t max_remote_rcpts_per_hour; /* per account, 0 = no limit */
	/* [queue]: outbound delivery */
	char *smarthost;              /* "host:port", NULL = deliver by MX */
	char *smarthost_user;         /* AUTH at the smarthost, NULL = none */
	char *smarthost_password;
	enum outbound_tls smarthost_tls;
	char *smarthost_ca;           /* PEM file of trusted CAs for "verify", NULL = the system's */
	char *dns_server;             /* "ip" or "ip@port", NULL = /etc/resolv.conf */
	uint32_t remote_port;         /* SMTP port of MX hosts (25) */
	uint32_t retry_min;           /* seconds before the first retry; doubles per attempt */
	uint32_t retry_max;           /* longest wait between attempts */
	uint32_t queue_expire;        /* seconds before a message is returned as undeliverable */
	uint32_t delay_warning;       /* seconds before a "delayed" notice, 0 = none */
	uint32_t max_per_domain;      /* concurrent deliveries to one destination domain */
	uint32_t queue_workers;       /* delivery threads */
	uint32_t connect_timeout;     /* seconds, outbound connect */
	uint32_t command_timeout;     /* seconds, outbound reply wait */
};

/* Fills cfg with the embedded defaults. */
void config_defaults(struct config *cfg);
/* Loads path over the current values. Returns 0, or -1 with a message in *err_r (caller
 * frees) naming the line and key. */
int config_load(struct config *cfg, const char *path, char **err_r);
/* The same from text in memory (for tests and fuzzing); name labels the messages. */
int config_load_string(struct config *cfg, const char *text, const char *name, char **err_r);
void config_free(struct config *cfg);

const char *listener_name(enum listener_kind kind);

/* The running server's settings: an immutable snapshot, replaced as a whole on SIGHUP.
 * config_publish takes ownership of cfg (a heap copy made by the caller). Snapshots that
 * were current stay valid until config_retire_all at exit, so readers need no lock. */
void config_publish(struct config *cfg);
const struct config *config_current(void);
void config_retire_all(void);
/* A heap copy of cfg (every string duplicated). */
struct config *config_dup(const struct config *cfg);

/* Finds the data the way every subcommand does: "-c FILE", "--data DIR", else ./sarn-data.
 * Removes the options it used from argv (updating *argc). 0 ok, -1 error (printed). */
int config_from_args(struct config *cfg, int *argc, char **argv);

#endif
