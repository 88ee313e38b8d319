#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "jobs.h"
#include "worker.h"
#include "core/compat.h"

struct job {
	struct job *next;
	void (*work)(void *arg);
	void (*done)(void *arg);
	void *arg;
	struct worker *owner;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static struct job *head, *tail;
static unsigned queued;
static bool stopping;
static pthread_t *threads;
static unsigned nthreads;

static void *
pool_main(void *unused)
{
	(void)unused;
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&lock);
		while (!head && !stopping)
			pthread_cond_wait(&ready, &lock);
		j = head;
		if (!j) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		head = j->next;
		if (!head)
			tail = NULL;
		queued--;
		pthread_mutex_unlock(&lock);

		j->work(j->arg);
		worker_post(j->owner, j->done, j->arg);
		free(j);
	}
}

int
jobs_start(unsigned n)
{
	sigset_t all, old;
	unsigned i;

	ASSERT(!threads && n > 0);
	threads = xcalloc(n, sizeof(*threads));
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < n; i++) {
		int rc = pthread_create(&threads[i], NULL, pool_main, NULL);
		if (rc) {
			log_msg(LOG_LEVEL_CRIT, "event=thread_create what=jobs error=\"%s\"", strerror(rc));
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return ERR_IO;
		}
		nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

void
jobs_stop(void)
{
	unsigned i;

	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&ready);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	threads = NULL;
	nthreads = 0;
	stopping = false;
}

int
jobs_submit(void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	struct job *j;

	ASSERT(worker_self() != NULL);
	pthread_mutex_lock(&lock);
	if (queued >= JOBS_QUEUE_MAX || stopping) {
		pthread_mutex_unlock(&lock);
		return ERR_LIMIT;
	}
	j = xmalloc(sizeof(*j));
	j->next = NULL;
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->owner = worker_self();
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	queued++;
	pthread_cond_signal(&ready);
	pthread_mutex_unlock(&lock);
	return 0;
}
