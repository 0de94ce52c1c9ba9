/* TLS contexts (OpenSSL 3). One server context, replaced as a whole on SIGHUP. */
#ifndef SARN_NET_TLS_H
#define SARN_NET_TLS_H

#include <openssl/ssl.h>

#include "config/config.h"

/* Loads cfg's certificate and key, generating a self-signed pair in DATA/tls on first start
 * when none is configured. 0 ok, -1 with *err_r (caller frees). */
int tls_load(const struct config *cfg, char **err_r);
/* The current context with a reference taken (release with SSL_CTX_free), or NULL. */
SSL_CTX *tls_ctx_acquire(void);
void tls_unload(void);

#endif
