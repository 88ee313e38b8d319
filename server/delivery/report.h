/*
 * delivery/report.h: the reports an attempt gives rise to (failures, delay
 * warnings, success for NOTIFY=SUCCESS), made from the attempt's results
 * and the queue entry as it was read. report.c picks the recipients to
 * report, addresses the report (the sender, or the local postmaster for
 * what nobody else can get) and has dsn.c format it; the store delivers it
 * in the same commit as the entry's update.
 *
 * Threads: whichever thread finishes an entry (runner or delivery thread);
 * a struct report belongs to one entry and is not shared.
 */
#ifndef POSTIE_DELIVERY_REPORT_H
#define POSTIE_DELIVERY_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "storage/store.h"

struct config;

/* A report being made and delivered: alive until the commit that carries it answered. */
struct report {
	struct buf dsn;			/* the message; len 0 = no report */
	struct store_qentry bounce_q;	/* a remote sender's report, queued with a null sender */
	struct store_qrcpt bounce_rcpt;
	struct store_delivery bounce;	/* bounce.queue NULL = no remote copy */
	char **logins;			/* local mailboxes that get it */
	size_t nlogins;
};

/* What an attempt on one entry found. */
struct report_src {
	const struct store_qentry *q;		/* as read when taken (states before this attempt) */
	const struct store_qresult *results;	/* this attempt's, by recipient index */
	const bool *success;			/* per result: its success report is ours to make */
	size_t nresults;
	uint64_t now;
	bool warn;				/* pending recipients get a delay warning */
};

/*
 * Make the report of src into rp (zeroed by the caller), if any recipient
 * is to be told. Returns the delivery to put into the entry's update, or
 * NULL when there is nothing to send (or nobody to send it to, or the
 * original cannot be read: logged as event=dsn_lost). Pointers into rp and
 * src->q stay in use until the update's commit answered.
 */
struct store_delivery *report_make(struct report *rp, struct store *st, const struct config *cfg,
    const struct report_src *src);

/* The commit carrying rp answered (bounce_failed: its delivery's error, 0 = none): log it. */
void report_committed(const struct report *rp, const struct store_qentry *q, int bounce_failed);

void report_free(struct report *rp);

#endif
