/*
 * report.c: turning an attempt's results into the report its sender gets
 * (RFC 3464 via dsn.c; RFC 3461 for who asked for what): which recipients
 * are reported and how, who receives the report, and the store delivery
 * that carries it in the same commit as the queue update.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/delivery/body.h"
#include "server/delivery/dsn.h"
#include "server/delivery/report.h"
#include "core/compat.h"

/* ------------------------------------------------------------- who receives it */

struct address_ctx {
	const struct config *cfg;
	struct report *rp;
	bool remote;
};

static bool
ctx_is_local(void *arg, const char *domain)
{
	struct address_ctx *x = arg;

	return config_is_local_domain(x->cfg, span_cstr(domain));
}

static void
ctx_local(void *arg, const char *login)
{
	struct address_ctx *x = arg;
	struct report *rp = x->rp;

	rp->logins = xrealloc(rp->logins, (rp->nlogins + 1) * sizeof(char *));
	rp->logins[rp->nlogins++] = xstrdup(login);
}

static void
ctx_remote(void *arg, const char *address)
{
	struct address_ctx *x = arg;

	/* the report goes to the sender as it is: one remote address, queued with a null sender */
	if (!x->remote) {
		snprintf(x->rp->bounce_rcpt.address, sizeof(x->rp->bounce_rcpt.address), "%s", address);
		x->remote = true;
	}
}

/*
 * Address the report to `to`: its local mailboxes, and (unless local_only)
 * a new queue entry for a remote address. False when nobody would get it.
 */
static bool
address_report(struct store *st, const struct config *cfg, struct report *rp, const char *to, bool local_only)
{
	struct store_target_fns fns = { ctx_is_local, ctx_local, ctx_remote, NULL };
	struct address_ctx x = { cfg, rp, false };

	fns.arg = &x;
	if (store_resolve(st, to, &fns))
		return false;
	if (local_only)
		x.remote = false;
	if (x.remote) {
		memset(&rp->bounce_q, 0, sizeof(rp->bounce_q));
		rp->bounce_q.rcpts = &rp->bounce_rcpt;
		rp->bounce_q.nrcpts = 1;
		rp->bounce_q.created = rp->bounce_q.next_attempt = (uint64_t)time(NULL);
		rp->bounce.queue = &rp->bounce_q;
	}
	return x.remote || rp->nlogins;
}

/*
 * The report goes to the envelope sender, or for a report nobody can get
 * (null sender, or a local sender that no longer exists) to the local
 * postmaster, delivered only locally so a lost report can never loop.
 * The address the report names as its recipient, or NULL (logged).
 */
static const char *
pick_receiver(struct store *st, const struct config *cfg, struct report *rp, const struct store_qentry *q,
    char *postmaster, size_t cap)
{
	bool to_postmaster = !*q->sender;

	snprintf(postmaster, cap, "postmaster@%s", cfg->domains[0]);
	if (!to_postmaster && !address_report(st, cfg, rp, q->sender, false)) {
		char to[LOG_SAFE_SIZE];

		log_msg(LOG_LEVEL_NOTICE, "event=dsn queue=%016" PRIx64 " to=\"%s\" note=\"no such local sender: to the postmaster\"",
		    q->id, log_safe(to, span_cstr(q->sender)));
		to_postmaster = true;
	}
	if (to_postmaster && !address_report(st, cfg, rp, postmaster, true)) {
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"no local mailbox for %s\"", q->id,
		    postmaster);
		return NULL;
	}
	return to_postmaster ? postmaster : q->sender;
}

/* ------------------------------------------------------------- what it says */

/*
 * The recipients to report, into dr (room for every result): failed;
 * delayed, for a warning; and those whose success is ours to report, when
 * they asked for NOTIFY=SUCCESS. A null sender's report (to the
 * postmaster) carries failures only. Returns how many; *any_success_out
 * says whether a success line is among them.
 */
