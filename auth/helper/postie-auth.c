/*
 * postie-auth: the privileged PAM helper. postied starts it (fork + exec)
 * before dropping root, with one socket as fd 3; it keeps root because
 * pam_unix needs /etc/shadow, and it does nothing but answer "is this
 * login/password good" on that socket, for the one PAM service it was
 * started with.
 *
 * The main process never calls PAM: it checks every request, rate-limits,
 * and hands each to one of a few worker processes (PAM modules block for
 * seconds on failure and are not all thread-safe, so processes, not
 * threads). A worker that dies, or does not answer within the timeout,
 * answers TEMPFAIL for the request it held (never a success) and is
 * replaced. Workers die with the main process (PR_SET_PDEATHSIG). The
 * helper exits when postied closes the socket.
 *
 *   postie-auth -s SERVICE [-f] [-t SECONDS]
 *     -s  the PAM service (a file in /etc/pam.d: auth_proto_valid_service()),
 *         fixed for the helper's life. postied, which the helper must assume
 *         compromised, names the service in each request too; a request
 *         naming another one closes the socket like any malformed request,
 *         so postied cannot pick a stack that lets everyone in.
 *     -f  log to stderr rather than syslog
 *     -t  seconds a PAM check may take before its worker is killed
 *         (default WORKER_TIMEOUT_DEFAULT; tests use 1)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/proto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/compat.h"

#define SERVER_FD 3
#define WORKERS_MAX 8		/* PAM checks running at once */
#define QUEUE_MAX 256		/* requests waiting for a worker; more get TEMPFAIL */
#define RATE_PER_SECOND 200	/* attempts accepted per second, burst as large */
#define INBUF_MAX (64 * 1024)	/* bytes read ahead from postied: many whole frames */
/*
 * A PAM check that has not answered after this long is stuck (a module
 * waiting on a dead LDAP server): its worker is killed and the request gets
 * TEMPFAIL, so stuck modules cannot take the whole pool. Network-backed
 * modules time out well before this on their own.
 */
#define WORKER_TIMEOUT_DEFAULT 30
#define WORKER_TIMEOUT_MAX 3600
#define WORKER_START_MS 10000	/* a PAM stack that takes longer to load is broken */

struct worker {
	pid_t pid;
	int fd;			/* -1 = no process */
	bool busy;
	uint32_t id;		/* the request it holds */
	struct timespec started;	/* when it got that request */
	unsigned char reply[16];
	size_t nreply;
};

struct pending {
	unsigned char frame[AUTH_FRAME_MAX + 4];
	size_t len;
	uint32_t id;
};

static struct worker workers[WORKERS_MAX];
static struct pending queue[QUEUE_MAX];
static unsigned char inbuf[INBUF_MAX];	/* frames from postied not yet queued */
static size_t qhead, qlen;
static double tokens = RATE_PER_SECOND;
static struct timespec last_refill;
static unsigned worker_timeout = WORKER_TIMEOUT_DEFAULT;
static const char *service;	/* -s: the only PAM service this helper uses */

/* --- the PAM side, in a worker process --- */

struct creds {
	const char *login, *password;
};

