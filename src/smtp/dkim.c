/* DKIM signing: relaxed/relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4), the signature
 * (§3.5, §3.7) with RSA PKCS#1 v1.5 / SHA-256, or Ed25519 over the SHA-256 hash (RFC 8463). */
#include "smtp/dkim.h"

#include "core/util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fields signed when present, each occurrence. From is required. */
static const char *const signed_fields[] = {
	"from", "reply-to", "sender", "to", "cc", "subject", "date", "message-id", "in-reply-to",
	"references", "mime-version", "content-type", "content-transfer-encoding",
	"list-unsubscribe",
};

struct dkim_signer {
	EVP_PKEY *key;
	enum dkim_algorithm alg;
	char *domain, *selector;
	bool in_body;
	bool too_big;
	struct buf header; /* the message header, up to the empty line (excluded) */
	size_t crlf_run;   /* while in the header: how much of "\r\n\r\n" was just seen */
	EVP_MD_CTX *body_hash;
	/* relaxed body canonicalization state */
	bool prev_cr, pending_ws, line_content, any_content;
	size_t pending_crlf;
};

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

void dkim_relaxed_header(const char *field, size_t len, struct buf *out)
{
	const char *colon = memchr(field, ':', len);
	if (colon == NULL)
		return;
	size_t nlen = (size_t)(colon - field);
	while (nlen > 0 && is_wsp((unsigned char)field[nlen - 1]))
		nlen--;
	for (size_t i = 0; i < nlen; i++) {
		char c = field[i];
		buf_append(out, &(char){(char)(c >= 'A' && c <= 'Z' ? c + 32 : c)}, 1);
	}
	buf_append(out, ":", 1);
	bool ws = false, started = false;
	for (const char *p = colon + 1; p < field + len; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\r' || c == '\n' || is_wsp(c)) {
			ws = true; /* unfolding: CRLF disappear, WSP runs become one SP */
			continue;
		}
		if (ws && started)
			buf_append(out, " ", 1);
		ws = false;
		started = true;
		buf_append(out, p, 1);
	}
	buf_append(out, "\r\n", 2);
}

static void body_emit(struct dkim_signer *s, const void *data, size_t len)
{
	EVP_DigestUpdate(s->body_hash, data, len);
}

static void body_content(struct dkim_signer *s, unsigned char c)
{
	for (; s->pending_crlf > 0; s->pending_crlf--)
		body_emit(s, "\r\n", 2);
	if (s->pending_ws)
		body_emit(s, " ", 1);
	s->pending_ws = false;
	body_emit(s, &c, 1);
	s->line_content = true;
	s->any_content = true;
}

/* One body byte through relaxed canonicalization: WSP runs become one SP, WSP at line ends
 * and empty lines at the end of the body go (the last line's CRLF is added at the end). */
static void body_byte(struct dkim_signer *s, unsigned char c)
{
	if (s->prev_cr) {
		s->prev_cr = false;
		if (c == '\n') {
			s->pending_ws = false;
			s->line_content = false;
			s->pending_crlf++;
			return;
		}
		body_content(s, '\r'); /* a CR on its own is text */
	}
	if (c == '\r')
		s->prev_cr = true;
	else if (is_wsp(c))
		s->pending_ws = true;
	else
		body_content(s, c);
}

int dkim_signer_new(const void *pem, size_t pem_len, const char *domain, const char *selector,
		    struct dkim_signer **signer_r, const char **error_r)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (key == NULL) {
		*error_r = "cannot read the private key (PEM)";
		return -1;
	}
	enum dkim_algorithm alg;
	if (EVP_PKEY_is_a(key, "RSA")) {
		alg = DKIM_RSA_SHA256;
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		alg = DKIM_ED25519_SHA256;
	} else {
		EVP_PKEY_free(key);
		*error_r = "the key is neither RSA nor Ed25519";
		return -1;
	}
	struct dkim_signer *s = xcalloc(1, sizeof *s);
	s->key = key;
	s->alg = alg;
	s->domain = xstrdup(domain);
	s->selector = xstrdup(selector);
	s->body_hash = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s->body_hash, EVP_sha256(), NULL);
	*signer_r = s;
	return 0;
}

void dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	EVP_MD_CTX_free(s->body_hash);
	buf_free(&s->header);
	free(s->domain);
	free(s->selector);
	free(s);
	*sp = NULL;
}

void dkim_signer_feed(struct dkim_signer *s, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;
	while (p < end && !s->in_body) {
		/* The header ends at the first empty line: "\r\n\r\n" (or one at the very start). */
		static const char sep[] = "\r\n\r\n";
		unsigned char c = *p++;
		if (s->header.len < DKIM_MAX_HEADER)
			buf_append(&s->header, &c, 1);
		else
			s->too_big = true;
		s->crlf_run = c == (unsigned char)sep[s->crlf_run] ? s->crlf_run + 1
			      : c == '\r'			 ? 1
								 : 0;
		if (s->crlf_run == 4 || (s->header.len == 2 && s->crlf_run == 2)) {
			s->in_body = true;
			s->header.len -= 2; /* the empty line; the last field keeps its CRLF */
		}
	}
	for (; p < end; p++)
		body_byte(s, *p);
}

/* The header's fields as (start, length) pairs, each with its continuation lines and without
 * its final CRLF. */
struct field {
	const char *start;
	size_t len;
};

static size_t split_fields(const struct buf *h, struct field **fields_r)
{
	struct field *f = NULL;
	size_t n = 0;
	const char *p = (const char *)h->data, *end = p + h->len;
	while (p < end) {
		const char *q = p;
		for (;;) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));
			if (nl == NULL) {
				q = end;
				break;
			}
			q = nl + 1;
			if (q == end || !is_wsp((unsigned char)*q))
				break;
		}
		size_t len = (size_t)(q - p);
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
			len--;
		f = xrealloc(f, (n + 1) * sizeof *f);
		f[n].start = p;
		f[n].len = len;
		n++;
		p = q;
	}
	*fields_r = f;
	return n;
}

static bool field_is(const struct field *f, const char *name)
{
	size_t n = strlen(name);
	if (f->len <= n || strncasecmp(f->start, name, n) != 0)
		return false;
	for (size_t i = n; i < f->len; i++) {
		if (f->start[i] == ':')
			return true;
		if (!is_wsp((unsigned char)f->start[i]))
			return false;
	}
	return false;
}

static int sign(struct dkim_signer *s, const struct buf *data, unsigned char **sig_r,
		size_t *len_r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char digest[32];
	const unsigned char *in = data->data;
	size_t inlen = data->len;
	const EVP_MD *md = EVP_sha256();
	if (s->alg == DKIM_ED25519_SHA256) {
		/* RFC 8463 §3: PureEdDSA over the SHA-256 hash of the data. */
		unsigned int dlen = 0;
		EVP_Digest(data->data, data->len, digest, &dlen, EVP_sha256(), NULL);
		in = digest;
		inlen = dlen;
		md = NULL;
	}
	size_t len = 0;
	int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, md, NULL, s->key) == 1 &&
		 EVP_DigestSign(ctx, NULL, &len, in, inlen) == 1;
	unsigned char *sig = ok ? xmalloc(len) : NULL;
	ok = ok && EVP_DigestSign(ctx, sig, &len, in, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		free(sig);
		return -1;
	}
	*sig_r = sig;
	*len_r = len;
	return 0;
}

