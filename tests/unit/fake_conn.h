/*
 * fake_conn.h: drive a protocol engine without sockets (see fake_conn.c).
 * Part of the unit-test helper library (tests/unit/libtesthelp.a, with
 * testlib.h); linked before server/libserver.a, it stands in for conn.c.
 */
#ifndef POSTIE_FAKE_CONN_H
#define POSTIE_FAKE_CONN_H

#include "server/conn.h"
#include "server/server.h"

/* The server every fake connection points to: a test sets .store (and .queued) as it needs. */
extern struct server fake_server;

void fake_config_init(struct config *cfg);	/* minimal values the engines read */
void fake_conn_init(struct conn *c, struct config *cfg, enum listen_proto proto,
    const struct proto_ops *ops);
void fake_conn_feed(struct conn *c, const void *p, size_t n);
void fake_conn_tls_done(struct conn *c);	/* as if the handshake finished */
void fake_conn_free(struct conn *c);

/*
 * Scripts: a fresh session on c (fake_conn_init, then start) fed input;
 * returns its replies so far. The text returned by fake_conn_run and
 * fake_conn_out is c->out's (never NULL: "" before any reply), valid until
 * the next feed or buf_reset(&c->out).
 */
const char *fake_conn_run(struct conn *c, struct config *cfg, enum listen_proto proto,
    const struct proto_ops *ops, const char *input);
void fake_conn_feed_str(struct conn *c, const char *text);
const char *fake_conn_out(const struct conn *c);

/*
 * Commits are answered from the store's writer thread (worker_post runs
 * the callback there). Wait up to ms milliseconds for the session to
 * resume after a conn_pause, or to ask for its close; true when it did.
 */
bool fake_conn_wait_resumed(struct conn *c, unsigned ms);
bool fake_conn_wait_closing(struct conn *c, unsigned ms);

#endif
