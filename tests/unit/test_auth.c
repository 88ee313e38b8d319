/*
 * The real postie-auth under pam_wrapper + pam_matrix: through auth/client.c
 * (results, PAM_RHOST, concurrency, a PAM worker killed mid-request, the
 * helper killed and restarted, stop with a request pending) and directly on
 * its socket (malformed input, a login with '/' and a request for another
 * PAM service than its -s close it; a bad -s stops its start; the worker
 * timeout).
 *
 * pam_wrapper is preloaded only into the helper: the variables are set in
 * this process's environment after it started (so it is not affected) and
 * postie-auth inherits them, as documented in auth/client.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/client.h"
#include "auth/proto.h"
#include "core/err.h"
#include "core/log.h"
#include "tap.h"
#include "testlib.h"
#include "core/compat.h"

#define S(x) span_cstr(x)
#define PAM_WRAPPER_LIB "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so"
#define PAM_MATRIX "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so"
#define PAM_MODDIR "/usr/lib/x86_64-linux-gnu/security/"
#define WAIT_S 30	/* no single answer may take longer (a bound, not a pace: polls end at the event) */

static char dir[TESTLIB_DIR_MAX], helper[512];

static void
write_file(const char *name, int mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
write_file(const char *name, int mode, const char *fmt, ...)
{
	char path[256];
	va_list ap;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	va_start(ap, fmt);
	testlib_vwrite_file(path, mode, fmt, ap);
	va_end(ap);
}

static bool
setup(void)
{
	const char *top = getenv("top_builddir");

	snprintf(helper, sizeof(helper), "%s/auth/helper/postie-auth", top ? top : ".");
	if (!testlib_tmpdir("postie-test-auth", dir, sizeof(dir)))
		return false;
	write_file("passdb", 0600, "alice:alice-password:postie\nbob:bob-password:postie\n"
	    "locky:locky-password:locked\n");
	write_file("passdb-rhost", 0600, "alice:alice-password:rhost\n");
	/* a module that hangs for the login slowpoke: its script says which worker runs it ($PPID) and its pid */
	write_file("slow.sh", 0755, "#!/bin/sh\n[ \"$PAM_USER\" = slowpoke ] || exit 0\n"
	    "echo \"$PPID $$\" > %s/slow.tmp && /bin/mv %s/slow.tmp %s/slow.pid\n"
	    "exec /bin/sleep 20\n", dir, dir, dir);
	write_file("postie", 0644, "auth required " PAM_MODDIR "pam_exec.so %s/slow.sh\n"
	    "auth required " PAM_MATRIX " passdb=%s/passdb\n"
	    "account required " PAM_MATRIX " passdb=%s/passdb\n", dir, dir, dir);
	/* a good password, but the account stack refuses: a locked account */
	write_file("locked", 0644, "auth required " PAM_MATRIX " passdb=%s/passdb\n"
	    "account required " PAM_MODDIR "pam_deny.so\n", dir);
	/* pam_exec shows what PAM was given (PAM_RHOST, PAM_USER, PAM_SERVICE) */
	write_file("rhost.sh", 0755, "#!/bin/sh\necho \"$PAM_RHOST $PAM_USER $PAM_SERVICE\" > %s/rhost.out\n", dir);
	write_file("rhost", 0644, "auth required " PAM_MODDIR "pam_exec.so %s/rhost.sh\n"
	    "auth required " PAM_MATRIX " passdb=%s/passdb-rhost\n"
	    "account required " PAM_MATRIX " passdb=%s/passdb-rhost\n", dir, dir, dir);
	write_file("other", 0644, "auth required " PAM_MODDIR "pam_deny.so\n"
	    "account required " PAM_MODDIR "pam_deny.so\n");
	setenv("PAM_WRAPPER", "1", 1);
	setenv("PAM_WRAPPER_SERVICE_DIR", dir, 1);
	setenv("LD_PRELOAD", PAM_WRAPPER_LIB, 1);
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	return true;
}

static void
cleanup(void)
{
	static const char *const files[] = { "passdb", "passdb-rhost", "postie", "locked", "rhost.sh", "rhost",
		"rhost.out", "slow.sh", "slow.pid", "slow.tmp", "other", "helper.log" };
	char path[256];
	size_t i;

	unsetenv("LD_PRELOAD");
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	if (rmdir(dir) != 0)
		printf("# could not remove %s: %s\n", dir, strerror(errno));
}

/* The slow module's pids once it runs: the PAM worker and the sleep. false after WAIT_S. */
static bool
slow_started(pid_t *worker_out, pid_t *sleep_out)
{
	char path[256];
	int i;

	snprintf(path, sizeof(path), "%s/slow.pid", dir);
	for (i = 0; i < WAIT_S * 100; i++) {
		FILE *f = fopen(path, "r");
		long w, s;

		if (f) {
			int n = fscanf(f, "%ld %ld", &w, &s);

			fclose(f);
			if (n == 2) {
				unlink(path);
				*worker_out = (pid_t)w;
				*sleep_out = (pid_t)s;
				return true;
			}
		}
		usleep(10000);
	}
	return false;
}

/* Has pid ended? (A zombie has: its parent is gone and nobody reaped it yet.) */
static bool
gone(pid_t pid)
{
	char path[64], stat[256];
	const char *paren;
	size_t n;
	FILE *f;

	if (kill(pid, 0) < 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (!(f = fopen(path, "r")))
		return true;
	n = fread(stat, 1, sizeof(stat) - 1, f);
	fclose(f);
	stat[n] = '\0';
	paren = strrchr(stat, ')');	/* "pid (comm) S ..." */
	return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* Wait up to a second for pid to end. */
static bool
ends(pid_t pid)
{
	int i;

	for (i = 0; i < 100 && !gone(pid); i++)
		usleep(10000);
	return gone(pid);
}

/* --- through the client --- */

struct answer {
	pthread_mutex_t m;
	pthread_cond_t c;
	int calls;
	enum auth_result res;
};

#define ANSWER_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 }

static void
on_answer(void *arg, enum auth_result res)
{
	struct answer *a = arg;

	pthread_mutex_lock(&a->m);
	a->res = res;
	a->calls++;
	pthread_cond_broadcast(&a->c);
	pthread_mutex_unlock(&a->m);
}

/* Wait for a's answer; 0 when none came within WAIT_S. */
static enum auth_result
wait_answer(struct answer *a)
{
	struct timespec until;
	enum auth_result res;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&a->m);
	while (!a->calls && pthread_cond_timedwait(&a->c, &a->m, &until) == 0)
		;
	res = a->calls == 1 ? a->res : 0;
	pthread_mutex_unlock(&a->m);
	return res;
}

static enum auth_result
ask(struct auth_client *c, const char *login, const char *password)
{
	struct answer a = ANSWER_INIT;

	auth_client_check(c, S(login), S(password), "192.0.2.7", on_answer, &a);
	return wait_answer(&a);
}

static struct auth_client *many_client;
static int many_right;

static void *
many(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 10; i++) {
		bool good = i % 3 != 0;
		enum auth_result r = ask(many_client, i % 2 ? "alice" : "bob",
		    good ? (i % 2 ? "alice-password" : "bob-password") : "nope");

		if (r == (good ? AUTH_RESULT_OK : AUTH_RESULT_FAIL))
			__atomic_add_fetch(&many_right, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* A burst far past the helper's rate and queue: every request answered once, never a wrong OK. */
static void
burst(struct auth_client *c)
{
	enum { N = 600 };
	static struct answer a[N];
	int i, ok = 0, fail = 0, temp = 0, wrong = 0, unanswered = 0;

	for (i = 0; i < N; i++) {
		struct answer init = ANSWER_INIT;

		a[i] = init;
		auth_client_check(c, S("alice"), S(i % 2 ? "alice-password" : "bad"), "192.0.2.8", on_answer,
		    &a[i]);
	}
	for (i = 0; i < N; i++) {
		switch (wait_answer(&a[i])) {
		case AUTH_RESULT_OK:
			ok++;
			wrong += i % 2 == 0;
			break;
		case AUTH_RESULT_FAIL:
			fail++;
			wrong += i % 2 == 1;
			break;
		case AUTH_RESULT_TEMPFAIL:
			temp++;
			break;
		default:
			unanswered++;
		}
	}
	printf("# burst of %d: %d ok, %d fail, %d tempfail\n", N, ok, fail, temp);
	CHECK(unanswered == 0 && wrong == 0);
	CHECK(ok > 0 && fail > 0);
	CHECK_MSG(temp > 0, "past the helper's rate (200/s) and queue (256) some get TEMPFAIL");
	usleep(1100000);	/* let the helper's rate bucket fill again */
}

static void
test_client(void)
{
	struct auth_client *c = NULL;
	struct answer pending = ANSWER_INIT, pending2 = ANSWER_INIT;
	pthread_t t[8];
	pid_t worker, sleeper;
	char path[256], got[128] = "";
	long pid, pid2;
	FILE *f;
	int i;

	/* the service is fixed when the helper starts: a path is no service */
	CHECK(auth_client_start(helper, "../postie", true, &c) == ERR_CONFIG && !c);
	CHECK(auth_client_start(helper, "", true, &c) == ERR_CONFIG && !c);
	/* a good password, but the account stack refuses: a locked account */
	CHECK(auth_client_start(helper, "locked", true, &c) == 0 && c);
	if (c) {
		CHECK(ask(c, "locky", "locky-password") == AUTH_RESULT_FAIL);
		CHECK(ask(c, "locky", "wrong") == AUTH_RESULT_FAIL);
		auth_client_stop(c);
	}
	CHECK(auth_client_start(helper, "nosuchservice", true, &c) == 0 && c);
	if (c) {
		CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_FAIL);	/* "other": deny */
		auth_client_stop(c);
	}
	/* PAM_RHOST, PAM_USER and the service reach the modules */
	CHECK(auth_client_start(helper, "rhost", true, &c) == 0 && c);
	if (c) {
		CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_OK);
		auth_client_stop(c);
	}
	snprintf(path, sizeof(path), "%s/rhost.out", dir);
	if ((f = fopen(path, "r"))) {
		if (!fgets(got, sizeof(got), f))
			got[0] = '\0';
		fclose(f);
	}
	CHECK(strcmp(got, "192.0.2.7 alice rhost\n") == 0);

	CHECK(auth_client_start(helper, "postie", true, &c) == 0 && c);
	if (!c)
		return;
	CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_OK);
	CHECK(ask(c, "alice", "wrong") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "alice", "") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "mallory", "x") == AUTH_RESULT_FAIL);	/* unknown user */
	/* refused before the helper: fields no PAM stack can accept */
	CHECK(ask(c, "bad\x01login", "x") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "", "x") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "../alice", "alice-password") == AUTH_RESULT_FAIL);

	/* several at once, from several threads */
	many_client = c;
	for (i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, many, NULL);
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(many_right == 80);
	burst(c);

	/* a PAM worker killed mid-request: that request fails temporarily, the others go on */
	auth_client_check(c, S("slowpoke"), S("x"), "192.0.2.7", on_answer, &pending);
	CHECK(slow_started(&worker, &sleeper));
	CHECK(ask(c, "bob", "bob-password") == AUTH_RESULT_OK);	/* while one worker hangs */
	CHECK(kill(worker, SIGKILL) == 0);
	kill(sleeper, SIGKILL);
	CHECK(wait_answer(&pending) == AUTH_RESULT_TEMPFAIL);
	CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_OK);
	CHECK(ask(c, "alice", "wrong") == AUTH_RESULT_FAIL);

	/* the helper killed with a request pending: TEMPFAIL (never OK), then it is restarted */
	pid = auth_client_helper_pid(c);
	auth_client_check(c, S("slowpoke"), S("x"), "192.0.2.7", on_answer, &pending2);
	CHECK(slow_started(&worker, &sleeper));
	CHECK(pid > 0 && kill((pid_t)pid, SIGKILL) == 0);
	CHECK(wait_answer(&pending2) == AUTH_RESULT_TEMPFAIL);
	kill(sleeper, SIGKILL);
	CHECK_MSG(ends(worker), "its PAM worker died with it");
	for (i = 0; i < WAIT_S * 100 && ((pid2 = auth_client_helper_pid(c)) <= 0 || pid2 == pid); i++) {
		if (i == 0)	/* while it is down, no waiting: an immediate TEMPFAIL */
			CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_TEMPFAIL);
		usleep(10000);
	}
	CHECK(pid2 > 0 && pid2 != pid);
	CHECK(ask(c, "alice", "alice-password") == AUTH_RESULT_OK);
	CHECK(ask(c, "alice", "wrong") == AUTH_RESULT_FAIL);

	/* stop with a request pending: it gets TEMPFAIL, and stop does not wait for PAM */
	{
		struct answer last = ANSWER_INIT;
		struct timespec t0, t1;

		auth_client_check(c, S("slowpoke"), S("x"), "192.0.2.7", on_answer, &last);
		CHECK(slow_started(&worker, &sleeper));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		auth_client_stop(c);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		kill(sleeper, SIGKILL);
		CHECK(last.calls == 1 && last.res == AUTH_RESULT_TEMPFAIL);
		CHECK(t1.tv_sec - t0.tv_sec < 3);
	}
}

