/* Accounts database (DATA/accounts.db): users with yescrypt password hashes, aliases,
 * domains and their POP3 retention settings.
 *
 * One sqlite3 handle per auth_db, serialised by a mutex so any thread may call in. Password
 * hashing (tens of milliseconds by design) always runs with the mutex released. */
#include "auth/auth.h"

#include "core/buf.h"
#include "core/log.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ADDRESS_MAX 254
#define LOCAL_MAX 64
#define DOMAIN_MAX 253
#define LABEL_MAX 63

/* Returned by exec_args when a UNIQUE / PRIMARY KEY constraint failed. */
#define EXEC_CONSTRAINT (-2)

struct auth_db {
	sqlite3 *db;
	pthread_mutex_t lock;
	/* A yescrypt setting made at open: unknown users are "verified" against it so that
	 * a wrong user name costs the same time as a wrong password. */
	char *dummy_setting;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS domains("
	" name TEXT PRIMARY KEY COLLATE NOCASE,"
	" retention_days INTEGER);"
	"CREATE TABLE IF NOT EXISTS users("
	" address TEXT PRIMARY KEY COLLATE NOCASE,"
	" hash TEXT NOT NULL,"
	" retention_days INTEGER,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS aliases("
	" alias TEXT PRIMARY KEY COLLATE NOCASE,"
	" target TEXT NOT NULL COLLATE NOCASE);"
	"CREATE INDEX IF NOT EXISTS aliases_target ON aliases(target);"
	"PRAGMA user_version = 1;";

/* ---- address syntax ---- */

static bool atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("/\\\"(),:;<>[]@", c) == NULL;
}

/* Non-empty, no leading or trailing '.', no "..". */
static bool dots_ok(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '.' && s[i + 1] == '.')
			return false;
	return true;
}

static bool local_valid(const char *s, size_t len)
{
	if (len == 0 || len > LOCAL_MAX || !dots_ok(s, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!atom_char((unsigned char)s[i]))
			return false;
	return true;
}

static bool domain_valid(const char *s, size_t len)
{
	if (len == 9 && strncasecmp(s, "localhost", 9) == 0)
		return true;
	if (len > DOMAIN_MAX || !dots_ok(s, len) || memchr(s, '.', len) == NULL)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '_')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > LABEL_MAX)
			return false;
	}
	return s[len - 1] != '-';
}

bool auth_address_valid(const char *address)
{
	if (address == NULL)
		return false;
	size_t len = strnlen(address, ADDRESS_MAX + 1);
	if (len > ADDRESS_MAX)
		return false;
	const char *at = strchr(address, '@');
	if (at == NULL || strchr(at + 1, '@') != NULL)
		return false;
	size_t local_len = (size_t)(at - address);
	return local_valid(address, local_len) && domain_valid(at + 1, len - local_len - 1);
}

