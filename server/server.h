/*
 * server.h: what postied's modules share: the store, opened once by main
 * after the privilege drop and closed after the workers have stopped.
 * Read-only after start-up; the store itself is safe from any thread.
 */
#ifndef POSTIE_SERVER_H
#define POSTIE_SERVER_H

struct store;
struct auth_client;

extern struct store *server_store;
extern struct auth_client *server_auth;	/* the PAM helper's client */
/* Called after a commit that queued outbound mail (the queue runner's kick); NULL = none. */
extern void (*server_queued)(void);

#endif
