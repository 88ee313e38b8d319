/*
 * destination.c: the destinations and the delivery threads. Holds the
 * table of destinations with their parcel FIFOs, the pace each takes
 * parcels at, the TLS policy and trust per destination, resolving a
 * destination (routes, smarthost, MX then addresses), connecting, and
 * reusing one connection for a destination's backlog.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/htable.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/delivery/body.h"
#include "server/delivery/destination.h"
#include "server/delivery/dns.h"
#include "server/delivery/netio.h"
#include "server/delivery/pace.h"
#include "server/delivery/runner.h"
#include "server/tls.h"
#include "storage/store.h"
#include "core/compat.h"

/* DNS answers for one destination must come within this. */
#define DNS_TIMEOUT_MS 20000
/* A TCP port is 16 bits (RFC 9293 3.1); 0 is no port. */
#define DEST_PORT_MAX 65535
/*
 * Slots of the destination table. A destination lives while parcels wait
 * for it, so there are at most as many as parcels in flight; this covers
 * the in-flight entries (RUNNER_INFLIGHT_MAX) each to its own domain with
 * room to spare, at about 300 octets a slot. The table never evicts (a
 * destination with parcels must stay): a new destination whose
 * neighbourhood is full is refused, and dest_for's caller puts the entry
 * back in the store for a while (see runner.c dispatch).
 */
#define DEST_SLOTS 16384

enum dest_kind { DEST_MX, DEST_ROUTE, DEST_SMARTHOST };

struct dest {
	enum dest_kind kind;
	char key[DNS_NAME_MAX + 16];	/* domain, or host:port of a route or the smarthost */
	char host[DNS_NAME_MAX + 1];	/* route or smarthost host; the domain for MX */
	unsigned port;
	struct parcel *head, *tail;
	size_t waiting;			/* parcels in the list */
	unsigned active;		/* threads delivering to it */
	struct pace pace;		/* how fast it takes parcels: what waits in the store comes back at it */
	struct dest *prev, *next;	/* every destination, for the threads looking for work */
};

static struct {
	struct dest_env env;
	struct tls_creds *creds;		/* the system trust store */
	struct tls_creds *smarthost_creds;	/* relay.smarthost_ca, NULL when unset; under lock */
	pthread_cond_t work;			/* delivery threads: a destination has parcels */
	bool stopping;
	struct htable table;			/* key -> struct dest *: lookups by key */
	struct dest *dests;			/* the same destinations, listed */
	pthread_t *threads;
	unsigned nthreads;
} D = { .work = PTHREAD_COND_INITIALIZER };

static double
mono_now(void)
{
	return (double)clock_now_ms() / 1000.0;
}

/* ------------------------------------------------------------- the FIFOs */

static struct parcel *
take_parcel(struct dest *d)
{
	struct parcel *p;

	pthread_mutex_lock(D.env.lock);
	p = d->head;
	if (p && !(d->head = p->next))
		d->tail = NULL;
	if (p) {
		d->waiting--;
		pace_taken(&d->pace, mono_now());
	}
	pthread_mutex_unlock(D.env.lock);
	return p;
}

/* Every recipient of p gets the same outcome (no connection, DNS said no...). */
static void
parcel_fail(struct parcel *p, enum smtpc_result res, const char *why)
{
	struct smtpc_rcpt *r = xcalloc(p->n, sizeof(*r));
	size_t i;

	for (i = 0; i < p->n; i++) {
		r[i].result = res;
		snprintf(r[i].reply, sizeof(r[i].reply), "%s", why);
	}
	D.env.done(p, r);
	free(r);
}

/* The destination is unreachable: every parcel waiting for it shares the outcome. */
static void
fail_dest(struct dest *d, enum smtpc_result res, const char *why)
{
	struct parcel *p;

	while ((p = take_parcel(d)))
		parcel_fail(p, res, why);
}

