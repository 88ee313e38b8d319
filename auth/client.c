#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/client.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "core/compat.h"

#define RESTART_BACKOFF_MAX 30	/* seconds between attempts to restart a dead helper */

struct slot {
	bool used;
	uint32_t id;
	auth_done_fn done;
	void *arg;
};

struct auth_client {
	char *helper;
	char *service;		/* the PAM service, given to the helper at exec (-s) */
	bool foreground;
	pthread_mutex_t lock;	/* everything below; never held while calling done */
	int fd;			/* -1 while the helper is down */
	pid_t pid;
	uint32_t next_id;
	size_t npending;	/* slots in use */
	struct slot slots[AUTH_CLIENT_PENDING_MAX];	/* request id % max -> its slot */
	pthread_t reader;
	bool stopping;
	int wake[2];		/* stop wakes the reader out of its wait */
	bool started_as_root;	/* the first helper ran as root */
	bool lost;		/* the helper died and must not be restarted (auth_client_may_restart) */
	void (*on_lost)(void);	/* see auth_client_set_on_lost() */
};

bool
auth_client_may_restart(bool started_as_root, bool is_root_now)
{
	/* a helper started by this process now has the privileges the first one had, or none were lost */
	return !started_as_root || is_root_now;
}

static int
spawn(struct auth_client *c)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return ERR_IO;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return ERR_IO;
	}
	if (pid == 0) {
		char *argv[5] = { (char *)(uintptr_t)"postie-auth", (char *)(uintptr_t)"-s", c->service, NULL, NULL };
		sigset_t none;

		/*
		 * A fresh program with the socket as fd 3 and nothing else
		 * inherited (0-2 stay: the helper points 0 and 1 at /dev/null and
		 * logs to 2 with -f). Only async-signal-safe calls: postied has
		 * threads. dup2 onto itself keeps FD_CLOEXEC, so clear it then.
		 */
		if (sv[1] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(sv[1], 3) < 0)
			_exit(127);
		close_range(4, ~0u, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (c->foreground)
			argv[3] = (char *)(uintptr_t)"-f";
		execv(c->helper, argv);
		_exit(127);
	}
	close(sv[1]);
	c->fd = sv[0];
	c->pid = pid;
	return 0;
}

/* Answer every pending request with TEMPFAIL (the helper went away). */
static void
fail_all(struct auth_client *c)
{
	struct slot failed[AUTH_CLIENT_PENDING_MAX];
	size_t i, n = 0;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < AUTH_CLIENT_PENDING_MAX; i++) {
		if (c->slots[i].used) {
			failed[n++] = c->slots[i];
			c->slots[i].used = false;
		}
	}
	c->npending = 0;
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++)
		failed[i].done(failed[i].arg, AUTH_RESULT_TEMPFAIL);
}

static void
deliver_reply(struct auth_client *c, uint32_t id, enum auth_result res)
{
	struct slot *s = &c->slots[id % AUTH_CLIENT_PENDING_MAX];
	auth_done_fn done = NULL;
	void *arg = NULL;

	pthread_mutex_lock(&c->lock);
	if (s->used && s->id == id) {
		done = s->done;
		arg = s->arg;
		s->used = false;
		c->npending--;
	}
	pthread_mutex_unlock(&c->lock);
	if (done)
		done(arg, res);
	else
		log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"reply for an unknown request %u\"", id);
}

/* Sleep up to seconds, waking early when stopping. */
static void
nap(struct auth_client *c, unsigned seconds)
{
	struct pollfd p = { .fd = c->wake[0], .events = POLLIN };

	poll(&p, 1, (int)seconds * 1000);
}

/* What the reader thread keeps between reads: bytes of a reply not yet complete, and the restart pace. */
struct reader {
	unsigned char in[4096];
	size_t inlen;
	unsigned backoff;	/* seconds before the next restart of a dead helper */
};

