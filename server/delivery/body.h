/*
 * delivery/body.h: a queued message's content as the outbound side reads
 * it: what the client sends and what a DSN quotes. The store keeps our
 * Return-Path line in front of each body; it is never sent on, so both
 * start at body_content_offset(). Any thread; nothing is kept between calls.
 */
#ifndef POSTIE_DELIVERY_BODY_H
#define POSTIE_DELIVERY_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* A reader of one body, for struct smtpc_msg and struct dsn_info. */
struct body_reader {
	struct store *st;
	uint64_t body_id;
};

/* The read callback over a struct body_reader (arg): store_body_read's codes. */
int body_read(void *arg, uint64_t off, void *buf, size_t n, size_t *got_out);

/* Where the content starts: after our Return-Path line (0 when there is none). */
uint64_t body_content_offset(struct store *st, uint64_t body_id);

/* Does the content from off on carry an 8-bit octet? (Read in pieces; a store error ends the look.) */
bool body_has_8bit(struct store *st, uint64_t body_id, uint64_t off);

#endif
