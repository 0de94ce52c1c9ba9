/* Password login shared by POP3, IMAP and SMTP AUTH: throttling, the slow hash on a job
 * thread, and a delay after failures. The session is paused meanwhile. */
#ifndef SARN_AUTH_LOGIN_H
#define SARN_AUTH_LOGIN_H

#include "app.h"
#include "net/conn.h"

enum login_result {
	LOGIN_OK,
	LOGIN_FAILED,    /* wrong user or password */
	LOGIN_THROTTLED, /* too many failures from this address or for this account */
	LOGIN_TEMPFAIL,  /* the account database failed */
};

/* Called on the connection's thread, unless the connection closed meanwhile.
 * account is the canonical address on LOGIN_OK (valid during the call). */
typedef void login_done_fn(void *sess, enum login_result result, const char *account);

void login_start(struct conn *c, struct app *app, const char *user, const char *password,
		 login_done_fn *done, void *sess);

/* Whether plaintext passwords may be sent on this connection (config: plaintext_auth). */
bool login_plaintext_allowed(struct conn *c);

#endif
