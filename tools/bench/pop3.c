/*
 * bench-pop3: POP3 retrieval. N clients, client i logs in as USER<i>
 * (one mailbox each), takes the message list, and RETRs every message,
 * over and over for SECONDS; prints messages/s, MB/s, and the latency of
 * login + STAT + UIDL, as JSON. --tls uses implicit TLS (port 995 style),
 * otherwise plaintext USER/PASS on loopback (auth.allow_plaintext_loopback).
 * Fill the mailboxes first (tests/integration/postie-seed does).
 *
 *   bench-pop3 --port P [-c 1] [--tls] [--seconds 5] [--user user --password password]
 *              [--login-only]   (connect, login, STAT, UIDL, QUIT over and over:
 *                                the latency figure for a big mailbox)
 *              [--first N]      (client i logs in as USER<N+i>)
 * The client's own CPU time per wall second is printed beside the figures,
 * so a saturated load generator shows.
 */
#include "config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "server/tls.h"
#include "common.h"
#include "core/compat.h"

static const char *user = "user", *password = "password";
static int port, seconds = 5;
static bool use_tls, login_only;
static int first_user;
#define MAX_SAMPLES 1000000
static double *samples;
static size_t nsamples;
static struct tls_creds *creds;
static volatile int stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t total_msgs, total_bytes, failures;
static double login_sum, login_max;
static unsigned long logins;

struct pconn {
	int fd;
	struct tls_conn *tls;
	unsigned char buf[256 * 1024];
	struct bench_reader in;	/* read through pread_some into buf */
};

static void
wait_fd(int fd, int rc)
{
	struct pollfd p = { .fd = fd, .events = rc == TLS_WANT_WRITE ? POLLOUT : POLLIN };

	poll(&p, 1, 1000);
}

static ssize_t
pread_some(void *ctx, void *p, size_t cap)
{
	struct pconn *c = ctx;

	for (;;) {
		ssize_t n = c->tls ? tls_read(c->tls, p, cap) : recv(c->fd, p, cap, 0);

		if (c->tls && (n == TLS_WANT_READ || n == TLS_WANT_WRITE)) {
			wait_fd(c->fd, (int)n);
			continue;
		}
		return n;
	}
}

static bool
psend(struct pconn *c, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = c->tls ? tls_write(c->tls, s, n) : send(c->fd, s, n, MSG_NOSIGNAL);

		if (c->tls && (w == TLS_WANT_READ || w == TLS_WANT_WRITE)) {
			wait_fd(c->fd, (int)w);
			continue;
		}
		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

/*
 * Skip a multi-line body up to the "." line; returns the bytes before it
 * (dot-stuffed, as on the wire), -1 at EOF. It looks for LF with memchr and
 * only matches ".\r\n" at line starts, so a 1 MiB message costs the client
 * little more than the copy out of the socket.
 */
static int64_t
skip_body(struct pconn *c)
{
	static const char term[] = ".\r\n";
	int64_t consumed = 0;
	bool at_bol = true;	/* the status line's LF came just before */
	int m = 0;		/* bytes of term matched at a line start */

	for (;;) {
		unsigned char *p, *end;

		if (!bench_fill(&c->in))
			return -1;
		p = c->buf + c->in.off;
		end = c->buf + c->in.len;
		while (p < end) {
			unsigned char *q;

			if (at_bol) {
				if (*p == (unsigned char)term[m]) {
					p++;
					if (++m == 3) {
						consumed += p - (c->buf + c->in.off);
						c->in.off = (size_t)(p - c->buf);
						return consumed - 3;
					}
					continue;
				}
				at_bol = false;
				m = 0;
			}
			q = memchr(p, '\n', (size_t)(end - p));
			if (!q) {
				p = end;
				break;
			}
			p = q + 1;
			at_bol = true;
		}
		consumed += p - (c->buf + c->in.off);
		c->in.off = c->in.len;
	}
}

/* A +OK status line, then the body up to "." when multi. Returns bytes of the body. */
static int64_t
response(struct pconn *c, bool multi)
{
	static __thread char l[2048];
	size_t n;

	if (!bench_line(&c->in, l, sizeof(l), &n) || l[0] != '+')
		return -1;
	return multi ? skip_body(c) : 0;
}

static bool
connect_login(struct pconn *c, int index, double *latency, long *count)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char cmd[512];
	double t0 = bench_now();
	static __thread char l[256];
	size_t n;

	memset(c, 0, sizeof(*c));
	bench_reader_init(&c->in, pread_some, c, c->buf, sizeof(c->buf));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return false;
	if (use_tls) {
		int rc;

		if (tls_conn_new_client(creds, c->fd, "localhost", &c->tls))
			return false;
		while ((rc = tls_handshake(c->tls)) == TLS_WANT_READ || rc == TLS_WANT_WRITE)
			wait_fd(c->fd, rc);
		if (rc)
			return false;
	}
	/* login + STAT + UIDL, pipelined as a client that knows PIPELINING sends them */
	snprintf(cmd, sizeof(cmd), "USER %s%d\r\nPASS %s\r\nSTAT\r\nUIDL\r\n", user, first_user + index, password);
	if (response(c, false) < 0 || !psend(c, cmd) || response(c, false) < 0 || response(c, false) < 0)
		return false;
	if (!bench_line(&c->in, l, sizeof(l), &n) || l[0] != '+')
		return false;
	*count = strtol(l + 4, NULL, 10);
	if (response(c, true) < 0)
		return false;
	*latency = bench_now() - t0;
	return true;
}

