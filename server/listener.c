#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conn.h"
#include "core/err.h"
#include "core/htable.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "listener.h"
#include "server.h"
#include "core/compat.h"

/* Pending connections the kernel may queue per listener. */
#define LISTEN_BACKLOG 1024
/* Connections accepted per wake-up, so one busy listener cannot starve a worker. */
#define ACCEPT_BATCH 64
/*
 * Slots of the per-address table per connection the server may hold
 * (limits.max_connections). The table holds only addresses with a
 * connection open, so fewer than max_connections entries, and a refusal
 * needs all HTABLE_PROBES slots of a key's neighbourhood taken. Simulated
 * with churn (2,000,000 admissions, each from a new address): with every
 * connection open from a different address, about 1 in 200,000 was
 * refused; at three quarters of the limit 1 in 2,000,000; at half, none.
 * So a refusal only comes with a server at (or next to) its limit.
 * 48 octets a slot (160,000 slots, 7.5 MiB, at the default), and pages
 * never used are never touched.
 */
#define IPTAB_SLOTS_PER_CONNECTION 8

/*
 * Exact counts of open connections per client (addr_key), on core/htable.
 * Guarded by ip_lock, taken by whichever worker accepts or closes, never
 * held across I/O. No victim rule: an entry is never evicted while its
 * count is above zero, and is removed when it drops to zero; a key whose
 * neighbourhood is full is refused (fail closed).
 */
static pthread_mutex_t ip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct htable iptab;		/* key: addr_key(); value: unsigned, connections open */
static unsigned iptab_sized_for;	/* the limits.max_connections iptab was made for */
static unsigned open_total;

static struct log_ratelimit busy_rl = LOG_RATELIMIT_INIT(10, 5);

/*
 * Bytes of an IPv6 address that name the client: its /64. One customer is
 * given at least a /64 and picks any address in it, so counting single
 * addresses there would let one client hold every connection slot. The
 * login throttle counts the same way (auth/throttle.c).
 */
#define IPV6_CLIENT_PREFIX_BYTES 8

/* The key a client is counted by: IPv4 per address (mapped into IPv6 form), IPv6 per /64. */
static void
addr_key(const struct sockaddr_storage *a, unsigned char key[16])
{
	memset(key, 0, 16);
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
	} else if (a->ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(in6))
			memcpy(key, in6, 16);	/* an IPv4 client: its whole address */
		else
			memcpy(key, in6, IPV6_CLIENT_PREFIX_BYTES);
	}
}

struct iptab_move {
	struct htable *to;
	bool lost;		/* an entry did not fit */
};

static bool
iptab_copy(struct span key, void *value, void *arg)
{
	struct iptab_move *m = arg;
	unsigned *n = htable_put(m->to, key, NULL, NULL);

	if (n)
		*n = *(unsigned *)value;
	else
		m->lost = true;
	return false;
}

/*
 * Make the table fit max connections: at first use, and when a reload
 * raised limits.max_connections, the entries move into a larger table
 * (or, should one not fit, all stay where they are). ip_lock held.
 */
static void
iptab_fit(unsigned max)
{
	struct htable next;
	struct iptab_move m = { &next, false };

	if (iptab_sized_for >= max)
		return;
	htable_init(&next, (size_t)max * IPTAB_SLOTS_PER_CONNECTION, 16, sizeof(unsigned));
	if (iptab_sized_for)
		htable_each(&iptab, iptab_copy, &m);
	iptab_sized_for = max;	/* either way, not tried again on every connection */
	if (m.lost) {
		log_msg(LOG_LEVEL_WARN, "event=limit limit=connections note=\"per-address table kept at its size\"");
		htable_free(&next);
		return;
	}
	if (iptab.slots)
		htable_free(&iptab);
	iptab = next;
}

bool
listener_admit(const struct sockaddr_storage *addr, const struct config *cfg)
{
	unsigned char key[16];
	unsigned *n;
	bool ok = false;

	addr_key(addr, key);
	pthread_mutex_lock(&ip_lock);
	iptab_fit(cfg->limits.max_connections);
	if (open_total < cfg->limits.max_connections) {
		n = htable_put(&iptab, span_make(key, sizeof(key)), NULL, NULL);	/* no victim: counts are exact */
		if (n && *n < cfg->limits.max_connections_per_ip) {
			(*n)++;
			open_total++;
			ok = true;
		}
	}
	pthread_mutex_unlock(&ip_lock);
	return ok;
}

