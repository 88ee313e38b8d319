/*
 * runner.c: the queue runner and its delivery threads.
 *
 * In memory: an item per queue entry in flight, split into parcels (its
 * pending recipients for one destination), and a destination per route,
 * smarthost or domain with its waiting parcels. All of it behind one
 * mutex, held only to move parcels, never across I/O. The store stays the
 * truth: an entry is leased when taken and updated when its parcels are
 * done; a crash loses only the in-memory part, and the lease is undone at
 * the next start, so every recipient is tried again (at least once) and a
 * recipient recorded as delivered is never sent again.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/delivery/client.h"
#include "server/delivery/dns.h"
#include "server/delivery/dsn.h"
#include "server/delivery/netio.h"
#include "server/delivery/pace.h"
#include "server/delivery/runner.h"
#include "storage/store.h"
#include "server/tls.h"
#include "core/compat.h"

/* DNS answers for one destination must come within this. */
#define DNS_TIMEOUT_MS 20000
/* The Return-Path line the store keeps in front of a message is at most this long. */
#define RETURN_PATH_MAX (STORE_ADDRESS_MAX + 32)

struct item {
	struct store_qentry q;
	unsigned parcels_left;
	struct store_qresult *results;
	size_t nresults;
	/* per result: NOTIFY=SUCCESS asked and the success report is ours to
	   make: taken by a server without DSN ("relayed", RFC 3461 5.2.2), or
	   delivered here (the recipient's state says delivered or expanded) */
	bool *success;
	/* the store update, alive until its commit answered */
	struct store_req req;
	struct buf dsn;
	struct store_qentry bounce_q;
	struct store_qrcpt bounce_rcpt;
	struct store_delivery bounce;
	char **bounce_logins;
	size_t nbounce_logins;
	/* the local recipients (a mailbox that had no room) to try again, and that try */
	struct parcel *local;
	int local_rc, *local_res;
	struct local_wait *local_wait;
};

/* The runner waits for the local attempts of what it took (one commit for all). */
struct local_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	size_t left;
};

struct parcel {
	struct item *item;
	uint32_t *idx;		/* recipient indexes into item->q.rcpts */
	size_t n;
	struct parcel *next;
};

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
	struct dest *next;
};

static struct {
	struct store *st;
	struct tls_creds *creds;		/* the system trust store */
	struct tls_creds *smarthost_creds;	/* relay.smarthost_ca, NULL when unset; under lock */
	pthread_mutex_t lock;
	pthread_cond_t work;		/* delivery threads: a destination has parcels */
	pthread_cond_t tick;		/* the runner: kicked or stopping */
	pthread_cond_t idle;		/* runner_stop: the last update was answered */
	bool stopping, kicked, started;
	struct dest *dests;
	uint64_t *inflight;		/* open-addressing set of entry ids; 0 = empty slot */
	size_t ninflight, updates_pending;
	pthread_t runner;
	pthread_t *threads;
	unsigned nthreads;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
	.tick = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER };

#define INFLIGHT_SLOTS (2 * RUNNER_INFLIGHT_MAX)

/* ------------------------------------------------------------- in-flight set (R.lock held) */

static size_t
slot_of(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) % INFLIGHT_SLOTS;
}

static bool
inflight_has(uint64_t id)
{
	size_t i;

	for (i = slot_of(id); R.inflight[i]; i = (i + 1) % INFLIGHT_SLOTS)
		if (R.inflight[i] == id)
			return true;
	return false;
}

static void
inflight_add(uint64_t id)
{
	size_t i;

	for (i = slot_of(id); R.inflight[i]; i = (i + 1) % INFLIGHT_SLOTS)
		;
	R.inflight[i] = id;
	R.ninflight++;
}

static void
inflight_del(uint64_t id)
{
	size_t i, j;

	for (i = slot_of(id); R.inflight[i] && R.inflight[i] != id; i = (i + 1) % INFLIGHT_SLOTS)
		;
	if (!R.inflight[i])
		return;
	R.inflight[i] = 0;
	R.ninflight--;
	/* re-place the rest of the cluster so lookups never stop early */
	for (j = (i + 1) % INFLIGHT_SLOTS; R.inflight[j]; j = (j + 1) % INFLIGHT_SLOTS) {
		uint64_t v = R.inflight[j];

		R.inflight[j] = 0;
		R.ninflight--;
		inflight_add(v);
	}
}

/* ------------------------------------------------------------- reading bodies */

struct body_reader {
	struct store *st;
	uint64_t body_id;
};

static int
read_body(void *arg, uint64_t off, void *buf, size_t n, size_t *got_out)
{
	struct body_reader *b = arg;

	return store_body_read(b->st, b->body_id, off, buf, n, got_out);
}

/* Where the content starts: after our Return-Path line, which is not sent on. */
static uint64_t
content_offset(struct store *st, uint64_t body_id)
{
	unsigned char head[RETURN_PATH_MAX];
	size_t got = 0, i;

	if (store_body_read(st, body_id, 0, head, sizeof(head), &got) || got < 14 ||
	    memcmp(head, "Return-Path: <", 14))
		return 0;
	for (i = 14; i + 1 < got; i++)
		if (head[i] == '\r' && head[i + 1] == '\n')
			return i + 2;
	return 0;
}

