/*
 * postie-seed: test fixture. Delivers a file as a message to a login in a
 * store (while postied runs), so POP3 tests do not depend on SMTP.
 *   postie-seed STORE_PATH LOGIN FILE [COUNT]
 * COUNT copies go to the writer a window at a time, so they share commits:
 * a test can fill a mailbox with tens of thousands of messages in seconds.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/store.h"
#include "core/compat.h"

/* Deliveries in flight at once: one group commit takes them all (STORE_BATCH_MAX is 512). */
#define SEED_WINDOW 256

struct window {
	pthread_mutex_t m;
	pthread_cond_t c;
	size_t pending;
	int rc;		/* the first failure */
};

/* On the store's writer thread, after the commit that held the delivery. */
static void
seeded(void *arg, int rc)
{
	struct window *w = arg;

	pthread_mutex_lock(&w->m);
	if (rc && !w->rc)
		w->rc = rc;
	w->pending--;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

int
main(int argc, char **argv)
{
	static struct store_req reqs[SEED_WINDOW];
	struct window w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct store_opts o = { NULL, 0, 0, false };
	const char *logins[1];
	struct store *st;
	struct stat sb;
	long count = argc > 4 ? strtol(argv[4], NULL, 10) : 1, i, j;
	int fd, rc;

	if (argc < 4 || count < 1) {
		fprintf(stderr, "usage: postie-seed STORE_PATH LOGIN FILE [COUNT]\n");
		return 2;
	}
	log_open("postie-seed", true, LOG_LEVEL_WARN);
	o.path = argv[1];
	logins[0] = argv[2];
	fd = open(argv[3], O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || store_open(&o, &st)) {
		fprintf(stderr, "postie-seed: cannot open %s or %s\n", argv[3], argv[1]);
		return 1;
	}
	for (i = 0; i < count && !w.rc; i += SEED_WINDOW) {
		for (j = 0; j < SEED_WINDOW && i + j < count; j++) {
			struct store_req *r = &reqs[j];

			memset(r, 0, sizeof(*r));
			r->op = STORE_OP_DELIVER;
			r->u.deliver.fd = fd;	/* read with pread: copies may share it */
			r->u.deliver.fd_len = (uint64_t)sb.st_size;
			r->u.deliver.logins = logins;
			r->u.deliver.nlogins = 1;
			r->u.deliver.now = (uint64_t)time(NULL);
			pthread_mutex_lock(&w.m);
			w.pending++;
			pthread_mutex_unlock(&w.m);
			if ((rc = store_submit(st, r, seeded, &w)) != 0)
				seeded(&w, rc);
		}
		/* reqs[] is reused: every one of this window must be done first */
		pthread_mutex_lock(&w.m);
		while (w.pending)
			pthread_cond_wait(&w.c, &w.m);
		pthread_mutex_unlock(&w.m);
	}
	if (w.rc)
		fprintf(stderr, "postie-seed: %s\n", err_str(w.rc));
	store_close(st);
	close(fd);
	return w.rc ? 1 : 0;
}
