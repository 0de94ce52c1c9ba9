#include "smtp/resolve.h"

#include "core/buf.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

enum { TYPE_A = 1, TYPE_MX = 15, TYPE_AAAA = 28, CLASS_IN = 1, RCODE_NXDOMAIN = 3 };

struct resolver {
	struct ub_ctx *ctx;
};

struct resolver *resolver_new(const char *server)
{
	struct ub_ctx *ctx = ub_ctx_create();
	if (ctx == NULL) {
		log_error("event=resolver_init error=\"ub_ctx_create failed\"");
		return NULL;
	}
	/* A forwarder on loopback (a local cache, or a test's server) must be usable. */
	int r = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no");
	if (r == 0 && server != NULL)
		r = ub_ctx_set_fwd(ctx, server);
	else if (r == 0) {
		r = ub_ctx_resolvconf(ctx, NULL);
		if (r == 0)
			r = ub_ctx_hosts(ctx, NULL);
	}
	if (r != 0) {
		log_error("event=resolver_init server=\"%s\" error=\"%s\"", server ? server : "resolv.conf",
			  ub_strerror(r));
		ub_ctx_delete(ctx);
		return NULL;
	}
	struct resolver *res = xcalloc(1, sizeof *res);
	res->ctx = ctx;
	return res;
}

void resolver_free(struct resolver **r)
{
	if (*r == NULL)
		return;
	ub_ctx_delete((*r)->ctx);
	free(*r);
	*r = NULL;
}

static enum resolve_result query(struct resolver *r, const char *name, int type,
				 struct ub_result **result_r)
{
	*result_r = NULL;
	int rc = ub_resolve(r->ctx, name, type, CLASS_IN, result_r);
	if (rc != 0) {
		log_warn("event=dns_failed name=\"%s\" type=%d error=\"%s\"", name, type, ub_strerror(rc));
		return RESOLVE_TEMP;
	}
	struct ub_result *res = *result_r;
	if (res->nxdomain || res->rcode == RCODE_NXDOMAIN)
		return RESOLVE_NXDOMAIN;
	if (res->rcode != 0 || res->bogus) {
		log_warn("event=dns_failed name=\"%s\" type=%d rcode=%d", name, type, res->rcode);
		return RESOLVE_TEMP;
	}
	return RESOLVE_OK;
}

/* An uncompressed wire-format name (as libunbound returns rdata) as text, without the
 * final dot; NULL if malformed. "" is the root. */
static char *wire_name(const unsigned char *p, size_t len)
{
	struct buf b = {0};
	size_t i = 0;
	while (i < len && p[i] != 0) {
		size_t l = p[i++];
		if (l > 63 || i + l > len) {
			buf_free(&b);
			return NULL;
		}
		if (b.len > 0)
			buf_append(&b, ".", 1);
		buf_append(&b, p + i, l);
		i += l;
	}
	if (i >= len) {
		buf_free(&b);
		return NULL;
	}
	buf_cstr(&b);
	return (char *)b.data;
}

struct mx {
	unsigned pref;
	unsigned tiebreak;
	char *host;
};

static int cmp_mx(const void *a, const void *b)
{
	const struct mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->tiebreak < y->tiebreak ? -1 : x->tiebreak > y->tiebreak;
}

enum resolve_result resolver_mx(struct resolver *r, const char *domain, char ***hosts_r, size_t *n_r)
{
	*hosts_r = NULL;
	*n_r = 0;
	struct ub_result *res;
	enum resolve_result rr = query(r, domain, TYPE_MX, &res);
	if (rr != RESOLVE_OK) {
		ub_resolve_free(res);
		return rr;
	}
	struct mx *mxs = NULL;
	size_t n = 0;
	bool null_mx = false;
	for (int i = 0; res->havedata && res->data[i] != NULL; i++) {
		const unsigned char *d = (const unsigned char *)res->data[i];
		if (res->len[i] < 3)
			continue;
		char *host = wire_name(d + 2, (size_t)res->len[i] - 2);
		if (host == NULL)
			continue;
		if (host[0] == '\0') {
			null_mx = true; /* RFC 7505: "0 ." */
			free(host);
			continue;
		}
		mxs = xrealloc(mxs, (n + 1) * sizeof *mxs);
		mxs[n++] = (struct mx){(unsigned)(d[0] << 8 | d[1]), (unsigned)random(), host};
	}
	ub_resolve_free(res);
	if (n == 0 && null_mx)
		return RESOLVE_NULL_MX;
	if (n == 0) {
		/* RFC 5321 §5.1: no MX, the domain itself is the host (implicit MX). */
		*hosts_r = xmalloc(sizeof **hosts_r);
		(*hosts_r)[0] = xstrdup(domain);
		*n_r = 1;
		return RESOLVE_OK;
	}
	qsort(mxs, n, sizeof *mxs, cmp_mx);
	*hosts_r = xmalloc(n * sizeof **hosts_r);
	for (size_t i = 0; i < n; i++)
		(*hosts_r)[i] = mxs[i].host;
	*n_r = n;
	free(mxs);
	return RESOLVE_OK;
}

void resolver_hosts_free(char **hosts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hosts[i]);
	free(hosts);
}

static void add_addr(struct sockaddr_storage **addrs, size_t *n, int family, const void *a, unsigned port)
{
	*addrs = xrealloc(*addrs, (*n + 1) * sizeof **addrs);
	struct sockaddr_storage *ss = &(*addrs)[(*n)++];
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, a, 16);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, a, 4);
	}
}

enum resolve_result resolver_addresses(struct resolver *r, const char *host, unsigned port,
				       struct sockaddr_storage **addrs_r, size_t *n_r)
{
	*addrs_r = NULL;
	*n_r = 0;
	unsigned char raw[16];
	if (inet_pton(AF_INET6, host, raw) == 1) {
		add_addr(addrs_r, n_r, AF_INET6, raw, port);
		return RESOLVE_OK;
	}
	if (inet_pton(AF_INET, host, raw) == 1) {
		add_addr(addrs_r, n_r, AF_INET, raw, port);
		return RESOLVE_OK;
	}
	enum resolve_result worst = RESOLVE_NXDOMAIN;
	static const int types[] = {TYPE_AAAA, TYPE_A};
	for (int t = 0; t < 2; t++) {
		struct ub_result *res;
		enum resolve_result rr = query(r, host, types[t], &res);
		if (rr == RESOLVE_TEMP)
			worst = RESOLVE_TEMP;
		for (int i = 0; rr == RESOLVE_OK && res->havedata && res->data[i] != NULL; i++) {
			int want = types[t] == TYPE_AAAA ? 16 : 4;
			if (res->len[i] == want)
				add_addr(addrs_r, n_r, want == 16 ? AF_INET6 : AF_INET, res->data[i], port);
		}
		ub_resolve_free(res);
	}
	return *n_r > 0 ? RESOLVE_OK : worst;
}
