/*
 * bench-relay: outbound relay throughput. It plays both outside ends: a
 * sink SMTP server on 127.0.0.1:SINK (what the remote domains' MX points
 * at), and C clients submitting N messages of SIZE bytes to postied with
 * AUTH PLAIN (the benchmark configuration allows plaintext logins from
 * loopback). Prints, as JSON, messages/s from the first submission to the
 * last delivery at the sink, and the client's CPU share.
 *
 * --down: no sink (the destination is dead). After submitting, it measures
 * postied's CPU (from /proc/PID/stat) over --idle-seconds while the N
 * messages wait for their next attempt: the runner must stay near idle.
 *
 *   bench-relay --port 2587 --sink 2600 -n 10000 [-c 8] [--size 4096]
 *               [--domains 1] [--auth user0:password] [--from user0@example.test]
 *               [--down --pid PID --idle-seconds 10]
 */
#include "config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "core/compat.h"

#define MAX_CLIENTS 256
#define MSGS_PER_SESSION 100	/* postied's smtp.max_messages_per_session default */

static int port, sink_port, nclients = 8, ndomains = 1, idle_seconds = 10;
static long total = 10000, pid;
static size_t size = 4096;
static const char *auth = "user0:password", *from = "user0@example.test";
static bool down;
static char *body;
static size_t body_len;
static long next_msg, delivered, submitted_ok, failures;
static double first_submit, last_delivery, submit_done;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int
connect_to(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ------------------------------------------------------------ the sink */

struct rbuf {
	int fd;
	char buf[65536];
	size_t len, off;
};

static int
rb_getc(struct rbuf *r)
{
	if (r->off == r->len) {
		ssize_t n = read(r->fd, r->buf, sizeof(r->buf));
		if (n <= 0)
			return -1;
		r->len = (size_t)n;
		r->off = 0;
	}
	return (unsigned char)r->buf[r->off++];
}

static bool
rb_line(struct rbuf *r, char *out, size_t cap)
{
	size_t n = 0;
	int c;

	while ((c = rb_getc(r)) >= 0) {
		if (n + 1 < cap)
			out[n++] = (char)c;
		if (c == '\n') {
			out[n] = '\0';
			return true;
		}
	}
	return false;
}

static void
say(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		ssize_t k = write(fd, s + off, n - off);
		if (k <= 0)
			return;
		off += (size_t)k;
	}
}

/* The sink's replies wait while more pipelined input is buffered: a group gets one write, as real servers do. */
struct replies {
	char buf[4096];
	size_t len;
};

static void
reply(struct rbuf *r, struct replies *q, const char *s)
{
	size_t n = strlen(s);

	if (q->len + n > sizeof(q->buf)) {
		say(r->fd, q->buf);
		q->len = 0;
	}
	memcpy(q->buf + q->len, s, n + 1);
	q->len += n;
	if (r->off == r->len) {	/* nothing more waiting: send now */
		say(r->fd, q->buf);
		q->len = 0;
	}
}

static void *
sink_conn(void *arg)
{
	struct rbuf *r = arg;
	struct replies q = { .len = 0 };
	char line[1024];
	int one = 1;

	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	say(r->fd, "220 sink.bench ESMTP\r\n");
	while (rb_line(r, line, sizeof(line))) {
		if (!strncasecmp(line, "EHLO", 4))
			reply(r, &q, "250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n");
		else if (!strncasecmp(line, "DATA", 4)) {
			int c, state = 2;	/* 2: at a line start; the end is CRLF "." CRLF */

			reply(r, &q, "354 go\r\n");
			while ((c = rb_getc(r)) >= 0) {
				if (state == 2 && c == '.')
					state = 3;
				else if (state == 3 && c == '\r')
					state = 4;
				else if (state == 4 && c == '\n')
					break;
				else
					state = c == '\n' ? 2 : 0;
			}
			if (c < 0)
				break;
			pthread_mutex_lock(&lock);
			delivered++;
			last_delivery = bench_now();
			pthread_mutex_unlock(&lock);
			reply(r, &q, "250 2.0.0 ok\r\n");
		} else if (!strncasecmp(line, "QUIT", 4)) {
			reply(r, &q, "221 bye\r\n");
			break;
		} else
			reply(r, &q, "250 ok\r\n");
	}
	close(r->fd);
	free(r);
	return NULL;
}

