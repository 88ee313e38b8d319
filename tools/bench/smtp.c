/*
 * bench-smtp: SMTP acceptance load. N concurrent plaintext sessions send
 * messages of SIZE bytes to RCPT back to back (MAIL, RCPT and DATA
 * pipelined, then the body) for SECONDS. Prints messages/s and the p50 /
 * p99 transaction latency (MAIL sent to the 250 after the body) as JSON,
 * with the client's own CPU time so a saturated client shows.
 *
 * Back to back, N sessions always have N transactions in flight, so the
 * mean latency is N / throughput whatever the server does (Little's law):
 * that mode measures capacity. --rate R measures latency at a given load
 * instead: the sessions together start R transactions a second, at random
 * (Poisson) moments. A session still busy with its previous transaction
 * when the next is due counts that one from the due moment, so a server
 * that falls behind is not excused by the client waiting for it (no
 * coordinated omission); a session that was free counts from its send, so
 * this process waking late (timer slack, an idle CPU) is not charged to
 * the server.
 *
 *   bench-smtp --port 2525 [--host 127.0.0.1] [-c 32] [--size 4096]
 *              [--seconds 10] [--rcpt alice@example.test]
 *              [--auth USER:PASSWORD]   (submission: STARTTLS, then AUTH PLAIN)
 *              [--from ADDRESS]         (the envelope sender; with --auth, one of the user's)
 *              [--count N]              (stop after N accepted messages instead of SECONDS)
 *              [--rate R]               (offered load: R transactions/s in all, not back to back)
 * --rcpt may list several recipients separated by commas: one message, one
 * RCPT per recipient (fills many mailboxes at once for bench/compare).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "server/tls.h"
#include "common.h"
#include "core/compat.h"

#define MAX_CLIENTS 1024
#define MAX_SAMPLES 4000000

static const char *host = "127.0.0.1", *rcpt = "alice@example.test", *from = "bench@remote.test";
static int port, seconds = 10, nrcpt = 1;
static unsigned long count_max, accepted;	/* --count: stop after count_max messages */
static double rate;	/* --rate: transactions per second offered by all sessions together */
static int nclients = 32;
static size_t size = 4096;
static char *message;
static size_t message_len;
static volatile int stop;
static double *samples;
static size_t nsamples;
static unsigned long failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *auth;	/* "user:password": STARTTLS + AUTH PLAIN before sending */
static struct tls_creds *creds;

struct reader {
	int fd;
	struct tls_conn *tls;
	char buf[8192];
	struct bench_reader in;	/* replies, read through io_read into buf */
};

static void
wait_fd(int fd, long rc)
{
	struct pollfd p = { .fd = fd, .events = rc == TLS_WANT_WRITE ? POLLOUT : POLLIN };

	poll(&p, 1, 1000);
}

static ssize_t
io_read(void *ctx, void *p, size_t n)
{
	struct reader *r = ctx;

	for (;;) {
		ssize_t got = r->tls ? tls_read(r->tls, p, n) : recv(r->fd, p, n, 0);

		if (r->tls && (got == TLS_WANT_READ || got == TLS_WANT_WRITE)) {
			wait_fd(r->fd, got);
			continue;
		}
		return got;
	}
}