static bool
has_8bit(struct store *st, uint64_t body_id, uint64_t off)
{
	static __thread unsigned char piece[STORE_CHUNK_MAX];
	size_t got, i;

	while (store_body_read(st, body_id, off, piece, sizeof(piece), &got) == 0 && got) {
		for (i = 0; i < got; i++)
			if (piece[i] & 0x80)
				return true;
		off += got;
	}
	return false;
}

static bool
is_ascii(const char *s)
{
	for (; *s; s++)
		if (*s & 0x80)
			return false;
	return true;
}

/* ------------------------------------------------------------- finishing an entry */

static const char *
rcpt_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

struct bounce_ctx {
	const struct config *cfg;
	struct item *it;
	bool remote;
};

static bool
ctx_is_local(void *arg, const char *domain)
{
	struct bounce_ctx *x = arg;

	return config_is_local_domain(x->cfg, span_cstr(domain));
}

static void
ctx_local(void *arg, const char *login)
{
	struct bounce_ctx *x = arg;
	struct item *it = x->it;

	it->bounce_logins = xrealloc(it->bounce_logins, (it->nbounce_logins + 1) * sizeof(char *));
	it->bounce_logins[it->nbounce_logins++] = xstrdup(login);
}

static void
ctx_remote(void *arg, const char *address)
{
	struct bounce_ctx *x = arg;

	/* the report goes to the sender as it is: one remote address, queued with a null sender */
	if (!x->remote) {
		snprintf(x->it->bounce_rcpt.address, sizeof(x->it->bounce_rcpt.address), "%s", address);
		x->remote = true;
	}
}

/*
 * Address the report: the envelope sender, or for a report nobody can get
 * (null sender, or a local sender that no longer exists) the local
 * postmaster, delivered only locally so a lost report can never loop.
 */
static bool
address_report(const struct config *cfg, struct item *it, const char *to, bool local_only)
{
	struct store_target_fns fns = { ctx_is_local, ctx_local, ctx_remote, NULL };
	struct bounce_ctx x = { cfg, it, false };

	fns.arg = &x;
	if (store_resolve(R.st, to, &fns))
		return false;
	if (local_only)
		x.remote = false;
	if (x.remote) {
		memset(&it->bounce_q, 0, sizeof(it->bounce_q));
		it->bounce_q.rcpts = &it->bounce_rcpt;
		it->bounce_q.nrcpts = 1;
		it->bounce_q.created = it->bounce_q.next_attempt = (uint64_t)time(NULL);
		it->bounce.queue = &it->bounce_q;
	}
	return x.remote || it->nbounce_logins;
}

static void
free_item(struct item *it)
{
	size_t i;

	for (i = 0; i < it->nbounce_logins; i++)
		free(it->bounce_logins[i]);
	free(it->bounce_logins);
	buf_free(&it->dsn);
	free(it->local_res);
	free(it->results);
	free(it->success);
	store_qentry_free(&it->q);
	free(it);
}

static void
updated(void *arg, int rc)
{
	struct item *it = arg;
	struct store_qupdate *u = &it->req.u.update;
	char to[LOG_SAFE_SIZE];

	if (rc && rc != ERR_NOTFOUND)
		log_msg(LOG_LEVEL_ERR, "event=relay_update queue=%016" PRIx64 " error=\"%s\" note=\"retried after the lease\"",
		    it->q.id, err_str(rc));
	else if (it->dsn.len && u->bounce_failed_out)
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"%s\"", it->q.id,
		    err_str(u->bounce_failed_out));
	else if (it->dsn.len)
		log_msg(LOG_LEVEL_INFO, "event=dsn queue=%016" PRIx64 " to=\"%s\" local=%zu remote=%d",
		    it->q.id, log_safe(to, span_cstr(it->q.sender)), it->nbounce_logins, it->bounce.queue != NULL);
	pthread_mutex_lock(&R.lock);
	inflight_del(it->q.id);
	if (--R.updates_pending == 0)
		pthread_cond_broadcast(&R.idle);
	pthread_mutex_unlock(&R.lock);
	if (it->bounce.queue && !rc)
		runner_kick();
	free_item(it);
}

static uint32_t
result_notify(const struct item *it, uint32_t idx)
{
	return it->q.rcpts[idx].notify;
}

/* Build the DSN for the recipients just failed (and delayed, for a warning; and
   those whose success is ours to report, when they asked for NOTIFY=SUCCESS). */
