/*
 * buf.h: the one growable byte buffer of the project.
 *
 * A buf grows up to max bytes (0 = no limit, only for trusted data). The
 * first failure is kept in err and later appends do nothing, so a builder
 * checks once at the end. A NUL is kept after len for convenience, but len
 * is the truth. A buf flagged secret is wiped with explicit_bzero() before
 * its memory is released. Not thread-safe: one owner at a time.
 */
#ifndef POSTIE_BUF_H
#define POSTIE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

struct buf {
	unsigned char *data;	/* NULL until the first append */
	size_t len;		/* bytes in use */
	size_t cap;		/* bytes allocated (excluding the NUL slot) */
	size_t max;		/* allowed limit of len; 0 = unlimited */
	int err;		/* first error: 0, ERR_LIMIT */
	bool secret;		/* wipe on free, shrink and consume */
};

/* An empty buffer limited to max bytes. */
void buf_init(struct buf *b, size_t max);

/* Release memory (wiping it if secret); b is empty and reusable after. */
void buf_free(struct buf *b);

/* Empty b, keeping its memory and limit. Does not clear err. */
void buf_reset(struct buf *b);

/* Append bytes. Returns 0 or ERR_LIMIT (also kept in b->err). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_span(struct buf *b, struct span s);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Make room for n more bytes; returns a pointer to them or NULL (ERR_LIMIT). */
unsigned char *buf_reserve(struct buf *b, size_t n);
/* After writing k <= n bytes into buf_reserve()'s area, count them in. */
void buf_commit(struct buf *b, size_t k);

/* Remove the first n bytes (n clamped to len). */
void buf_consume(struct buf *b, size_t n);

/* The whole content as a span, valid until the next change to b. */
static inline struct span
buf_span(const struct buf *b)
{
	return span_make(b->data, b->len);
}

/* Bytes that can still be appended before max is reached. */
static inline size_t
buf_room(const struct buf *b)
{
	return b->max ? b->max - b->len : (size_t)-1 / 2;
}

#endif
