#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "server.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "listener.h"
#include "tls.h"
#include "core/compat.h"

/* A connection told to close waits this long for its last reply to drain. */
#define CONN_FLUSH_DEADLINE_MS 10000

static uint32_t sid_next;
static int sid_seeded;

static void conn_event(struct ev_handler *h, uint32_t events);
static void service(struct conn *c);
static void resume_post(void *arg);
static void flush(struct conn *c);

static void
make_sid(struct conn *c)
{
	uint32_t v;

	if (!__atomic_exchange_n(&sid_seeded, 1, __ATOMIC_ACQ_REL)) {
		uint32_t seed = 0;
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
			seed = (uint32_t)clock_now_ms();
		__atomic_store_n(&sid_next, seed, __ATOMIC_RELEASE);
	}
	/* unique per process: a counter from a random start, so ids differ across restarts */
	v = __atomic_fetch_add(&sid_next, 1, __ATOMIC_RELAXED);
	snprintf(c->sid, sizeof(c->sid), "%08x", v);
}

/*
 * A TLS read that GnuTLS could not finish without writing (the answer to a
 * peer's TLS 1.3 key update): with no output of ours queued, nothing but
 * calling the read again sends those bytes, so the read is retried when the
 * socket is writable. With output queued, flush() writes and GnuTLS sends
 * its pending bytes first.
 */
static bool
read_wants_write(const struct conn *c)
{
	return c->tls_want_write && !c->out.len;
}

/* Register exactly the events this connection can act on now (level-triggered). */
static void
update_interest(struct conn *c)
{
	uint32_t want = 0;

	if (c->closed)
		return;
	if (c->tls_state == CONN_TLS_HANDSHAKE) {
		want |= c->tls_want_write ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
	} else {
		/* read only what the protocol can take: not while it waits, not while
		 * a client that does not read has CONN_OUT_HIGH bytes of replies queued */
		if (!c->paused && !c->close_after_flush && !c->read_eof &&
		    c->tls_state != CONN_TLS_PENDING && buf_room(&c->in) > 0 &&
		    c->out.len < CONN_OUT_HIGH)
			want |= read_wants_write(c) ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
		/* with nothing queued, a want-write is the read's: asked for above, only
		 * while a read can follow, so a paused session cannot spin on EPOLLOUT */
		if (c->out.len)
			want |= EPOLLOUT;
	}
	if (want != c->events) {
		if (worker_rewatch(c->worker, c->fd, want, &c->ev) == 0)
			c->events = want;
	}
}

static void
on_cmd_timer(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, cmd_timer));

	if (c->close_after_flush) {
		conn_close(c, "flush_timeout");
		return;
	}
	log_msg(LOG_LEVEL_INFO, "sid=%s event=timeout which=command ip=%s", c->sid, c->ip);
	conn_ref(c);
	c->ops->timeout(c, CONN_TIMEOUT_COMMAND);
	conn_close_after_flush(c);
	conn_unref(c);
}

static void
on_session_timer(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, session_timer));

	log_msg(LOG_LEVEL_INFO, "sid=%s event=timeout which=session ip=%s", c->sid, c->ip);
	conn_ref(c);
	c->ops->timeout(c, CONN_TIMEOUT_SESSION);
	conn_close_after_flush(c);
	conn_unref(c);
}

static void
on_tls_timer(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, tls_timer));

	log_msg(LOG_LEVEL_INFO, "sid=%s event=timeout which=tls_handshake ip=%s", c->sid, c->ip);
	conn_close(c, "tls_handshake_timeout");
}

static void
start_handshake(struct conn *c, struct tls_creds *creds)
{
	int rc = tls_conn_new_server(creds, c->fd, &c->tls);

	tls_creds_unref(creds);
	if (rc) {
		conn_close(c, "tls_setup_failed");
		return;
	}
	c->tls_state = CONN_TLS_HANDSHAKE;
	worker_timer_set(c->worker, &c->tls_timer,
	    (uint64_t)c->cfg->limits.tls_handshake_timeout * 1000);
}