static void
make_report(const struct config *cfg, struct item *it, uint64_t now, bool warn)
{
	struct dsn_rcpt *dr = xcalloc(it->q.nrcpts, sizeof(*dr));
	struct body_reader br = { R.st, it->q.body_id };
	struct dsn_info di;
	size_t i, n = 0;
	bool to_postmaster = !*it->q.sender, any_success = false;
	char postmaster[STORE_ADDRESS_MAX + 1];

	for (i = 0; i < it->nresults; i++) {
		const struct store_qresult *r = &it->results[i];
		uint32_t notify = result_notify(it, r->index);

		if (notify & STORE_NOTIFY_NEVER)
			continue;
		if (r->state == STORE_RCPT_FAILED && (!notify || notify & STORE_NOTIFY_FAILURE)) {
			dr[n].action = DSN_FAILED;
		} else if (warn && r->state == STORE_RCPT_PENDING && (!notify || notify & STORE_NOTIFY_DELAY)) {
			if (to_postmaster)
				continue;	/* nobody is told of a report's delay */
			dr[n].action = DSN_DELAYED;
		} else if (it->success[i] && !to_postmaster) {
			uint8_t was = it->q.rcpts[r->index].state;	/* as read, before this update */

			dr[n].action = was == STORE_RCPT_DELIVERED_REPORT || *it->q.rcpts[r->index].login ? DSN_DELIVERED :
			    was == STORE_RCPT_EXPANDED_REPORT ? DSN_EXPANDED : DSN_RELAYED;
			any_success = true;
		} else
			continue;
		dr[n].address = it->q.rcpts[r->index].address;
		dr[n].orcpt = it->q.rcpts[r->index].orcpt;
		dr[n].reply = r->reply;
		n++;
	}
	if (!n)
		goto out;
	snprintf(postmaster, sizeof(postmaster), "postmaster@%s", cfg->domains[0]);
	if (!to_postmaster && !address_report(cfg, it, it->q.sender, false)) {
		char to[LOG_SAFE_SIZE];

		log_msg(LOG_LEVEL_NOTICE, "event=dsn queue=%016" PRIx64 " to=\"%s\" note=\"no such local sender: to the postmaster\"",
		    it->q.id, log_safe(to, span_cstr(it->q.sender)));
		to_postmaster = true;
	}
	if (to_postmaster && !address_report(cfg, it, postmaster, true)) {
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"no local mailbox for %s\"", it->q.id,
		    postmaster);
		goto out;
	}
	memset(&di, 0, sizeof(di));
	di.hostname = cfg->hostname;
	di.sender = to_postmaster ? postmaster : it->q.sender;
	di.envid = it->q.envid;
	di.arrival = it->q.created;
	di.now = now;
	di.retry_until = it->q.created + cfg->relay.queue_lifetime;
	di.queue_id = it->q.id;
	/* a success report for a stranger's message carries its headers only: it
	   goes wherever MAIL FROM said, so full content would be a reflection */
	di.ret_full = it->q.ret_full && !(it->q.success_hdrs && any_success);
	di.rcpts = dr;
	di.nrcpts = n;
	di.read = read_body;
	di.read_arg = &br;
	di.offset = content_offset(R.st, it->q.body_id);
	buf_init(&it->dsn, 0);	/* bounded by the original, which passed max_message_size */
	if (dsn_build(&di, &it->dsn)) {
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"cannot read the original\"", it->q.id);
		buf_free(&it->dsn);
		goto out;
	}
	it->bounce.prefix = it->dsn.data;
	it->bounce.prefix_len = it->dsn.len;
	it->bounce.fd = -1;
	it->bounce.logins = (const char *const *)it->bounce_logins;
	it->bounce.nlogins = it->nbounce_logins;
	it->bounce.now = now;
	it->req.u.update.bounce = &it->bounce;
out:
	free(dr);
}

/* Every parcel of it is done: results, DSN, the next attempt, in one commit. */
static void
finish_item(struct item *it)
{
	struct config *cfg = config_get();
	struct store_qupdate *u = &it->req.u.update;
	uint64_t now = (uint64_t)time(NULL), expiry = it->q.created + cfg->relay.queue_lifetime;
	bool expired = now >= expiry, warn = false, pending = false;
	size_t i;

	for (i = 0; i < it->nresults; i++) {
		struct store_qresult *r = &it->results[i];
		const char *login = it->q.rcpts[r->index].login;
		char text[LOG_SAFE_SIZE];	/* remote text in a log line: escaped, cut */
		char from[LOG_SAFE_SIZE], to[LOG_SAFE_SIZE];	/* so are the client's addresses */

		if (STORE_RCPT_REPORT_DUE(it->q.rcpts[r->index].state))
			continue;	/* delivered here and logged then; only its report is made now */
		if (r->state == STORE_RCPT_PENDING && expired) {
			char last[sizeof(r->reply)];

			snprintf(last, sizeof(last), "%s", r->reply);
			snprintf(r->reply, sizeof(r->reply), "delivery time expired (relay.queue_lifetime %us); last attempt: %.400s",
			    cfg->relay.queue_lifetime, last);
			r->state = STORE_RCPT_FAILED;
		}
		pending |= r->state == STORE_RCPT_PENDING;
		/* a local recipient (an alias member whose mailbox had no room) says so, with its login */
		log_msg(r->state == STORE_RCPT_FAILED ? LOG_LEVEL_NOTICE : LOG_LEVEL_INFO,
		    "event=%s_%s queue=%016" PRIx64 " from=\"%s\" to=\"%s\"%s%s%s attempt=%u reply=\"%s\"",
		    *login ? "local" : "relay", r->state == STORE_RCPT_DELIVERED ? "delivered" :
		    r->state == STORE_RCPT_FAILED ? "failed" : "deferred", it->q.id,
		    log_safe(from, span_cstr(it->q.sender)), log_safe(to, span_cstr(it->q.rcpts[r->index].address)),
		    *login ? " login=\"" : "", login, *login ? "\"" : "",
		    it->q.attempts + 1, log_safe(text, span_cstr(r->reply)));
	}
	if (pending && cfg->relay.delay_warning && !it->q.delay_warned && now - it->q.created >= cfg->relay.delay_warning)
		warn = true;
	memset(&it->req, 0, sizeof(it->req));
	it->req.op = STORE_OP_QUEUE_UPDATE;
	u->id = it->q.id;
	u->results = it->results;
	u->nresults = it->nresults;
	u->attempts = it->q.attempts + 1;
	{
		size_t k = it->q.attempts < cfg->relay.nretry ? it->q.attempts : cfg->relay.nretry - 1;
		u->next_attempt = now + cfg->relay.retry_schedule[k];
	}
	if (u->next_attempt > expiry)
		u->next_attempt = expiry > now ? expiry : now;	/* the bounce goes out on time */
	u->delay_warned = warn;
	make_report(cfg, it, now, warn);
	config_unref(cfg);
	pthread_mutex_lock(&R.lock);
	R.updates_pending++;
	pthread_mutex_unlock(&R.lock);
	if (store_submit(R.st, &it->req, updated, it))
		updated(it, ERR_STATE);
}

