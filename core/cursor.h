/*
 * cursor.h: the one binary codec of the project. Fixed-width big-endian
 * integers (u8, u16, u32, u64), raw bytes and length-prefixed strings (u8
 * or u16 length), read or written with every bound checked. The helper
 * protocol (auth/proto.c) and every stored record (storage/) are encoded
 * and decoded with it, so no code counts offsets by hand.
 *
 * The first error sticks: every later call does nothing (a get returns 0
 * or an empty span), so an encoder or a decoder makes all its calls and
 * checks once at the end. A decoder that finds a value it refuses (a bad
 * flag, a string that fails its check) records that with cursor_fail() and
 * still checks once.
 *
 * Three ways to set one up:
 *   reader    cursor_reader(&c, span)      gets; past the end: ERR_SYNTAX
 *   writer    cursor_writer(&c, area, cap) puts into a fixed area; past cap:
 *             ERR_LIMIT. A NULL area only counts: cursor_len() is then the
 *             size the same puts need (a frame's length before its body)
 *   appender  cursor_appender(&c, buf)     puts at the end of a buf, up to its
 *             max: ERR_LIMIT (and the buf keeps its own err as ever)
 *
 * A cursor borrows its bytes: a reader's spans point into the input and
 * live as long as it does. Not thread-safe; a cursor lives on one stack.
 */
#ifndef POSTIE_CURSOR_H
#define POSTIE_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/span.h"

struct cursor {
	const unsigned char *in;	/* reader: the input */
	unsigned char *out;		/* writer: the area (NULL: count only) */
	struct buf *buf;		/* appender: the buffer */
	size_t len;			/* reader, writer: bytes of input / of the area */
	size_t pos;			/* bytes read or written so far */
	int err;			/* the first error: 0, ERR_SYNTAX, ERR_LIMIT, or cursor_fail's */
	bool is_reader;
};

void cursor_reader(struct cursor *c, struct span in);
void cursor_writer(struct cursor *c, void *out, size_t cap);
/* Starts with b's err, so a buf that already failed fails the encoding too. */
void cursor_appender(struct cursor *c, struct buf *b);

/* Record err (negative) unless an error is already there. */
void cursor_fail(struct cursor *c, int err);

/*
 * Puts. A string longer than its prefix can say (255 for str8, 65535 for
 * str16) is ERR_LIMIT, and nothing of it is written.
 */
void cursor_put(struct cursor *c, const void *p, size_t n);
void cursor_put_u8(struct cursor *c, uint8_t v);
void cursor_put_u16(struct cursor *c, uint16_t v);
void cursor_put_u32(struct cursor *c, uint32_t v);
void cursor_put_u64(struct cursor *c, uint64_t v);
void cursor_put_str8(struct cursor *c, struct span s);	/* [len u8][bytes] */
void cursor_put_str16(struct cursor *c, struct span s);	/* [len u16][bytes] */

/* Gets (readers only). Spans point into the reader's input. */
struct span cursor_get(struct cursor *c, size_t n);
uint8_t cursor_get_u8(struct cursor *c);
uint16_t cursor_get_u16(struct cursor *c);
uint32_t cursor_get_u32(struct cursor *c);
uint64_t cursor_get_u64(struct cursor *c);
struct span cursor_get_str8(struct cursor *c);
struct span cursor_get_str16(struct cursor *c);
/*
 * A str16 copied into out as a C string: it must leave room for the NUL
 * (length < cap), else ERR_SYNTAX. out is "" after any error.
 */
void cursor_get_cstr16(struct cursor *c, char *out, size_t cap);

/* Bytes read or written (appended) so far. */
static inline size_t
cursor_len(const struct cursor *c)
{
	return c->pos;
}

/* Bytes a reader has not read yet (0 after an error). */
static inline size_t
cursor_left(const struct cursor *c)
{
	return c->err || !c->is_reader ? 0 : c->len - c->pos;
}

/*
 * The one check at the end: the first error, or for a reader ERR_SYNTAX
 * when input is left over (a record or a frame is consumed exactly).
 */
int cursor_end(const struct cursor *c);

#endif