int dkim_signer_finish(struct dkim_signer *s, int64_t timestamp, struct buf *out,
		       const char **error_r)
{
	if (s->too_big) {
		*error_r = "the message header is too big to sign";
		return -1;
	}
	if (!s->in_body) /* a message without body: the whole input was its header */
		while (s->header.len > 0 && (s->header.data[s->header.len - 1] == '\n' ||
					     s->header.data[s->header.len - 1] == '\r'))
			s->header.len--;
	if (s->prev_cr) {
		s->prev_cr = false;
		body_content(s, '\r');
	}
	if (s->any_content)
		body_emit(s, "\r\n", 2); /* the last line's CRLF; trailing empty lines are gone */
	unsigned char bh[32];
	unsigned int bhlen = 0;
	EVP_DigestFinal_ex(s->body_hash, bh, &bhlen);
	char *bh64 = base64_encode(bh, bhlen);

	struct field *fields = NULL;
	size_t nfields = split_fields(&s->header, &fields);
	struct buf names = {0}, hashed = {0};
	bool have_from = false;
	for (size_t k = 0; k < sizeof signed_fields / sizeof signed_fields[0]; k++) {
		/* Several occurrences are signed from the bottom up (RFC 6376 §5.4.2). */
		for (size_t i = nfields; i > 0; i--) {
			if (!field_is(&fields[i - 1], signed_fields[k]))
				continue;
			buf_printf(&names, "%s%s", names.len ? ":" : "", signed_fields[k]);
			dkim_relaxed_header(fields[i - 1].start, fields[i - 1].len, &hashed);
			have_from = have_from || k == 0;
		}
	}
	free(fields);
	int rc = -1;
	if (!have_from) {
		*error_r = "the message has no From field";
		goto done;
	}
	struct buf field = {0};
	buf_printf(&field, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;\r\n"
			   "\tt=%lld; h=%s;\r\n\tbh=%s;\r\n\tb=",
		   s->alg == DKIM_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256", s->domain,
		   s->selector, (long long)timestamp, buf_cstr(&names), bh64);
	/* The signature field itself is hashed last, with an empty b= and no final CRLF. */
	dkim_relaxed_header((const char *)field.data, field.len, &hashed);
	hashed.len -= 2;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	if (sign(s, &hashed, &sig, &siglen) < 0) {
		*error_r = "signing failed";
		buf_free(&field);
		goto done;
	}
	char *b64 = base64_encode(sig, siglen);
	free(sig);
	size_t blen = strlen(b64);
	for (size_t i = 0; i < blen; i += 72) {
		if (i > 0)
			buf_append_str(&field, "\r\n\t ");
		buf_append(&field, b64 + i, blen - i < 72 ? blen - i : 72);
	}
	free(b64);
	buf_append_str(&field, "\r\n");
	buf_append(out, field.data, field.len);
	buf_free(&field);
	rc = 0;
done:
	free(bh64);
	buf_free(&names);
	buf_free(&hashed);
	return rc;
}

int dkim_generate(enum dkim_algorithm alg, struct buf *private_pem, struct buf *txt_record,
		  const char **error_r)
{
	EVP_PKEY *key = alg == DKIM_RSA_SHA256 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
					       : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (key == NULL) {
		*error_r = "key generation failed";
		return -1;
	}
	BIO *bio = BIO_new(BIO_s_mem());
	int ok = bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1;
	char *pem = NULL;
	long pemlen = ok ? BIO_get_mem_data(bio, &pem) : 0;
	if (ok)
		buf_append(private_pem, pem, (size_t)pemlen);
	BIO_free(bio);
	/* p=: the SubjectPublicKeyInfo for RSA, the raw 32-byte key for Ed25519 (RFC 8463). */
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof raw;
	int derlen = 0;
	if (ok && alg == DKIM_RSA_SHA256)
		ok = (derlen = i2d_PUBKEY(key, &der)) > 0;
	else if (ok)
		ok = EVP_PKEY_get_raw_public_key(key, raw, &rawlen) == 1;
	if (ok) {
		char *p64 = alg == DKIM_RSA_SHA256 ? base64_encode(der, (size_t)derlen)
						   : base64_encode(raw, rawlen);
		buf_printf(txt_record, "v=DKIM1; k=%s; p=%s",
			   alg == DKIM_RSA_SHA256 ? "rsa" : "ed25519", p64);
		free(p64);
	}
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	if (!ok)
		*error_r = "cannot encode the key";
	return ok ? 0 : -1;
}
