/*
 * cursor.c: the binary codec (cursor.h). The only place that turns
 * integers into big-endian bytes and back for records and frames; every
 * copy is bounded by the checks right before it.
 */
#include <config.h>

#include <string.h>

#include "core/cursor.h"
#include "core/err.h"
#include "core/compat.h"

void
cursor_reader(struct cursor *c, struct span in)
{
	memset(c, 0, sizeof(*c));
	c->in = in.p;
	c->len = in.len;
	c->is_reader = true;
}

void
cursor_writer(struct cursor *c, void *out, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->out = out;
	c->len = cap;
}

void
cursor_appender(struct cursor *c, struct buf *b)
{
	memset(c, 0, sizeof(*c));
	c->buf = b;
	c->err = b->err;
}

void
cursor_fail(struct cursor *c, int err)
{
	if (!c->err)
		c->err = err;
}

void
cursor_put(struct cursor *c, const void *p, size_t n)
{
	if (c->err)
		return;
	if (c->is_reader) {
		c->err = ERR_STATE;
		return;
	}
	if (c->buf) {
		if ((c->err = buf_append(c->buf, p, n)) == 0)
			c->pos += n;
		return;
	}
	if (n > c->len - c->pos) {
		c->err = ERR_LIMIT;
		return;
	}
	if (c->out && n)
		memcpy(c->out + c->pos, p, n);	/* UNSAFE: n <= len - pos checked above */
	c->pos += n;
}

void
cursor_put_u8(struct cursor *c, uint8_t v)
{
	cursor_put(c, &v, 1);
}

void
cursor_put_u16(struct cursor *c, uint16_t v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	cursor_put(c, b, sizeof(b));
}

void
cursor_put_u32(struct cursor *c, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v };

	cursor_put(c, b, sizeof(b));
}

void
cursor_put_u64(struct cursor *c, uint64_t v)
{
	cursor_put_u32(c, (uint32_t)(v >> 32));
	cursor_put_u32(c, (uint32_t)v);
}

void
cursor_put_str8(struct cursor *c, struct span s)
{
	if (s.len > UINT8_MAX) {
		cursor_fail(c, ERR_LIMIT);
		return;
	}
	cursor_put_u8(c, (uint8_t)s.len);
	cursor_put(c, s.p, s.len);
}

void
cursor_put_str16(struct cursor *c, struct span s)
{
	if (s.len > UINT16_MAX) {
		cursor_fail(c, ERR_LIMIT);
		return;
	}
	cursor_put_u16(c, (uint16_t)s.len);
	cursor_put(c, s.p, s.len);
}

struct span
cursor_get(struct cursor *c, size_t n)
{
	struct span s = { NULL, 0 };

	if (c->err)
		return s;
	if (!c->is_reader) {
		c->err = ERR_STATE;
		return s;
	}
	if (n > c->len - c->pos) {
		c->err = ERR_SYNTAX;
		return s;
	}
	s = span_make(c->in + c->pos, n);
	c->pos += n;
	return s;
}

uint8_t
cursor_get_u8(struct cursor *c)
{
	struct span s = cursor_get(c, 1);

	return s.len ? s.p[0] : 0;
}

uint16_t
cursor_get_u16(struct cursor *c)
{
	struct span s = cursor_get(c, 2);

	return s.len ? (uint16_t)(s.p[0] << 8 | s.p[1]) : 0;
}

uint32_t
cursor_get_u32(struct cursor *c)
{
	struct span s = cursor_get(c, 4);

	return s.len ? (uint32_t)s.p[0] << 24 | (uint32_t)s.p[1] << 16 | (uint32_t)s.p[2] << 8 | s.p[3] : 0;
}

uint64_t
cursor_get_u64(struct cursor *c)
{
	uint64_t hi = cursor_get_u32(c);

	return hi << 32 | cursor_get_u32(c);
}

struct span
cursor_get_str8(struct cursor *c)
{
	size_t n = cursor_get_u8(c);

	return cursor_get(c, n);
}

struct span
cursor_get_str16(struct cursor *c)
{
	size_t n = cursor_get_u16(c);

	return cursor_get(c, n);
}

void
cursor_get_cstr16(struct cursor *c, char *out, size_t cap)
{
	struct span s = cursor_get_str16(c);

	out[0] = '\0';
	if (c->err)
		return;
	if (s.len >= cap) {
		c->err = ERR_SYNTAX;
		return;
	}
	if (s.len)
		memcpy(out, s.p, s.len);	/* UNSAFE: s.len < cap checked above */
	out[s.len] = '\0';
}

int
cursor_end(const struct cursor *c)
{
	if (c->err)
		return c->err;
	return c->is_reader && c->pos != c->len ? ERR_SYNTAX : 0;
}