void
dest_put(struct dest *d, struct parcel *p)
{
	if (d->tail)
		d->tail->next = p;
	else
		d->head = p;
	d->tail = p;
	d->waiting++;
}

bool
dest_is_full(struct dest *d, unsigned *defer_s_out)
{
	if (d->waiting < RUNNER_DEST_WAITING_MAX)
		return false;
	*defer_s_out = pace_defer(&d->pace, d->waiting, mono_now(), RUNNER_DEFER_SECONDS);
	return true;
}

void
dest_wake(void)
{
	pthread_cond_broadcast(&D.work);
}

/* ------------------------------------------------------------- one session */

static bool
is_ascii(const char *s)
{
	for (; *s; s++)
		if (*s & 0x80)
			return false;
	return true;
}

/* The transaction for parcel p: envelope, content reader (br), recipients into rc (p->n of them). */
static void
parcel_msg(const struct parcel *p, struct body_reader *br, struct smtpc_rcpt *rc, struct smtpc_msg *m)
{
	const struct store_qentry *q = p->q;
	size_t i;

	memset(m, 0, sizeof(*m));
	br->st = D.env.st;
	br->body_id = q->body_id;
	m->sender = q->sender;
	m->envid = q->envid;
	m->ret_full = q->ret_full;
	m->has_ret = q->ret_full || q->ret_hdrs;
	m->offset = body_content_offset(D.env.st, q->body_id);
	m->size = q->size - m->offset;
	m->body_8bit = body_has_8bit(D.env.st, q->body_id, m->offset);
	m->smtputf8 = !is_ascii(q->sender);
	m->read = body_read;
	m->read_arg = br;
	m->rcpts = rc;
	m->nrcpts = p->n;
	for (i = 0; i < p->n; i++) {
		const struct store_qrcpt *qr = &q->rcpts[p->idx[i]];

		rc[i].address = qr->address;
		rc[i].orcpt = qr->orcpt;
		rc[i].notify = qr->notify;
		m->smtputf8 |= !is_ascii(qr->address);
	}
}

/* Deliver parcels over an open session until none is left or the session breaks. */
static void
deliver_over(struct smtpc *c, struct dest *d, unsigned *sent)
{
	struct parcel *p;

	while (*sent < RUNNER_MSGS_PER_CONNECTION && !c->broken && !__atomic_load_n(&D.stopping, __ATOMIC_ACQUIRE) &&
	    (p = take_parcel(d))) {
		struct smtpc_rcpt *rc = xcalloc(p->n, sizeof(*rc));
		struct body_reader br;
		struct smtpc_msg m;

		parcel_msg(p, &br, rc, &m);
		smtpc_send(c, &m);
		(*sent)++;
		D.env.done(p, rc);
		free(rc);
	}
}

/* The transport of one session: the connection and what its TLS handshake uses. */
struct tr_ctx {
	struct netio io;
	struct tls_creds *creds;	/* trust for verification; a reference */
	const char *sni;		/* NULL for an address literal */
};

static int
tr_fill(void *io, struct buf *in, uint64_t deadline)
{
	return netio_fill(&((struct tr_ctx *)io)->io, in, deadline);
}

static int
tr_write(void *io, const void *p, size_t n, uint64_t deadline)
{
	return netio_write(&((struct tr_ctx *)io)->io, p, n, deadline);
}

static int
tr_starttls(void *io, const char *verify_name, uint64_t deadline, char *why, size_t why_cap)
{
	struct tr_ctx *x = io;

	return netio_starttls(&x->io, x->creds, x->sni, verify_name, deadline, why, why_cap);
}

/*
 * The TLS of a destination. Opportunistic (RFC 7435) for MX hosts and
 * routes. The smarthost is verified when we send it credentials (anyone in
 * the path could otherwise show a certificate and collect them) or when
 * relay.smarthost_ca names its CAs: STARTTLS required, the certificate
 * trusted and naming the host of relay.smarthost. A per-destination
 * setting would be read here.
 */
