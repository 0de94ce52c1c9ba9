/* SASL PLAIN (RFC 4616) and LOGIN response decoding. */
#include "auth/sasl.h"

#include "core/buf.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 4616 §2 allows up to 255 octets per field; we accept more (long passwords) but cap
 * every field, so the decoded message is at most three fields and two NULs. */
#define SASL_FIELD_MAX 1024
#define SASL_PLAIN_MAX (3 * SASL_FIELD_MAX + 2)
/* Longest base64 text that can decode to SASL_PLAIN_MAX octets. */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)

enum sasl_mech sasl_mech_parse(const char *name, size_t len)
{
	if (token_eq(name, len, "PLAIN"))
		return SASL_PLAIN;
	if (token_eq(name, len, "LOGIN"))
		return SASL_LOGIN;
	return SASL_UNKNOWN;
}

/* Decodes b64 into a new buffer of *len_r octets (plus a NUL); NULL on bad base64 or when
 * the input could decode to more than max octets. */
static unsigned char *decode(const char *b64, size_t len, size_t max, size_t *len_r)
{
	if (b64 == NULL || len > B64_LEN(max))
		return NULL;
	size_t cap = (len / 4 + 1) * 3;
	unsigned char *out = xmalloc(cap + 1);
	long n = base64_decode(b64, len, out);
	if (n < 0 || (size_t)n > max) {
		explicit_bzero(out, cap + 1);
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*len_r = (size_t)n;
	return out;
}

static void wipe_free(unsigned char *p, size_t len)
{
	explicit_bzero(p, len);
	free(p);
}

int sasl_plain_decode(const char *b64, size_t len, char **user_r, char **pass_r)
{
	*user_r = NULL;
	*pass_r = NULL;
	size_t n;
	unsigned char *msg = decode(b64, len, SASL_PLAIN_MAX, &n);
	if (msg == NULL)
		return -1;
	/* message = [authzid] NUL authcid NUL passwd (RFC 4616 §2) */
	const char *authzid = (const char *)msg;
	unsigned char *nul1 = memchr(msg, '\0', n);
	unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg)) : NULL;
	if (nul2 == NULL)
		goto fail;
	const char *authcid = (const char *)nul1 + 1;
	const char *passwd = (const char *)nul2 + 1;
	size_t zlen = (size_t)(nul1 - msg);
	size_t clen = (size_t)(nul2 - nul1 - 1);
	size_t plen = n - (size_t)(nul2 + 1 - msg);
	if (memchr(passwd, '\0', plen) != NULL)
		goto fail; /* a third NUL */
	if (clen == 0 || plen == 0 || zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX ||
	    plen > SASL_FIELD_MAX)
		goto fail;
	/* No proxy login: an authzid must name the authenticating user itself. Addresses
	 * compare case-insensitively (the domain is case-insensitive and local parts are
	 * looked up without case), so such an authzid names the same account. */
	if (zlen != 0 && (zlen != clen || strncasecmp(authzid, authcid, clen) != 0))
		goto fail;
	*user_r = xstrndup(authcid, clen);
	*pass_r = xstrndup(passwd, plen);
	wipe_free(msg, n);
	return 0;
fail:
	wipe_free(msg, n);
	return -1;
}

char *sasl_login_decode(const char *b64, size_t len)
{
	size_t n;
	unsigned char *msg = decode(b64, len, SASL_FIELD_MAX, &n);
	if (msg == NULL)
		return NULL;
	char *out = NULL;
	if (n > 0 && memchr(msg, '\0', n) == NULL)
		out = xstrndup((const char *)msg, n);
	wipe_free(msg, n);
	return out;
}