static int
conversation(int n, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	const struct creds *cr = appdata;
	struct pam_response *r;
	int i;

	if (n <= 0 || n > 32)
		return PAM_CONV_ERR;
	r = calloc((size_t)n, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		/* prompts get the password (no echo) or the login (echo); texts are ignored */
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
			r[i].resp = strdup(cr->password);
		else if (msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup(cr->login);
		if ((msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) &&
		    !r[i].resp) {
			for (; i >= 0; i--) {
				if (r[i].resp)
					explicit_bzero(r[i].resp, strlen(r[i].resp));
				free(r[i].resp);
			}
			free(r);
			return PAM_BUF_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

/* postied delays failed answers itself, without holding a PAM process for it */
static void
no_delay(int retval, unsigned usec, void *appdata)
{
	(void)retval;
	(void)usec;
	(void)appdata;
}

static enum auth_result
check(const char *rhost, const char *login, const char *password)
{
	struct creds cr = { login, password };
	struct pam_conv conv = { conversation, &cr };
	pam_handle_t *h = NULL;
	int rc;

	rc = pam_start(service, login, &conv, &h);
	if (rc != PAM_SUCCESS)
		return AUTH_RESULT_TEMPFAIL;
	pam_set_item(h, PAM_FAIL_DELAY, (const void *)no_delay);
	if (*rhost)
		pam_set_item(h, PAM_RHOST, rhost);
	rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);	/* locked, expired */
	pam_end(h, rc);
	switch (rc) {
	case PAM_SUCCESS:
		return AUTH_RESULT_OK;
	case PAM_AUTH_ERR:
	case PAM_USER_UNKNOWN:
	case PAM_MAXTRIES:
	case PAM_ACCT_EXPIRED:
	case PAM_NEW_AUTHTOK_REQD:
	case PAM_PERM_DENIED:
	case PAM_CRED_INSUFFICIENT:
		return AUTH_RESULT_FAIL;
	default:
		return AUTH_RESULT_TEMPFAIL;	/* PAM_AUTHINFO_UNAVAIL, PAM_SYSTEM_ERR ... */
	}
}

static bool
read_full(int fd, void *p, size_t n)
{
	unsigned char *q = p;

	while (n) {
		ssize_t r = read(fd, q, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		q += r;
		n -= (size_t)r;
	}
	return true;
}

static bool
write_full(int fd, const void *p, size_t n)
{
	const unsigned char *q = p;

	while (n) {
		ssize_t r = write(fd, q, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		q += r;
		n -= (size_t)r;
	}
	return true;
}

static void
span_to_str(char *out, struct span s)
{
	memcpy(out, s.p, s.len);
	out[s.len] = '\0';
}

/* A worker process: one request at a time from its socket, until it closes. */
static void __attribute__((noreturn))
worker_main(int fd)
{
	static unsigned char frame[AUTH_FRAME_MAX + 4];
	char rhost[AUTH_RHOST_MAX + 1];
	char login[AUTH_LOGIN_MAX + 1], password[AUTH_PASSWORD_MAX + 1];
	struct creds none = { "", "" };
	struct pam_conv conv = { conversation, &none };
	pam_handle_t *h = NULL;

	/* load the PAM stack once before the first request, then say so: workers
	   start one after another (PAM wrappers and modules that set up per-process
	   state at first use need not be safe against a start at the same moment) */
	if (pam_start(service, NULL, &conv, &h) == PAM_SUCCESS)
		pam_end(h, PAM_SUCCESS);
	if (!write_full(fd, "R", 1))
		exit(0);

	for (;;) {
		struct auth_request req;
		struct span body;
		unsigned char lenb[4];
		uint32_t len;
		struct buf out;
		enum auth_result res;

		/* exit(), not _exit(): PAM modules and test wrappers clean up in their destructors */
		if (!read_full(fd, lenb, 4))
			exit(0);
		len = (uint32_t)lenb[0] << 24 | (uint32_t)lenb[1] << 16 | (uint32_t)lenb[2] << 8 | lenb[3];
		if (len > AUTH_FRAME_MAX)
			_exit(1);
		memcpy(frame, lenb, 4);
		if (!read_full(fd, frame + 4, len))
			_exit(1);
		body = span_make(frame + 4, len);
		if (auth_proto_decode_request(body, &req) || !span_eq(req.service, service))
			_exit(1);	/* the parent checked it: this cannot happen */
		span_to_str(rhost, req.rhost);
		span_to_str(login, req.login);
		span_to_str(password, req.password);
		explicit_bzero(frame, sizeof(frame));
		res = check(rhost, login, password);
		explicit_bzero(password, sizeof(password));
		buf_init(&out, 64);
		auth_proto_encode_reply(&out, req.id, res);
		if (!write_full(fd, out.data, out.len))
			exit(0);
		buf_free(&out);
	}
}

/* --- the main process --- */

static bool
spawn(struct worker *w)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	if (pid == 0) {
		int i;

		/* a worker must not outlive the main process that holds its answer */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(0);
		close(sv[0]);
		close(SERVER_FD);
		for (i = 0; i < WORKERS_MAX; i++)
			if (workers[i].fd >= 0)
				close(workers[i].fd);
		/* a worker sees only its own requests' passwords */
		explicit_bzero(queue, sizeof(queue));
		explicit_bzero(inbuf, sizeof(inbuf));
		worker_main(sv[1]);
	}
	close(sv[1]);
	w->pid = pid;
	w->fd = sv[0];
	w->busy = false;
	w->nreply = 0;
	/* wait (bounded) for the worker's "ready" before starting another */
	{
		struct pollfd p = { .fd = w->fd, .events = POLLIN };
		char ready;

		if (poll(&p, 1, WORKER_START_MS) != 1 || read(w->fd, &ready, 1) != 1 || ready != 'R') {
			kill(pid, SIGKILL);
			close(w->fd);
			w->fd = -1;
			waitpid(pid, NULL, 0);
			return false;
		}
	}
	return true;
}

/* End a worker (dead, stuck or confused): it is spawned again when needed. */
static void
reap(struct worker *w)
{
	int status = 0;

	kill(w->pid, SIGKILL);	/* it may still be alive: waitpid must not wait on a stuck module */
	close(w->fd);
	w->fd = -1;
	waitpid(w->pid, &status, 0);
	w->nreply = 0;
}

static void
reply(uint32_t id, enum auth_result res)
{
	struct buf out;

	buf_init(&out, 64);
	auth_proto_encode_reply(&out, id, res);
	if (!write_full(SERVER_FD, out.data, out.len)) {
		buf_free(&out);
		exit(0);	/* postied is gone */
	}
	buf_free(&out);
}

static double
seconds_since(const struct timespec *then, const struct timespec *now)
{
	return (double)(now->tv_sec - then->tv_sec) + (double)(now->tv_nsec - then->tv_nsec) / 1e9;
}

/* Rate limit: a token bucket refilled with the clock. */
static bool
take_token(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	tokens += seconds_since(&last_refill, &now) * RATE_PER_SECOND;
	last_refill = now;
	if (tokens > RATE_PER_SECOND)
		tokens = RATE_PER_SECOND;
	if (tokens < 1)
		return false;
	tokens -= 1;
	return true;
}

/* Give queued requests to idle workers (spawning up to the pool size). */
static void
dispatch(void)
{
	int i;

	for (i = 0; i < WORKERS_MAX && qlen; i++) {
		struct worker *w = &workers[i];
		struct pending *p = &queue[qhead];

		if (w->busy)
			continue;
		if (w->fd < 0 && !spawn(w)) {
			log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"cannot start a PAM worker: %s\"", strerror(errno));
			continue;
		}
		if (!write_full(w->fd, p->frame, p->len)) {
			reap(w);
			continue;
		}
		w->busy = true;
		w->id = p->id;
		clock_gettime(CLOCK_MONOTONIC, &w->started);
		explicit_bzero(p->frame, p->len);
		qhead = (qhead + 1) % QUEUE_MAX;
		qlen--;
	}
}

/* A request arrived from postied: check it, then queue it or refuse it. */
static void
accept_request(struct span frame, struct span body)
{
	struct auth_request req;
	struct pending *p;

	if (auth_proto_decode_request(body, &req)) {
		log_msg(LOG_LEVEL_CRIT, "event=auth_helper error=\"malformed request, closing\"");
		exit(1);
	}
	if (!span_eq(req.service, service)) {
		/* postied cannot choose the PAM stack: it is compromised or confused */
		log_msg(LOG_LEVEL_CRIT, "event=auth_helper error=\"request for another PAM service, closing\"");
		exit(1);
	}
	if (!take_token() || qlen == QUEUE_MAX) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 3);
		unsigned suppressed;

		if (log_ratelimit_ok(&rl, &suppressed))
			log_msg(LOG_LEVEL_WARN, "event=auth_helper result=tempfail reason=%s suppressed=%u",
			    qlen == QUEUE_MAX ? "queue_full" : "rate_limit", suppressed);
		reply(req.id, AUTH_RESULT_TEMPFAIL);
		return;
	}
	p = &queue[(qhead + qlen) % QUEUE_MAX];
	memcpy(p->frame, frame.p, frame.len);
	p->len = frame.len;
	p->id = req.id;
	qlen++;
}

/* A worker's socket is readable: its answer, or its death. */
static void
worker_event(struct worker *w)
{
	ssize_t r = read(w->fd, w->reply + w->nreply, sizeof(w->reply) - w->nreply);
	struct span body;
	uint32_t id;
	enum auth_result res;
	long n;

	if (r < 0 && errno == EINTR)
		return;
	if (r <= 0) {
		log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"PAM worker %ld died\"", (long)w->pid);
		reap(w);
		if (w->busy)
			reply(w->id, AUTH_RESULT_TEMPFAIL);	/* never a success */
		w->busy = false;
		return;
	}
	w->nreply += (size_t)r;
	n = auth_proto_frame(span_make(w->reply, w->nreply), &body);
	if (n == 0 && w->nreply < sizeof(w->reply))
		return;
	if (n <= 0 || auth_proto_decode_reply(body, &id, &res) || !w->busy || id != w->id ||
	    (size_t)n != w->nreply) {
		/* a confused worker is replaced; what it said does not count */
		log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"PAM worker %ld sent a malformed answer\"", (long)w->pid);
		reap(w);
		if (w->busy)
			reply(w->id, AUTH_RESULT_TEMPFAIL);
		w->busy = false;
		return;
	}
	reply(id, res);
	w->busy = false;
	w->nreply = 0;
}