static enum smtpc_tls
dest_tls(const struct config *cfg, const struct dest *d)
{
	if (d->kind == DEST_SMARTHOST && (*cfg->relay.smarthost_user || *cfg->relay.smarthost_ca))
		return SMTPC_TLS_VERIFY;
	return SMTPC_TLS_MAY;
}

/* The trust a session to d verifies against, with a new reference. */
static struct tls_creds *
dest_creds(const struct dest *d)
{
	struct tls_creds *c;

	pthread_mutex_lock(D.env.lock);
	c = tls_creds_ref(d->kind == DEST_SMARTHOST && D.smarthost_creds ? D.smarthost_creds : D.creds);
	pthread_mutex_unlock(D.env.lock);
	return c;
}

/* The options of a session to host (peer: its "host[ip]" text) for d. */
static void
session_opts(const struct config *cfg, const struct dest *d, const char *host, const char *peer, enum smtpc_tls tls,
    struct smtpc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->helo_name = cfg->hostname;
	o->peer_name = peer;
	o->tls = tls;
	o->tls_name = host;	/* the smarthost's or route's host as configured, or the MX host */
	if (d->kind == DEST_SMARTHOST && *cfg->relay.smarthost_user) {
		o->auth_user = cfg->relay.smarthost_user;
		o->auth_password = cfg->relay.smarthost_password;
	}
	o->command_timeout_ms = cfg->relay.command_timeout * 1000u;
	o->data_timeout_ms = cfg->relay.data_timeout * 1000u;
}

/*
 * One session with one address. Returns true when the session delivered
 * (or at least got to try each waiting parcel), false when the next
 * address should be tried; *why gets the reason.
 */
static bool
try_address(const struct config *cfg, struct dest *d, const char *host, const struct dns_addr *a, enum smtpc_tls tls,
    char *why, size_t cap, bool *tls_failed_out)
{
	static const struct smtpc_transport tr_proto = { tr_fill, tr_write, tr_starttls, NULL };
	struct smtpc_transport tr = tr_proto;
	struct smtpc_opts o;
	struct tr_ctx x;
	struct smtpc c;
	char peer[DNS_NAME_MAX + INET6_ADDRSTRLEN + 16], safe_peer[LOG_SAFE_SIZE], safe_error[LOG_SAFE_SIZE];
	const char *err;
	unsigned sent = 0;
	bool ok = false;

	*tls_failed_out = false;
	if (netio_connect(&x.io, (const struct sockaddr *)&a->ss, a->len, cfg->relay.connect_timeout * 1000u, &err)) {
		snprintf(why, cap, "4.4.1 connect to %s[%s]: %s", host, x.io.peer, err);	/* RFC 3463: no answer */
		return false;
	}
	snprintf(peer, sizeof(peer), "%s[%s]", host, x.io.peer);
	session_opts(cfg, d, host, peer, tls, &o);
	x.creds = dest_creds(d);
	x.sni = dns_is_literal(host) ? NULL : host;	/* SNI carries host names only (RFC 6066 3) */
	tr.io = &x;
	smtpc_init(&c, &tr, &o);
	if (smtpc_open(&c) == SMTPC_OK) {
		log_msg(LOG_LEVEL_DEBUG, "event=relay_connect peer=\"%s\" tls=%s", log_safe(safe_peer, span_cstr(peer)),
		    netio_tls_version(&x.io) ? netio_tls_version(&x.io) : "none");
		deliver_over(&c, d, &sent);
		smtpc_quit(&c);
		ok = true;
	} else {
		snprintf(why, cap, "%s", c.error);
		*tls_failed_out = c.tls_failed;
		log_msg(LOG_LEVEL_NOTICE, "event=relay_session peer=\"%s\" error=\"%s\"", log_safe(safe_peer, span_cstr(peer)),
		    log_safe(safe_error, span_cstr(c.error)));
	}
	smtpc_free(&c);
	netio_close(&x.io);
	tls_creds_unref(x.creds);
	return ok;
}