/* A parcel's recipients have their results (any thread, R.lock not held). */
static void
parcel_done(struct parcel *p, const struct smtpc_rcpt *res)
{
	struct item *it = p->item;
	bool last;
	size_t i;

	pthread_mutex_lock(&R.lock);
	for (i = 0; i < p->n; i++) {
		struct store_qresult *r = &it->results[it->nresults++];

		r->index = p->idx[i];
		r->state = res[i].result == SMTPC_OK ? STORE_RCPT_DELIVERED :
		    res[i].result == SMTPC_PERM ? STORE_RCPT_FAILED : STORE_RCPT_PENDING;
		snprintf(r->reply, sizeof(r->reply), "%s", res[i].reply);
		it->success[r - it->results] = r->state == STORE_RCPT_DELIVERED && !res[i].peer_dsn &&
		    (it->q.rcpts[r->index].notify & STORE_NOTIFY_SUCCESS);
	}
	last = --it->parcels_left == 0;
	pthread_mutex_unlock(&R.lock);
	free(p->idx);
	free(p);
	if (last)
		finish_item(it);
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
	parcel_done(p, r);
	free(r);
}

/* ------------------------------------------------------------- destinations */

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct parcel *
take_parcel(struct dest *d)
{
	struct parcel *p;

	pthread_mutex_lock(&R.lock);
	p = d->head;
	if (p && !(d->head = p->next))
		d->tail = NULL;
	if (p) {
		d->waiting--;
		pace_taken(&d->pace, mono_now());
	}
	pthread_mutex_unlock(&R.lock);
	return p;
}

/* The destination is unreachable: every parcel waiting for it shares the outcome. */
static void
fail_dest(struct dest *d, enum smtpc_result res, const char *why)
{
	struct parcel *p;

	while ((p = take_parcel(d)))
		parcel_fail(p, res, why);
}

