/*
 * runner.c: the queue runner thread. Holds the round (once a second, or
 * when kicked): due entries read from the time index, leased in one
 * commit, split into parcels and handed to their destinations
 * (destination.c); the local copies a round takes; and the end of each
 * entry: its parcels' results applied, the next attempt scheduled, and the
 * update (with the report report.c makes) sent to the store.
 *
 * In memory: an item per queue entry in flight, split into parcels (its
 * pending recipients for one destination). All of it, with the
 * destinations, behind one mutex (R.lock), held only to move parcels,
 * never across I/O. The store stays the truth: an entry is leased when
 * taken and updated when its parcels are done; a crash loses only the
 * in-memory part, and the lease is undone at the next start, so every
 * recipient is tried again (at least once) and a recipient recorded as
 * delivered is never sent again.
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
#include "core/htable.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/delivery/destination.h"
#include "server/delivery/netio.h"
#include "server/delivery/report.h"
#include "server/delivery/runner.h"
#include "storage/store.h"
#include "server/tls.h"
#include "core/compat.h"

struct item {
	struct store_qentry q;
	unsigned parcels_left;
	struct store_qresult *results;
	size_t nresults;
	/* per result: NOTIFY=SUCCESS asked and the success report is ours to
	   make: taken by a server without DSN ("relayed", RFC 3461 5.2.2), or
	   delivered here (the recipient's state says delivered or expanded) */
	bool *success;
	/* the store update, alive until its commit answered, and its report */
	struct store_req req;
	struct report report;
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

static struct {
	struct store *st;
	pthread_mutex_t lock;		/* the one lock: items, the in-flight set, destinations */
	pthread_cond_t tick;		/* the runner: kicked or stopping */
	pthread_cond_t idle;		/* runner_stop: the last update was answered */
	bool stopping, kicked, started;
	struct htable inflight;		/* entry ids in flight (slots NULL: not started) */
	size_t ninflight, updates_pending;
	pthread_t runner;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER, .tick = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER };

/*
 * Slots of the in-flight set: twice what may be in flight, so most
 * neighbourhoods have room. It never evicts (an entry in flight must stay
 * known, or a renewed lease would send it twice); an entry whose
 * neighbourhood is full goes back to the store unattempted for
 * RUNNER_DEFER_SECONDS, logged (hand_out).
 */
#define INFLIGHT_SLOTS (2 * RUNNER_INFLIGHT_MAX)

/* ------------------------------------------------------------- in-flight set (R.lock held) */

static struct span
id_key(const uint64_t *id)
{
	return span_make(id, sizeof(*id));
}

static bool
inflight_has(uint64_t id)
{
	return htable_get(&R.inflight, id_key(&id)) != NULL;
}

/* False when id's neighbourhood is full (no victim: nothing in flight is forgotten). */
static bool
inflight_add(uint64_t id)
{
	if (!htable_put(&R.inflight, id_key(&id), NULL, NULL))
		return false;
	R.ninflight++;
	return true;
}

static void
inflight_del(uint64_t id)
{
	if (!inflight_has(id))
		return;	/* never added: its neighbourhood was full */
	htable_del(&R.inflight, id_key(&id));
	R.ninflight--;
}

/* ------------------------------------------------------------- finishing an entry */

static void
free_item(struct item *it)
{
	report_free(&it->report);
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

	if (rc && rc != ERR_NOTFOUND)
		log_msg(LOG_LEVEL_ERR, "event=relay_update queue=%016" PRIx64 " error=\"%s\" note=\"retried after the lease\"",
		    it->q.id, err_str(rc));
	else
		report_committed(&it->report, &it->q, it->req.u.update.bounce_failed_out);
	pthread_mutex_lock(&R.lock);
	inflight_del(it->q.id);
	if (--R.updates_pending == 0)
		pthread_cond_broadcast(&R.idle);
	pthread_mutex_unlock(&R.lock);
	if (it->report.bounce.queue && !rc)
		runner_kick();
	free_item(it);
}

/* The update of it goes to the store; updated() answers it. */
static void
submit_update(struct item *it)
{
	pthread_mutex_lock(&R.lock);
	R.updates_pending++;
	pthread_mutex_unlock(&R.lock);
	if (store_submit(R.st, &it->req, updated, it))
		updated(it, ERR_STATE);
}

/*
 * The attempt's results as they go to the store: a recipient still pending
 * at the end of relay.queue_lifetime fails; each is logged. True when one
 * is left pending.
 */
static bool
settle_results(const struct config *cfg, struct item *it, bool expired)
{
	bool pending = false;
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
	return pending;
}

