/*
 * span.h: a borrowed, read-only view of bytes. Parsers take spans, never
 * NUL-terminated strings that came off the network. A span does not own
 * its bytes; its lifetime is that of the buffer it points into, which the
 * function handing it out documents.
 */
#ifndef POSTIE_SPAN_H
#define POSTIE_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

struct span {
	const unsigned char *p;
	size_t len;
};

static inline struct span
span_make(const void *p, size_t len)
{
	struct span s = { (const unsigned char *)p, len };
	return s;
}

static inline struct span
span_cstr(const char *s)
{
	return span_make(s, strlen(s));
}

/* Exact, case-sensitive comparison with a C string. */
static inline bool
span_eq(struct span s, const char *c)
{
	size_t n = strlen(c);
	return s.len == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

/* ASCII case-insensitive comparison with a C string. */
static inline bool
span_ieq(struct span s, const char *c)
{
	size_t n = strlen(c);
	return s.len == n && (n == 0 || strncasecmp((const char *)s.p, c, n) == 0);
}

/* The first n bytes (n is clamped to the length). */
static inline struct span
span_head(struct span s, size_t n)
{
	if (n > s.len)
		n = s.len;
	return span_make(s.p, n);
}

/* Everything after the first n bytes (empty if n >= length). */
static inline struct span
span_tail(struct span s, size_t n)
{
	if (n >= s.len)
		return span_make(s.p + s.len, 0);
	return span_make(s.p + n, s.len - n);
}

/* Index of the first byte c, or -1 (as ptrdiff-like long). */
static inline long
span_find(struct span s, unsigned char c)
{
	const unsigned char *q = s.len ? memchr(s.p, c, s.len) : NULL;
	return q ? (long)(q - s.p) : -1;
}

#endif