/* Step the handshake; on success hand over to the protocol. */
static void
step_handshake(struct conn *c)
{
	int rc = tls_handshake(c->tls);

	c->tls_want_write = rc == TLS_WANT_WRITE;
	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE)
		return;
	if (rc) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=tls result=fail ip=%s", c->sid, c->ip);
		conn_close(c, "tls_handshake_failed");
		return;
	}
	worker_timer_cancel(c->worker, &c->tls_timer);
	c->tls_state = CONN_TLS_ON;
	log_msg(LOG_LEVEL_INFO, "sid=%s event=tls result=ok version=%s cipher=%s resumed=%s",
	    c->sid, tls_conn_version(c->tls), tls_conn_cipher(c->tls),
	    tls_conn_resumed(c->tls) ? "yes" : "no");
	conn_touch(c);
	if (c->tls_implicit)
		c->ops->start(c);
	else
		c->ops->tls_ready(c);
}

void
conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer,
    enum listen_proto proto, struct config *cfg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->ev.fn = conn_event;
	c->fd = fd;
	c->worker = w;
	c->proto = proto;
	c->srv = worker_server(w);
	c->ops = c->srv->protos[proto];
	c->cfg = cfg;
	c->peer = *peer;
	c->refs = 1;	/* dropped by conn_close() */
	c->started_ms = clock_now_ms();
	make_sid(c);
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
		inet_ntop(AF_INET, &in->sin_addr, c->ip, sizeof(c->ip));
		c->port = ntohs(in->sin_port);
		c->is_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
		inet_ntop(AF_INET6, &in6->sin6_addr, c->ip, sizeof(c->ip));
		c->port = ntohs(in6->sin6_port);
		c->is_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	buf_init(&c->in, CONN_INPUT_MAX);
	buf_init(&c->out, cfg->limits.output_buffer_max);
	c->cmd_timer.fn = on_cmd_timer;
	c->session_timer.fn = on_session_timer;
	c->tls_timer.fn = on_tls_timer;
	worker_conn_added(w, c);
	c->events = EPOLLIN | EPOLLRDHUP;
	if (worker_watch(w, fd, c->events, &c->ev)) {
		c->events = 0;
		conn_close(c, "epoll");
		return;
	}
	log_msg(LOG_LEVEL_INFO, "sid=%s event=connect proto=%s ip=%s port=%u",
	    c->sid, config_proto_name(proto), c->ip, c->port);
	c->session = c->ops->create(c);
	worker_timer_set(w, &c->session_timer, (uint64_t)cfg->limits.session_timeout * 1000);
	conn_set_cmd_timeout(c, cfg->limits.preauth_idle_timeout < cfg->limits.command_timeout
	    ? cfg->limits.preauth_idle_timeout : cfg->limits.command_timeout);

	if (proto == LISTEN_SUBMISSIONS || proto == LISTEN_POP3S) {
		struct tls_creds *creds = tls_creds_current();

		c->tls_implicit = true;
		if (!creds) {
			conn_close(c, "no_tls_credentials");
			return;
		}
		start_handshake(c, creds);
		update_interest(c);
		return;
	}
	c->ops->start(c);
	update_interest(c);
}

void
conn_consume(struct conn *c, size_t n)
{
	buf_consume(&c->in, n);
}

size_t
conn_out_pending(const struct conn *c)
{
	return c->out.len;
}

void
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->closed || c->tls_state == CONN_TLS_HANDSHAKE)
		return;
	if (buf_append(&c->out, p, n)) {
		unsigned suppressed;
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 5);

		if (log_ratelimit_ok(&rl, &suppressed))
			log_msg(LOG_LEVEL_WARN, "sid=%s event=limit limit=output_buffer ip=%s suppressed=%u",
			    c->sid, c->ip, suppressed);
		conn_close(c, "output_buffer_full");
		return;
	}
	if (!c->in_callback)
		flush(c);
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* replies are built from short fixed texts; a cut one is our bug */
	ASSERT(n >= 0 && (size_t)n < sizeof(line));
	conn_write(c, line, (size_t)n);
}

/* Send what is queued. Runs the after-drain steps (close, STARTTLS, back-pressure). */
static void
flush(struct conn *c)
{
	while (c->out.len && !c->closed) {
		ssize_t n;

		if (c->tls) {
			n = tls_write(c->tls, c->out.data, c->out.len);
			c->tls_want_write = n == TLS_WANT_WRITE;
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE)
				break;
			if (n < 0) {
				conn_close(c, "tls_write_error");
				return;
			}
		} else {
			n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				conn_close(c, errno == EPIPE || errno == ECONNRESET ? "client_reset" : "write_error");
				return;
			}
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (c->closed)
		return;
	if (!c->out.len) {
		buf_free(&c->out);	/* nor output memory */
		if (c->close_after_flush) {
			conn_close(c, "done");
			return;
		}
		if (c->tls_state == CONN_TLS_PENDING) {
			struct tls_creds *creds = c->tls_creds;

			c->tls_creds = NULL;
			start_handshake(c, creds);
			if (!c->closed)
				step_handshake(c);
		} else if (c->ops->drained && !c->paused) {
			c->ops->drained(c);
		}
	}
	update_interest(c);
}

