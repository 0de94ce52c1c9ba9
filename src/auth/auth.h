/* Accounts, aliases and domains (DATA/accounts.db), password hashing, recipient resolution.
 * Thread-safe: one handle may be used from every thread. */
#ifndef SARN_AUTH_AUTH_H
#define SARN_AUTH_AUTH_H

#include <stdbool.h>

struct auth_db;

/* Opens (creating if needed) DATA_DIR/accounts.db. 0 ok, -1 error (logged). */
int auth_db_open(const char *data_dir, struct auth_db **db_r);
void auth_db_close(struct auth_db **db);

/* Longest password accepted by auth_user_add/auth_user_passwd (a libxcrypt limit). */
#define AUTH_PASSWORD_MAX 511

/* Addresses are normalised: domain lowercased, local part kept (compared case-insensitively).
 * An address must be local@domain with a sane syntax (no '/', no control chars, no spaces,
 * at most 254 octets). The domain is created with its first user.
 * Return: 1 ok, 0 already exists / not found, -1 invalid address or error.
 * auth_user_add and auth_user_passwd also return -1 for an empty password or one longer than
 * AUTH_PASSWORD_MAX. auth_user_del also removes every alias pointing to the account; the
 * domain stays. The password is hashed with yescrypt (slow on purpose). */
int auth_user_add(struct auth_db *db, const char *address, const char *password);
int auth_user_del(struct auth_db *db, const char *address);
int auth_user_passwd(struct auth_db *db, const char *address, const char *password);
/* Calls cb for every account, in address order. 0 ok, -1 error. */
int auth_user_list(struct auth_db *db, void (*cb)(const char *address, void *ctx), void *ctx);
bool auth_user_exists(struct auth_db *db, const char *address);
/* Looks up an account by address (case-insensitive local part). 1 found (*account_r is the
 * canonical address as stored, caller frees), 0 no such account or invalid address,
 * -1 error. */
int auth_user_canonical(struct auth_db *db, const char *address, char **account_r);

/* Verifies a password (yescrypt; slow on purpose: call from a job thread).
 * On success *account_r is the canonical account address (caller frees).
 * 1 ok, 0 wrong user or password, -1 error. */
int auth_verify(struct auth_db *db, const char *address, const char *password, char **account_r);

/* alias may be "x@dom" (one address) or "@dom" (catch-all); target is an account address.
 * Adding an alias makes its domain local. auth_alias_add: 1 added, 0 the alias exists,
 * -1 invalid alias, target not an account, alias is itself an account, or error.
 * auth_alias_del: 1 removed, 0 not found, -1 invalid or error. auth_alias_list calls cb
 * in alias order (0 ok, -1 error). */
int auth_alias_add(struct auth_db *db, const char *alias, const char *target);
int auth_alias_del(struct auth_db *db, const char *alias);
int auth_alias_list(struct auth_db *db, void (*cb)(const char *alias, const char *target, void *ctx),
		    void *ctx);

/* A domain is local once it has had an account or an alias (case-insensitive). */
bool auth_domain_is_local(struct auth_db *db, const char *domain);
/* Calls cb for every local domain in name order. 0 ok, -1 error. */
int auth_domain_list(struct auth_db *db, void (*cb)(const char *domain, void *ctx), void *ctx);

/* Maps an envelope recipient to an account: exact account, then "+tag" stripped (from the
 * first '+' of the local part), then alias (exact, then with "+tag" stripped), then the
 * catch-all alias "@domain". 1 found (*account_r set, caller frees), 0 unknown (also for an
 * invalid address or a domain that is not local), -1 error. */
int auth_resolve_rcpt(struct auth_db *db, const char *rcpt, char **account_r);

/* POP3 retention: days after first download before the server deletes a message;
 * 0 = keep forever. An account setting overrides its domain's.
 * auth_retention_get: 1 with *days_r = the account's value if set, else its domain's, else
 * -1 meaning "no setting" (the caller applies the server default, pop3 retention_days);
 * 0 (and *days_r = -1) if the account does not exist; -1 error.
 * The setters take days >= 0, or -1 to clear the setting (back to the default).
 * 1 ok, 0 no such account / domain, -1 invalid argument or error. */
int auth_retention_get(struct auth_db *db, const char *account, int *days_r);
int auth_retention_set_user(struct auth_db *db, const char *account, int days);
int auth_retention_set_domain(struct auth_db *db, const char *domain, int days);

/* Checks address syntax: local@domain with exactly one '@', total <= 254 octets, local part
 * 1..64 octets; only printable ASCII without space / \ " ( ) , : ; < > [ ]; neither part
 * starts or ends with '.' or contains ".."; the domain is "localhost" or has a dot, and is
 * made of labels of letters, digits, '-' and '_' (at most 63 octets, no '-' at either end). */
bool auth_address_valid(const char *address);
/* Returns the normalised form of a valid address (domain lowercased; caller frees), or NULL
 * if the address is not valid. */
char *auth_address_normalize(const char *address);

#endif
