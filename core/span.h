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
#include <stdint.h>
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

/*
 * The decimal number s spells, if it is one: digits only (at least one), and
 * at most max. Anything above max, an overflow of 64 bits included, is
 * refused the same way, so a caller's limit is the only rule. The one
 * number parser for every protocol, the configuration and the client.
 */
static inline bool
span_to_u64(struct span s, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (!s.len)
		return false;
	for (i = 0; i < s.len; i++) {
		unsigned d = (unsigned)s.p[i] - '0';

		if (d > 9 || d > max || n > (max - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = n;
	return true;
}

/*
 * Split s at its first byte c: *head gets what precedes it, *rest what
 * follows it (empty when c does not occur, and then *head is all of s).
 * The one verb/argument splitter: split(line, ' ', &verb, &arg).
 */
static inline void
span_split(struct span s, unsigned char c, struct span *head, struct span *rest)
{
	long at = span_find(s, c);

	if (at < 0) {
		*head = s;
		*rest = span_make(s.p + s.len, 0);
	} else {
		*head = span_head(s, (size_t)at);
		*rest = span_tail(s, (size_t)at + 1);
	}
}

#endif
