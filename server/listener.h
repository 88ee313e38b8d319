/*
 * listener.h: listening sockets and the limits checked at accept time.
 *
 * listener_open_all() runs in the main thread before the privilege drop
 * (ports below 1024). Accepting happens on whichever worker epoll wakes
 * (EPOLLEXCLUSIVE); the connection then lives on that worker. The global
 * and per-address connection counts are shared by all workers behind one
 * small mutex, never held across I/O.
 */
#ifndef POSTIE_LISTENER_H
#define POSTIE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/config.h"
#include "worker.h"

struct listener {
	struct ev_handler ev;	/* readiness on fd; must stay first */
	int fd;
	enum listen_proto proto;
	char address[64];
	unsigned port;
};

/*
 * Bind every listener of cfg (non-blocking, close-on-exec, SO_REUSEADDR,
 * IPV6_V6ONLY for IPv6 addresses). On failure everything opened is closed
 * and the error names the address and port. Returns 0, ERR_IO or ERR_PERM.
 */
int listener_open_all(const struct config *cfg, struct listener **out, size_t *n_out);
void listener_close_all(struct listener *l, size_t n);

/*
 * Count a new connection from addr against the limits; false when the
 * server or this address is at its limit. An IPv4 client is counted by its
 * address, an IPv6 client by its /64 (the block one customer controls). Every true must be matched by
 * listener_release(). Any thread.
 */
bool listener_admit(const struct sockaddr_storage *addr, const struct config *cfg);
void listener_release(const struct sockaddr_storage *addr);

/* Connections open now (for stats). Any thread. */
unsigned listener_open_count(void);

#endif
