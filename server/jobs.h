/*
 * jobs.h: blocking work off the I/O threads. A worker hands a job to a
 * small pool of threads (work runs there, where it may block: a disk sync,
 * a DNS lookup, a PAM round trip) and gets done() back on its own thread
 * through worker_post(), so session code never locks and never blocks.
 *
 * jobs_start/jobs_stop: main thread. jobs_submit: a worker thread.
 */
#ifndef POSTIE_JOBS_H
#define POSTIE_JOBS_H

/* Jobs waiting at most; past it jobs_submit() refuses (ERR_LIMIT): fail closed, never queue without bound. */
#define JOBS_QUEUE_MAX 65536

/* Start n pool threads. 0 or ERR_IO. */
int jobs_start(unsigned n);
/* Finish every job already queued (their done() is posted), then join. */
void jobs_stop(void);

/*
 * Run work(arg) on a pool thread, then done(arg) on the calling worker's
 * thread. Returns 0 or ERR_LIMIT (queue full: nothing will be called; the
 * caller answers with a temporary error). The caller keeps whatever arg
 * points to alive until done() (for a connection: conn_ref()).
 */
int jobs_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg);

#endif
