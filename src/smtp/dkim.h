/* DKIM signing (RFC 6376) with rsa-sha256 or ed25519-sha256 (RFC 8463), relaxed/relaxed
 * canonicalization, and key generation for `sarn dkim generate`. The message streams through
 * the signer (its header is kept, at most DKIM_MAX_HEADER bytes; the body is only hashed). */
#ifndef SARN_SMTP_DKIM_H
#define SARN_SMTP_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define DKIM_MAX_HEADER (1024 * 1024)

enum dkim_algorithm { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

/* Makes a key pair: the private key as PEM (PKCS#8) and the DNS TXT record value
 * ("v=DKIM1; k=rsa; p=..."). 0, or -1 with a static reason. */
int dkim_generate(enum dkim_algorithm alg, struct buf *private_pem, struct buf *txt_record,
		  const char **error_r);

struct dkim_signer;

/* A signer for domain/selector with a PEM private key (RSA or Ed25519, the algorithm follows
 * the key). 0, or -1 with a static reason. */
int dkim_signer_new(const void *pem, size_t pem_len, const char *domain, const char *selector,
		    struct dkim_signer **signer_r, const char **error_r);
void dkim_signer_free(struct dkim_signer **signer);
/* The message, CRLF line endings, in any chunking. */
void dkim_signer_feed(struct dkim_signer *signer, const void *data, size_t len);
/* Appends the "DKIM-Signature: ..." field (folded, ending in CRLF) to put on top of the
 * message. timestamp: the t= tag (Unix seconds). -1 with a static reason (a header over
 * DKIM_MAX_HEADER, no From field, a signing failure). */
int dkim_signer_finish(struct dkim_signer *signer, int64_t timestamp, struct buf *out,
		       const char **error_r);

/* Canonicalization, exposed for tests. */
/* relaxed header canonicalization of one field (name ":" value, folded lines included);
 * appends "name:value" with CRLF. */
void dkim_relaxed_header(const char *field, size_t len, struct buf *out);

#endif
