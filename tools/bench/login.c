/*
 * bench-login: POP3 logins per second (USER/PASS over plaintext loopback,
 * which needs auth.allow_plaintext_loopback), with N concurrent clients,
 * for SECONDS. With --bad N, another N clients fail logins all the while,
 * and the figure is the good clients' latency. Prints JSON.
 *
 *   bench-login --port 2110 [-c 16] [--bad 0] [--seconds 5]
 *               [--user user --password password]
 * Client i logs in as USER<i> (one mailbox each: a mailbox takes one
 * session at a time), all with the same password.
 */
#include "config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "core/compat.h"

#define MAX_THREADS 512
#define MAX_SAMPLES 1000000

static const char *user = "user", *password = "password";
static int port, seconds = 5;
static volatile int stop;
static double *samples;
static size_t nsamples;
static unsigned long failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* One login; returns its latency, or a negative number when it failed. */
static double
login(bool good, int index)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char cmd[600], buf[512];
	double t0 = bench_now(), t;
	int fd = socket(AF_INET, SOCK_STREAM, 0), len, ok;
	struct bench_reader in;

	bench_reader_init(&in, bench_recv, &fd, buf, sizeof(buf));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || bench_pop3_status(&in) != 1) {
		close(fd);
		return -1;
	}
	len = snprintf(cmd, sizeof(cmd), "USER %s%d\r\nPASS %s\r\n", user, index, good ? password : "wrong-password");
	if (send(fd, cmd, (size_t)len, MSG_NOSIGNAL) != len || bench_pop3_status(&in) != 1) {
		close(fd);
		return -1;
	}
	ok = bench_pop3_status(&in);
	t = bench_now() - t0;
	if (send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL) == 6)
		bench_pop3_status(&in);
	close(fd);
	return ok == (good ? 1 : 0) ? t : -1;
}

static void *
good_client(void *arg)
{
	int index = (int)(intptr_t)arg;

	while (!stop) {
		double t = login(true, index);

		pthread_mutex_lock(&lock);
		if (t < 0)
			failures++;
		else if (nsamples < MAX_SAMPLES)
			samples[nsamples++] = t;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void *
bad_client(void *arg)
{
	int index = (int)(intptr_t)arg;

	while (!stop)
		login(false, index);
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' }, { "bad", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 't' }, { "user", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'w' }, { NULL, 0, NULL, 0 }
	};
	pthread_t t[MAX_THREADS];
	int good = 16, bad = 0, i, opt;
	double t0, elapsed;

	while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': good = (int)strtol(optarg, NULL, 10); break;
		case 'p': port = (int)strtol(optarg, NULL, 10); break;
		case 'b': bad = (int)strtol(optarg, NULL, 10); break;
		case 't': seconds = (int)strtol(optarg, NULL, 10); break;
		case 'u': user = optarg; break;
		case 'w': password = optarg; break;
		default: return 2;
		}
	}
	if (!port || good < 1 || bad < 0 || good + bad > MAX_THREADS || seconds < 1) {
		fprintf(stderr, "usage: bench-login --port P [-c N] [--bad N] [--seconds S]\n");
		return 2;
	}
	samples = malloc(MAX_SAMPLES * sizeof(double));
	t0 = bench_now();
	for (i = 0; i < bad; i++)
		pthread_create(&t[good + i], NULL, bad_client, (void *)(intptr_t)(1000 + i));
	for (i = 0; i < good; i++)
		pthread_create(&t[i], NULL, good_client, (void *)(intptr_t)i);
	while (bench_now() - t0 < seconds)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	stop = 1;
	for (i = 0; i < good + bad; i++)
		pthread_join(t[i], NULL);
	elapsed = bench_now() - t0;
	bench_sort(samples, nsamples);
	printf("{\"bench\":\"login\",\"good_clients\":%d,\"failing_clients\":%d,\"logins\":%zu,\"per_s\":%.0f,"
	    "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"failures\":%lu}\n", good, bad, nsamples,
	    nsamples / elapsed, bench_pct(samples, nsamples, 50) * 1000,
	    bench_pct(samples, nsamples, 99) * 1000, bench_pct(samples, nsamples, 100) * 1000,
	    failures);
	free(samples);
	return 0;
}