/* Deliver parcels over an open session until none is left or the session breaks. */
static void
deliver_over(struct smtpc *c, struct dest *d, unsigned *sent)
{
	struct parcel *p;

	while (*sent < RUNNER_MSGS_PER_CONNECTION && !c->broken && !__atomic_load_n(&R.stopping, __ATOMIC_ACQUIRE) &&
	    (p = take_parcel(d))) {
		struct item *it = p->item;
		struct body_reader br = { R.st, it->q.body_id };
		struct smtpc_rcpt *rc = xcalloc(p->n, sizeof(*rc));
		struct smtpc_msg m;
		size_t i;

		memset(&m, 0, sizeof(m));
		m.sender = it->q.sender;
		m.envid = it->q.envid;
		m.ret_full = it->q.ret_full;
		m.has_ret = it->q.ret_full || it->q.ret_hdrs;
		m.offset = content_offset(R.st, it->q.body_id);
		m.size = it->q.size - m.offset;
		m.body_8bit = has_8bit(R.st, it->q.body_id, m.offset);
		m.smtputf8 = !is_ascii(it->q.sender);
		m.read = read_body;
		m.read_arg = &br;
		m.rcpts = rc;
		m.nrcpts = p->n;
		for (i = 0; i < p->n; i++) {
			const struct store_qrcpt *q = &it->q.rcpts[p->idx[i]];

			rc[i].address = q->address;
			rc[i].orcpt = q->orcpt;
			rc[i].notify = q->notify;
			m.smtputf8 |= !is_ascii(q->address);
		}
		smtpc_send(c, &m);
		(*sent)++;
		parcel_done(p, rc);
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

	pthread_mutex_lock(&R.lock);
	c = tls_creds_ref(d->kind == DEST_SMARTHOST && R.smarthost_creds ? R.smarthost_creds : R.creds);
	pthread_mutex_unlock(&R.lock);
	return c;
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
	struct netio *io = &x.io;
	struct smtpc c;
	char peer[DNS_NAME_MAX + INET6_ADDRSTRLEN + 16], safe_peer[LOG_SAFE_SIZE], safe_error[LOG_SAFE_SIZE];
	const char *err;
	unsigned sent = 0;
	bool ok = false;
	enum smtpc_result res;

	*tls_failed_out = false;
	if (netio_connect(io, (const struct sockaddr *)&a->ss, a->len, cfg->relay.connect_timeout * 1000u, &err)) {
		snprintf(why, cap, "4.4.1 connect to %s[%s]: %s", host, io->peer, err);	/* RFC 3463: no answer */
		return false;
	}
	snprintf(peer, sizeof(peer), "%s[%s]", host, io->peer);
	memset(&o, 0, sizeof(o));
	o.helo_name = cfg->hostname;
	o.peer_name = peer;
	o.tls = tls;
	o.tls_name = host;	/* the smarthost's or route's host as configured, or the MX host */
	if (d->kind == DEST_SMARTHOST && *cfg->relay.smarthost_user) {
		o.auth_user = cfg->relay.smarthost_user;
		o.auth_password = cfg->relay.smarthost_password;
	}
	o.command_timeout_ms = cfg->relay.command_timeout * 1000u;
	o.data_timeout_ms = cfg->relay.data_timeout * 1000u;
	x.creds = dest_creds(d);
	x.sni = dns_is_literal(host) ? NULL : host;	/* SNI carries host names only (RFC 6066 3) */
	tr.io = &x;
	smtpc_init(&c, &tr, &o);
	res = smtpc_open(&c);
	if (res == SMTPC_OK) {
		log_msg(LOG_LEVEL_DEBUG, "event=relay_connect peer=\"%s\" tls=%s", log_safe(safe_peer, span_cstr(peer)),
		    netio_tls_version(io) ? netio_tls_version(io) : "none");
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
	netio_close(io);
	tls_creds_unref(x.creds);
	return ok;
}

/* Deliver what waits for d: hosts in order, addresses in order, until one session works. */
static void
deliver_dest(const struct config *cfg, struct dest *d)
{
	struct dns_mx mx[DNS_MX_MAX];
	size_t nmx = 0, i, j;
	unsigned port = d->port;
	char why[SMTPC_REPLY_MAX + 64] = "no host to try", safe_why[LOG_SAFE_SIZE], safe_dest[LOG_SAFE_SIZE];
	enum smtpc_tls tls = dest_tls(cfg, d);
	int rc;

	if (d->kind == DEST_MX) {
		rc = dns_mx(cfg->relay.nameserver, d->host, DNS_TIMEOUT_MS, mx, DNS_MX_MAX, &nmx);
		if (rc == ERR_NOTFOUND || rc == ERR_PERM) {
			snprintf(why, sizeof(why), rc == ERR_PERM ? "550 5.1.10 %s accepts no mail (null MX, RFC 7505)" :
			    "550 5.1.2 domain %s does not exist (DNS)", d->host);
			fail_dest(d, SMTPC_PERM, why);
			return;
		}
		if (rc) {
			snprintf(why, sizeof(why), "451 4.4.3 DNS lookup of the MX of %s failed", d->host);
			fail_dest(d, SMTPC_TEMP, why);
			return;
		}
		port = cfg->relay.mx_port;
	} else {
		snprintf(mx[0].host, sizeof(mx[0].host), "%s", d->host);
		nmx = 1;
	}
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
		for (j = 0; j < naddrs; j++) {
			bool tls_failed;

			if (try_address(cfg, d, mx[i].host, &addrs[j], tls, why, sizeof(why), &tls_failed))
				return;
			/* plaintext after a failed handshake only where TLS was opportunistic anyway */
			if (tls_failed && cfg->relay.tls_fallback_plain && tls == SMTPC_TLS_MAY && d->kind != DEST_SMARTHOST &&
			    try_address(cfg, d, mx[i].host, &addrs[j], SMTPC_TLS_NONE, why, sizeof(why), &tls_failed))
				return;
		}
	}
	log_msg(LOG_LEVEL_NOTICE, "event=relay_unreachable destination=\"%s\" error=\"%s\"",
	    log_safe(safe_dest, span_cstr(d->key)), log_safe(safe_why, span_cstr(why)));
	fail_dest(d, SMTPC_TEMP, why);
}

/*
 * R.lock held: a destination with more parcels waiting than connections
 * delivering them, and room for one more connection (each connection
 * takes parcel after parcel, so one more is only worth it for a backlog).
 */
static struct dest *
pick_dest(unsigned per_dest)
{
	struct dest *d;

	for (d = R.dests; d; d = d->next)
		if (d->waiting > d->active && d->active < per_dest)
			return d;
	return NULL;
}

/* R.lock held: drop d when nothing waits and nobody delivers. */
static void
maybe_free_dest(struct dest *d)
{
	struct dest **pp;

	if (d->head || d->active)
		return;
	for (pp = &R.dests; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			free(d);
			return;
		}
}

static void *
delivery_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&R.lock);
	while (!R.stopping) {
		struct config *cfg = config_get();
		struct dest *d = pick_dest(cfg->relay.max_per_destination);

		if (!d) {
			config_unref(cfg);
			pthread_cond_wait(&R.work, &R.lock);
			continue;
		}
		d->active++;
		pthread_mutex_unlock(&R.lock);
		deliver_dest(cfg, d);
		config_unref(cfg);
		pthread_mutex_lock(&R.lock);
		d->active--;
		maybe_free_dest(d);
	}
	pthread_mutex_unlock(&R.lock);
	return NULL;
}

/* ------------------------------------------------------------- the runner */