/* Every parcel of it is done: results, report, the next attempt, in one commit. */
static void
finish_item(struct item *it)
{
	struct config *cfg = config_get();
	struct store_qupdate *u = &it->req.u.update;
	uint64_t now = (uint64_t)time(NULL), expiry = it->q.created + cfg->relay.queue_lifetime;
	size_t k = it->q.attempts < cfg->relay.nretry ? it->q.attempts : cfg->relay.nretry - 1;
	struct report_src src = { &it->q, it->results, it->success, it->nresults, now, false };

	if (settle_results(cfg, it, now >= expiry) && cfg->relay.delay_warning && !it->q.delay_warned &&
	    now - it->q.created >= cfg->relay.delay_warning)
		src.warn = true;
	memset(&it->req, 0, sizeof(it->req));
	it->req.op = STORE_OP_QUEUE_UPDATE;
	u->id = it->q.id;
	u->results = it->results;
	u->nresults = it->nresults;
	u->attempts = it->q.attempts + 1;
	u->next_attempt = now + cfg->relay.retry_schedule[k];
	if (u->next_attempt > expiry)
		u->next_attempt = expiry > now ? expiry : now;	/* the bounce goes out on time */
	u->delay_warned = src.warn;
	u->bounce = report_make(&it->report, R.st, cfg, &src);
	config_unref(cfg);
	submit_update(it);
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

/* ------------------------------------------------------------- handing out parcels */

static struct parcel *
new_parcel(struct item *it)
{
	struct parcel *p = xcalloc(1, sizeof(*p));

	p->item = it;
	p->q = &it->q;
	p->idx = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(uint32_t));
	return p;
}

/*
 * Recipient i of it settled without a parcel: a report due for a delivery
 * made here, or failed at the administrator's request. False when it is
 * for a mailbox here or a destination, or not pending at all (*skip_out).
 */
static bool
settle_now(struct item *it, size_t i, bool *skip_out)
{
	const struct store_qrcpt *qr = &it->q.rcpts[i];
	struct store_qresult *r = &it->results[it->nresults];

	*skip_out = false;
	if (STORE_RCPT_REPORT_DUE(qr->state)) {
		/* delivered here already: only its success report is left */
		r->index = (uint32_t)i;
		r->state = STORE_RCPT_DELIVERED;
		snprintf(r->reply, sizeof(r->reply), "%s", qr->reply);
		it->success[it->nresults++] = true;
		return true;
	}
	if (qr->state != STORE_RCPT_PENDING) {
		*skip_out = true;
		return false;
	}
	if (it->q.bounce_requested) {
		r->index = (uint32_t)i;
		r->state = STORE_RCPT_FAILED;
		snprintf(r->reply, sizeof(r->reply), "550 5.3.0 returned to the sender by the administrator");
		it->nresults++;
		return true;
	}
	return false;
}

/* The parcels of one entry while they are made: one per destination, and the local one. */
struct groups {
	struct parcel **by;
	struct dest **dests;
	size_t n;
	struct parcel *local;
};

/* Lock held: sort the pending recipients of it into g. False when a destination has no slot. */
static bool
group_rcpts(const struct config *cfg, struct item *it, struct groups *g)
{
	size_t i, j;

	for (i = 0; i < it->q.nrcpts; i++) {
		struct dest *d;
		bool skip;

		if (settle_now(it, i, &skip) || skip)
			continue;
		if (*it->q.rcpts[i].login) {
			/* a mailbox here: no destination, a store write */
			if (!g->local)
				g->local = new_parcel(it);
			g->local->idx[g->local->n++] = (uint32_t)i;
			continue;
		}
		if (!(d = dest_for(cfg, it->q.rcpts[i].address)))
			return false;
		for (j = 0; j < g->n && g->dests[j] != d; j++)
			;
		if (j == g->n) {
			g->dests[g->n] = d;
			g->by[g->n++] = new_parcel(it);
		}
		g->by[j]->idx[g->by[j]->n++] = (uint32_t)i;
	}
	return true;
}

/* Lock held: a destination of g has its fill waiting, or none has a slot; nothing of it is queued. */
static void
ungroup(struct item *it, struct groups *g)
{
	size_t j;

	for (j = 0; j < g->n; j++) {
		free(g->by[j]->idx);
		free(g->by[j]);
		dest_release(g->dests[j]);
	}
	if (g->local) {
		free(g->local->idx);
		free(g->local);
	}
	it->nresults = 0;
}

/* Why an entry goes back to the store unattempted. */
enum later_why { LATER_NONE, LATER_BACKLOG, LATER_NO_SLOT };

