#include <config.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "core/compat.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_free(struct buf *b)
{
	if (b->data && b->secret)
		explicit_bzero(b->data, b->cap + 1);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void
buf_reset(struct buf *b)
{
	if (b->data && b->secret)
		explicit_bzero(b->data, b->len);
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Grow so that len + n bytes fit; keeps one spare byte for the NUL. */
static int
grow(struct buf *b, size_t n)
{
	size_t need, cap;
	unsigned char *p;

	if (b->err)
		return b->err;
	if (n > SIZE_MAX / 2 - b->len || (b->max && b->len + n > b->max)) {
		b->err = ERR_LIMIT;
		return b->err;
	}
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if (b->max && cap > b->max)
		cap = b->max;
	if (b->secret) {
		/* never leave a copy of a secret in freed memory */
		p = xmalloc(cap + 1);
		if (b->data) {
			memcpy(p, b->data, b->len);
			explicit_bzero(b->data, b->cap + 1);
			free(b->data);
		}
	} else {
		p = xrealloc(b->data, cap + 1);
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int rc = grow(b, n);
	if (rc || n == 0)
		return rc;
	memcpy(b->data + b->len, p, n);	/* UNSAFE: grow() made room for n + NUL */
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append_span(struct buf *b, struct span s)
{
	return buf_append(b, s.p, s.len);
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	if (b->err)
		return b->err;
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->err = ERR_SYNTAX;
		return b->err;
	}
	if (grow(b, (size_t)n))
		return b->err;
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);	/* UNSAFE: room for n + NUL */
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

unsigned char *
buf_reserve(struct buf *b, size_t n)
{
	if (grow(b, n))
		return NULL;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t k)
{
	ASSERT(b->data && k <= b->cap - b->len);
	b->len += k;
	b->data[b->len] = '\0';
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	/* UNSAFE: n < len, so the moved range lies inside the buffer */
	memmove(b->data, b->data + n, b->len - n);
	if (b->secret)
		explicit_bzero(b->data + b->len - n, n);
	b->len -= n;
	b->data[b->len] = '\0';
}
