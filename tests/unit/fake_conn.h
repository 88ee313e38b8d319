/* fake_conn.h: drive a protocol engine without sockets (see fake_conn.c). */
#ifndef POSTIE_FAKE_CONN_H
#define POSTIE_FAKE_CONN_H

#include "server/conn.h"

void fake_config_init(struct config *cfg);	/* minimal values the engines read */
void fake_conn_init(struct conn *c, struct config *cfg, enum listen_proto proto,
    const struct proto_ops *ops);
void fake_conn_feed(struct conn *c, const void *p, size_t n);
void fake_conn_tls_done(struct conn *c);	/* as if the handshake finished */
void fake_conn_free(struct conn *c);

#endif