/* Kill workers past the timeout; returns the poll timeout (ms) until the next one is due. */
static int
check_timeouts(void)
{
	struct timespec now;
	double next = -1;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < WORKERS_MAX; i++) {
		struct worker *w = &workers[i];
		double left;

		if (w->fd < 0 || !w->busy)
			continue;
		left = worker_timeout - seconds_since(&w->started, &now);
		if (left <= 0) {
			log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"PAM check took more than %u s; worker %ld killed\"",
			    worker_timeout, (long)w->pid);
			reap(w);
			reply(w->id, AUTH_RESULT_TEMPFAIL);
			w->busy = false;
			continue;
		}
		if (next < 0 || left < next)
			next = left;
	}
	return next < 0 ? -1 : (int)(next * 1000) + 1;
}

static bool
parse_args(int argc, char **argv, bool *foreground_out)
{
	int i;

	*foreground_out = false;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0) {
			*foreground_out = true;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			service = argv[++i];
			if (!auth_proto_valid_service(span_cstr(service)))
				return false;
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			uint64_t v;

			if (!span_to_u64(span_cstr(argv[++i]), WORKER_TIMEOUT_MAX, &v) || v < 1)
				return false;
			worker_timeout = (unsigned)v;
		} else {
			return false;
		}
	}
	return service != NULL;	/* no default: postied says which one, once */
}