void
listener_release(const struct sockaddr_storage *addr)
{
	unsigned char key[16];
	unsigned *n;

	addr_key(addr, key);
	pthread_mutex_lock(&ip_lock);
	n = htable_get(&iptab, span_make(key, sizeof(key)));
	ASSERT(n && *n > 0 && open_total > 0);
	(*n)--;
	open_total--;
	if (!*n)
		htable_del_value(&iptab, n);	/* the table holds only addresses with connections open */
	pthread_mutex_unlock(&ip_lock);
}

unsigned
listener_open_count(void)
{
	unsigned n;

	pthread_mutex_lock(&ip_lock);
	n = open_total;
	pthread_mutex_unlock(&ip_lock);
	return n;
}

/* Too busy: a plaintext protocol gets its reply; implicit TLS just a close. */
static void
refuse(int fd, const struct sockaddr_storage *peer, enum listen_proto proto,
    const struct config *cfg, const struct proto_ops *ops)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned suppressed;

	if (ops->busy_reply && proto != LISTEN_SUBMISSIONS && proto != LISTEN_POP3S) {
		const char *msg = ops->busy_reply(cfg);
		/* a fresh socket's send buffer is empty: this cannot block or be partial */
		if (send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0;	/* the client is gone already; nothing to do */
	}
	if (peer->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, ip, sizeof(ip));
	else if (peer->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, ip, sizeof(ip));
	if (log_ratelimit_ok(&busy_rl, &suppressed))
		log_msg(LOG_LEVEL_WARN, "event=limit limit=connections proto=%s ip=%s suppressed=%u",
		    config_proto_name(proto), ip, suppressed);
	close(fd);
}

static void
on_accept(struct ev_handler *h, uint32_t events)
{
	struct listener *l = (struct listener *)h;
	struct worker *w = worker_self();
	int i;

	(void)events;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct config *cfg;
		int one = 1;
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* EMFILE/ENFILE: out of descriptors; log and let the next wake retry */
			log_msg(LOG_LEVEL_ERR, "event=accept proto=%s error=\"%s\"",
			    config_proto_name(l->proto), strerror(errno));
			return;
		}
		cfg = config_get();
		if (!listener_admit(&peer, cfg)) {
			refuse(fd, &peer, l->proto, cfg, worker_server(w)->protos[l->proto]);
			config_unref(cfg);
			continue;
		}
		/* replies go out as soon as a pipelined group is answered (no Nagle delay) */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_accept(w, fd, &peer, l->proto, cfg);	/* takes the config reference */
	}
}

int
listener_open_all(const struct config *cfg, struct listener **out, size_t *n_out)
{
	struct listener *ls = xcalloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*ls));
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *cl = &cfg->listeners[i];
		struct listener *l = &ls[i];
		struct sockaddr_storage ss;
		socklen_t slen;
		int one = 1, fd, saved;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, cl->address, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
			((struct sockaddr_in *)&ss)->sin_family = AF_INET;
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)cl->port);
			slen = sizeof(struct sockaddr_in);
		} else if (inet_pton(AF_INET6, cl->address, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
			((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)cl->port);
			slen = sizeof(struct sockaddr_in6);
		} else {
			log_msg(LOG_LEVEL_ERR, "event=listen address=\"%s\" error=\"not a numeric address\"",
			    cl->address);
			listener_close_all(ls, i);
			return ERR_CONFIG;
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		}
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
			saved = errno;
			log_msg(LOG_LEVEL_ERR, "event=listen proto=%s address=%s port=%u error=\"%s\"",
			    config_proto_name(cl->proto), cl->address, cl->port, strerror(saved));
			fprintf(stderr, "postied: cannot listen on %s port %u (%s): %s\n",
			    cl->address, cl->port, config_proto_name(cl->proto), strerror(saved));
			if (fd >= 0)
				close(fd);
			listener_close_all(ls, i);
			return saved == EACCES ? ERR_PERM : ERR_IO;
		}
		l->ev.fn = on_accept;
		l->fd = fd;
		l->proto = cl->proto;
		l->port = cl->port;
		snprintf(l->address, sizeof(l->address), "%s", cl->address);
	}
	*out = ls;
	*n_out = cfg->nlisteners;
	return 0;
}

void
listener_close_all(struct listener *ls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ls[i].fd >= 0)
			close(ls[i].fd);
	free(ls);
}