static void *
sink_main(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		struct rbuf *r;
		pthread_t t;

		if (fd < 0)
			continue;
		r = calloc(1, sizeof(*r));
		r->fd = fd;
		pthread_create(&t, NULL, sink_conn, r);
		pthread_detach(t);
	}
	return NULL;
}

/* ------------------------------------------------------------ the clients */

/* One reply from postied (all its lines): does its code start with the digit code? */
static bool
expect(struct bench_reader *r, char code)
{
	int rc = bench_smtp_reply(r);

	return rc >= 0 && rc / 100 == code - '0';
}

static void
b64(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o] = '\0';
}

static void *
client_main(void *arg)
{
	struct rbuf *r = calloc(1, sizeof(*r));
	unsigned char plain[512];
	char cmd[2048], enc[800];
	const char *colon = strchr(auth, ':');
	size_t ulen = (size_t)(colon - auth), plen = strlen(colon + 1);
	struct bench_reader in;	/* postied's replies, into r->buf */

	(void)arg;
	plain[0] = '\0';
	memcpy(plain + 1, auth, ulen);
	plain[1 + ulen] = '\0';
	memcpy(plain + 2 + ulen, colon + 1, plen);
	b64(plain, 2 + ulen + plen, enc);
	for (;;) {
		int sent = 0;

		r->fd = connect_to(port);
		bench_reader_init(&in, bench_recv, &r->fd, r->buf, sizeof(r->buf));
		snprintf(cmd, sizeof(cmd), "EHLO bench\r\nAUTH PLAIN %s\r\n", enc);
		if (r->fd < 0 || !expect(&in, '2') || (say(r->fd, cmd), !expect(&in, '2')) || !expect(&in, '2')) {
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
			if (r->fd >= 0)
				close(r->fd);
			usleep(100000);
			if (__atomic_load_n(&failures, __ATOMIC_RELAXED) > 1000)
				break;
			continue;
		}
		while (sent < MSGS_PER_SESSION) {
			long i = __atomic_fetch_add(&next_msg, 1, __ATOMIC_RELAXED);

			if (i >= total)
				break;
			if (i == 0) {
				pthread_mutex_lock(&lock);
				first_submit = bench_now();
				pthread_mutex_unlock(&lock);
			}
			snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\nRCPT TO:<r%ld@d%ld.bench.test>\r\nDATA\r\n", from, i,
			    i % ndomains);
			say(r->fd, cmd);
			if (!expect(&in, '2') || !expect(&in, '2') || !expect(&in, '3')) {
				__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
				break;
			}
			say(r->fd, body);
			if (!expect(&in, '2')) {
				__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
				break;
			}
			__atomic_add_fetch(&submitted_ok, 1, __ATOMIC_RELAXED);
			sent++;
		}
		say(r->fd, "QUIT\r\n");
		close(r->fd);
		if (__atomic_load_n(&next_msg, __ATOMIC_RELAXED) >= total)
			break;
	}
	free(r);
	return NULL;
}

