/*
 * dns.c: c-ares driven by poll() on the calling delivery thread.
 */
#include "config.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "server/delivery/dns.h"
#include "core/compat.h"

/* Per query try: short, c-ares retries and moves to the next server. */
#define DNS_TRY_MS 2000

int
dns_init(void)
{
	int rc = ares_library_init(ARES_LIB_INIT_ALL);

	/* the order among MX hosts of equal preference: spread over starts, not cryptographic */
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());

	if (rc != ARES_SUCCESS) {
		log_msg(LOG_LEVEL_ERR, "event=dns_error where=init error=\"%s\"", ares_strerror(rc));
		return ERR_TEMP;
	}
	return 0;
}

void
dns_deinit(void)
{
	ares_library_cleanup();
}

static int
channel_new(const char *nameserver, ares_channel *out)
{
	struct ares_options o;
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS, rc;

	memset(&o, 0, sizeof(o));
	o.timeout = DNS_TRY_MS;
	o.tries = 2;
	o.flags = ARES_FLAG_NOCHECKRESP;	/* SERVFAIL and REFUSED come back to us: temporary */
	if (*nameserver) {
		o.lookups = (char *)(uintptr_t)"b";	/* only the configured server, not /etc/hosts */
		mask |= ARES_OPT_LOOKUPS;
	}
	if ((rc = ares_init_options(out, &o, mask)) != ARES_SUCCESS) {
		log_msg(LOG_LEVEL_ERR, "event=dns_error where=channel error=\"%s\"", ares_strerror(rc));
		return ERR_TEMP;
	}
	if (*nameserver && (rc = ares_set_servers_ports_csv(*out, nameserver)) != ARES_SUCCESS) {
		log_msg(LOG_LEVEL_ERR, "event=dns_error where=nameserver server=\"%s\" error=\"%s\"", nameserver,
		    ares_strerror(rc));
		ares_destroy(*out);
		return ERR_TEMP;
	}
	return 0;
}

/* Run the channel until its queries are answered or the deadline passes. */
static void
run(ares_channel ch, uint64_t deadline_ms)
{
	for (;;) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		/* the bit tests by hand: c-ares's macros shift a signed 1 into the sign bit */
		unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		int n = 0, i, wait, ready;
		uint64_t now = clock_now_ms();

		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = (short)((bits & 1u << i ? POLLIN : 0) |
			    (bits & 1u << (i + ARES_GETSOCK_MAXNUM) ? POLLOUT : 0));
			if (ev) {
				pfd[n].fd = socks[i];
				pfd[n].events = ev;
				pfd[n].revents = 0;
				n++;
			}
		}
		if (!n)
			return;	/* nothing outstanding: every callback ran */
		if (now >= deadline_ms) {
			ares_cancel(ch);	/* callbacks run with ARES_ECANCELLED */
			return;
		}
		tvp = ares_timeout(ch, NULL, &tv);
		wait = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
		if ((uint64_t)wait > deadline_ms - now)
			wait = (int)(deadline_ms - now);
		ready = poll(pfd, (nfds_t)n, wait);
		if (ready <= 0) {
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* timeouts */
			continue;
		}
		for (i = 0; i < n; i++)
			if (pfd[i].revents)
				ares_process_fd(ch, pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
				    pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
	}
}

/* ---------------------------------------------------------------- MX */

struct mx_query {
	struct dns_mx *out;
	size_t max, n;
	int rc;
	bool done;
};

static int
status_rc(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
		return ERR_NOTFOUND;	/* NXDOMAIN */
	case ARES_ENODATA:
		return ERR_AGAIN;	/* the name exists, with no record of the type */
	default:
		return ERR_TEMP;	/* SERVFAIL, REFUSED, timeout, malformed answer */
	}
}

static void
mx_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct ares_mx_reply *mx = NULL, *r;
	bool null_mx = false;
	int prc;

	(void)timeouts;
	q->done = true;
	if (status != ARES_SUCCESS) {
		q->rc = status_rc(status);
		return;
	}
	prc = ares_parse_mx_reply(abuf, alen, &mx);
	if (prc != ARES_SUCCESS) {
		q->rc = prc == ARES_ENODATA ? ERR_AGAIN : ERR_TEMP;
		return;
	}
	for (r = mx; r; r = r->next) {
		size_t len = strlen(r->host);

		if (!len || (len == 1 && r->host[0] == '.')) {
			null_mx = true;	/* RFC 7505: "." as the exchange */
			continue;
		}
		if (len > DNS_NAME_MAX || q->n == q->max)
			continue;
		memcpy(q->out[q->n].host, r->host, len + 1);
		q->out[q->n].pref = r->priority;
		q->n++;
	}
	ares_free_data(mx);
	q->rc = null_mx ? ERR_PERM : q->n ? 0 : ERR_TEMP;
}

