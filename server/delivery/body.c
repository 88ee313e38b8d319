/*
 * body.c: reading a queued message's content for the client and for DSNs,
 * our Return-Path line skipped.
 */
#include "config.h"

#include <string.h>

#include "server/delivery/body.h"
#include "storage/store.h"
#include "core/compat.h"

/* The Return-Path line the store keeps in front of a message is at most this long. */
#define RETURN_PATH_MAX (STORE_ADDRESS_MAX + 32)

int
body_read(void *arg, uint64_t off, void *buf, size_t n, size_t *got_out)
{
	struct body_reader *b = arg;

	return store_body_read(b->st, b->body_id, off, buf, n, got_out);
}

uint64_t
body_content_offset(struct store *st, uint64_t body_id)
{
	unsigned char head[RETURN_PATH_MAX];
	size_t got = 0, i;

	if (store_body_read(st, body_id, 0, head, sizeof(head), &got) || got < 14 ||
	    memcmp(head, "Return-Path: <", 14))
		return 0;
	for (i = 14; i + 1 < got; i++)
		if (head[i] == '\r' && head[i + 1] == '\n')
			return i + 2;
	return 0;
}

bool
body_has_8bit(struct store *st, uint64_t body_id, uint64_t off)
{
	static __thread unsigned char piece[STORE_CHUNK_MAX];
	size_t got, i;

	while (store_body_read(st, body_id, off, piece, sizeof(piece), &got) == 0 && got) {
		for (i = 0; i < got; i++)
			if (piece[i] & 0x80)
				return true;
		off += got;
	}
	return false;
}