static bool
send_all(struct reader *r, const char *p, size_t n)
{
	while (n) {
		ssize_t w = r->tls ? tls_write(r->tls, p, n) : send(r->fd, p, n, MSG_NOSIGNAL);

		if (r->tls && (w == TLS_WANT_READ || w == TLS_WANT_WRITE)) {
			wait_fd(r->fd, w);
			continue;
		}
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* STARTTLS, EHLO again, AUTH PLAIN with the --auth credentials. */
static bool
secure(struct reader *r)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char plain[600], cmd[900];
	const char *colon = strchr(auth, ':');
	size_t n, i, o;
	int rc;

	if (!colon || !send_all(r, "STARTTLS\r\n", 10) || bench_smtp_reply(&r->in) != 220)
		return false;
	if (tls_conn_new_client(creds, r->fd, "localhost", &r->tls))
		return false;
	while ((rc = tls_handshake(r->tls)) == TLS_WANT_READ || rc == TLS_WANT_WRITE)
		wait_fd(r->fd, rc);
	if (rc || !send_all(r, "EHLO bench.test\r\n", 17) || bench_smtp_reply(&r->in) != 250)
		return false;
	n = (size_t)snprintf(plain, sizeof(plain), "%c%.*s%c%s", 0, (int)(colon - auth), auth, 0, colon + 1);
	o = (size_t)snprintf(cmd, sizeof(cmd), "AUTH PLAIN ");
	for (i = 0; i < n; i += 3) {	/* base64 */
		unsigned v = (unsigned char)plain[i] << 16 | (i + 1 < n ? (unsigned char)plain[i + 1] << 8 : 0) |
		    (i + 2 < n ? (unsigned char)plain[i + 2] : 0);
		cmd[o++] = b64[v >> 18];
		cmd[o++] = b64[(v >> 12) & 63];
		cmd[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		cmd[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	memcpy(cmd + o, "\r\n", 3);
	return send_all(r, cmd, o + 2) && bench_smtp_reply(&r->in) == 235;
}

/* Transactions per connection: below the server's smtp.max_messages_per_session (100). */
#define PER_CONNECTION 90

static void
record(double *local, size_t *nlocal)
{
	pthread_mutex_lock(&lock);
	if (nsamples + *nlocal <= MAX_SAMPLES) {
		memcpy(samples + nsamples, local, *nlocal * sizeof(double));
		nsamples += *nlocal;
	}
	pthread_mutex_unlock(&lock);
	*nlocal = 0;
}

/* The next due moment of a session: exponential gaps of mean nclients / rate. */
static double
next_due(double due, unsigned short xsubi[3])
{
	return due - log(1.0 - erand48(xsubi)) * nclients / rate;
}

/*
 * With --auth, one login before the clock starts, as a mail client has
 * logged in before: postied counts a login in flight against the failure
 * limit until PAM answers, but not one it remembers (auth.cache_ttl), so
 * 32 sessions starting at once would otherwise meet that limit.
 */
static bool
warm_up(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct reader r = { 0 };
	bool ok;

	inet_pton(AF_INET, host, &sa.sin_addr);
	r.fd = socket(AF_INET, SOCK_STREAM, 0);
	bench_reader_init(&r.in, io_read, &r, r.buf, sizeof(r.buf));
	ok = connect(r.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && bench_smtp_reply(&r.in) == 220 &&
	    send_all(&r, "EHLO bench.test\r\n", 17) && bench_smtp_reply(&r.in) == 250 && secure(&r) &&
	    send_all(&r, "QUIT\r\n", 6);
	tls_conn_free(r.tls);
	close(r.fd);
	return ok;
}

static void *
client(void *arg)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char env[8192];
	int one = 1, envlen, k;
	double local[PER_CONNECTION], due = bench_now();
	size_t nlocal = 0;
	unsigned short xsubi[3] = { 0x330e, (unsigned short)(uintptr_t)arg, (unsigned short)((uintptr_t)arg >> 16) };

	if (rate > 0)
		due = next_due(due, xsubi);
	inet_pton(AF_INET, host, &sa.sin_addr);
	envlen = snprintf(env, sizeof(env), "MAIL FROM:<%s>\r\n", from);
	for (const char *p = rcpt; *p && envlen < (int)sizeof(env) - 600;) {
		size_t l = strcspn(p, ",");

		envlen += snprintf(env + envlen, sizeof(env) - (size_t)envlen, "RCPT TO:<%.*s>\r\n", (int)l, p);
		p += l + (p[l] == ',');
	}
	envlen += snprintf(env + envlen, sizeof(env) - (size_t)envlen, "DATA\r\n");
	while (!stop) {
		struct reader r = { 0 };
		int i;

		r.fd = socket(AF_INET, SOCK_STREAM, 0);
		bench_reader_init(&r.in, io_read, &r, r.buf, sizeof(r.buf));
		setsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(r.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || bench_smtp_reply(&r.in) != 220 ||
		    !send_all(&r, "EHLO bench.test\r\n", 17) || bench_smtp_reply(&r.in) != 250 || (auth && !secure(&r))) {
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
			tls_conn_free(r.tls);
			close(r.fd);
			break;
		}
		for (i = 0; i < PER_CONNECTION && !stop; i++) {
			double t0 = bench_now();
			bool ok;

			if (rate > 0) {
				struct timespec ts = { (time_t)due, (long)((due - (time_t)due) * 1e9) };

				if (due > t0) {
					/* free before its moment: the latency counts from the
					   send, this client's own lateness in waking is not the
					   server's */
					while (due > bench_now() && !stop &&
					    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
						;
					t0 = bench_now();
				} else {
					t0 = due;	/* still busy at its moment: the wait counts */
				}
				due = next_due(due, xsubi);
			}

			/* with --count, claim a message before sending it so exactly N are sent */
			if (count_max && __atomic_add_fetch(&accepted, 1, __ATOMIC_RELAXED) > count_max) {
				stop = 1;
				break;
			}
			ok = send_all(&r, env, (size_t)envlen) && bench_smtp_reply(&r.in) == 250;
			for (k = 0; ok && k < nrcpt; k++)
				ok = bench_smtp_reply(&r.in) == 250;
			if (!ok || bench_smtp_reply(&r.in) != 354 || !send_all(&r, message, message_len) || bench_smtp_reply(&r.in) != 250) {
				__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
				stop = 1;
				break;
			}
			local[nlocal++] = bench_now() - t0;
		}
		record(local, &nlocal);
		send_all(&r, "QUIT\r\n", 6);
		tls_conn_free(r.tls);
		close(r.fd);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' }, { "host", required_argument, NULL, 'H' },
		{ "size", required_argument, NULL, 's' }, { "seconds", required_argument, NULL, 't' },
		{ "rcpt", required_argument, NULL, 'r' }, { "auth", required_argument, NULL, 'a' },
		{ "from", required_argument, NULL, 'f' }, { "count", required_argument, NULL, 'n' },
		{ "rate", required_argument, NULL, 'R' }, { NULL, 0, NULL, 0 }
	};
	pthread_t t[MAX_CLIENTS];
	struct rusage ru;
	int n = 32, i, opt;
	double t0, elapsed, cpu;
	size_t filled;
	bool seconds_given = false;

	while ((opt = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': n = (int)strtol(optarg, NULL, 10); break;
		case 'p': port = (int)strtol(optarg, NULL, 10); break;
		case 'H': host = optarg; break;
		case 's': size = (size_t)strtoul(optarg, NULL, 10); break;
		case 't': seconds = (int)strtol(optarg, NULL, 10); seconds_given = true; break;
		case 'r': rcpt = optarg; break;
		case 'a': auth = optarg; break;
		case 'f': from = optarg; break;
		case 'n': count_max = strtoul(optarg, NULL, 10); break;
		case 'R': rate = strtod(optarg, NULL); break;
		default: return 2;
		}
	}
	if (!port || n < 1 || n > MAX_CLIENTS || size < 64 || size > (64u << 20) || seconds < 1 || rate < 0) {
		fprintf(stderr, "usage: bench-smtp --port P [-c N] [--size BYTES] [--seconds S] [--rcpt ADDR[,ADDR]...]\n"
		    "                  [--auth USER:PASSWORD] [--from ADDR] [--count N] [--rate R]\n");
		return 2;
	}
	for (const char *p = rcpt; (p = strchr(p, ',')); p++)
		nrcpt++;
	if (nrcpt > 16) {
		fprintf(stderr, "bench-smtp: at most 16 recipients per message\n");
		return 2;
	}
	if (count_max && !seconds_given)	/* --count ends the run; a time bound stays */
		seconds = 300;
	/* a message of about size bytes in 76-character lines, then the terminator */
	message = malloc(size + 128);
	message_len = (size_t)snprintf(message, 128, "Subject: bench\r\nFrom: bench@remote.test\r\n\r\n");
	for (filled = message_len; filled + 78 < size; filled += 78)
		memcpy(message + filled, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwx\r\n", 78);
	memcpy(message + filled, ".\r\n", 3);
	message_len = filled + 3;
	samples = malloc(MAX_SAMPLES * sizeof(double));
	log_open("bench-smtp", true, LOG_LEVEL_WARN);
	if (auth && (tls_global_init() || tls_creds_client_new(NULL, NULL, &creds)))
		return 1;
	if (auth && !warm_up()) {
		fprintf(stderr, "bench-smtp: STARTTLS + AUTH as %.*s failed\n", (int)strcspn(auth, ":"), auth);
		return 1;
	}

	/* wake at the due moments, not up to 50 us later (inherited by the sessions) */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	t0 = bench_now();
	nclients = n;
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, client, (void *)(uintptr_t)(i + 1));
	while (bench_now() - t0 < seconds && !stop)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
	stop = 1;
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	elapsed = bench_now() - t0;
	getrusage(RUSAGE_SELF, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	bench_sort(samples, nsamples);
	printf("{\"bench\":\"smtp_accept\",\"starttls_auth\":%s,\"sessions\":%d,\"size\":%zu,\"messages\":%zu,\"per_s\":%.0f,"
	    "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"failures\":%lu,\"client_cpu_share\":%.2f,\"elapsed_s\":%.3f,"
	    "\"recipients\":%d,\"offered_per_s\":%.0f}\n", auth ? "true" : "false",
	    n, message_len,
	    nsamples, nsamples / elapsed, bench_pct(samples, nsamples, 50) * 1000,
	    bench_pct(samples, nsamples, 99) * 1000, failures, cpu / elapsed, elapsed, nrcpt, rate);
	free(samples);
	free(message);
	return failures ? 1 : 0;
}
