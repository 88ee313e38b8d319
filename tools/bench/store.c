/*
 * bench-store: the store's figures, as JSON lines. Synced commits of one
 * message each (the disk's own rate), deliveries through the group commit
 * with 1, 8 and 32 writer threads (4 KiB and 100 KiB), the ratio to the
 * single-commit rate, and streaming read MB/s of 1 MiB bodies.
 *
 *   bench-store [DIR]     (default: a fresh directory under /tmp)
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "storage/store.h"
#include "core/compat.h"

#define SECONDS_PER_RUN 3	/* each figure is measured for this long */

static struct store *st;
static unsigned char *payload;
static size_t payload_len;
static volatile int stop;
static const char *const bench_login[1] = { "bench" };

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
deliver_one(uint64_t *body)
{
	struct store_req r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.mem = payload;
	r.u.deliver.mem_len = payload_len;
	r.u.deliver.fd = -1;
	r.u.deliver.logins = bench_login;
	r.u.deliver.nlogins = 1;
	r.u.deliver.now = (uint64_t)time(NULL);
	rc = store_submit_wait(st, &r);
	if (body)
		*body = r.u.deliver.body_id_out;
	return rc;
}

static void *
writer(void *p)
{
	unsigned long *count = p;

	while (!stop)
		if (deliver_one(NULL) == 0)
			(*count)++;
	return NULL;
}

/* Deliveries per second with n concurrent writers. */
static double
run(int n)
{
	pthread_t t[64];
	unsigned long counts[64] = { 0 }, total = 0;
	struct store_stats s0, s1;
	double t0, secs;
	int i;

	store_stats(st, &s0);
	stop = 0;
	t0 = now();
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, writer, &counts[i]);
	while (now() - t0 < SECONDS_PER_RUN)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	stop = 1;
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	secs = now() - t0;
	store_stats(st, &s1);
	printf("{\"bench\":\"store_deliver\",\"size\":%zu,\"writers\":%d,\"deliveries\":%lu,"
	    "\"per_s\":%.0f,\"commits\":%llu}\n", payload_len, n, total, total / secs,
	    (unsigned long long)(s1.commits - s0.commits));
	return total / secs;
}

int
main(int argc, char **argv)
{
	char dir[128];
	struct store_opts o = { dir, 1ull << 30, 0, false };
	static const int writers[] = { 1, 8, 32 };
	static const size_t sizes[] = { 4096, 100 * 1024 };
	double single, t0, secs;
	uint64_t bodies[50];
	unsigned char *buf;
	size_t i, s, bytes = 0;

	log_open("bench-store", true, LOG_LEVEL_WARN);
	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	else if (snprintf(dir, sizeof(dir), "/tmp/postie-bench-store-XXXXXX") && !mkdtemp(dir))
		return 1;
	if (store_open(&o, &st) || store_user_add(st, "bench", 0)) {
		fprintf(stderr, "bench-store: cannot open a fresh store at %s\n", dir);
		return 1;
	}
	payload = malloc(1 << 20);
	memset(payload, 'x', 1 << 20);

	/* the disk's own rate: one synced commit per message, nothing to batch */
	payload_len = 4096;
	single = run(1);
	printf("{\"bench\":\"store_single_commit\",\"per_s\":%.0f}\n", single);
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		payload_len = sizes[s];
		for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
			double rate = run(writers[i]);
			printf("{\"bench\":\"store_group_commit_ratio\",\"size\":%zu,\"writers\":%d,"
			    "\"ratio_to_single\":%.1f}\n", payload_len, writers[i], rate / single);
		}
	}

	/* streaming reads of 1 MiB bodies in 64 KiB pieces, warm cache */
	payload_len = 1 << 20;
	for (i = 0; i < 50; i++)
		deliver_one(&bodies[i]);
	buf = malloc(STORE_CHUNK_MAX);
	t0 = now();
	do {
		for (i = 0; i < 50; i++) {
			uint64_t off = 0;
			size_t got;

			while (store_body_read(st, bodies[i], off, buf, STORE_CHUNK_MAX, &got) == 0 && got) {
				off += got;
				bytes += got;
			}
		}
	} while ((secs = now() - t0) < SECONDS_PER_RUN);
	printf("{\"bench\":\"store_read_stream\",\"body\":1048576,\"mb_per_s\":%.0f}\n", bytes / secs / 1e6);
	free(buf);
	free(payload);
	store_close(st);
	return 0;
}
