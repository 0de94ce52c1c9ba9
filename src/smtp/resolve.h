/* DNS for outbound mail through libunbound: MX hosts (RFC 5321 §5.1, RFC 7505 null MX) and
 * their addresses. One resolver is shared by every delivery thread (libunbound is
 * thread-safe) and caches answers. */
#ifndef SARN_SMTP_RESOLVE_H
#define SARN_SMTP_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

struct resolver;

/* server: "ip" or "ip@port" to forward every query to, or NULL for /etc/resolv.conf and
 * /etc/hosts. NULL on failure (logged). */
struct resolver *resolver_new(const char *server);
void resolver_free(struct resolver **r);

enum resolve_result {
	RESOLVE_OK,
	RESOLVE_NXDOMAIN, /* the name does not exist: permanent */
	RESOLVE_NULL_MX,  /* the domain accepts no mail (RFC 7505): permanent */
	RESOLVE_TEMP,     /* timeout, SERVFAIL, no answer yet: try again later */
};

/* The hosts to try for domain, best first: its MX hosts by preference (random order among
 * equals), or the domain itself when it has no MX but exists. Free with resolver_hosts_free. */
enum resolve_result resolver_mx(struct resolver *r, const char *domain, char ***hosts_r, size_t *n_r);
void resolver_hosts_free(char **hosts, size_t n);

/* IPv6 then IPv4 addresses of host with port set. *addrs_r is the caller's to free(). */
enum resolve_result resolver_addresses(struct resolver *r, const char *host, unsigned port,
				       struct sockaddr_storage **addrs_r, size_t *n_r);

#endif