/* ------------------------------------------------------------- resolving */

/*
 * The hosts to try for d, in order, into mx (DNS_MX_MAX), and their port.
 * False when d's parcels got their outcome already (DNS said no, or failed).
 */
static bool
resolve_hosts(const struct config *cfg, struct dest *d, struct dns_mx *mx, size_t *nmx_out, unsigned *port_out)
{
	char why[SMTPC_REPLY_MAX + 64];
	int rc;

	*port_out = d->port;
	if (d->kind != DEST_MX && !d->port) {
		char safe_dest[LOG_SAFE_SIZE];

		/* a configuration the loader should have refused: wait for a fixed one, lose nothing */
		snprintf(why, sizeof(why), "451 4.3.5 no valid port (1 to %d) for %.255s", DEST_PORT_MAX, d->key);
		log_msg(LOG_LEVEL_ERR, "event=relay_unreachable destination=\"%s\" error=\"no valid port\"",
		    log_safe(safe_dest, span_cstr(d->key)));
		fail_dest(d, SMTPC_TEMP, why);
		return false;
	}
	if (d->kind != DEST_MX) {
		snprintf(mx[0].host, sizeof(mx[0].host), "%s", d->host);
		*nmx_out = 1;
		return true;
	}
	rc = dns_mx(cfg->relay.nameserver, d->host, DNS_TIMEOUT_MS, mx, DNS_MX_MAX, nmx_out);
	if (rc == ERR_NOTFOUND || rc == ERR_PERM) {
		snprintf(why, sizeof(why), rc == ERR_PERM ? "550 5.1.10 %s accepts no mail (null MX, RFC 7505)" :
		    "550 5.1.2 domain %s does not exist (DNS)", d->host);
		fail_dest(d, SMTPC_PERM, why);
		return false;
	}
	if (rc) {
		snprintf(why, sizeof(why), "451 4.4.3 DNS lookup of the MX of %s failed", d->host);
		fail_dest(d, SMTPC_TEMP, why);
		return false;
	}
	*port_out = cfg->relay.mx_port;
	return true;
}

/* Each address of one host until a session works: true then; *why keeps the last reason. */
static bool
try_host(const struct config *cfg, struct dest *d, const char *host, const struct dns_addr *addrs, size_t naddrs,
    char *why, size_t cap)
{
	enum smtpc_tls tls = dest_tls(cfg, d);
	size_t j;

	for (j = 0; j < naddrs; j++) {
		bool tls_failed;

		if (try_address(cfg, d, host, &addrs[j], tls, why, cap, &tls_failed))
			return true;
		/* plaintext after a failed handshake only where TLS was opportunistic anyway */
		if (tls_failed && cfg->relay.tls_fallback_plain && tls == SMTPC_TLS_MAY && d->kind != DEST_SMARTHOST &&
		    try_address(cfg, d, host, &addrs[j], SMTPC_TLS_NONE, why, cap, &tls_failed))
			return true;
	}
	return false;
}