/*
 * Read what the socket has into c->in: >0 bytes, 0 nothing now, <0 closed
 * or failed. Reads go through a per-thread scratch area and only the bytes
 * received are kept, so ten thousand idle connections hold no read buffers.
 */
static ssize_t
read_some(struct conn *c)
{
	static __thread unsigned char scratch[CONN_READ_CHUNK];
	size_t room = buf_room(&c->in);
	ssize_t n;

	if (room > sizeof(scratch))
		room = sizeof(scratch);
	if (!room)
		return 0;
	if (c->tls) {
		n = tls_read(c->tls, scratch, room);
		/* whatever a read returns ends an earlier wait of the read for the socket */
		c->tls_want_write = n == TLS_WANT_WRITE;
		if (n == TLS_WANT_READ || n == TLS_WANT_WRITE)
			return 0;
		if (n < 0)
			return n == ERR_CLOSED ? ERR_CLOSED : ERR_TLS;
	} else {
		n = recv(c->fd, scratch, room, 0);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : ERR_IO;
		if (n == 0)
			return ERR_CLOSED;
	}
	/* cannot fail: n <= room */
	buf_append(&c->in, scratch, (size_t)n);
	return n;
}

/* Whether buffered input may go to the protocol now. */
static bool
can_process(const struct conn *c)
{
	return c->in.len && !c->closed && !c->paused && c->tls_state != CONN_TLS_PENDING &&
	    c->tls_state != CONN_TLS_HANDSHAKE && !c->close_after_flush;
}

/*
 * Feed the protocol what is buffered, reading more while it can take it.
 * Bounded: at most a few reads per call, so one client cannot starve others.
 */
static void
service(struct conn *c)
{
	int rounds;

	conn_ref(c);
	c->in_callback = true;
	/* what is already buffered first, then read and hand over each piece read */
	if (can_process(c))
		c->ops->input(c);
	for (rounds = 0; rounds < 4 && !c->closed; rounds++) {
		ssize_t n;

		if (c->closed || c->paused || c->close_after_flush || c->out.len >= CONN_OUT_HIGH ||
		    c->tls_state == CONN_TLS_PENDING || c->tls_state == CONN_TLS_HANDSHAKE)
			break;
		n = read_some(c);
		if (n < 0) {
			c->read_eof = true;
			conn_close(c, n == ERR_CLOSED ? "client_closed" : n == ERR_TLS ? "tls_error" : "read_error");
			break;
		}
		if (n == 0 && !(c->tls && tls_pending(c->tls)))
			break;
		if (can_process(c))
			c->ops->input(c);
	}
	/*
	 * epoll cannot see records GnuTLS already decrypted and holds: when the
	 * round limit stopped us with some pending, come back through the loop.
	 */
	if (!c->closed && !c->paused && c->tls_state == CONN_TLS_ON && tls_pending(c->tls) &&
	    buf_room(&c->in) > 0)
		worker_post(c->worker, resume_post, conn_ref(c));
	c->in_callback = false;
	if (!c->closed) {
		if (!c->in.len)
			buf_free(&c->in);	/* idle connections keep no input memory */
		flush(c);
	}
	conn_unref(c);
}

static void
conn_event(struct ev_handler *h, uint32_t events)
{
	struct conn *c = (struct conn *)h;

	if (c->closed)
		return;
	/* a reset or error is reported whatever we asked for: do not spin on it */
	if ((events & (EPOLLERR | EPOLLHUP)) && !(c->events & EPOLLIN)) {
		conn_close(c, "client_reset");
		return;
	}
	conn_ref(c);
	if (c->tls_state == CONN_TLS_HANDSHAKE) {
		step_handshake(c);
		/* a client may pipeline its first command with the handshake's end */
		if (!c->closed && c->tls_state == CONN_TLS_ON)
			service(c);
	} else {
		/* writable with nothing queued: the wake is for a read that wanted to write */
		bool retry_read = (events & EPOLLOUT) && read_wants_write(c);

		if ((events & EPOLLOUT) && c->out.len)
			flush(c);
		if (!c->closed && (retry_read || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))))
			service(c);
	}
	if (!c->closed)
		update_interest(c);
	conn_unref(c);
}