/* Where mail for address goes, as a destination (R.lock held). */
static struct dest *
dest_for(const struct config *cfg, const char *address)
{
	const char *domain = rcpt_domain(address);
	char key[sizeof(((struct dest *)0)->key)];
	enum dest_kind kind = DEST_MX;
	const char *host = domain;
	unsigned port = 0;
	struct dest *d;
	size_t i;

	for (i = 0; i < cfg->relay.nroutes; i++)
		if (!strcasecmp(cfg->relay.routes[i].domain, domain)) {
			kind = DEST_ROUTE;
			host = cfg->relay.routes[i].host;
			port = cfg->relay.routes[i].port;
			break;
		}
	if (kind == DEST_MX && *cfg->relay.smarthost) {
		const char *colon = strrchr(cfg->relay.smarthost, ':');

		kind = DEST_SMARTHOST;
		host = cfg->relay.smarthost;
		port = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 25;
		snprintf(key, sizeof(key), "%s", cfg->relay.smarthost);
	} else if (kind == DEST_ROUTE)
		snprintf(key, sizeof(key), "%s:%u", host, port);
	else
		snprintf(key, sizeof(key), "%s", domain);
	for (i = 0; key[i]; i++)
		key[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	for (d = R.dests; d; d = d->next)
		if (!strcmp(d->key, key))
			return d;
	d = xcalloc(1, sizeof(*d));
	d->kind = kind;
	snprintf(d->key, sizeof(d->key), "%s", key);
	if (kind == DEST_SMARTHOST) {
		const char *colon = strrchr(host, ':');
		snprintf(d->host, sizeof(d->host), "%.*s", colon ? (int)(colon - host) : (int)strlen(host), host);
	} else
		snprintf(d->host, sizeof(d->host), "%s", host);
	d->port = port;
	d->next = R.dests;
	R.dests = d;
	return d;
}

/*
 * Split the pending recipients of it into parcels by destination and queue
 * them (R.lock held). False when a destination has its fill waiting: then
 * nothing is queued, and *defer_s says how long the entry should wait.
 */
static bool
dispatch(const struct config *cfg, struct item *it, unsigned *defer_s)
{
	struct parcel **by = xcalloc(it->q.nrcpts, sizeof(*by));
	struct dest **dests = xcalloc(it->q.nrcpts, sizeof(*dests));
	uint32_t *local = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*local));
	size_t i, j, ngroups = 0, nlocal = 0;

	it->results = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*it->results));
	it->success = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*it->success));
	for (i = 0; i < it->q.nrcpts; i++) {
		struct dest *d;

		if (STORE_RCPT_REPORT_DUE(it->q.rcpts[i].state)) {
			/* delivered here already: only its success report is left */
			struct store_qresult *r = &it->results[it->nresults];

			r->index = (uint32_t)i;
			r->state = STORE_RCPT_DELIVERED;
			snprintf(r->reply, sizeof(r->reply), "%s", it->q.rcpts[i].reply);
			it->success[it->nresults++] = true;
			continue;
		}
		if (it->q.rcpts[i].state != STORE_RCPT_PENDING)
			continue;
		if (it->q.bounce_requested) {
			struct store_qresult *r = &it->results[it->nresults++];

			r->index = (uint32_t)i;
			r->state = STORE_RCPT_FAILED;
			snprintf(r->reply, sizeof(r->reply), "550 5.3.0 returned to the sender by the administrator");
			continue;
		}
		if (*it->q.rcpts[i].login) {
			local[nlocal++] = (uint32_t)i;	/* a mailbox here: no destination, a store write */
			continue;
		}
		d = dest_for(cfg, it->q.rcpts[i].address);
		for (j = 0; j < ngroups && dests[j] != d; j++)
			;
		if (j == ngroups) {
			dests[ngroups] = d;
			by[ngroups] = xcalloc(1, sizeof(struct parcel));
			by[ngroups]->item = it;
			by[ngroups]->idx = xcalloc(it->q.nrcpts, sizeof(uint32_t));
			ngroups++;
		}
		by[j]->idx[by[j]->n++] = (uint32_t)i;
	}
	for (j = 0; j < ngroups && dests[j]->waiting < RUNNER_DEST_WAITING_MAX; j++)
		;
	if (j < ngroups) {
		*defer_s = pace_defer(&dests[j]->pace, dests[j]->waiting, mono_now(), RUNNER_DEFER_SECONDS);
		for (j = 0; j < ngroups; j++) {
			free(by[j]->idx);
			free(by[j]);
			maybe_free_dest(dests[j]);
		}
		it->nresults = 0;
		free(by);
		free(dests);
		free(local);
		return false;
	}
	it->parcels_left = (unsigned)ngroups;
	if (nlocal) {
		it->local = xcalloc(1, sizeof(*it->local));
		it->local->item = it;
		it->local->idx = local;
		it->local->n = nlocal;
		it->parcels_left++;
	} else
		free(local);
	for (j = 0; j < ngroups; j++) {
		struct dest *d = dests[j];

		if (d->tail)
			d->tail->next = by[j];
		else
			d->head = by[j];
		d->tail = by[j];
		d->waiting++;
	}
	free(by);
	free(dests);
	return true;
}

