/*
 * delivery/destination.h: where parcels wait and who delivers them. A
 * destination (a route's host:port, the smarthost, or a domain's MX) holds
 * a FIFO of parcels: an entry's pending recipients for it. The delivery
 * threads (relay.max_connections) pick a destination with a backlog,
 * resolve it, connect, and send parcel after parcel over one connection
 * (at most RUNNER_MSGS_PER_CONNECTION); each parcel's results go back to
 * the runner through dest_env.done. A destination that cannot be reached
 * fails every parcel waiting for it with the same reason.
 *
 * Threads and locks: the table and every FIFO are guarded by the runner's
 * one lock (dest_env.lock); functions say "lock held" where the caller
 * holds it. Delivery threads take it only to move parcels, never across
 * I/O.
 */
#ifndef POSTIE_DELIVERY_DESTINATION_H
#define POSTIE_DELIVERY_DESTINATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/delivery/client.h"

struct config;
struct store;
struct store_qentry;
struct tls_creds;
struct item;	/* the runner's entry in flight; opaque here */

/* An entry's pending recipients for one destination. */
struct parcel {
	struct item *item;		/* what it belongs to (the runner's) */
	const struct store_qentry *q;	/* the entry as read; alive while the parcel is */
	uint32_t *idx;			/* recipient indexes into q->rcpts */
	size_t n;
	struct parcel *next;		/* in its destination's FIFO */
};

struct dest;

/* What the runner lends the delivery side. */
struct dest_env {
	struct store *st;
	pthread_mutex_t *lock;	/* the runner's one lock */
	/* a parcel's results (one per recipient, in idx order); called without the lock; takes p */
	void (*done)(struct parcel *p, const struct smtpc_rcpt *res);
};

/*
 * Before the threads: resolver, the system trust store, relay.smarthost_ca
 * and the table. 0, ERR_IO, ERR_TLS, ERR_TEMP (logged by the caller).
 */
int dest_init(const struct dest_env *env, const struct config *cfg);
/* Start n delivery threads: 0, or ERR_IO with those started still running (dest_join ends them). */
int dest_threads_start(unsigned n);
/* Lock held: delivery threads stop at their next step (a session in progress ends TEMP). */
void dest_stopping(void);
/* Wait for the delivery threads to end (lock not held). */
void dest_join(void);
/* Lock held, threads ended: every parcel still waiting (linked by next); the destinations are freed. */
struct parcel *dest_drain(void);
/* After dest_drain: trust, resolver and table go. */
void dest_fini(void);

/* relay.smarthost_ca from cfg (*out NULL when unset): 0 or ERR_TLS, logged. */
int dest_tls_load(const struct config *cfg, struct tls_creds **out);
/* Lock held: new connections to the smarthost verify with creds (the reference is taken over); the old trust is returned. */
struct tls_creds *dest_tls_swap(struct tls_creds *smarthost_creds);

/*
 * Lock held: the destination mail for address goes to, made when missing.
 * It lives while parcels wait for it or a thread delivers to it; one found
 * or made here and given no parcel goes back with dest_release. NULL when
 * it is new and the table has no slot for it (destinations with parcels
 * are never evicted): the caller keeps the mail in the store for now.
 */
struct dest *dest_for(const struct config *cfg, const char *address);
/* Lock held: d has RUNNER_DEST_WAITING_MAX parcels waiting; *defer_s_out: when an entry should come back. */
bool dest_is_full(struct dest *d, unsigned *defer_s_out);
/* Lock held: p waits at the end of d's FIFO (dest_wake starts someone on it). */
void dest_put(struct dest *d, struct parcel *p);
/* Lock held: forget d if nothing waits for it and nobody delivers to it. */
void dest_release(struct dest *d);
/* Lock held: delivery threads look for work. */
void dest_wake(void);

#endif