char *auth_address_normalize(const char *address)
{
	if (!auth_address_valid(address))
		return NULL;
	char *addr = xstrdup(address);
	char *at = strchr(addr, '@');
	for (char *p = at + 1; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return addr;
}

/* Normalises "x@dom" like an address and "@dom" (catch-all) to "@" + lowercased dom. */
static char *alias_normalize(const char *alias)
{
	if (alias == NULL)
		return NULL;
	if (alias[0] != '@')
		return auth_address_normalize(alias);
	char *probe = xasprintf("x%s", alias);
	char *norm = auth_address_normalize(probe);
	free(probe);
	if (norm == NULL)
		return NULL;
	char *out = xstrdup(norm + 1);
	free(norm);
	return out;
}

static char *domain_normalize(const char *domain)
{
	if (domain == NULL || !domain_valid(domain, strlen(domain)))
		return NULL;
	char *d = xstrdup(domain);
	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* ---- password hashing ---- */

/* Hashes phrase with setting (a full hash or a bare setting). NULL on failure. */
static char *crypt_hash(const char *phrase, const char *setting)
{
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	char *out = NULL;
	const char *h = crypt_r(phrase, setting, cd);
	if (h != NULL && h[0] != '*')
		out = xstrdup(h);
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return out;
}

static char *new_setting(void)
{
	char *setting = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (setting == NULL)
		log_error("auth: crypt_gensalt for yescrypt failed: %s", strerror(errno));
	return setting;
}

static bool password_ok(const char *password)
{
	return password != NULL && password[0] != '\0' &&
	       strnlen(password, AUTH_PASSWORD_MAX + 1) <= AUTH_PASSWORD_MAX;
}

static char *hash_password(const char *password)
{
	char *setting = new_setting();
	if (setting == NULL)
		return NULL;
	char *hash = crypt_hash(password, setting);
	free(setting);
	if (hash == NULL)
		log_error("auth: yescrypt hashing failed");
	return hash;
}

/* ---- SQL helpers (called with db->lock held) ---- */

static void db_lock(struct auth_db *db)
{
	pthread_mutex_lock(&db->lock);
}

static void db_unlock(struct auth_db *db)
{
	pthread_mutex_unlock(&db->lock);
}

static int exec_sql(struct auth_db *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_error("auth: sql failed: %s", err ? err : sqlite3_errmsg(db->db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Prepares sql and binds args[0..n-1] as text to ?1..?n. */
static sqlite3_stmt *prep(struct auth_db *db, const char *sql, int n, const char *const *args)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("auth: sql prepare failed: %s", sqlite3_errmsg(db->db));
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC) != SQLITE_OK) {
			log_error("auth: sql bind failed: %s", sqlite3_errmsg(db->db));
			sqlite3_finalize(st);
			return NULL;
		}
	}
	return st;
}

/* Steps a prepared statement to completion. Returns the number of changed rows,
 * EXEC_CONSTRAINT or -1. Finalizes st. */
static int exec_stmt(struct auth_db *db, sqlite3_stmt *st)
{
	if (st == NULL)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return sqlite3_changes(db->db);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return EXEC_CONSTRAINT;
	log_error("auth: sql failed: %s", sqlite3_errmsg(db->db));
	return -1;
}

static int exec_args(struct auth_db *db, const char *sql, int n, const char *const *args)
{
	return exec_stmt(db, prep(db, sql, n, args));
}

/* Runs a query and returns its first row's text columns (col1_r may be NULL).
 * 1 row found, 0 none, -1 error. */
static int query_row(struct auth_db *db, const char *sql, int n, const char *const *args,
		     char **col0_r, char **col1_r)
{
	*col0_r = NULL;
	if (col1_r != NULL)
		*col1_r = NULL;
	sqlite3_stmt *st = prep(db, sql, n, args);
	if (st == NULL)
		return -1;
	int rc = sqlite3_step(st);
	int ret;
	if (rc == SQLITE_ROW) {
		const char *c0 = (const char *)sqlite3_column_text(st, 0);
		*col0_r = xstrdup(c0 ? c0 : "");
		if (col1_r != NULL) {
			const char *c1 = (const char *)sqlite3_column_text(st, 1);
			*col1_r = xstrdup(c1 ? c1 : "");
		}
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		log_error("auth: sql query failed: %s", sqlite3_errmsg(db->db));
		ret = -1;
	}
	sqlite3_finalize(st);
	return ret;
}

struct rows {
	char **cells;
	size_t count; /* cells, i.e. rows * columns */
	size_t cap;
};

/* Collects every row's first ncols text columns (so callbacks run without the lock). */
static int query_rows(struct auth_db *db, const char *sql, int ncols, struct rows *rows)
{
	sqlite3_stmt *st = prep(db, sql, 0, NULL);
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < ncols; i++) {
			if (rows->count == rows->cap) {
				rows->cap = rows->cap ? rows->cap * 2 : 16;
				rows->cells = xrealloc(rows->cells, rows->cap * sizeof *rows->cells);
			}
			const char *c = (const char *)sqlite3_column_text(st, i);
			rows->cells[rows->count++] = xstrdup(c ? c : "");
		}
	}
	if (rc != SQLITE_DONE)
		log_error("auth: sql query failed: %s", sqlite3_errmsg(db->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void rows_free(struct rows *rows)
{
	for (size_t i = 0; i < rows->count; i++)
		free(rows->cells[i]);
	free(rows->cells);
	memset(rows, 0, sizeof *rows);
}

static int tx_begin(struct auth_db *db)
{
	return exec_sql(db, "BEGIN IMMEDIATE");
}

static int tx_commit(struct auth_db *db)
{
	if (exec_sql(db, "COMMIT") < 0) {
		exec_sql(db, "ROLLBACK");
		return -1;
	}
	return 0;
}

static void tx_rollback(struct auth_db *db)
{
	exec_sql(db, "ROLLBACK");
}

/* ---- open / close ---- */

int auth_db_open(const char *data_dir, struct auth_db **db_r)
{
	*db_r = NULL;
	char *path = xasprintf("%s/accounts.db", data_dir);
	/* Create the file ourselves so it is private from the start (it holds hashes). */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("auth: cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	close(fd);

	struct auth_db *db = xcalloc(1, sizeof *db);
	pthread_mutex_init(&db->lock, NULL);
	int rc = sqlite3_open_v2(path, &db->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		log_error("auth: cannot open %s: %s", path,
			  db->db ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(db->db, 5000);
	if (exec_sql(db, "PRAGMA journal_mode=WAL") < 0 || exec_sql(db, schema) < 0)
		goto fail;
	db->dummy_setting = new_setting();
	if (db->dummy_setting == NULL)
		goto fail;
	free(path);
	*db_r = db;
	return 0;
fail:
	free(path);
	auth_db_close(&db);
	return -1;
}

void auth_db_close(struct auth_db **dbp)
{
	struct auth_db *db = *dbp;
	if (db == NULL)
		return;
	*dbp = NULL;
	if (db->db != NULL)
		sqlite3_close(db->db);
	pthread_mutex_destroy(&db->lock);
	free(db->dummy_setting);
	free(db);
}

/* ---- users ---- */

int auth_user_add(struct auth_db *db, const char *address, const char *password)
{
	char *addr = auth_address_normalize(address);
	if (addr == NULL || !password_ok(password)) {
		free(addr);
		return -1;
	}
	char *hash = hash_password(password);
	if (hash == NULL) {
		free(addr);
		return -1;
	}
	const char *domain = strchr(addr, '@') + 1;
	const char *args[] = {addr, hash};
	int ret = -1;
	db_lock(db);
	if (tx_begin(db) < 0)
		goto out;
	if (exec_args(db, "INSERT OR IGNORE INTO domains(name) VALUES (?1)", 1, &domain) < 0) {
		tx_rollback(db);
		goto out;
	}
	int r = exec_args(db,
			  "INSERT INTO users(address, hash, created) VALUES "
			  "(?1, ?2, CAST(strftime('%s', 'now') AS INTEGER))",
			  2, args);
	if (r < 0) {
		tx_rollback(db);
		ret = r == EXEC_CONSTRAINT ? 0 : -1;
		goto out;
	}
	ret = tx_commit(db) < 0 ? -1 : 1;
out:
	db_unlock(db);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	free(addr);
	return ret;
}

int auth_user_del(struct auth_db *db, const char *address)
{
	char *addr = auth_address_normalize(address);
	if (addr == NULL)
		return -1;
	const char *args[] = {addr};
	int ret = -1;
	db_lock(db);
	if (tx_begin(db) < 0)
		goto out;
	if (exec_args(db, "DELETE FROM aliases WHERE target = ?1", 1, args) < 0) {
		tx_rollback(db);
		goto out;
	}
	int r = exec_args(db, "DELETE FROM users WHERE address = ?1", 1, args);
	if (r <= 0) {
		tx_rollback(db);
		ret = r == 0 ? 0 : -1;
		goto out;
	}
	ret = tx_commit(db) < 0 ? -1 : 1;
out:
	db_unlock(db);
	free(addr);
	return ret;
}

int auth_user_passwd(struct auth_db *db, const char *address, const char *password)
{
	char *addr = auth_address_normalize(address);
	if (addr == NULL || !password_ok(password)) {
		free(addr);
		return -1;
	}
	char *hash = hash_password(password);
	if (hash == NULL) {
		free(addr);
		return -1;
	}
	const char *args[] = {addr, hash};
	db_lock(db);
	int r = exec_args(db, "UPDATE users SET hash = ?2 WHERE address = ?1", 2, args);
	db_unlock(db);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	free(addr);
	return r < 0 ? -1 : r > 0 ? 1 : 0;
}

int auth_user_list(struct auth_db *db, void (*cb)(const char *address, void *ctx), void *ctx)
{
	struct rows rows = {0};
	db_lock(db);
	int r = query_rows(db, "SELECT address FROM users ORDER BY address", 1, &rows);
	db_unlock(db);
	if (r == 0)
		for (size_t i = 0; i < rows.count; i++)
			cb(rows.cells[i], ctx);
	rows_free(&rows);
	return r;
}

/* 1 and *account_r = stored address, 0 none, -1 error. Lock held. */
static int find_account(struct auth_db *db, const char *addr, char **account_r)
{
	return query_row(db, "SELECT address FROM users WHERE address = ?1", 1, &addr, account_r,
			 NULL);
}

int auth_user_canonical(struct auth_db *db, const char *address, char **account_r)
{
	*account_r = NULL;
	char *addr = auth_address_normalize(address);
	if (addr == NULL)
		return 0;
	db_lock(db);
	int r = find_account(db, addr, account_r);
	db_unlock(db);
	free(addr);
	return r;
}

bool auth_user_exists(struct auth_db *db, const char *address)
{
	char *account = NULL;
	int r = auth_user_canonical(db, address, &account);
	free(account);
	return r == 1;
}

int auth_verify(struct auth_db *db, const char *address, const char *password, char **account_r)
{
	*account_r = NULL;
	char *addr = auth_address_normalize(address);
	char *account = NULL, *stored = NULL;
	int r = 0;
	if (addr != NULL) {
		const char *args[] = {addr};
		db_lock(db);
		r = query_row(db, "SELECT address, hash FROM users WHERE address = ?1", 1, args,
			      &account, &stored);
		db_unlock(db);
		free(addr);
	}
	if (r < 0)
		return -1;

	/* From here on, a missing user, an unusable password and a real check all cost one
	 * yescrypt computation. */
	bool usable = password_ok(password);
	bool real = r == 1 && usable;
	char *computed = crypt_hash(usable ? password : "-", real ? stored : db->dummy_setting);
	int ret = 0;
	if (real) {
		if (computed == NULL) {
			log_error("auth: cannot verify the stored hash of %s", account);
			ret = -1;
		} else {
			size_t len = strlen(stored);
			if (strlen(computed) == len && CRYPTO_memcmp(computed, stored, len) == 0)
				ret = 1;
		}
	}
	if (computed != NULL) {
		explicit_bzero(computed, strlen(computed));
		free(computed);
	}
	if (stored != NULL) {
		explicit_bzero(stored, strlen(stored));
		free(stored);
	}
	if (ret == 1)
		*account_r = account;
	else
		free(account);
	return ret;
}

/* ---- aliases ---- */

int auth_alias_add(struct auth_db *db, const char *alias, const char *target)
{
	char *a = alias_normalize(alias);
	char *t = auth_address_normalize(target);
	char *account = NULL;
	int ret = -1;
	if (a == NULL || t == NULL)
		goto out_free;
	const char *domain = strchr(a, '@') + 1;
	db_lock(db);
	if (find_account(db, t, &account) != 1)
		goto out; /* target must be an account */
	if (a[0] != '@') {
		char *shadow = NULL;
		int r = find_account(db, a, &shadow);
		free(shadow);
		if (r != 0)
			goto out; /* the alias is an account (or error) */
	}
	if (tx_begin(db) < 0)
		goto out;
	if (exec_args(db, "INSERT OR IGNORE INTO domains(name) VALUES (?1)", 1, &domain) < 0) {
		tx_rollback(db);
		goto out;
	}
	const char *args[] = {a, account};
	int r = exec_args(db, "INSERT INTO aliases(alias, target) VALUES (?1, ?2)", 2, args);
	if (r < 0) {
		tx_rollback(db);
		ret = r == EXEC_CONSTRAINT ? 0 : -1;
		goto out;
	}
	ret = tx_commit(db) < 0 ? -1 : 1;
out:
	db_unlock(db);
out_free:
	free(account);
	free(a);
	free(t);
	return ret;
}

int auth_alias_del(struct auth_db *db, const char *alias)
{
	char *a = alias_normalize(alias);
	if (a == NULL)
		return -1;
	const char *args[] = {a};
	db_lock(db);
	int r = exec_args(db, "DELETE FROM aliases WHERE alias = ?1", 1, args);
	db_unlock(db);
	free(a);
	return r < 0 ? -1 : r > 0 ? 1 : 0;
}

int auth_alias_list(struct auth_db *db, void (*cb)(const char *alias, const char *target, void *ctx),
		    void *ctx)
{
	struct rows rows = {0};
	db_lock(db);
	int r = query_rows(db, "SELECT alias, target FROM aliases ORDER BY alias", 2, &rows);
	db_unlock(db);
	if (r == 0)
		for (size_t i = 0; i + 1 < rows.count; i += 2)
			cb(rows.cells[i], rows.cells[i + 1], ctx);
	rows_free(&rows);
	return r;
}

/* ---- domains ---- */

bool auth_domain_is_local(struct auth_db *db, const char *domain)
{
	char *d = domain_normalize(domain);
	if (d == NULL)
		return false;
	char *name = NULL;
	db_lock(db);
	int r = query_row(db, "SELECT name FROM domains WHERE name = ?1", 1,
			  (const char *const *)&d, &name, NULL);
	db_unlock(db);
	free(name);
	free(d);
	return r == 1;
}

int auth_domain_list(struct auth_db *db, void (*cb)(const char *domain, void *ctx), void *ctx)
{
	struct rows rows = {0};
	db_lock(db);
	int r = query_rows(db, "SELECT name FROM domains ORDER BY name", 1, &rows);
	db_unlock(db);
	if (r == 0)
		for (size_t i = 0; i < rows.count; i++)
			cb(rows.cells[i], ctx);
	rows_free(&rows);
	return r;
}

/* ---- recipients ---- */

static int find_alias(struct auth_db *db, const char *alias, char **account_r)
{
	return query_row(db,
			 "SELECT u.address FROM aliases a JOIN users u ON u.address = a.target "
			 "WHERE a.alias = ?1",
			 1, &alias, account_r, NULL);
}

/* The resolution steps of auth_resolve_rcpt, lock held. */
static int resolve_locked(struct auth_db *db, const char *addr, const char *stripped,
			  const char *domain, char **account_r)
{
	char *name = NULL;
	int r = query_row(db, "SELECT name FROM domains WHERE name = ?1", 1, &domain, &name, NULL);
	free(name);
	if (r <= 0)
		return r;
	if ((r = find_account(db, addr, account_r)) != 0)
		return r;
	if (stripped != NULL && (r = find_account(db, stripped, account_r)) != 0)
		return r;
	if ((r = find_alias(db, addr, account_r)) != 0)
		return r;
	if (stripped != NULL && (r = find_alias(db, stripped, account_r)) != 0)
		return r;
	char *catchall = xasprintf("@%s", domain);
	r = find_alias(db, catchall, account_r);
	free(catchall);
	return r;
}

int auth_resolve_rcpt(struct auth_db *db, const char *rcpt, char **account_r)
{
	*account_r = NULL;
	char *addr = auth_address_normalize(rcpt);
	if (addr == NULL)
		return 0;
	char *at = strchr(addr, '@');
	const char *domain = at + 1;
	char *stripped = NULL;
	char *plus = memchr(addr, '+', (size_t)(at - addr));
	if (plus != NULL && plus != addr)
		stripped = xasprintf("%.*s@%s", (int)(plus - addr), addr, domain);
	db_lock(db);
	int r = resolve_locked(db, addr, stripped, domain, account_r);
	db_unlock(db);
	free(stripped);
	free(addr);
	return r;
}

/* ---- retention ---- */

int auth_retention_get(struct auth_db *db, const char *account, int *days_r)
{
	*days_r = -1;
	char *addr = auth_address_normalize(account);
	if (addr == NULL)
		return 0;
	const char *domain = strchr(addr, '@') + 1;
	const char *args[] = {addr, domain};
	int ret = -1;
	db_lock(db);
	sqlite3_stmt *st = prep(db,
				"SELECT u.retention_days, d.retention_days FROM users u "
				"LEFT JOIN domains d ON d.name = ?2 WHERE u.address = ?1",
				2, args);
	if (st != NULL) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (sqlite3_column_type(st, 0) != SQLITE_NULL)
				*days_r = sqlite3_column_int(st, 0);
			else if (sqlite3_column_type(st, 1) != SQLITE_NULL)
				*days_r = sqlite3_column_int(st, 1);
			ret = 1;
		} else if (rc == SQLITE_DONE) {
			ret = 0;
		} else {
			log_error("auth: sql query failed: %s", sqlite3_errmsg(db->db));
		}
		sqlite3_finalize(st);
	}
	db_unlock(db);
	free(addr);
	return ret;
}

/* UPDATE sql with ?1 = key and ?2 = days (NULL when days is -1). */
static int retention_set(struct auth_db *db, const char *sql, const char *key, int days)
{
	db_lock(db);
	sqlite3_stmt *st = prep(db, sql, 1, &key);
	if (st != NULL) {
		int rc = days < 0 ? sqlite3_bind_null(st, 2) : sqlite3_bind_int(st, 2, days);
		if (rc != SQLITE_OK) {
			log_error("auth: sql bind failed: %s", sqlite3_errmsg(db->db));
			sqlite3_finalize(st);
			st = NULL;
		}
	}
	int r = exec_stmt(db, st);
	db_unlock(db);
	return r < 0 ? -1 : r > 0 ? 1 : 0;
}

int auth_retention_set_user(struct auth_db *db, const char *account, int days)
{
	if (days < -1)
		return -1;
	char *addr = auth_address_normalize(account);
	if (addr == NULL)
		return -1;
	int r = retention_set(db, "UPDATE users SET retention_days = ?2 WHERE address = ?1", addr,
			      days);
	free(addr);
	return r;
}

int auth_retention_set_domain(struct auth_db *db, const char *domain, int days)
{
	if (days < -1)
		return -1;
	char *d = domain_normalize(domain);
	if (d == NULL)
		return -1;
	int r = retention_set(db, "UPDATE domains SET retention_days = ?2 WHERE name = ?1", d, days);
	free(d);
	return r;
}
