/*
 * bench-idle: hold N idle connections on postied (SMTP and POP3 mixed, a
 * share of them over implicit TLS), then report the server's resident
 * memory and how fast a new connection is greeted meanwhile. Prints JSON
 * lines; asserts nothing (benchmarks measure, tests check behaviour).
 *
 *   bench-idle --pid PID[,PID...] --smtp PORT --pop3 PORT --smtps PORT --pop3s PORT
 *              [-n 10000] [--tls-percent 50] [--host 127.0.0.1] [--setup-seconds 120]
 *
 * Memory is RSS and PSS (from /proc/PID/smaps_rollup) summed over the given
 * processes and all their descendants, so a server that forks a process per
 * connection (Postfix's smtpd, Dovecot's login processes) is counted whole.
 * A server that stops accepting at a process limit leaves connections
 * ungreeted: after --setup-seconds the figure is what it holds.
 */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "server/tls.h"
#include "common.h"
#include "core/compat.h"

#define BENCH_SETUP_SECONDS 120	/* the whole set-up phase is bounded */
#define PROBES 50		/* fresh connections timed while the others idle */
#define PROBE_SECONDS 3		/* a probe not greeted by then ends the probing (1e9 ms) */

enum cstate { C_CONNECTING, C_HANDSHAKE, C_GREETING, C_IDLE, C_FAILED };

struct client {
	int fd;
	enum cstate state;
	struct tls_conn *tls;
	char got[256];
	size_t ngot;
};

static int
connect_to(const char *host, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Advance one client; returns its new state. */
static enum cstate
step(struct client *cl)
{
	ssize_t n;

	if (cl->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err)
			return C_FAILED;
		cl->state = cl->tls ? C_HANDSHAKE : C_GREETING;
	}
	if (cl->state == C_HANDSHAKE) {
		int rc = tls_handshake(cl->tls);
		if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE)
			return C_HANDSHAKE;
		if (rc)
			return C_FAILED;
		cl->state = C_GREETING;
	}
	if (cl->state == C_GREETING) {
		for (;;) {
			if (cl->ngot >= sizeof(cl->got))
				return C_FAILED;
			n = cl->tls ? tls_read(cl->tls, cl->got + cl->ngot, sizeof(cl->got) - cl->ngot)
			    : recv(cl->fd, cl->got + cl->ngot, sizeof(cl->got) - cl->ngot, 0);
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE || (n < 0 && !cl->tls && errno == EAGAIN))
				return C_GREETING;
			if (n <= 0)
				return C_FAILED;
			cl->ngot += (size_t)n;
			if (memchr(cl->got, '\n', cl->ngot))
				return C_IDLE;
		}
	}
	return cl->state;
}

#define MAX_PROCS 65536	/* processes scanned in /proc */

struct mem {
	long rss_kb, pss_kb, pss_anon_kb;	/* anon: without the page cache a server maps (LMDB) */
	unsigned procs;
};

static long
parent_of(long pid)
{
	char path[64], buf[512], *close_paren;
	long ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses */
	if (fgets(buf, sizeof(buf), f) && (close_paren = strrchr(buf, ')')))
		sscanf(close_paren + 1, " %*c %ld", &ppid);
	fclose(f);
	return ppid;
}

