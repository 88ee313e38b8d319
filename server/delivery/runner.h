/*
 * delivery/runner.h: the queue runner. One thread takes due entries from
 * the queue's time index (never scanning the queue), leases them, and
 * hands their recipients, grouped by destination, to a pool of delivery
 * threads (relay.max_connections). A delivery thread resolves a destination
 * (relay.routes, relay.smarthost, else MX), opens one connection and
 * delivers every waiting message for that destination over it
 * (destination.c). Results go back to the store in the writer's group
 * commit, with any DSN (report.c) in the same transaction.
 *
 * Threads: runner_start/runner_stop on the main thread; runner_kick from
 * any thread. Delivery threads block in poll() (netio, dns), never an I/O
 * worker.
 */
#ifndef POSTIE_DELIVERY_RUNNER_H
#define POSTIE_DELIVERY_RUNNER_H

struct store;

/* Entries in flight at once (memory bound); more wait in the store. */
#define RUNNER_INFLIGHT_MAX 10000
/* Entries taken from the time index in one look. */
#define RUNNER_BATCH 512
/* A lease outlasts any attempt; a crashed runner's leases end at the next start. */
#define RUNNER_LEASE_SECONDS 3600
/*
 * Parcels waiting for one destination at most; past it new mail for that
 * destination goes back to the store (no attempt counted), so one slow
 * destination cannot take every in-flight slot. It comes back at the pace
 * the destination has been taking parcels, after those waiting, and at
 * most RUNNER_DEFER_SECONDS later.
 */
#define RUNNER_DEST_WAITING_MAX 1000
#define RUNNER_DEFER_SECONDS 60
/* Messages sent over one connection before it is renewed. */
#define RUNNER_MSGS_PER_CONNECTION 100

/* Release leases left by a crash and start the threads. 0, ERR_IO, ERR_TLS, ERR_TEMP. */
int runner_start(struct store *st);
/* Stop: deliveries in progress end at their next step (temporary failure), results are committed. */
void runner_stop(void);
/* Something was queued: look at the queue now rather than at the next tick. */
void runner_kick(void);

struct config;
struct tls_creds;

/*
 * SIGHUP, in two steps so a bad file keeps the old configuration whole:
 * runner_tls_load() reads the trust the delivery threads need from cfg
 * (relay.smarthost_ca; *out NULL when unset) and returns 0 or ERR_TLS
 * (logged); runner_tls_set() makes it current (it takes the reference;
 * sessions already open keep theirs). Main thread.
 */
int runner_tls_load(const struct config *cfg, struct tls_creds **out);
void runner_tls_set(struct tls_creds *smarthost_creds);

#endif
