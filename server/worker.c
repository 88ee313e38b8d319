#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "listener.h"
#include "worker.h"
#include "core/compat.h"

/* Events handled per epoll_wait: bounds the time before timers and posts run. */
#define WORKER_EVENTS_MAX 256

struct post {
	struct post *next;
	void (*fn)(void *arg);
	void *arg;
};

struct worker {
	pthread_t thread;
	unsigned index;
	int epfd;
	int wakefd;			/* eventfd: posts and stop requests */
	struct ev_handler wake_ev;

	pthread_mutex_t post_lock;	/* guards posts, never held while running them */
	struct post *posts, *posts_tail;

	struct timer **heap;		/* min-heap of armed timers by when_ms */
	size_t nheap, capheap;

	struct conn *conns;		/* live connections, for shutdown */
	size_t nconns;

	bool stopping;
	uint64_t stop_deadline;
	const struct server *srv;	/* given to each connection it accepts */
};

static struct worker *workers;
static unsigned nworkers;
static struct listener *pool_listeners;
static size_t pool_nlisteners;
static volatile int pool_stop;		/* set by the main thread, read by workers */
static unsigned pool_grace_ms;
static __thread struct worker *current_worker;

struct worker *
worker_by_index(unsigned i)
{
	ASSERT(i < nworkers);
	return &workers[i];
}

struct worker *
worker_self(void)
{
	return current_worker;
}

/* --- timers: a binary min-heap; heap_idx is index + 1 so 0 means unarmed --- */

static void
heap_swap(struct worker *w, size_t a, size_t b)
{
	struct timer *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->heap_idx = a + 1;
	w->heap[b]->heap_idx = b + 1;
}

static void
heap_up(struct worker *w, size_t i)
{
	while (i > 0 && w->heap[(i - 1) / 2]->when_ms > w->heap[i]->when_ms) {
		heap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct worker *w, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->nheap && w->heap[l]->when_ms < w->heap[m]->when_ms)
			m = l;
		if (r < w->nheap && w->heap[r]->when_ms < w->heap[m]->when_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(w, i, m);
		i = m;
	}
}

void
worker_timer_cancel(struct worker *w, struct timer *t)
{
	size_t i;

	if (!t->heap_idx)
		return;
	i = t->heap_idx - 1;
	ASSERT(i < w->nheap && w->heap[i] == t);
	t->heap_idx = 0;
	w->nheap--;
	if (i == w->nheap)
		return;
	w->heap[i] = w->heap[w->nheap];
	w->heap[i]->heap_idx = i + 1;
	heap_down(w, i);
	heap_up(w, i);
}

void
worker_timer_set(struct worker *w, struct timer *t, uint64_t delay_ms)
{
	worker_timer_cancel(w, t);
	t->when_ms = clock_now_ms() + delay_ms;
	if (w->nheap == w->capheap) {
		w->capheap = w->capheap ? w->capheap * 2 : 256;
		w->heap = xrealloc(w->heap, w->capheap * sizeof(*w->heap));
	}
	w->heap[w->nheap] = t;
	t->heap_idx = ++w->nheap;
	heap_up(w, w->nheap - 1);
}

static void
run_timers(struct worker *w)
{
	uint64_t now = clock_now_ms();

	while (w->nheap && w->heap[0]->when_ms <= now) {
		struct timer *t = w->heap[0];

		worker_timer_cancel(w, t);
		t->fn(t);
	}
}

static int
next_timeout_ms(struct worker *w)
{
	uint64_t now, when;

	if (!w->nheap)
		return 1000;	/* wake up now and then to notice a stop request */
	now = clock_now_ms();
	when = w->heap[0]->when_ms;
	if (when <= now)
		return 0;
	return when - now > 1000 ? 1000 : (int)(when - now);
}

/* --- posts from other threads --- */

void
worker_post(struct worker *w, void (*fn)(void *arg), void *arg)
{
	struct post *p = xmalloc(sizeof(*p));
	uint64_t one = 1;

	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&w->post_lock);
	if (w->posts_tail)
		w->posts_tail->next = p;
	else
		w->posts = p;
	w->posts_tail = p;
	pthread_mutex_unlock(&w->post_lock);
	/* an eventfd write only fails when the counter would overflow: still awake */
	if (write(w->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg(LOG_LEVEL_ERR, "event=worker_wake error=\"%s\"", strerror(errno));
}

static void
run_posts(struct worker *w)
{
	struct post *p;

	pthread_mutex_lock(&w->post_lock);
	p = w->posts;
	w->posts = w->posts_tail = NULL;
	pthread_mutex_unlock(&w->post_lock);
	while (p) {
		struct post *next = p->next;

		p->fn(p->arg);
		free(p);
		p = next;
	}
}

static void
on_wake(struct ev_handler *h, uint32_t events)
{
	struct worker *w = (struct worker *)((char *)h - offsetof(struct worker, wake_ev));
	uint64_t n;

	(void)events;
	if (read(w->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_msg(LOG_LEVEL_ERR, "event=worker_wake error=\"%s\"", strerror(errno));
}

/* --- epoll --- */

int
worker_watch(struct worker *w, int fd, uint32_t events, struct ev_handler *h)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=epoll_add error=\"%s\"", strerror(errno));
		return ERR_IO;
	}
	return 0;
}