int
main(int argc, char **argv)
{
	unsigned char *in = inbuf;
	size_t inlen = 0;
	struct stat sb;
	bool foreground;
	int i, devnull;

	if (!parse_args(argc, argv, &foreground)) {
		fprintf(stderr, "usage: postie-auth -s SERVICE [-f] [-t SECONDS]\n"
		    "  SERVICE: 1 to %d of a-z 0-9 . _ - (a file in /etc/pam.d), not starting with a dot\n",
		    AUTH_SERVICE_MAX);
		return 2;
	}
	log_open("postie-auth", foreground, LOG_LEVEL_INFO);
	if (fstat(SERVER_FD, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
		fprintf(stderr, "postie-auth: started by postied only (needs its socket as fd 3)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (devnull > SERVER_FD)
			close(devnull);
	}
	for (i = 0; i < WORKERS_MAX; i++)
		workers[i].fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &last_refill);

	for (;;) {
		struct pollfd pfd[WORKERS_MAX + 1];
		int map[WORKERS_MAX + 1], n = 0, j, timeout;

		timeout = check_timeouts();
		pfd[n].fd = SERVER_FD;
		pfd[n].events = POLLIN;
		map[n++] = -1;
		for (i = 0; i < WORKERS_MAX; i++) {
			if (workers[i].fd >= 0) {
				pfd[n].fd = workers[i].fd;
				pfd[n].events = POLLIN;
				map[n++] = i;
			}
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (j = 1; j < n; j++)
			if (pfd[j].revents && workers[map[j]].fd == pfd[j].fd)
				worker_event(&workers[map[j]]);
		if (pfd[0].revents) {
			ssize_t r = read(SERVER_FD, in + inlen, INBUF_MAX - inlen);
			struct span body;
			long fl;

			if (r <= 0 && !(r < 0 && errno == EINTR))
				break;	/* postied closed the socket: we are done */
			inlen += r > 0 ? (size_t)r : 0;
			while ((fl = auth_proto_frame(span_make(in, inlen), &body)) > 0) {
				accept_request(span_make(in, (size_t)fl), body);
				explicit_bzero(in, (size_t)fl);
				memmove(in, in + fl, inlen - (size_t)fl);
				inlen -= (size_t)fl;
			}
			if (fl < 0) {
				log_msg(LOG_LEVEL_CRIT, "event=auth_helper error=\"malformed frame, closing\"");
				return 1;
			}
		}
		dispatch();
	}
	/* nobody is left to answer: stop the checks in progress now */
	for (i = 0; i < WORKERS_MAX; i++)
		if (workers[i].fd >= 0)
			reap(&workers[i]);
	explicit_bzero(inbuf, sizeof(inbuf));
	explicit_bzero(queue, sizeof(queue));
	return 0;
}