/*
 * Split the pending recipients of it into parcels by destination and queue
 * them (R.lock held). LATER_NONE when queued. Else nothing is queued and
 * *defer_s says how long the entry should wait: LATER_BACKLOG when a
 * destination has its fill waiting (at its pace), LATER_NO_SLOT when a new
 * destination found no slot in the table (RUNNER_DEFER_SECONDS: the table
 * empties as parcels are delivered).
 */
static enum later_why
dispatch(const struct config *cfg, struct item *it, unsigned *defer_s)
{
	struct groups g = { xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*g.by)),
			    xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*g.dests)), 0, NULL };
	enum later_why why = LATER_NONE;
	size_t j;

	it->results = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*it->results));
	it->success = xcalloc(it->q.nrcpts ? it->q.nrcpts : 1, sizeof(*it->success));
	if (!group_rcpts(cfg, it, &g)) {
		why = LATER_NO_SLOT;
		*defer_s = RUNNER_DEFER_SECONDS;
	}
	for (j = 0; j < g.n && !why; j++)
		if (dest_is_full(g.dests[j], defer_s))
			why = LATER_BACKLOG;
	if (why)
		ungroup(it, &g);
	else {
		it->parcels_left = (unsigned)g.n + (g.local != NULL);
		it->local = g.local;
		for (j = 0; j < g.n; j++)
			dest_put(g.dests[j], g.by[j]);
	}
	free(g.by);
	free(g.dests);
	return why;
}

/* ------------------------------------------------------------- local copies */

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

/* Send the local copy request of it (its req is free until finish_item: the update comes after). */
static void
submit_local(struct item *it, struct local_wait *w, uint64_t now)
{
	struct store_qlocal *l = &it->req.u.local;

	memset(&it->req, 0, sizeof(it->req));
	it->req.op = STORE_OP_QUEUE_LOCAL;
	it->local_res = xcalloc(it->local->n, sizeof(*it->local_res));
	it->local_wait = w;
	l->id = it->q.id;
	l->idx = it->local->idx;
	l->n = it->local->n;
	l->now = now;
	l->results_out = it->local_res;
	if (store_submit(R.st, &it->req, local_done, it))
		local_done(it, ERR_STATE);
}

/* The local parcel of it has its answer: its results, like any parcel's. */
static void
local_results(struct item *it)
{
	struct parcel *p = it->local;
	struct smtpc_rcpt *res = xcalloc(p->n, sizeof(*res));
	size_t j;

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
	size_t i;

	for (i = 0; i < n; i++)
		submit_local(its[i], &w, now);
	pthread_mutex_lock(&w.m);
	while (w.left)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_mutex_destroy(&w.m);
	pthread_cond_destroy(&w.c);
	for (i = 0; i < n; i++)
		local_results(its[i]);
}

/* ------------------------------------------------------------- the round */

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
	submit_update(it);
}

/* Lease ids in the store (one commit): their next attempt moves past any attempt's length. */
static bool
lease(const uint64_t *ids, size_t n, uint64_t now)
{
	struct store_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = STORE_OP_QUEUE_CLAIM;
	req.u.claim.ids = ids;
	req.u.claim.nids = n;
	req.u.claim.until = now + RUNNER_LEASE_SECONDS;
	if ((rc = store_submit_wait(R.st, &req))) {
		log_msg(LOG_LEVEL_ERR, "event=relay_claim error=\"%s\"", err_str(rc));
		return false;
	}
	return true;
}

/* The leased entries not in flight already, read from the store into fresh. Returns how many. */
static size_t
fetch(const uint64_t *ids, size_t n, struct item **fresh)
{
	size_t i, nfresh = 0;

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
	return nfresh;
}

/* What one round took, sorted by what happens to it next. */
struct round {
	struct item *empty[RUNNER_BATCH];	/* nothing pending: finished at once */
	struct item *locals[RUNNER_BATCH];	/* a local parcel to try */
	struct item *later[RUNNER_BATCH];	/* back to the store, unattempted */
	unsigned later_s[RUNNER_BATCH];
	size_t nempty, nlocals, nlater;
	size_t nno_slot;			/* of the later ones: no slot in a table */
};

/* Hand the fresh items to their destinations (one lock for all), sorting them into r. */
static void
hand_out(const struct config *cfg, struct item **fresh, size_t nfresh, struct round *r)
{
	size_t i;

	pthread_mutex_lock(&R.lock);
	for (i = 0; i < nfresh; i++) {
		enum later_why why = LATER_NO_SLOT;

		if (!inflight_add(fresh[i]->q.id))
			r->later_s[r->nlater] = RUNNER_DEFER_SECONDS;
		else
			why = dispatch(cfg, fresh[i], &r->later_s[r->nlater]);
		if (why) {
			r->nno_slot += why == LATER_NO_SLOT;
			r->later[r->nlater++] = fresh[i];
		} else if (!fresh[i]->parcels_left)
			r->empty[r->nempty++] = fresh[i];	/* nothing pending: finish it below */
		else if (fresh[i]->local)
			r->locals[r->nlocals++] = fresh[i];	/* kept by its local parcel until tried below */
	}
	dest_wake();
	pthread_mutex_unlock(&R.lock);
}