/* A dead helper is started again only with the privileges the first one had. */
static void
test_restart_decision(void)
{
	CHECK_MSG(auth_client_may_restart(false, false), "started as an ordinary user: restart, same privileges");
	CHECK_MSG(auth_client_may_restart(true, true), "root and still root (no drop): restart");
	CHECK_MSG(!auth_client_may_restart(true, false), "root, dropped since: no restart without root");
	CHECK(auth_client_may_restart(false, true));
}

/* --- directly on the helper's socket --- */

/* Start the helper with its socket as fd 3 and service as -s (NULL: no -s). */
static pid_t
spawn_helper_for(const char *service, int *fd_out)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		close_range(4, ~0u, 0);
		if (service)
			execl(helper, "postie-auth", "-f", "-t", "1", "-s", service, (char *)NULL);
		else
			execl(helper, "postie-auth", "-f", "-t", "1", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	*fd_out = sv[0];
	return pid;
}

static pid_t
spawn_helper(int *fd_out)
{
	return spawn_helper_for("postie", fd_out);
}

/* A helper started with this -s refuses to run: it exits 2 without reading its socket. */
static bool
refuses_service(const char *service)
{
	int fd, status = 0;
	pid_t pid = spawn_helper_for(service, &fd);

	if (pid < 0)
		return false;
	close(fd);	/* a helper that did start sees EOF and exits 0 */
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 2;
}

