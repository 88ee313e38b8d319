/*
 * server.h: what postied's modules share: the store, opened once by main
 * after the privilege drop and closed after the workers have stopped.
 * Read-only after start-up; the store itself is safe from any thread.
 */
#ifndef POSTIE_SERVER_H
#define POSTIE_SERVER_H

struct store;

extern struct store *server_store;

#endif
