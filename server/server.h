/*
 * server.h: the process-wide objects postied's modules share, in one
 * struct that main fills and every connection points to (c->srv), instead
 * of globals. Filled in start-up order (the protocols, the PAM helper's
 * client, the store after the privilege drop, the queue kick once the
 * runner runs) before any worker starts; read-only while workers run;
 * cleared only after they have stopped. The objects themselves are safe to
 * use from any thread (storage/store.h, auth/client.h).
 */
#ifndef POSTIE_SERVER_H
#define POSTIE_SERVER_H

#include "core/config.h"

struct store;
struct auth_client;
struct proto_ops;

struct server {
	const struct proto_ops *protos[LISTEN_PROTO_COUNT];	/* the engine of each kind of listener */
	struct store *store;
	struct auth_client *auth;	/* the PAM helper's client */
	/* called after a commit that queued outbound mail (the queue runner's kick); NULL = none */
	void (*queued)(void);
};

/* The protocol registry: srv's engines set, everything else NULL. */
void server_init(struct server *srv);

#endif
