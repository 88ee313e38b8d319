/*
 * delivery/netio.h: the outbound client's transport: one TCP connection,
 * optionally TLS (through tls.c), with a deadline on every step. It runs on
 * a delivery thread, which may wait in poll(); never on an I/O worker.
 *
 * The client session (client.c) sees it only through struct smtpc_transport,
 * so the session can be driven from scripted bytes in tests and fuzzing.
 */
#ifndef POSTIE_DELIVERY_NETIO_H
#define POSTIE_DELIVERY_NETIO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"

struct tls_conn;
struct tls_creds;

struct netio {
	int fd;
	struct tls_conn *tls;
	char peer[INET6_ADDRSTRLEN + 8];	/* "ip:port", for logs and DSNs */
};

/*
 * Connect to sa within timeout_ms. 0, ERR_TIMEOUT, ERR_IO (refused,
 * unreachable: errno's text is logged by the caller from *why_out).
 */
int netio_connect(struct netio *io, const struct sockaddr *sa, socklen_t len, unsigned timeout_ms,
    const char **why_out);

/*
 * Read what arrives (at most the room left in in, at most one read) by
 * deadline (monotonic ms). 0 (some bytes appended), ERR_CLOSED, ERR_TIMEOUT,
 * ERR_IO, ERR_TLS, ERR_LIMIT (in is full).
 */
int netio_fill(struct netio *io, struct buf *in, uint64_t deadline_ms);

/* Send all n bytes by deadline. 0, ERR_TIMEOUT, ERR_IO, ERR_TLS, ERR_CLOSED. */
int netio_write(struct netio *io, const void *p, size_t n, uint64_t deadline_ms);

/*
 * Run a client TLS handshake (SNI server_name, NULL for none) by deadline.
 * verify_name NULL: opportunistic, any certificate is taken. Otherwise the
 * certificate must chain to creds' trust and name verify_name (see
 * tls_conn_verify); when it does not, ERR_TLS with the reason in why
 * ("certificate signer unknown"...). why is "" after other failures.
 * 0, ERR_TLS, ERR_TIMEOUT, ERR_IO.
 */
int netio_starttls(struct netio *io, struct tls_creds *creds, const char *server_name,
    const char *verify_name, uint64_t deadline_ms, char *why, size_t why_cap);

/* "TLSv1.3" etc., or NULL without TLS. */
const char *netio_tls_version(const struct netio *io);

/* Server stopping: every wait in progress or to come ends at once (ERR_TIMEOUT). Any thread. */
void netio_stop(void);

/* Close (close_notify when TLS is up, without waiting). */
void netio_close(struct netio *io);

#endif
