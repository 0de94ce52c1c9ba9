#include "net/tls.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *current_ctx;

static char *ssl_error_string(void)
{
	unsigned long e = ERR_get_error();
	char msg[256];
	ERR_error_string_n(e, msg, sizeof msg);
	ERR_clear_error();
	return xstrdup(msg);
}

static int add_san(X509 *cert, const char *hostname)
{
	char *san = strcmp(hostname, "localhost") == 0
			    ? xstrdup("DNS:localhost,IP:127.0.0.1,IP:::1")
			    : xasprintf("DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	free(san);
	if (ext == NULL)
		return -1;
	int r = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return r == 1 ? 0 : -1;
}

static int write_pem(const char *path, int (*writer)(FILE *, void *), void *obj)
{
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	int r = -1;
	if (f != NULL) {
		fchmod(fileno(f), 0600);
		if (writer(f, obj) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0)
			r = 0;
		fclose(f);
	}
	if (r == 0 && rename(tmp, path) < 0)
		r = -1;
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}

static int write_key(FILE *f, void *key)
{
	return PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
}

static int write_cert(FILE *f, void *cert)
{
	return PEM_write_X509(f, cert);
}

/* A self-signed certificate naming the host and localhost, so clients that check names
 * (mbsync does even for pinned certificates) accept it once trusted. */
static int generate_self_signed(const char *hostname, const char *cert_path, const char *key_path,
				char **err_r)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *cert = X509_new();
	int r = -1;
	if (key == NULL || cert == NULL)
		goto out;
	X509_set_version(cert, 2);
	char *hex = random_hex(8);
	BIGNUM *bn = NULL;
	BN_hex2bn(&bn, hex);
	free(hex);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3650L * 24 * 3600);
	X509_set_pubkey(cert, key);
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sarn", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname, -1, -1,
				   0);
	X509_set_issuer_name(cert, name);
	if (add_san(cert, hostname) < 0 || X509_sign(cert, key, EVP_sha256()) == 0)
		goto out;
	if (write_pem(key_path, write_key, key) < 0 || write_pem(cert_path, write_cert, cert) < 0)
		goto out;
	r = 0;
	log_info("event=tls_generated cert=%s", cert_path);
out:
	if (r < 0 && *err_r == NULL) {
		char *e = ssl_error_string();
		*err_r = xasprintf("cannot generate a self-signed certificate: %s", e);
		free(e);
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

static SSL_CTX *new_ctx(const char *cert, const char *key, char **err_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*err_r = ssl_error_string();
		return NULL;
	}
	/* Mozilla "intermediate": TLS 1.2 and 1.3, AEAD ciphers with forward secrecy. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char *e = ssl_error_string();
		*err_r = xasprintf("%s / %s: %s", cert, key, e);
		free(e);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int tls_load(const struct config *cfg, char **err_r)
{
	*err_r = NULL;
	char *cert, *key;
	if (cfg->tls_cert != NULL) {
		cert = xstrdup(cfg->tls_cert);
		key = xstrdup(cfg->tls_key ? cfg->tls_key : cfg->tls_cert);
	} else {
		char *dir = xasprintf("%s/tls", cfg->data_dir);
		cert = xasprintf("%s/cert.pem", dir);
		key = xasprintf("%s/key.pem", dir);
		int r = 0;
		if (access(cert, R_OK) != 0 || access(key, R_OK) != 0) {
			if (mkdir_p(dir, 0700) < 0) {
				*err_r = xasprintf("cannot create %s", dir);
				r = -1;
			} else
				r = generate_self_signed(cfg->hostname, cert, key, err_r);
		}
		free(dir);
		if (r < 0) {
			free(cert);
			free(key);
			return -1;
		}
	}
	SSL_CTX *ctx = new_ctx(cert, key, err_r);
	free(cert);
	free(key);
	if (ctx == NULL)
		return -1;
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX *old = current_ctx;
	current_ctx = ctx;
	pthread_mutex_unlock(&ctx_lock);
	SSL_CTX_free(old);
	return 0;
}

SSL_CTX *tls_ctx_acquire(void)
{
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX *ctx = current_ctx;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&ctx_lock);
	return ctx;
}

void tls_unload(void)
{
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX *old = current_ctx;
	current_ctx = NULL;
	pthread_mutex_unlock(&ctx_lock);
	SSL_CTX_free(old);
}