/*
 * Entries whose destination has its fill waiting, or that found no slot in
 * the in-flight set or the destination table, go back to the store; one
 * log line of each kind now and then.
 */
static void
defer_later(struct round *r, uint64_t now)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 5), rl_slot = LOG_RATELIMIT_INIT(60, 5);
	unsigned suppressed, longest = 0;
	size_t i;

	for (i = 0; i < r->nlater; i++) {
		defer_item(r->later[i], now, r->later_s[i]);
		if (r->later_s[i] > longest)
			longest = r->later_s[i];
	}
	if (r->nno_slot && log_ratelimit_ok(&rl_slot, &suppressed))
		log_msg(LOG_LEVEL_WARN, "event=relay_table_full deferred=%zu retry_in=%us suppressed=%u",
		    r->nno_slot, RUNNER_DEFER_SECONDS, suppressed);
	if (r->nlater > r->nno_slot && log_ratelimit_ok(&rl, &suppressed))
		log_msg(LOG_LEVEL_NOTICE, "event=relay_backlog deferred=%zu waiting_max=%d retry_in_max=%us suppressed=%u",
		    r->nlater - r->nno_slot, RUNNER_DEST_WAITING_MAX, longest, suppressed);
}

/* Take what is due: lease it in the store, then hand it out. True when there may be more. */
static bool
take_due(const struct config *cfg)
{
	struct round r;
	uint64_t ids[RUNNER_BATCH], now = (uint64_t)time(NULL);
	struct item *fresh[RUNNER_BATCH];
	size_t n = 0, room, i, nfresh;

	pthread_mutex_lock(&R.lock);
	room = RUNNER_INFLIGHT_MAX - R.ninflight;
	pthread_mutex_unlock(&R.lock);
	if (room > RUNNER_BATCH)
		room = RUNNER_BATCH;
	if (!room || store_queue_due(R.st, now, ids, room, &n) || !n || !lease(ids, n, now))
		return false;
	nfresh = fetch(ids, n, fresh);
	memset(&r, 0, sizeof(r));
	hand_out(cfg, fresh, nfresh, &r);
	for (i = 0; i < r.nempty; i++)
		finish_item(r.empty[i]);
	if (r.nlocals)
		deliver_local(r.locals, r.nlocals);
	defer_later(&r, now);
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

/* ------------------------------------------------------------- start, stop, reload */

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
	struct dest_env env = { st, &R.lock, parcel_done };
	size_t released = 0;
	int rc;

	R.st = st;
	R.stopping = false;
	htable_init(&R.inflight, INFLIGHT_SLOTS, sizeof(uint64_t), 1);
	if ((rc = dest_init(&env, cfg)))
		goto out;
	if ((rc = store_queue_release(st, (uint64_t)time(NULL), &released)))
		goto out;
	if (released)
		log_msg(LOG_LEVEL_NOTICE, "event=relay_release entries=%zu note=\"taken by a runner that stopped: due now\"",
		    released);
	rc = dest_threads_start(cfg->relay.max_connections);
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
	struct parcel *p, *next;

	if (!R.inflight.slots)
		return;
	netio_stop();
	pthread_mutex_lock(&R.lock);
	R.stopping = true;
	pthread_cond_broadcast(&R.tick);
	dest_stopping();
	pthread_mutex_unlock(&R.lock);
	if (R.started)
		pthread_join(R.runner, NULL);
	dest_join();
	/* results of finished attempts reach the store before it closes */
	pthread_mutex_lock(&R.lock);
	while (R.updates_pending)
		pthread_cond_wait(&R.idle, &R.lock);
	/* parcels never started stay leased in the store: released at the next start */
	for (p = dest_drain(); p; p = next) {
		next = p->next;
		if (--p->item->parcels_left == 0)
			free_item(p->item);
		free(p->idx);
		free(p);
	}
	pthread_mutex_unlock(&R.lock);
	htable_free(&R.inflight);
	dest_fini();
}

int
runner_tls_load(const struct config *cfg, struct tls_creds **out)
{
	return dest_tls_load(cfg, out);
}

void
runner_tls_set(struct tls_creds *smarthost_creds)
{
	struct tls_creds *old;

	pthread_mutex_lock(&R.lock);
	old = dest_tls_swap(smarthost_creds);
	pthread_mutex_unlock(&R.lock);
	tls_creds_unref(old);	/* sessions using it hold their own reference */
}