/* Preference order; a random order among equal preferences (RFC 5321 5.1). */
static void
order_mx(struct dns_mx *mx, size_t n)
{
	size_t i, j;

	for (i = n; i > 1; i--) {	/* shuffle, then a stable sort by preference */
		struct dns_mx t;

		j = (size_t)random() % i;
		t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (i = 1; i < n; i++) {
		struct dns_mx t = mx[i];

		for (j = i; j > 0 && mx[j - 1].pref > t.pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = t;
	}
}

int
dns_mx(const char *nameserver, const char *domain, unsigned timeout_ms, struct dns_mx *out, size_t max,
    size_t *n_out)
{
	struct mx_query q = { out, max, 0, ERR_TEMP, false };
	ares_channel ch;

	*n_out = 0;
	if (strlen(domain) > DNS_NAME_MAX)
		return ERR_NOTFOUND;
	if (channel_new(nameserver, &ch))
		return ERR_TEMP;
	ares_query(ch, domain, ns_c_in, ns_t_mx, mx_done, &q);
	run(ch, clock_now_ms() + timeout_ms);
	ares_destroy(ch);
	if (!q.done)
		return ERR_TEMP;
	if (q.rc == ERR_AGAIN) {
		/* RFC 5321 5.1: no MX records, the domain itself is the MX */
		snprintf(out[0].host, sizeof(out[0].host), "%s", domain);
		out[0].pref = 0;
		*n_out = 1;
		return 0;
	}
	if (q.rc)
		return q.rc;
	order_mx(out, q.n);
	*n_out = q.n;
	return 0;
}

/* ---------------------------------------------------------------- addresses */

struct addr_query {
	struct dns_addr *out;
	size_t max, n;
	unsigned port;
	int rc;
	bool done;
};

static void
addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct addr_query *q = arg;
	struct ares_addrinfo_node *node;

	(void)timeouts;
	q->done = true;
	if (status != ARES_SUCCESS) {
		q->rc = status == ARES_ENOTFOUND || status == ARES_ENODATA ? ERR_NOTFOUND : ERR_TEMP;
		return;
	}
	for (node = res->nodes; node && q->n < q->max; node = node->ai_next) {
		struct dns_addr *a = &q->out[q->n];

		if ((node->ai_family != AF_INET && node->ai_family != AF_INET6) ||
		    (size_t)node->ai_addrlen > sizeof(a->ss))
			continue;
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, node->ai_addr, (size_t)node->ai_addrlen);
		a->len = (socklen_t)node->ai_addrlen;
		if (node->ai_family == AF_INET)
			((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)q->port);
		else
			((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)q->port);
		q->n++;
	}
	ares_freeaddrinfo(res);
	q->rc = q->n ? 0 : ERR_NOTFOUND;
}

/* An IPv4 or IPv6 literal: no lookup. */
static bool
literal(const char *host, unsigned port, struct dns_addr *a)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a->len = sizeof(*s4);
		return true;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s6);
		return true;
	}
	return false;
}

bool
dns_is_literal(const char *host)
{
	struct dns_addr a;

	return literal(host, 0, &a);
}

int
dns_addrs(const char *nameserver, const char *host, unsigned port, unsigned timeout_ms,
    struct dns_addr *out, size_t max, size_t *n_out)
{
	struct addr_query q = { out, max, 0, port, ERR_TEMP, false };
	struct ares_addrinfo_hints hints;
	ares_channel ch;

	*n_out = 0;
	if (max && literal(host, port, &out[0])) {
		*n_out = 1;
		return 0;
	}
	if (channel_new(nameserver, &ch))
		return ERR_TEMP;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(ch, host, NULL, &hints, addr_done, &q);
	run(ch, clock_now_ms() + timeout_ms);
	ares_destroy(ch);
	if (!q.done)
		return ERR_TEMP;
	*n_out = q.n;
	return q.rc;
}