/* Deliver what waits for d: hosts in order, addresses in order, until one session works. */
static void
deliver_dest(const struct config *cfg, struct dest *d)
{
	struct dns_mx mx[DNS_MX_MAX];
	size_t nmx = 0, i;
	unsigned port;
	char why[SMTPC_REPLY_MAX + 64] = "no host to try", safe_why[LOG_SAFE_SIZE], safe_dest[LOG_SAFE_SIZE];
	int rc;

	if (!resolve_hosts(cfg, d, mx, &nmx, &port))
		return;
	for (i = 0; i < nmx; i++) {
		struct dns_addr addrs[DNS_ADDR_MAX];
		size_t naddrs = 0;

		rc = dns_addrs(cfg->relay.nameserver, mx[i].host, port, DNS_TIMEOUT_MS, addrs, DNS_ADDR_MAX, &naddrs);
		if (rc) {
			snprintf(why, sizeof(why), "451 4.4.3 no address for %.255s%s", mx[i].host,
			    rc == ERR_TEMP ? " (DNS failure)" : "");
			if (rc == ERR_NOTFOUND && nmx == 1 && d->kind == DEST_MX && !strcmp(mx[0].host, d->host)) {
				/* the implicit MX has no address: nothing will ever take this mail */
				snprintf(why, sizeof(why), "550 5.1.2 %s has no MX and no address", d->host);
				fail_dest(d, SMTPC_PERM, why);
				return;
			}
			continue;
		}
		if (try_host(cfg, d, mx[i].host, addrs, naddrs, why, sizeof(why)))
			return;
	}
	log_msg(LOG_LEVEL_NOTICE, "event=relay_unreachable destination=\"%s\" error=\"%s\"",
	    log_safe(safe_dest, span_cstr(d->key)), log_safe(safe_why, span_cstr(why)));
	fail_dest(d, SMTPC_TEMP, why);
}

/* ------------------------------------------------------------- the table */

static const char *
rcpt_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

/* Where mail for address goes: kind, host and port, and the key naming it (lower case). */
static enum dest_kind
dest_route(const struct config *cfg, const char *address, char *key, size_t cap, const char **host_out,
    unsigned *port_out)
{
	const char *domain = rcpt_domain(address);
	enum dest_kind kind = DEST_MX;
	size_t i;

	*host_out = domain;
	*port_out = 0;
	for (i = 0; i < cfg->relay.nroutes; i++)
		if (!strcasecmp(cfg->relay.routes[i].domain, domain)) {
			kind = DEST_ROUTE;
			*host_out = cfg->relay.routes[i].host;
			*port_out = cfg->relay.routes[i].port;
			break;
		}
	if (kind == DEST_MX && *cfg->relay.smarthost) {
		const char *colon = strrchr(cfg->relay.smarthost, ':');
		uint64_t port = 25;

		kind = DEST_SMARTHOST;
		*host_out = cfg->relay.smarthost;
		/* checked at load already; a port that does not read is 0, which resolve_hosts refuses */
		if (colon && (!span_to_u64(span_cstr(colon + 1), DEST_PORT_MAX, &port) || port == 0))
			port = 0;
		*port_out = (unsigned)port;
		snprintf(key, cap, "%s", cfg->relay.smarthost);
	} else if (kind == DEST_ROUTE)
		snprintf(key, cap, "%s:%u", *host_out, *port_out);
	else
		snprintf(key, cap, "%s", domain);
	for (i = 0; key[i]; i++)
		key[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	return kind;
}

struct dest *
dest_for(const struct config *cfg, const char *address)
{
	char key[sizeof(((struct dest *)0)->key)];
	enum dest_kind kind;
	const char *host;
	unsigned port;
	struct dest *d, **slot;

	kind = dest_route(cfg, address, key, sizeof(key), &host, &port);
	if ((slot = htable_get(&D.table, span_cstr(key))))
		return *slot;
	/* no victim rule: a destination with parcels waiting is never evicted */
	if (!(slot = htable_put(&D.table, span_cstr(key), NULL, NULL)))
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->kind = kind;
	snprintf(d->key, sizeof(d->key), "%s", key);
	if (kind == DEST_SMARTHOST) {
		const char *colon = strrchr(host, ':');
		snprintf(d->host, sizeof(d->host), "%.*s", colon ? (int)(colon - host) : (int)strlen(host), host);
	} else
		snprintf(d->host, sizeof(d->host), "%s", host);
	d->port = port;
	*slot = d;
	if ((d->next = D.dests))
		D.dests->prev = d;
	D.dests = d;
	return d;
}

/* Lock held: d leaves the table and the list, and is freed. */
static void
forget(struct dest *d)
{
	htable_del(&D.table, span_cstr(d->key));
	if (d->prev)
		d->prev->next = d->next;
	else
		D.dests = d->next;
	if (d->next)
		d->next->prev = d->prev;
	free(d);
}

void
dest_release(struct dest *d)
{
	if (!d->head && !d->active)
		forget(d);
}

/*
 * Lock held: a destination with more parcels waiting than connections
 * delivering them, and room for one more connection (each connection
 * takes parcel after parcel, so one more is only worth it for a backlog).
 */
static struct dest *
pick_dest(unsigned per_dest)
{
	struct dest *d;

	for (d = D.dests; d; d = d->next)
		if (d->waiting > d->active && d->active < per_dest)
			return d;
	return NULL;
}

/* ------------------------------------------------------------- the threads */

static void *
delivery_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(D.env.lock);
	while (!D.stopping) {
		struct config *cfg = config_get();
		struct dest *d = pick_dest(cfg->relay.max_per_destination);

		if (!d) {
			config_unref(cfg);
			pthread_cond_wait(&D.work, D.env.lock);
			continue;
		}
		d->active++;
		pthread_mutex_unlock(D.env.lock);
		deliver_dest(cfg, d);
		config_unref(cfg);
		pthread_mutex_lock(D.env.lock);
		d->active--;
		dest_release(d);
	}
	pthread_mutex_unlock(D.env.lock);
	return NULL;
}