static size_t
pick_rcpts(const struct report_src *s, bool to_postmaster, struct dsn_rcpt *dr, bool *any_success_out)
{
	size_t i, n = 0;

	*any_success_out = false;
	for (i = 0; i < s->nresults; i++) {
		const struct store_qresult *r = &s->results[i];
		const struct store_qrcpt *qr = &s->q->rcpts[r->index];
		uint32_t notify = qr->notify;

		if (notify & STORE_NOTIFY_NEVER)
			continue;
		if (r->state == STORE_RCPT_FAILED && (!notify || notify & STORE_NOTIFY_FAILURE)) {
			dr[n].action = DSN_FAILED;
		} else if (s->warn && r->state == STORE_RCPT_PENDING && (!notify || notify & STORE_NOTIFY_DELAY)) {
			if (to_postmaster)
				continue;	/* nobody is told of a report's delay */
			dr[n].action = DSN_DELAYED;
		} else if (s->success[i] && !to_postmaster) {
			uint8_t was = qr->state;	/* as read, before this update */

			dr[n].action = was == STORE_RCPT_DELIVERED_REPORT || *qr->login ? DSN_DELIVERED :
			    was == STORE_RCPT_EXPANDED_REPORT ? DSN_EXPANDED : DSN_RELAYED;
			*any_success_out = true;
		} else
			continue;
		dr[n].address = qr->address;
		dr[n].orcpt = qr->orcpt;
		dr[n].reply = r->reply;
		n++;
	}
	return n;
}

/* Format the report for receiver into rp->dsn and make the delivery carrying it (NULL: logged). */
static struct store_delivery *
build(struct report *rp, struct store *st, const struct config *cfg, const struct report_src *s, const char *receiver,
    const struct dsn_rcpt *dr, size_t n, bool any_success)
{
	const struct store_qentry *q = s->q;
	struct body_reader br = { st, q->body_id };
	struct dsn_info di;

	memset(&di, 0, sizeof(di));
	di.hostname = cfg->hostname;
	di.sender = receiver;
	di.envid = q->envid;
	di.arrival = q->created;
	di.now = s->now;
	di.retry_until = q->created + cfg->relay.queue_lifetime;
	di.queue_id = q->id;
	/* a success report for a stranger's message carries its headers only: it
	   goes wherever MAIL FROM said, so full content would be a reflection */
	di.ret_full = q->ret_full && !(q->success_hdrs && any_success);
	di.rcpts = dr;
	di.nrcpts = n;
	di.read = body_read;
	di.read_arg = &br;
	di.offset = body_content_offset(st, q->body_id);
	buf_init(&rp->dsn, 0);	/* bounded by the original, which passed max_message_size */
	if (dsn_build(&di, &rp->dsn)) {
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"cannot read the original\"", q->id);
		buf_free(&rp->dsn);
		return NULL;
	}
	rp->bounce.prefix = rp->dsn.data;
	rp->bounce.prefix_len = rp->dsn.len;
	rp->bounce.fd = -1;
	rp->bounce.logins = (const char *const *)rp->logins;
	rp->bounce.nlogins = rp->nlogins;
	rp->bounce.now = s->now;
	return &rp->bounce;
}

struct store_delivery *
report_make(struct report *rp, struct store *st, const struct config *cfg, const struct report_src *s)
{
	struct dsn_rcpt *dr = xcalloc(s->q->nrcpts ? s->q->nrcpts : 1, sizeof(*dr));
	struct store_delivery *d = NULL;
	char postmaster[STORE_ADDRESS_MAX + 1];
	const char *receiver;
	bool any_success;
	size_t n;

	/* the recipients are picked for the sender as given (a null sender's report goes to the
	   postmaster); a local sender found gone later keeps what was picked for it */
	n = pick_rcpts(s, !*s->q->sender, dr, &any_success);
	if (n && (receiver = pick_receiver(st, cfg, rp, s->q, postmaster, sizeof(postmaster))))
		d = build(rp, st, cfg, s, receiver, dr, n, any_success);
	free(dr);
	return d;
}

void
report_committed(const struct report *rp, const struct store_qentry *q, int bounce_failed)
{
	char to[LOG_SAFE_SIZE];

	if (rp->dsn.len && bounce_failed)
		log_msg(LOG_LEVEL_ERR, "event=dsn_lost queue=%016" PRIx64 " error=\"%s\"", q->id, err_str(bounce_failed));
	else if (rp->dsn.len)
		log_msg(LOG_LEVEL_INFO, "event=dsn queue=%016" PRIx64 " to=\"%s\" local=%zu remote=%d",
		    q->id, log_safe(to, span_cstr(q->sender)), rp->nlogins, rp->bounce.queue != NULL);
}

void
report_free(struct report *rp)
{
	size_t i;

	for (i = 0; i < rp->nlogins; i++)
		free(rp->logins[i]);
	free(rp->logins);
	buf_free(&rp->dsn);
}