static double
proc_cpu_seconds(long p)
{
	char path[64], buf[2048], *s;
	unsigned long ut = 0, st = 0;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", p);
	if (!(f = fopen(path, "r")))
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	s = strrchr(buf, ')');	/* the name may hold spaces */
	for (i = 0; s && i < 12; i++)
		s = strchr(s + 1, ' ');
	if (!s || sscanf(s, " %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
own_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", 1, NULL, 'p' }, { "sink", 1, NULL, 'k' }, { "size", 1, NULL, 's' },
		{ "domains", 1, NULL, 'd' }, { "auth", 1, NULL, 'a' }, { "from", 1, NULL, 'f' },
		{ "down", 0, NULL, 'D' }, { "pid", 1, NULL, 'P' }, { "idle-seconds", 1, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	pthread_t threads[MAX_CLIENTS], sink;
	double t0, wall, cpu0;
	int opt, i, lfd = -1;
	size_t k;

	while ((opt = getopt_long(argc, argv, "n:c:", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': total = strtol(optarg, NULL, 10); break;
		case 'c': nclients = (int)strtol(optarg, NULL, 10); break;
		case 'p': port = (int)strtol(optarg, NULL, 10); break;
		case 'k': sink_port = (int)strtol(optarg, NULL, 10); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'd': ndomains = (int)strtol(optarg, NULL, 10); break;
		case 'a': auth = optarg; break;
		case 'f': from = optarg; break;
		case 'D': down = true; break;
		case 'P': pid = strtol(optarg, NULL, 10); break;
		case 'i': idle_seconds = (int)strtol(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench-relay --port P --sink S -n N [-c C] [--size B] [--domains D] "
			    "[--auth U:P] [--from A] [--down --pid PID --idle-seconds S]\n");
			return 2;
		}
	}
	if (!port || (!down && !sink_port) || nclients < 1 || nclients > MAX_CLIENTS || ndomains < 1 ||
	    !strchr(auth, ':') || strlen(auth) > 300 || (down && !pid)) {
		fprintf(stderr, "bench-relay: --port, --sink (or --down --pid), -c 1..%d, --auth USER:PASSWORD\n",
		    MAX_CLIENTS);
		return 2;
	}
	/* the message: headers, then lines of text up to size, then the end */
	body = malloc(size + 256);
	k = (size_t)snprintf(body, 256, "Subject: relay bench\r\n\r\n");
	while (k + 80 < size)
		k += (size_t)snprintf(body + k, 81, "%077zu\r\n", k);
	k += (size_t)snprintf(body + k, 8, ".\r\n");
	body_len = k;
	if (!down) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)sink_port) };
		int one = 1;

		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		lfd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0) {
			perror("bench-relay: sink");
			return 1;
		}
		pthread_create(&sink, NULL, sink_main, &lfd);
	}
	t0 = bench_now();
	cpu0 = own_cpu();
	for (i = 0; i < nclients; i++)
		pthread_create(&threads[i], NULL, client_main, NULL);
	for (i = 0; i < nclients; i++)
		pthread_join(threads[i], NULL);
	submit_done = bench_now();
	if (down) {
		double c0, c1;

		sleep(5);	/* the first attempts of the last messages end */
		c0 = proc_cpu_seconds(pid);
		sleep((unsigned)idle_seconds);
		c1 = proc_cpu_seconds(pid);
		printf("{\"workload\":\"relay_dead_destination\",\"queued\":%ld,\"failures\":%ld,\"submit_s\":%.2f,"
		    "\"idle_seconds\":%d,\"postied_cpu_percent\":%.2f}\n", submitted_ok, failures, submit_done - t0,
		    idle_seconds, c0 < 0 || c1 < 0 ? -1.0 : (c1 - c0) * 100.0 / idle_seconds);
		return 0;
	}
	/* bounded: every delivery within 120 s of the last submission, or we say we gave up */
	while (__atomic_load_n(&delivered, __ATOMIC_RELAXED) < submitted_ok && bench_now() - submit_done < 120)
		usleep(10000);
	wall = (last_delivery > first_submit ? last_delivery : bench_now()) - first_submit;
	printf("{\"workload\":\"relay\",\"messages\":%ld,\"delivered\":%ld,\"failures\":%ld,\"domains\":%d,"
	    "\"size\":%zu,\"clients\":%d,\"submit_s\":%.2f,\"total_s\":%.2f,\"msgs_per_s\":%.0f,"
	    "\"client_cpu_share\":%.2f,\"complete\":%s}\n", submitted_ok, delivered, failures, ndomains, size,
	    nclients, submit_done - t0, wall, wall > 0 ? delivered / wall : 0.0,
	    (own_cpu() - cpu0) / (bench_now() - t0) / (double)sysconf(_SC_NPROCESSORS_ONLN),
	    delivered >= submitted_ok ? "true" : "false");
	return delivered >= submitted_ok ? 0 : 1;
}
