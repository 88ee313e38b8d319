/*
 * bench-store: the store's figures, as JSON lines.
 *
 *   disk_append_sync   the disk itself: 4 KiB appends, each followed by
 *                      fdatasync, to a file beside the store
 *   store_single_commit  deliveries with one writer: one synced commit per
 *                      message, nothing to batch (the baseline)
 *   store_deliver      deliveries through the group commit with 8 and 32
 *                      writer threads, 4 KiB and 100 KiB messages
 *   store_read_stream  streaming read MB/s of 1 MiB bodies, warm cache
 *
 * The disk's speed drifts on a shared machine, so the baseline is measured
 * in rounds interleaved with the concurrent runs, and each ratio is the
 * median of the per-round ratios: both sides of a ratio saw the same disk.
 *
 *   bench-store [DIR]     (default: a fresh directory under /tmp)
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "storage/store.h"
#include "common.h"
#include "core/compat.h"

#define ROUNDS 5		/* interleaved rounds of baseline and concurrent runs */
#define SECONDS_PER_ROUND 1.0	/* each run in a round lasts this long */

static struct store *st;
static unsigned char *payload;
static size_t payload_len;
static volatile int stop;
static const char *const bench_login[1] = { "bench" };

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

/* Deliveries per second with n concurrent writers for secs seconds. */
static double
run(int n, double secs, unsigned long *commits, unsigned long *delivered)
{
	pthread_t t[64];
	unsigned long counts[64] = { 0 }, total = 0;
	struct store_stats s0, s1;
	double t0;
	int i;

	store_stats(st, &s0);
	stop = 0;
	t0 = bench_now();
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, writer, &counts[i]);
	while (bench_now() - t0 < secs)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	stop = 1;
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	secs = bench_now() - t0;
	store_stats(st, &s1);
	*commits += s1.commits - s0.commits;
	*delivered += total;
	return total / secs;
}

/* The disk's own rate: 4 KiB appends, each made durable before the next. */
static double
disk_append_sync(const char *dir)
{
	char path[160];
	unsigned long n = 0;
	double t0;
	int fd;

	snprintf(path, sizeof(path), "%s/append-test", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600)) < 0)
		return 0;
	t0 = bench_now();
	while (bench_now() - t0 < ROUNDS * SECONDS_PER_ROUND && write(fd, payload, 4096) == 4096 &&
	    fdatasync(fd) == 0)
		n++;
	t0 = bench_now() - t0;
	close(fd);
	unlink(path);
	return n / t0;
}

int
main(int argc, char **argv)
{
	char dir[128];
	struct store_opts o = { dir, 1ull << 30, 0, false };
	static const int writers[] = { 8, 32 };
	static const size_t sizes[] = { 4096, 100 * 1024 };
	/* a baseline run per round of every (size, writers) figure */
	double single[sizeof(sizes) / sizeof(sizes[0]) * sizeof(writers) / sizeof(writers[0]) * ROUNDS];
	double ratio[ROUNDS], disk, t0, secs;
	uint64_t bodies[50];
	unsigned char *buf;
	size_t i, s, bytes = 0;
	int r, nsingle = 0;

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

	disk = disk_append_sync(dir);
	printf("{\"bench\":\"disk_append_sync\",\"size\":4096,\"per_s\":%.0f}\n", disk);
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (i = 0; i < sizeof(writers) / sizeof(writers[0]); i++) {
			unsigned long commits = 0, delivered = 0, c1 = 0, d1 = 0;
			double rate = 0, base[ROUNDS];

			for (r = 0; r < ROUNDS; r++) {
				double one;

				payload_len = 4096;
				base[r] = single[nsingle++] = run(1, SECONDS_PER_ROUND, &c1, &d1);
				payload_len = sizes[s];
				one = run(writers[i], SECONDS_PER_ROUND, &commits, &delivered);
				ratio[r] = one / base[r];
				rate += one / ROUNDS;
			}
			printf("{\"bench\":\"store_deliver\",\"size\":%zu,\"writers\":%d,\"per_s\":%.0f,"
			    "\"mb_per_s\":%.1f,\"per_commit\":%.1f,\"single_commit_per_s\":%.0f,"
			    "\"ratio_to_single\":%.1f,\"ratio_to_disk_append\":%.1f}\n",
			    sizes[s], writers[i], rate, rate * sizes[s] / 1e6,
			    commits ? (double)delivered / commits : 0.0, bench_median(base, ROUNDS),
			    bench_median(ratio, ROUNDS), disk > 0 ? rate / disk : 0.0);
		}
	}
	printf("{\"bench\":\"store_single_commit\",\"size\":4096,\"per_s\":%.0f,\"rounds\":%d}\n",
	    bench_median(single, (size_t)nsingle), nsingle);

	/* streaming reads of 1 MiB bodies in 64 KiB pieces, warm cache */
	payload_len = 1 << 20;
	for (i = 0; i < 50; i++)
		deliver_one(&bodies[i]);
	buf = malloc(STORE_CHUNK_MAX);
	t0 = bench_now();
	do {
		for (i = 0; i < 50; i++) {
			uint64_t off = 0;
			size_t got;

			while (store_body_read(st, bodies[i], off, buf, STORE_CHUNK_MAX, &got) == 0 && got) {
				off += got;
				bytes += got;
			}
		}
	} while ((secs = bench_now() - t0) < ROUNDS * SECONDS_PER_ROUND / 2);
	printf("{\"bench\":\"store_read_stream\",\"body\":1048576,\"mb_per_s\":%.0f}\n", bytes / secs / 1e6);
	free(buf);
	free(payload);
	store_close(st);
	return 0;
}