static void
local_done(void *arg, int rc)
{
	struct item *it = arg;
	struct local_wait *w = it->local_wait;

	it->local_rc = rc;
	pthread_mutex_lock(&w->m);
	if (--w->left == 0)
		pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

/*
 * Local recipients of the items taken (a mailbox that had no room when
 * the message came): one store request each, sent together so one commit
 * carries them all, each copy written with its recipient marked delivered.
 * Their outcomes then finish the items like any parcel's (runner thread).
 */
static void
deliver_local(struct item **its, size_t n)
{
	struct local_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, n };
	uint64_t now = (uint64_t)time(NULL);
	size_t i, j;

	for (i = 0; i < n; i++) {
		struct item *it = its[i];
		struct store_qlocal *l = &it->req.u.local;

		/* it->req is free until finish_item(): the update is made after this answered */
		memset(&it->req, 0, sizeof(it->req));
		it->req.op = STORE_OP_QUEUE_LOCAL;
		it->local_res = xcalloc(it->local->n, sizeof(*it->local_res));
		it->local_wait = &w;
		l->id = it->q.id;
		l->idx = it->local->idx;
		l->n = it->local->n;
		l->now = now;
		l->results_out = it->local_res;
		if (store_submit(R.st, &it->req, local_done, it))
			local_done(it, ERR_STATE);
	}
	pthread_mutex_lock(&w.m);
	while (w.left)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_mutex_destroy(&w.m);
	pthread_cond_destroy(&w.c);
	for (i = 0; i < n; i++) {
		struct item *it = its[i];
		struct parcel *p = it->local;
		struct smtpc_rcpt *res = xcalloc(p->n, sizeof(*res));

		for (j = 0; j < p->n; j++) {
			int rc = it->local_rc ? it->local_rc : it->local_res[j];

			res[j].result = rc == 0 || rc == ERR_STATE ? SMTPC_OK : rc == ERR_NOTFOUND ? SMTPC_PERM : SMTPC_TEMP;
			if (it->local_rc)	/* the store failed: logged there; try again later */
				snprintf(res[j].reply, sizeof(res[j].reply), "451 4.3.0 local delivery failed: %s",
				    err_str(it->local_rc));
			else
				snprintf(res[j].reply, sizeof(res[j].reply), "%s", rc == 0 ? "250 2.0.0 delivered to the mailbox" :
				    rc == ERR_STATE ? "250 2.0.0 delivered to the mailbox before" :
				    rc == ERR_QUOTA ? "452 4.2.2 Mailbox full" : "550 5.1.1 the mailbox no longer exists");
		}
		it->local = NULL;
		parcel_done(p, res);	/* frees p, may finish the item */
		free(res);
	}
}

/* Back to the store for a while, unattempted: its destination has enough waiting. */
static void
defer_item(struct item *it, uint64_t now, unsigned seconds)
{
	struct store_qupdate *u = &it->req.u.update;

	memset(&it->req, 0, sizeof(it->req));
	it->req.op = STORE_OP_QUEUE_UPDATE;
	u->id = it->q.id;
	u->attempts = it->q.attempts;
	u->next_attempt = now + seconds;
	pthread_mutex_lock(&R.lock);
	R.updates_pending++;
	pthread_mutex_unlock(&R.lock);
	if (store_submit(R.st, &it->req, updated, it))
		updated(it, ERR_STATE);
}

/* Take what is due: lease it in the store, then hand it out. */
static bool
take_due(const struct config *cfg)
{
	uint64_t ids[RUNNER_BATCH], now = (uint64_t)time(NULL);
	struct item *fresh[RUNNER_BATCH], *later[RUNNER_BATCH], *locals[RUNNER_BATCH];
	unsigned later_s[RUNNER_BATCH], longest = 0;
	struct store_req req;
	size_t n = 0, room, i, nfresh = 0, empty = 0, nlater = 0, nlocals = 0;
	int rc;

	pthread_mutex_lock(&R.lock);
	room = RUNNER_INFLIGHT_MAX - R.ninflight;
	pthread_mutex_unlock(&R.lock);
	if (room > RUNNER_BATCH)
		room = RUNNER_BATCH;
	if (!room || store_queue_due(R.st, now, ids, room, &n) || !n)
		return false;
	memset(&req, 0, sizeof(req));
	req.op = STORE_OP_QUEUE_CLAIM;
	req.u.claim.ids = ids;
	req.u.claim.nids = n;
	req.u.claim.until = now + RUNNER_LEASE_SECONDS;
	if ((rc = store_submit_wait(R.st, &req))) {
		log_msg(LOG_LEVEL_ERR, "event=relay_claim error=\"%s\"", err_str(rc));
		return false;
	}
	for (i = 0; i < n; i++) {
		struct item *it;
		bool busy;

		pthread_mutex_lock(&R.lock);
		busy = inflight_has(ids[i]);	/* a long attempt outlived its lease: it was only renewed */
		pthread_mutex_unlock(&R.lock);
		if (busy)
			continue;
		it = xcalloc(1, sizeof(*it));
		if (store_queue_get(R.st, ids[i], &it->q)) {
			free(it);
			continue;	/* deleted meanwhile */
		}
		fresh[nfresh++] = it;
	}
	pthread_mutex_lock(&R.lock);
	for (i = 0; i < nfresh; i++) {
		inflight_add(fresh[i]->q.id);
		if (!dispatch(cfg, fresh[i], &later_s[nlater]))
			later[nlater++] = fresh[i];
		else if (!fresh[i]->parcels_left)
			fresh[empty++] = fresh[i];	/* nothing pending: finish it below */
		else if (fresh[i]->local)
			locals[nlocals++] = fresh[i];	/* kept by its local parcel until tried below */
	}
	pthread_cond_broadcast(&R.work);
	pthread_mutex_unlock(&R.lock);
	for (i = 0; i < empty; i++)
		finish_item(fresh[i]);
	if (nlocals)
		deliver_local(locals, nlocals);
	for (i = 0; i < nlater; i++) {
		defer_item(later[i], now, later_s[i]);
		if (later_s[i] > longest)
			longest = later_s[i];
	}
	if (nlater) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 5);
		unsigned suppressed;

		if (log_ratelimit_ok(&rl, &suppressed))
			log_msg(LOG_LEVEL_NOTICE, "event=relay_backlog deferred=%zu waiting_max=%d retry_in_max=%us suppressed=%u",
			    nlater, RUNNER_DEST_WAITING_MAX, longest, suppressed);
	}
	return n == room;
}