/* The helper is down: wait, then start a new one (unless lost); false when the thread should end. */
static bool
restart_helper(struct auth_client *c, struct reader *rd, bool stopping)
{
	bool lost;

	if (stopping)
		return false;
	pthread_mutex_lock(&c->lock);
	lost = c->lost;
	pthread_mutex_unlock(&c->lock);
	if (lost) {	/* postied is stopping: wait for auth_client_stop() */
		nap(c, RESTART_BACKOFF_MAX);
		return true;
	}
	nap(c, rd->backoff);
	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	if (spawn(c) == 0) {
		log_msg(LOG_LEVEL_NOTICE, "event=auth_helper action=restarted pid=%ld%s", (long)c->pid,
		    geteuid() ? " note=\"without root: PAM modules that need it will refuse\"" : "");
		rd->inlen = 0;
	}
	pthread_mutex_unlock(&c->lock);
	rd->backoff = rd->backoff * 2 > RESTART_BACKOFF_MAX ? RESTART_BACKOFF_MAX : rd->backoff * 2;
	return true;
}

/* The helper's socket closed: reap it, fail all pending, and call on_lost if it can't come back with root. */
static void
helper_gone(struct auth_client *c, struct reader *rd)
{
	bool stopping;
	int status = 0;
	pid_t pid;

	pthread_mutex_lock(&c->lock);
	close(c->fd);
	c->fd = -1;	/* from now on, new requests get TEMPFAIL at once */
	pid = c->pid;
	stopping = c->stopping;
	pthread_mutex_unlock(&c->lock);
	/* only this thread spawns, so pid stays ours; the helper may still be ending */
	waitpid(pid, &status, 0);
	if (!stopping)
		log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"postie-auth exited (status %d); pending logins get a temporary failure\"",
		    status);
	fail_all(c);
	rd->inlen = 0;
	if (!stopping && !auth_client_may_restart(c->started_as_root, geteuid() == 0)) {
		void (*on_lost)(void);

		pthread_mutex_lock(&c->lock);
		on_lost = c->on_lost;
		c->lost = on_lost != NULL;
		pthread_mutex_unlock(&c->lock);
		if (on_lost) {
			log_msg(LOG_LEVEL_CRIT, "event=auth_helper action=exit reason=\"postie-auth ran as root and postied no longer has root to start it again (PAM modules such as pam_unix would refuse every login); stopping so that the service manager starts postied again as root\"");
			on_lost();
		}
	}
}

/* Hand each complete reply to its request (done runs unlocked); a malformed one kills the helper. */
static void
route_replies(struct auth_client *c, struct reader *rd)
{
	for (;;) {
		struct span body;
		long n = auth_proto_frame(span_make(rd->in, rd->inlen), &body);
		uint32_t id;
		enum auth_result res;

		if (n == 0)
			break;
		if (n < 0 || auth_proto_decode_reply(body, &id, &res)) {
			log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"malformed reply; restarting it\"");
			pthread_mutex_lock(&c->lock);
			kill(c->pid, SIGKILL);
			pthread_mutex_unlock(&c->lock);
			rd->inlen = 0;
			break;
		}
		deliver_reply(c, id, res);
		memmove(rd->in, rd->in + n, rd->inlen - (size_t)n);
		rd->inlen -= (size_t)n;
		rd->backoff = 1;
	}
}

/* The reader thread: read the helper's replies, restart it when it dies, until stopped. */
static void *
reader_main(void *arg)
{
	struct auth_client *c = arg;
	struct reader rd = { .inlen = 0, .backoff = 1 };

	for (;;) {
		bool stopping;
		int fd;
		ssize_t r;

		pthread_mutex_lock(&c->lock);
		fd = c->fd;
		stopping = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (fd < 0) {
			if (!restart_helper(c, &rd, stopping))
				return NULL;
			continue;
		}
		r = read(fd, rd.in + rd.inlen, sizeof(rd.in) - rd.inlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			helper_gone(c, &rd);
			continue;
		}
		rd.inlen += (size_t)r;
		route_replies(c, &rd);
	}
}

