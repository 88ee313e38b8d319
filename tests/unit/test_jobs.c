#include "config.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "server/jobs.h"
#include "server/worker.h"
#include "tap.h"

#define NJOBS 200

static pthread_t worker_thread;
static int ran_off_worker, done_on_worker, done_count;

static void
work(void *arg)
{
	(void)arg;
	if (!pthread_equal(pthread_self(), worker_thread))
		__atomic_add_fetch(&ran_off_worker, 1, __ATOMIC_RELAXED);
	usleep(100);	/* blocking is what the pool is for */
}

static void
done(void *arg)
{
	(void)arg;
	if (pthread_equal(pthread_self(), worker_thread) && worker_self() == worker_by_index(0))
		done_on_worker++;
	__atomic_add_fetch(&done_count, 1, __ATOMIC_RELEASE);
}

static void
submit_all(void *arg)
{
	int i;

	(void)arg;
	worker_thread = pthread_self();
	for (i = 0; i < NJOBS; i++)
		if (jobs_submit(work, done, NULL))
			break;
}

int
main(void)
{
	int waited;

	log_open("test", true, LOG_LEVEL_WARN);
	CHECK(worker_pool_start(2, NULL, 0) == 0);
	CHECK(jobs_start(3) == 0);
	worker_post(worker_by_index(0), submit_all, NULL);
	for (waited = 0; waited < 1000 && __atomic_load_n(&done_count, __ATOMIC_ACQUIRE) < NJOBS; waited++)
		usleep(10000);
	CHECK(done_count == NJOBS);
	CHECK(ran_off_worker == NJOBS);		/* work never on the I/O thread */
	CHECK(done_on_worker == NJOBS);		/* done always back on it */
	jobs_stop();
	worker_pool_stop(1000);
	return tap_done();
}