static void *
runner_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&R.lock);
	while (!R.stopping) {
		struct timespec ts;
		struct config *cfg;

		if (!R.kicked) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;	/* the time index is read once a second: one cursor step when idle */
			pthread_cond_timedwait(&R.tick, &R.lock, &ts);
		}
		R.kicked = false;
		if (R.stopping)
			break;
		pthread_mutex_unlock(&R.lock);
		cfg = config_get();
		while (take_due(cfg))
			;
		config_unref(cfg);
		pthread_mutex_lock(&R.lock);
	}
	pthread_mutex_unlock(&R.lock);
	return NULL;
}

void
runner_kick(void)
{
	pthread_mutex_lock(&R.lock);
	R.kicked = true;
	pthread_cond_signal(&R.tick);
	pthread_mutex_unlock(&R.lock);
}

int
runner_start(struct store *st)
{
	struct config *cfg = config_get();
	size_t released = 0;
	unsigned i;
	int rc;

	R.st = st;
	R.stopping = false;
	R.inflight = xcalloc(INFLIGHT_SLOTS, sizeof(*R.inflight));
	if ((rc = dns_init()) || (rc = tls_creds_client_new(cfg->tls.priority, NULL, &R.creds)) ||
	    (rc = runner_tls_load(cfg, &R.smarthost_creds)))
		goto out;
	if ((rc = store_queue_release(st, (uint64_t)time(NULL), &released)))
		goto out;
	if (released)
		log_msg(LOG_LEVEL_NOTICE, "event=relay_release entries=%zu note=\"taken by a runner that stopped: due now\"",
		    released);
	R.nthreads = cfg->relay.max_connections;
	R.threads = xcalloc(R.nthreads, sizeof(*R.threads));
	for (i = 0; i < R.nthreads; i++)
		if (pthread_create(&R.threads[i], NULL, delivery_main, NULL)) {
			R.nthreads = i;
			rc = ERR_IO;
			break;
		}
	if (!rc && pthread_create(&R.runner, NULL, runner_main, NULL))
		rc = ERR_IO;
	R.started = rc == 0;
out:
	config_unref(cfg);
	if (rc)
		log_msg(LOG_LEVEL_CRIT, "event=relay_start error=\"%s\"", err_str(rc));
	return rc;
}

void
runner_stop(void)
{
	unsigned i;
	struct dest *d;

	if (!R.inflight)
		return;
	netio_stop();
	pthread_mutex_lock(&R.lock);
	R.stopping = true;
	pthread_cond_broadcast(&R.tick);
	pthread_cond_broadcast(&R.work);
	pthread_mutex_unlock(&R.lock);
	if (R.started)
		pthread_join(R.runner, NULL);
	for (i = 0; i < R.nthreads; i++)
		pthread_join(R.threads[i], NULL);
	/* results of finished attempts reach the store before it closes */
	pthread_mutex_lock(&R.lock);
	while (R.updates_pending)
		pthread_cond_wait(&R.idle, &R.lock);
	/* parcels never started stay leased in the store: released at the next start */
	while ((d = R.dests)) {
		struct parcel *p;

		R.dests = d->next;
		while ((p = d->head)) {
			d->head = p->next;
			if (--p->item->parcels_left == 0)
				free_item(p->item);
			free(p->idx);
			free(p);
		}
		free(d);
	}
	pthread_mutex_unlock(&R.lock);
	free(R.threads);
	free(R.inflight);
	R.inflight = NULL;
	R.threads = NULL;
	R.nthreads = 0;
	tls_creds_unref(R.creds);
	tls_creds_unref(R.smarthost_creds);
	R.creds = R.smarthost_creds = NULL;
	dns_deinit();
}

int
runner_tls_load(const struct config *cfg, struct tls_creds **out)
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

void
runner_tls_set(struct tls_creds *smarthost_creds)
{
	struct tls_creds *old;

	pthread_mutex_lock(&R.lock);
	old = R.smarthost_creds;
	R.smarthost_creds = smarthost_creds;
	pthread_mutex_unlock(&R.lock);
	tls_creds_unref(old);	/* sessions using it hold their own reference */
}
