/*
 * netio.c: a blocking-with-deadlines transport for the outbound client.
 * The socket is non-blocking; each step waits in poll() for the readiness
 * GnuTLS or the kernel asked for, up to the step's deadline, so a remote
 * that stops answering costs one delivery thread at most its timeout.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "server/delivery/netio.h"
#include "server/tls.h"
#include "core/compat.h"

/* Waits are cut into slices this long so a stopping server is noticed. */
#define WAIT_SLICE_MS 200

static bool stopping;

void
netio_stop(void)
{
	__atomic_store_n(&stopping, true, __ATOMIC_RELEASE);
}

/* Wait until fd is ready for events or the deadline passes. 0 or ERR_TIMEOUT / ERR_IO. */
static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = { fd, events, 0 };
		uint64_t now = clock_now_ms();
		int n;

		if (now >= deadline_ms || __atomic_load_n(&stopping, __ATOMIC_ACQUIRE))
			return ERR_TIMEOUT;
		n = poll(&p, 1, (int)(deadline_ms - now > WAIT_SLICE_MS ? WAIT_SLICE_MS : deadline_ms - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return ERR_IO;
	}
}

int
netio_connect(struct netio *io, const struct sockaddr *sa, socklen_t len, unsigned timeout_ms,
    const char **why_out)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	socklen_t elen = sizeof(int);
	int one = 1, err = 0, rc;

	io->tls = NULL;
	*why_out = NULL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	}
	snprintf(io->peer, sizeof(io->peer), "%s%s%s:%u", sa->sa_family == AF_INET6 ? "[" : "", ip,
	    sa->sa_family == AF_INET6 ? "]" : "", port);
	io->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (io->fd < 0) {
		*why_out = strerror(errno);
		return ERR_IO;
	}
	/* commands and replies are small: no Nagle delay on a pipelined group */
	setsockopt(io->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(io->fd, sa, len) < 0 && errno != EINPROGRESS) {
		err = errno;
		goto fail;
	}
	if ((rc = wait_fd(io->fd, POLLOUT, clock_now_ms() + timeout_ms))) {
		close(io->fd);
		io->fd = -1;
		*why_out = rc == ERR_TIMEOUT ? "connection timed out" : strerror(errno);
		return rc;
	}
	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err)
		goto fail;
	return 0;
fail:
	close(io->fd);
	io->fd = -1;
	*why_out = strerror(err);
	return ERR_IO;
}

int
netio_fill(struct netio *io, struct buf *in, uint64_t deadline_ms)
{
	for (;;) {
		size_t room = buf_room(in) < 16384 ? buf_room(in) : 16384;
		unsigned char *p;
		ssize_t n;
		short want = POLLIN;
		int rc;

		if (!room || !(p = buf_reserve(in, room)))
			return ERR_LIMIT;
		if (io->tls) {
			n = tls_read(io->tls, p, room);
			if (n > 0) {
				buf_commit(in, (size_t)n);
				return 0;
			}
			if (n == ERR_CLOSED || n == ERR_TLS)
				return (int)n;
			want = n == TLS_WANT_WRITE ? POLLOUT : POLLIN;
		} else {
			n = read(io->fd, p, room);
			if (n > 0) {
				buf_commit(in, (size_t)n);
				return 0;
			}
			if (n == 0)
				return ERR_CLOSED;
			if (errno != EAGAIN && errno != EINTR)
				return errno == ECONNRESET ? ERR_CLOSED : ERR_IO;
		}
		if ((rc = wait_fd(io->fd, want, deadline_ms)))
			return rc;
	}
}

int
netio_write(struct netio *io, const void *p, size_t n, uint64_t deadline_ms)
{
	const unsigned char *at = p;

	while (n) {
		ssize_t k;
		short want = POLLOUT;
		int rc;

		if (io->tls) {
			k = tls_write(io->tls, at, n);
			if (k == ERR_TLS || k == ERR_CLOSED)
				return (int)k;
			if (k == TLS_WANT_READ)
				want = POLLIN;
		} else {
			k = send(io->fd, at, n, MSG_NOSIGNAL);
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				return errno == EPIPE || errno == ECONNRESET ? ERR_CLOSED : ERR_IO;
		}
		if (k > 0) {
			at += k;
			n -= (size_t)k;
			continue;
		}
		if ((rc = wait_fd(io->fd, want, deadline_ms)))
			return rc;
	}
	return 0;
}

int
netio_starttls(struct netio *io, struct tls_creds *creds, const char *server_name, const char *verify_name,
    uint64_t deadline_ms, char *why, size_t why_cap)
{
	int rc;

	if (why_cap)
		why[0] = '\0';
	if (tls_conn_new_client(creds, io->fd, server_name, &io->tls))
		return ERR_TLS;
	if (verify_name && tls_conn_verify(io->tls, verify_name)) {
		snprintf(why, why_cap, "name to verify too long");
		rc = ERR_TLS;
		goto fail;
	}
	for (;;) {
		rc = tls_handshake(io->tls);
		if (rc == 0)
			return 0;
		if (rc != TLS_WANT_READ && rc != TLS_WANT_WRITE)
			break;
		if ((rc = wait_fd(io->fd, rc == TLS_WANT_READ ? POLLIN : POLLOUT, deadline_ms)))
			break;
	}
	if (verify_name && why_cap)
		tls_conn_verify_failure(io->tls, why, why_cap);
fail:
	tls_conn_free(io->tls);
	io->tls = NULL;
	return rc == ERR_TIMEOUT ? ERR_TIMEOUT : ERR_TLS;
}

const char *
netio_tls_version(const struct netio *io)
{
	return io->tls ? tls_conn_version(io->tls) : NULL;
}

void
netio_close(struct netio *io)
{
	if (io->tls) {
		tls_bye(io->tls);
		tls_conn_free(io->tls);
		io->tls = NULL;
	}
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}