static void *
client(void *arg)
{
	int index = (int)(intptr_t)arg;

	while (!stop) {
		struct pconn *c = malloc(sizeof(*c));
		double lat;
		long count, i;
		uint64_t msgs = 0, bytes = 0;

		int tries = 0;
		bool ok;

		/* the previous session's lock goes a moment after its QUIT: [IN-USE] is retried */
		while (!(ok = connect_login(c, index, &lat, &count)) && ++tries < 5 && !stop) {
			close(c->fd);
			tls_conn_free(c->tls);
			usleep(2000);
		}
		if (!ok || (count <= 0 && !login_only)) {
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
			close(c->fd);
			tls_conn_free(c->tls);
			free(c);
			break;
		}
		for (i = 1; i <= count && !stop && !login_only; i++) {
			char cmd[32];
			int64_t b;

			snprintf(cmd, sizeof(cmd), "RETR %ld\r\n", i);
			if (!psend(c, cmd) || (b = response(c, true)) < 0) {
				__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
				break;
			}
			msgs++;
			bytes += (uint64_t)b;
		}
		psend(c, "QUIT\r\n");
		response(c, false);
		close(c->fd);
		tls_conn_free(c->tls);
		free(c);
		pthread_mutex_lock(&lock);
		total_msgs += msgs;
		total_bytes += bytes;
		login_sum += lat;
		if (nsamples < MAX_SAMPLES)
			samples[nsamples++] = lat;
		if (lat > login_max)
			login_max = lat;
		logins++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' }, { "tls", no_argument, NULL, 'T' },
		{ "seconds", required_argument, NULL, 't' }, { "user", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'w' }, { "login-only", no_argument, NULL, 'L' },
		{ "first", required_argument, NULL, 'F' }, { NULL, 0, NULL, 0 }
	};
	pthread_t t[256];
	int n = 1, i, opt;
	double t0, elapsed, cpu;
	struct rusage ru;

	while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': n = (int)strtol(optarg, NULL, 10); break;
		case 'p': port = (int)strtol(optarg, NULL, 10); break;
		case 'T': use_tls = true; break;
		case 't': seconds = (int)strtol(optarg, NULL, 10); break;
		case 'u': user = optarg; break;
		case 'w': password = optarg; break;
		case 'L': login_only = true; break;
		case 'F': first_user = (int)strtol(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (!port || n < 1 || n > 256 || seconds < 1) {
		fprintf(stderr, "usage: bench-pop3 --port P [-c N] [--tls] [--seconds S]\n");
		return 2;
	}
	samples = malloc(MAX_SAMPLES * sizeof(double));
	log_open("bench-pop3", true, LOG_LEVEL_WARN);
	if (use_tls && (tls_global_init() || tls_creds_client_new(NULL, NULL, &creds)))
		return 1;
	t0 = bench_now();
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, client, (void *)(intptr_t)i);
	while (bench_now() - t0 < seconds)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	stop = 1;
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	elapsed = bench_now() - t0;
	getrusage(RUSAGE_SELF, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	bench_sort(samples, nsamples);
	printf("{\"bench\":\"%s\",\"clients\":%d,\"tls\":%s,\"messages\":%llu,\"per_s\":%.0f,\"mb_per_s\":%.1f,"
	    "\"logins\":%lu,\"logins_per_s\":%.1f,\"login_stat_uidl_ms_avg\":%.2f,\"login_stat_uidl_ms_p50\":%.2f,"
	    "\"login_stat_uidl_ms_p99\":%.2f,\"login_stat_uidl_ms_max\":%.2f,\"failures\":%llu,"
	    "\"client_cpu_share\":%.2f,\"elapsed_s\":%.3f}\n", login_only ? "pop3_login" : "pop3_retr", n,
	    use_tls ? "true" : "false", (unsigned long long)total_msgs, total_msgs / elapsed,
	    total_bytes / elapsed / 1e6, logins, logins / elapsed, logins ? login_sum / logins * 1000 : 0,
	    bench_pct(samples, nsamples, 50) * 1000, bench_pct(samples, nsamples, 99) * 1000,
	    login_max * 1000, (unsigned long long)failures, cpu / elapsed, elapsed);
	free(samples);
	if (creds) {
		tls_creds_unref(creds);
		tls_global_deinit();
	}
	return 0;
}