int
auth_client_start(const char *helper_path, const char *service, bool foreground, struct auth_client **out)
{
	struct auth_client *c;
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!auth_proto_valid_service(span_cstr(service))) {
		log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"auth.pam_service must be 1 to %d of a-z 0-9 . _ - and not start with a dot\"",
		    AUTH_SERVICE_MAX);
		return ERR_CONFIG;
	}
	c = xcalloc(1, sizeof(*c));
	c->helper = xstrdup(helper_path);
	c->service = xstrdup(service);
	c->foreground = foreground;
	c->started_as_root = geteuid() == 0;
	c->fd = -1;
	c->next_id = 1;
	pthread_mutex_init(&c->lock, NULL);
	if (access(helper_path, X_OK) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=auth_helper path=\"%s\" error=\"%s\"", helper_path, strerror(errno));
		goto fail;
	}
	if (pipe2(c->wake, O_CLOEXEC) < 0 || spawn(c)) {
		log_msg(LOG_LEVEL_ERR, "event=auth_helper path=\"%s\" error=\"cannot start: %s\"", helper_path,
		    strerror(errno));
		goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->reader, NULL, reader_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		log_msg(LOG_LEVEL_ERR, "event=thread_create what=auth_reader error=\"%s\"", strerror(rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->fd >= 0) {
		close(c->fd);
		waitpid(c->pid, NULL, 0);
	}
	free(c->helper);
	free(c->service);
	free(c);
	return ERR_IO;
}

void
auth_client_set_on_lost(struct auth_client *c, void (*on_lost)(void))
{
	pthread_mutex_lock(&c->lock);
	c->on_lost = on_lost;
	pthread_mutex_unlock(&c->lock);
}

void
auth_client_stop(struct auth_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);	/* the helper sees EOF and exits; the reader sees EOF */
	pthread_mutex_unlock(&c->lock);
	if (write(c->wake[1], "x", 1) < 0)
		(void)0;	/* the reader also wakes on its own timeout */
	pthread_join(c->reader, NULL);
	fail_all(c);
	close(c->wake[0]);
	close(c->wake[1]);
	pthread_mutex_destroy(&c->lock);
	free(c->helper);
	free(c->service);
	free(c);
}

void
auth_client_check(struct auth_client *c, struct span login, struct span password, const char *rhost,
    auth_done_fn done, void *arg)
{
	struct slot *s;
	struct buf frame;
	ssize_t w;
	uint32_t id;

	buf_init(&frame, AUTH_FRAME_MAX + 4);
	frame.secret = true;
	pthread_mutex_lock(&c->lock);
	if (c->fd < 0 || c->npending == AUTH_CLIENT_PENDING_MAX) {
		pthread_mutex_unlock(&c->lock);
		buf_free(&frame);
		done(arg, AUTH_RESULT_TEMPFAIL);
		return;
	}
	/* a free slot exists (npending < max): ids skip the ones whose slot is busy */
	do
		id = c->next_id++;
	while (c->slots[id % AUTH_CLIENT_PENDING_MAX].used);
	if (auth_proto_encode_request(&frame, id, span_cstr(c->service), span_cstr(rhost), login, password)) {
		pthread_mutex_unlock(&c->lock);
		buf_free(&frame);
		done(arg, AUTH_RESULT_FAIL);	/* a login no PAM stack can accept */
		return;
	}
	s = &c->slots[id % AUTH_CLIENT_PENDING_MAX];
	c->npending++;
	s->used = true;
	s->id = id;
	s->done = done;
	s->arg = arg;
	/* never block a worker: a helper that stopped reading is a broken helper */
	w = send(c->fd, frame.data, frame.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w != (ssize_t)frame.len) {
		s->used = false;
		c->npending--;
		if (w > 0) {
			log_msg(LOG_LEVEL_ERR, "event=auth_helper error=\"helper not reading; restarting it\"");
			kill(c->pid, SIGKILL);
		}
		pthread_mutex_unlock(&c->lock);
		buf_free(&frame);
		done(arg, AUTH_RESULT_TEMPFAIL);
		return;
	}
	pthread_mutex_unlock(&c->lock);
	buf_free(&frame);
}

long
auth_client_helper_pid(struct auth_client *c)
{
	long pid;

	pthread_mutex_lock(&c->lock);
	pid = c->fd >= 0 ? (long)c->pid : 0;
	pthread_mutex_unlock(&c->lock);
	return pid;
}