int
dest_init(const struct dest_env *env, const struct config *cfg)
{
	int rc;

	D.env = *env;
	D.stopping = false;
	htable_init(&D.table, DEST_SLOTS, sizeof(((struct dest *)0)->key) - 1, sizeof(struct dest *));
	if ((rc = dns_init()) || (rc = tls_creds_client_new(cfg->tls.priority, NULL, &D.creds)) ||
	    (rc = dest_tls_load(cfg, &D.smarthost_creds)))
		return rc;
	return 0;
}

int
dest_threads_start(unsigned n)
{
	unsigned i;

	D.threads = xcalloc(n, sizeof(*D.threads));
	for (i = 0; i < n; i++)
		if (pthread_create(&D.threads[i], NULL, delivery_main, NULL)) {
			D.nthreads = i;
			return ERR_IO;
		}
	D.nthreads = n;
	return 0;
}

void
dest_stopping(void)
{
	D.stopping = true;
	pthread_cond_broadcast(&D.work);
}

void
dest_join(void)
{
	unsigned i;

	for (i = 0; i < D.nthreads; i++)
		pthread_join(D.threads[i], NULL);
	free(D.threads);
	D.threads = NULL;
	D.nthreads = 0;
}

struct parcel *
dest_drain(void)
{
	struct parcel *all = NULL, *p;
	struct dest *d;

	while ((d = D.dests)) {
		while ((p = d->head)) {
			d->head = p->next;
			p->next = all;
			all = p;
		}
		forget(d);
	}
	return all;
}

void
dest_fini(void)
{
	tls_creds_unref(D.creds);
	tls_creds_unref(D.smarthost_creds);
	D.creds = D.smarthost_creds = NULL;
	dns_deinit();
	htable_free(&D.table);
}

int
dest_tls_load(const struct config *cfg, struct tls_creds **out)
{
	int rc;

	*out = NULL;
	if (!*cfg->relay.smarthost_ca)
		return 0;
	if ((rc = tls_creds_client_new(cfg->tls.priority, cfg->relay.smarthost_ca, out)))
		log_msg(LOG_LEVEL_ERR, "event=relay_tls_load smarthost_ca=\"%s\" error=\"%s\"", cfg->relay.smarthost_ca,
		    err_str(rc));
	return rc;
}

struct tls_creds *
dest_tls_swap(struct tls_creds *smarthost_creds)
{
	struct tls_creds *old = D.smarthost_creds;

	D.smarthost_creds = smarthost_creds;
	return old;
}