/* RSS and PSS of the processes in pids (comma-separated) and all their descendants. */
static struct mem
memory(const char *pids)
{
	static long pid[MAX_PROCS], ppid[MAX_PROCS];
	static bool in[MAX_PROCS];
	struct mem m = { 0, 0, 0, 0 };
	char list[1024], *save = NULL, *tok;
	size_t n = 0, i;
	bool grew = true;
	DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d)) && n < MAX_PROCS) {
		char *end;
		long p = strtol(e->d_name, &end, 10);

		if (*end || p <= 0)
			continue;
		pid[n] = p;
		ppid[n] = parent_of(p);
		in[n] = false;
		n++;
	}
	if (d)
		closedir(d);
	snprintf(list, sizeof(list), "%s", pids);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		for (i = 0; i < n; i++)
			if (pid[i] == strtol(tok, NULL, 10))
				in[i] = true;
	while (grew) {	/* add children of members until nothing changes */
		grew = false;
		for (i = 0; i < n; i++) {
			size_t j;

			if (in[i])
				continue;
			for (j = 0; j < n; j++)
				if (in[j] && pid[j] == ppid[i]) {
					in[i] = grew = true;
					break;
				}
		}
	}
	for (i = 0; i < n; i++) {
		char path[64], line[256];
		FILE *f;

		if (!in[i])
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		m.procs++;
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "Rss:", 4) == 0)
				m.rss_kb += strtol(line + 4, NULL, 10);
			else if (strncmp(line, "Pss:", 4) == 0)
				m.pss_kb += strtol(line + 4, NULL, 10);
			else if (strncmp(line, "Pss_Anon:", 9) == 0)
				m.pss_anon_kb += strtol(line + 9, NULL, 10);
		}
		fclose(f);
	}
	return m;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' }, { "smtp", required_argument, NULL, 's' },
		{ "pop3", required_argument, NULL, 'o' }, { "smtps", required_argument, NULL, 'S' },
		{ "pop3s", required_argument, NULL, 'O' }, { "tls-percent", required_argument, NULL, 't' },
		{ "host", required_argument, NULL, 'h' }, { "setup-seconds", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	const char *pids = NULL, *host = "127.0.0.1";
	unsigned ports[4] = { 0, 0, 0, 0 }, n = 1000, tls_percent = 50, i, idle = 0, failed = 0;
	struct tls_creds *creds = NULL;
	struct client *cls;
	struct rlimit rl;
	double t0, lat[PROBES], setup_seconds = BENCH_SETUP_SECONDS;
	struct mem m;
	struct rusage ru;
	int ep, opt;

	while ((opt = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': pids = optarg; break;
		case 's': ports[0] = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'o': ports[1] = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': ports[2] = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'O': ports[3] = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': tls_percent = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': host = optarg; break;
		case 'w': setup_seconds = strtod(optarg, NULL); break;
		default:
			fprintf(stderr, "usage: bench-idle --pid PID[,PID] --smtp P --pop3 P --smtps P --pop3s P [-n N] [--tls-percent P]\n");
			return 2;
		}
	}
	if (!pids || !ports[0] || !ports[1] || (tls_percent && (!ports[2] || !ports[3])) || n == 0 ||
	    n > 100000 || tls_percent > 100 || setup_seconds <= 0 || setup_seconds > BENCH_SETUP_SECONDS) {
		fprintf(stderr, "bench-idle: missing or bad arguments (see the comment at the top of idle.c)\n");
		return 2;
	}
	log_open("bench-idle", true, LOG_LEVEL_WARN);
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (tls_percent && (tls_global_init() || tls_creds_client_new(NULL, NULL, &creds))) {
		fprintf(stderr, "bench-idle: TLS set-up failed\n");
		return 1;
	}
	m = memory(pids);
	printf("{\"bench\":\"idle\",\"phase\":\"start\",\"rss_kb\":%ld,\"pss_kb\":%ld,\"pss_anon_kb\":%ld,"
	    "\"processes\":%u}\n", m.rss_kb, m.pss_kb, m.pss_anon_kb, m.procs);

	cls = calloc(n, sizeof(*cls));
	ep = epoll_create1(0);
	t0 = bench_now();
	for (i = 0; i < n; i++) {
		bool tls = (i % 100) < tls_percent;
		unsigned port = ports[(tls ? 2 : 0) + (i % 2)];	/* SMTP and POP3 alternate */
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = i };

		cls[i].fd = connect_to(host, port);
		if (cls[i].fd < 0 || (tls && tls_conn_new_client(creds, cls[i].fd, "localhost", &cls[i].tls))) {
			cls[i].state = C_FAILED;
			failed++;
			continue;
		}
		epoll_ctl(ep, EPOLL_CTL_ADD, cls[i].fd, &ev);
	}
	while (idle + failed < n && bench_now() - t0 < setup_seconds) {
		struct epoll_event evs[512];
		int k, nev = epoll_wait(ep, evs, 512, 1000);

		for (k = 0; k < nev; k++) {
			struct client *cl = &cls[evs[k].data.u32];
			enum cstate st;

			if (cl->state == C_IDLE || cl->state == C_FAILED)
				continue;
			st = step(cl);
			cl->state = st;
			if (st == C_IDLE || st == C_FAILED) {
				epoll_ctl(ep, EPOLL_CTL_DEL, cl->fd, NULL);
				if (st == C_IDLE)
					idle++;
				else
					failed++;
			}
		}
	}
	m = memory(pids);
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"bench\":\"idle\",\"connections\":%u,\"tls_percent\":%u,\"idle\":%u,\"failed\":%u,"
	    "\"ungreeted\":%u,\"setup_s\":%.2f,\"rss_kb\":%ld,\"pss_kb\":%ld,\"pss_anon_kb\":%ld,"
	    "\"processes\":%u,\"client_cpu_s\":%.2f}\n", n, tls_percent, idle, failed, n - idle - failed,
	    bench_now() - t0, m.rss_kb, m.pss_kb, m.pss_anon_kb, m.procs, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6);

	/* while they idle: how long until a new client is greeted? */
	for (i = 0; i < PROBES; i++) {
		struct client probe = { .state = C_CONNECTING };
		double start = bench_now();

		probe.fd = connect_to(host, ports[i % 2]);
		while (probe.fd >= 0 && probe.state != C_IDLE && probe.state != C_FAILED &&
		    bench_now() - start < PROBE_SECONDS) {
			struct pollfd pfd = { .fd = probe.fd, .events = POLLIN };

			if (probe.state == C_CONNECTING)
				pfd.events |= POLLOUT;
			if (poll(&pfd, 1, 100) > 0)
				probe.state = step(&probe);
		}
		lat[i] = probe.state == C_IDLE ? (bench_now() - start) * 1000 : 1e9;
		if (probe.fd >= 0)
			close(probe.fd);
		if (lat[i] >= 1e9) {	/* not greeted within the bound: the server is full */
			for (i++; i < PROBES; i++)
				lat[i] = 1e9;
			break;
		}
	}
	bench_sort(lat, PROBES);
	printf("{\"bench\":\"idle_greeting_latency\",\"held\":%u,\"probes\":%d,\"p50_ms\":%.3f,"
	    "\"p99_ms\":%.3f,\"max_ms\":%.3f}\n", idle, PROBES, bench_pct(lat, PROBES, 50),
	    bench_pct(lat, PROBES, 99), bench_pct(lat, PROBES, 100));

	for (i = 0; i < n; i++) {
		tls_conn_free(cls[i].tls);
		if (cls[i].fd >= 0)
			close(cls[i].fd);
	}
	free(cls);
	close(ep);
	if (creds)
		tls_creds_unref(creds);
	if (tls_percent)
		tls_global_deinit();
	return 0;
}