void
conn_close_after_flush(struct conn *c)
{
	if (c->closed || c->close_after_flush)
		return;
	c->close_after_flush = true;
	worker_timer_set(c->worker, &c->cmd_timer, CONN_FLUSH_DEADLINE_MS);
	if (!c->in_callback)
		flush(c);
	else
		update_interest(c);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = true;
	log_msg(LOG_LEVEL_INFO, "sid=%s event=disconnect reason=%s ip=%s duration_ms=%llu",
	    c->sid, reason, c->ip, (unsigned long long)(clock_now_ms() - c->started_ms));
	worker_timer_cancel(c->worker, &c->cmd_timer);
	worker_timer_cancel(c->worker, &c->session_timer);
	worker_timer_cancel(c->worker, &c->tls_timer);
	if (c->events)
		worker_unwatch(c->worker, c->fd);
	if (c->tls) {
		if (c->tls_state == CONN_TLS_ON)
			tls_bye(c->tls);
		tls_conn_free(c->tls);
		c->tls = NULL;
	}
	if (c->tls_creds) {
		tls_creds_unref(c->tls_creds);
		c->tls_creds = NULL;
	}
	close(c->fd);
	c->fd = -1;
	listener_release(&c->peer);
	worker_conn_removed(c->worker, c);
	conn_unref(c);	/* the reference the open connection held */
}

int
conn_starttls(struct conn *c)
{
	struct tls_creds *creds = tls_creds_current();

	if (!creds)
		return ERR_TLS;
	/* CVE-2011-0411 class: whatever the client pipelined after the command is dropped */
	buf_reset(&c->in);
	c->tls_creds = creds;
	c->tls_state = CONN_TLS_PENDING;
	if (!c->in_callback)
		flush(c);
	else
		update_interest(c);
	return 0;
}

const char *
conn_tls_version(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_conn_version(c->tls) : NULL;
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_conn_cipher(c->tls) : NULL;
}

void
conn_pause(struct conn *c)
{
	c->paused = true;
	worker_timer_cancel(c->worker, &c->cmd_timer);
	update_interest(c);
}

static void
resume_post(void *arg)
{
	struct conn *c = arg;

	if (!c->closed && !c->paused)
		service(c);
	conn_unref(c);
}

void
conn_resume(struct conn *c)
{
	if (c->closed || !c->paused)
		return;
	c->paused = false;
	conn_touch(c);
	if (c->shutdown_pending) {
		conn_shutdown(c);
		return;
	}
	/* go through the loop, so a resume from inside a callback cannot recurse */
	worker_post(c->worker, resume_post, conn_ref(c));
	update_interest(c);
}

void
conn_resume_input(struct conn *c)
{
	if (!c->closed)
		worker_post(c->worker, resume_post, conn_ref(c));
}

void
conn_touch(struct conn *c)
{
	if (c->closed || c->close_after_flush || c->paused)
		return;
	worker_timer_set(c->worker, &c->cmd_timer, c->cmd_timeout_ms);
}

void
conn_set_cmd_timeout(struct conn *c, unsigned seconds)
{
	c->cmd_timeout_ms = (uint64_t)seconds * 1000;
	conn_touch(c);
}

struct conn *
conn_ref(struct conn *c)
{
	c->refs++;
	return c;
}

void
conn_unref(struct conn *c)
{
	ASSERT(c->refs > 0);
	if (--c->refs)
		return;
	ASSERT(c->closed);
	if (c->session)
		c->ops->destroy(c);
	buf_free(&c->in);
	buf_free(&c->out);
	config_unref(c->cfg);
	free(c);
}

void
conn_shutdown(struct conn *c)
{
	if (c->closed || c->close_after_flush)
		return;
	if (c->paused) {
		/* a message is being committed: answer it first, then say goodbye */
		c->shutdown_pending = true;
		return;
	}
	if (c->tls_state == CONN_TLS_HANDSHAKE || c->tls_state == CONN_TLS_PENDING) {
		conn_close(c, "shutdown");
		return;
	}
	c->ops->shutdown(c);
	conn_close_after_flush(c);
}
