/*
 * delivery/dns.h: MX and address lookups for outbound delivery, through
 * c-ares (the only file that includes it). Each call runs its own c-ares
 * channel and waits in poll() up to its timeout: it is for delivery
 * threads, never for I/O workers. Answers are hostile input too: a
 * malformed answer is a temporary failure, never a guess.
 */
#ifndef POSTIE_DELIVERY_DNS_H
#define POSTIE_DELIVERY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define DNS_MX_MAX 16		/* MX hosts tried for one domain */
#define DNS_ADDR_MAX 8		/* addresses tried for one host */
#define DNS_NAME_MAX 255	/* RFC 1035 2.3.4 */

struct dns_mx {
	char host[DNS_NAME_MAX + 1];
	unsigned pref;
};

struct dns_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Is host an IPv4 or IPv6 literal (no lookup, no SNI)? */
bool dns_is_literal(const char *host);

/* Once, on the main thread, before delivery threads start. 0 or ERR_TEMP. */
int dns_init(void);
void dns_deinit(void);

/*
 * The MX hosts of domain, by preference, random among equal ones (RFC 5321
 * 5.1). A domain without MX records gets itself (the implicit MX).
 * nameserver: "addr:port" or "" for the system's resolver.
 * Returns 0 (*n_out >= 1), ERR_NOTFOUND (the domain does not exist),
 * ERR_PERM (null MX, RFC 7505: it accepts no mail), ERR_TEMP.
 */
int dns_mx(const char *nameserver, const char *domain, unsigned timeout_ms, struct dns_mx *out,
    size_t max, size_t *n_out);

/*
 * The addresses of host (A and AAAA; an IP literal as it is) with port.
 * 0 (*n_out >= 1), ERR_NOTFOUND (no address), ERR_TEMP.
 */
int dns_addrs(const char *nameserver, const char *host, unsigned port, unsigned timeout_ms,
    struct dns_addr *out, size_t max, size_t *n_out);

#endif
