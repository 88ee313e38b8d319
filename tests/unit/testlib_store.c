/* testlib_store.c: a store in a temporary directory, for tests and fuzz targets (testlib.h). */
#include "config.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "core/err.h"
#include "storage/store.h"
#include "core/compat.h"

int
testlib_store_open(struct testlib_store *ts, const char *name, uint64_t map, uint64_t map_max,
    const char *const *logins)
{
	struct store_opts o = { ts->dir, map, map_max, false };
	int rc;

	ts->st = NULL;
	if (!testlib_tmpdir(name, ts->dir, sizeof(ts->dir))) {
		ts->dir[0] = '\0';
		return ERR_IO;
	}
	rc = store_open(&o, &ts->st);
	for (; rc == 0 && logins && *logins; logins++)
		rc = store_user_add(ts->st, *logins, 0);
	if (rc)
		testlib_store_close(ts);
	return rc;
}

void
testlib_store_close(struct testlib_store *ts)
{
	if (ts->st)
		store_close(ts->st);
	ts->st = NULL;
	if (ts->dir[0])
		testlib_rmtree(ts->dir);
	ts->dir[0] = '\0';
}

int
testlib_deliver(struct store *st, const char *login, const char *text)
{
	const char *logins[] = { login };
	struct store_req r;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.mem = (const unsigned char *)text;
	r.u.deliver.mem_len = strlen(text);
	r.u.deliver.fd = -1;
	r.u.deliver.logins = logins;
	r.u.deliver.nlogins = 1;
	return store_submit_wait(st, &r);
}

/* Deliveries in flight (testlib_deliver_copies); answered on the store's writer thread. */
struct copies_window {
	pthread_mutex_t m;
	pthread_cond_t c;
	size_t pending;
	int rc;		/* the first failure */
};

static void
copy_done(void *arg, int rc)
{
	struct copies_window *w = arg;

	pthread_mutex_lock(&w->m);
	if (rc && !w->rc)
		w->rc = rc;
	w->pending--;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

int
testlib_deliver_copies(struct store *st, const char *login, const char *text, int fd, uint64_t fd_len,
    size_t count)
{
	static struct store_req reqs[TESTLIB_COPIES_WINDOW];
	struct copies_window w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	const char *logins[1] = { login };	/* read by the writer: every request ends before we return */
	size_t i, j;
	int rc;

	for (i = 0; i < count && !w.rc; i += j) {
		for (j = 0; j < TESTLIB_COPIES_WINDOW && i + j < count; j++) {
			struct store_req *r = &reqs[j];

			memset(r, 0, sizeof(*r));
			r->op = STORE_OP_DELIVER;
			if (fd < 0) {
				r->u.deliver.mem = (const unsigned char *)text;
				r->u.deliver.mem_len = strlen(text);
				r->u.deliver.fd = -1;
			} else {
				r->u.deliver.fd = fd;
				r->u.deliver.fd_len = fd_len;
			}
			r->u.deliver.logins = logins;
			r->u.deliver.nlogins = 1;
			r->u.deliver.now = (uint64_t)time(NULL);
			pthread_mutex_lock(&w.m);
			w.pending++;
			pthread_mutex_unlock(&w.m);
			if ((rc = store_submit(st, r, copy_done, &w)) != 0)
				copy_done(&w, rc);
		}
		/* reqs[] is reused: every one of this window must be done first */
		pthread_mutex_lock(&w.m);
		while (w.pending)
			pthread_cond_wait(&w.c, &w.m);
		pthread_mutex_unlock(&w.m);
	}
	return w.rc;
}