int
worker_rewatch(struct worker *w, int fd, uint32_t events, struct ev_handler *h)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=epoll_mod error=\"%s\"", strerror(errno));
		return ERR_IO;
	}
	return 0;
}

void
worker_unwatch(struct worker *w, int fd)
{
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* --- connections --- */

void
worker_conn_added(struct worker *w, struct conn *c)
{
	c->w_prev = NULL;
	c->w_next = w->conns;
	if (w->conns)
		w->conns->w_prev = c;
	w->conns = c;
	w->nconns++;
}

void
worker_conn_removed(struct worker *w, struct conn *c)
{
	if (c->w_prev)
		c->w_prev->w_next = c->w_next;
	else
		w->conns = c->w_next;
	if (c->w_next)
		c->w_next->w_prev = c->w_prev;
	c->w_prev = c->w_next = NULL;
	w->nconns--;
}

bool
worker_is_stopping(const struct worker *w)
{
	return w->stopping;
}

/* The stop request reached this worker: stop accepting, ask every session to end. */
static void
begin_stop(struct worker *w)
{
	struct conn *c, *next;
	size_t i;

	w->stopping = true;
	w->stop_deadline = clock_now_ms() + pool_grace_ms;
	for (i = 0; i < pool_nlisteners; i++)
		worker_unwatch(w, pool_listeners[i].fd);
	for (c = w->conns; c; c = next) {
		next = c->w_next;
		conn_shutdown(c);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[WORKER_EVENTS_MAX];

	current_worker = w;
	for (;;) {
		int i, n = epoll_wait(w->epfd, evs, WORKER_EVENTS_MAX, next_timeout_ms(w));

		if (n < 0 && errno != EINTR) {
			log_msg(LOG_LEVEL_CRIT, "event=epoll_wait error=\"%s\"", strerror(errno));
			abort();
		}
		for (i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;
			h->fn(h, evs[i].events);
		}
		run_posts(w);
		run_timers(w);
		if (!w->stopping && __atomic_load_n(&pool_stop, __ATOMIC_ACQUIRE))
			begin_stop(w);
		if (w->stopping) {
			if (!w->nconns)
				break;
			if (clock_now_ms() >= w->stop_deadline) {
				struct conn *c, *next;

				for (c = w->conns; c; c = next) {
					next = c->w_next;
					conn_close(c, "shutdown_deadline");
				}
			}
		}
	}
	/* late posts (e.g. a storage answer for a closed connection) still run */
	run_posts(w);
	return NULL;
}

const struct server *
worker_server(const struct worker *w)
{
	return w->srv;
}

int
worker_pool_start(const struct server *srv, unsigned n, struct listener *listeners, size_t nlisteners)
{
	sigset_t all, old;
	unsigned i;
	size_t j;

	ASSERT(n > 0 && !workers);
	workers = xcalloc(n, sizeof(*workers));
	pool_listeners = listeners;
	pool_nlisteners = nlisteners;
	for (i = 0; i < n; i++) {
		struct worker *w = &workers[i];

		w->index = i;
		w->srv = srv;
		pthread_mutex_init(&w->post_lock, NULL);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->epfd < 0 || w->wakefd < 0) {
			log_msg(LOG_LEVEL_CRIT, "event=worker_init error=\"%s\"", strerror(errno));
			return ERR_IO;
		}
		w->wake_ev.fn = on_wake;
		if (worker_watch(w, w->wakefd, EPOLLIN, &w->wake_ev))
			return ERR_IO;
		/* every worker waits on every listener; EPOLLEXCLUSIVE wakes one */
		for (j = 0; j < nlisteners; j++)
			if (worker_watch(w, listeners[j].fd, EPOLLIN | EPOLLEXCLUSIVE, &listeners[j].ev))
				return ERR_IO;
	}
	/* workers never take signals: the main thread handles them with signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < n; i++) {
		int rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (rc) {
			log_msg(LOG_LEVEL_CRIT, "event=thread_create error=\"%s\"", strerror(rc));
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return ERR_IO;
		}
		nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

void
worker_pool_stop(unsigned grace_ms)
{
	unsigned i;
	uint64_t one = 1;

	pool_grace_ms = grace_ms;
	__atomic_store_n(&pool_stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < nworkers; i++)
		if (write(workers[i].wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_msg(LOG_LEVEL_ERR, "event=worker_wake error=\"%s\"", strerror(errno));
	for (i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		pthread_join(w->thread, NULL);
		close(w->epfd);
		close(w->wakefd);
		free(w->heap);
		pthread_mutex_destroy(&w->post_lock);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
}