/* The exit status of a helper started with -t timeout that sees EOF at once: 0 ran, 2 refused. */
static int
exit_with_timeout(const char *timeout)
{
	int sv[2], status = 0;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		if (dup2(sv[1], 3) < 0)
			_exit(127);
		close_range(4, ~0u, 0);
		execl(helper, "postie-auth", "-f", "-s", "postie", "-t", timeout, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	close(sv[0]);
	if (pid < 0)
		return -1;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* -t: seconds, 1 to WORKER_TIMEOUT_MAX (3600), digits only. */
static void
test_timeout_option(void)
{
	static const char *const bad[] = { "0", "3601", "+5", " 5", "5 ", "5x", "", "-1", "0x10",
	    "18446744073709551617", "99999999999999999999999" };
	size_t i;

	CHECK(exit_with_timeout("1") == 0 && exit_with_timeout("3600") == 0 && exit_with_timeout("0030") == 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_MSG(exit_with_timeout(bad[i]) == 2, bad[i]);
}

/* Read one reply: its result, 0 on EOF, -1 on timeout or garbage. */
static int
read_reply(int fd, uint32_t *id_out)
{
	unsigned char in[64];
	size_t len = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct span body;
		enum auth_result res;
		long n;
		ssize_t r;

		if (poll(&p, 1, WAIT_S * 1000) != 1)
			return -1;
		r = read(fd, in + len, sizeof(in) - len);
		if (r <= 0)
			return r == 0 ? 0 : -1;
		len += (size_t)r;
		n = auth_proto_frame(span_make(in, len), &body);
		if (n < 0)
			return -1;
		if (n > 0)
			return auth_proto_decode_reply(body, id_out, &res) ? -1 : (int)res;
	}
}

/* Send bytes to a fresh helper; it must close the socket and exit with status 1. */
static bool
closes_on(const void *bytes, size_t n)
{
	uint32_t id;
	int fd, status = 0;
	pid_t pid = spawn_helper(&fd);
	bool closed;

	if (pid < 0)
		return false;
	closed = write(fd, bytes, n) == (ssize_t)n && read_reply(fd, &id) == 0;
	close(fd);
	waitpid(pid, &status, 0);
	return closed && WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

static void
test_helper_direct(void)
{
	static unsigned char frame[4 + AUTH_FRAME_MAX + 16];
	struct buf b;
	uint32_t id = 0;
	pid_t pid, worker, sleeper;
	int fd, status = 0;
	size_t n;

	buf_init(&b, 0);
	auth_proto_encode_request(&b, 5, S("postie"), S("192.0.2.1"), S("bob"), S("pw"));
	n = b.len;

	memcpy(frame, b.data, n);
	frame[4] = 2;	/* version */
	CHECK_MSG(closes_on(frame, n), "another version closes the socket");
	memcpy(frame, b.data, n);
	frame[4 + 6 + 1 + 6 + 1 + 9 + 1 + 1] = 0x01;	/* "b\x01b": a control character in the login */
	CHECK_MSG(closes_on(frame, n), "a control character in the login closes the socket");
	memcpy(frame, b.data, n);
	frame[4 + 6 + 1 + 6 + 1 + 9 + 1 + 1] = '/';	/* "b/b": a path in the login */
	CHECK_MSG(closes_on(frame, n), "a '/' in the login closes the socket");
	/* postied cannot choose the PAM stack: another service than -s closes the socket */
	buf_reset(&b);
	auth_proto_encode_request(&b, 6, S("other"), S("192.0.2.1"), S("bob"), S("pw"));
	CHECK(b.len == n - 1);
	CHECK_MSG(closes_on(b.data, b.len), "a request for another PAM service closes the socket");
	buf_reset(&b);
	auth_proto_encode_request(&b, 5, S("postie"), S("192.0.2.1"), S("bob"), S("pw"));
	/* and the service is fixed at start: a path or nothing is refused */
	CHECK_MSG(refuses_service("../../tmp/x") && refuses_service("pam.d/other") && refuses_service("") &&
	    refuses_service(".postie") && refuses_service(NULL), "a bad -s (or none) stops the helper");
	memcpy(frame, b.data, n);
	frame[4 + 6 + 1 + 6 + 1 + 9] = 4;	/* login length one more than there is */
	CHECK_MSG(closes_on(frame, n), "a lying length closes the socket");
	memcpy(frame, "\0\0\xff\xff", 4);
	CHECK_MSG(closes_on(frame, 4), "an impossible frame length closes the socket");
	{
		/* a password of AUTH_PASSWORD_MAX + 1 bytes in an otherwise valid frame */
		size_t body = 6 + 1 + 6 + 1 + 0 + 1 + 3 + 2 + AUTH_PASSWORD_MAX + 1, o = 0;

		frame[o++] = 0;
		frame[o++] = 0;
		frame[o++] = (unsigned char)(body >> 8);
		frame[o++] = (unsigned char)body;
		memcpy(frame + o, "\1Q\0\0\0\1\6postie\0\3bob", 18);
		o += 18;
		frame[o++] = (AUTH_PASSWORD_MAX + 1) >> 8;
		frame[o++] = (AUTH_PASSWORD_MAX + 1) & 255;
		memset(frame + o, 'p', AUTH_PASSWORD_MAX + 1);
		o += AUTH_PASSWORD_MAX + 1;
		CHECK(o == 4 + body);
		CHECK_MSG(closes_on(frame, o), "a password past 1024 bytes closes the socket");
	}

	/* a check that hangs past the timeout (-t 1): TEMPFAIL, and the next one works */
	pid = spawn_helper(&fd);
	buf_reset(&b);
	auth_proto_encode_request(&b, 77, S("postie"), S("192.0.2.1"), S("slowpoke"), S("x"));
	auth_proto_encode_request(&b, 78, S("postie"), S("192.0.2.1"), S("alice"), S("alice-password"));
	CHECK(write(fd, b.data, b.len) == (ssize_t)b.len);
	CHECK(read_reply(fd, &id) == AUTH_RESULT_OK && id == 78);	/* others are not held up */
	CHECK(slow_started(&worker, &sleeper));
	CHECK(read_reply(fd, &id) == AUTH_RESULT_TEMPFAIL && id == 77);
	kill(sleeper, SIGKILL);
	CHECK_MSG(ends(worker), "the stuck worker was killed");
	buf_reset(&b);
	auth_proto_encode_request(&b, 79, S("postie"), S("192.0.2.1"), S("bob"), S("bob-password"));
	CHECK(write(fd, b.data, b.len) == (ssize_t)b.len && read_reply(fd, &id) == AUTH_RESULT_OK && id == 79);
	/* EOF ends it, cleanly */
	close(fd);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	buf_free(&b);
}

int
main(void)
{
	char log[256];
	int saved, logfd;

	log_open("test", true, LOG_LEVEL_CRIT);
	if (access(PAM_WRAPPER_LIB, R_OK) != 0 || access(PAM_MATRIX, R_OK) != 0) {
		printf("ok 1 # SKIP pam_wrapper is not installed (Debian: libpam-wrapper)\n1..1\n");
		return 0;
	}
	if (!setup()) {
		CHECK_MSG(0, "temporary directory");
		return tap_done();
	}
	/* the helpers log to their stderr (-f): keep it, to look for passwords in it */
	snprintf(log, sizeof(log), "%s/helper.log", dir);
	fflush(stderr);
	saved = dup(2);
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd >= 0)
		dup2(logfd, 2);
	test_restart_decision();
	test_client();
	test_helper_direct();
	test_timeout_option();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if (logfd >= 0)
		close(logfd);
	CHECK(testlib_file_contains(log, "event=auth_helper"));	/* it did log: the worker deaths above */
	CHECK_MSG(!testlib_file_contains(log, "alice-password") && !testlib_file_contains(log, "bob-password") &&
	    !testlib_file_contains(log, "wrong"), "no password in the helper's log");
	cleanup();
	return tap_done();
}
