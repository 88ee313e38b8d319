/*
 * worker.h: the I/O threads. Each worker runs its own epoll loop; a
 * connection belongs to one worker for its whole life, so session data
 * needs no locks.
 *
 * Threads: worker_post() may be called from any thread (it is how storage,
 * auth and other blocking work hand results back). Everything else here is
 * for the owning worker's thread only, except worker_pool_* which are for
 * the main thread.
 */
#ifndef POSTIE_WORKER_H
#define POSTIE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;

/* Something registered with a worker's epoll. */
struct ev_handler {
	void (*fn)(struct ev_handler *h, uint32_t events);
};

/* A one-shot timer on the owning worker's heap. Zeroed memory is unarmed. */
struct timer {
	uint64_t when_ms;	/* monotonic deadline */
	size_t heap_idx;	/* 0 = not armed; else index + 1 */
	void (*fn)(struct timer *t);
};

/* Start n workers serving the given listening sockets. Main thread. 0 or ERR_IO. */
struct listener;
struct server;
int worker_pool_start(const struct server *srv, unsigned n, struct listener *listeners, size_t nlisteners);

/* The server whose connections w serves. Any thread. */
const struct server *worker_server(const struct worker *w);

/*
 * Stop accepting and end every session (the protocol's shutdown reply),
 * waiting at most grace_ms for sessions that are finishing work (a message
 * being committed), then join the threads. Main thread.
 */
void worker_pool_stop(unsigned grace_ms);

/* Worker i of the pool (i < the number started), for tests and start-up. Any thread. */
struct worker *worker_by_index(unsigned i);

/* The worker a new connection should go to is the one that accepted it. */
struct worker *worker_self(void);	/* NULL outside worker threads */

/* Run fn(arg) on worker w's thread, soon. Any thread. Never fails. */
void worker_post(struct worker *w, void (*fn)(void *arg), void *arg);

/* epoll registration of fd with handler h (owning thread). 0 or ERR_IO. */
int worker_watch(struct worker *w, int fd, uint32_t events, struct ev_handler *h);
int worker_rewatch(struct worker *w, int fd, uint32_t events, struct ev_handler *h);
void worker_unwatch(struct worker *w, int fd);

/* Arm (or re-arm) t to fire after delay_ms; cancel. Owning thread. */
void worker_timer_set(struct worker *w, struct timer *t, uint64_t delay_ms);
void worker_timer_cancel(struct worker *w, struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->heap_idx != 0; }

/* Connection bookkeeping used by conn.c (owning thread). */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);
bool worker_is_stopping(const struct worker *w);

#endif
