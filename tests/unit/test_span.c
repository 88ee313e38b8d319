#include "config.h"

#include <stdint.h>

#include "core/span.h"
#include "tap.h"

static bool
num(const char *s, uint64_t max, uint64_t *out)
{
	return span_to_u64(span_cstr(s), max, out);
}

static void
test_to_u64(void)
{
	uint64_t v = 7;

	CHECK(num("0", 10, &v) && v == 0);
	CHECK(num("10", 10, &v) && v == 10);		/* exactly the limit */
	v = 7;
	CHECK(!num("11", 10, &v) && v == 7);		/* one past it: refused, out untouched */
	CHECK(num("0010", 10, &v) && v == 10);		/* leading zeros are digits */
	CHECK(!num("", UINT64_MAX, &v));
	CHECK(!num("1 ", UINT64_MAX, &v) && !num(" 1", UINT64_MAX, &v) && !num("+1", UINT64_MAX, &v));
	CHECK(!num("-1", UINT64_MAX, &v) && !num("1a", UINT64_MAX, &v) && !num("0x1", UINT64_MAX, &v));
	CHECK(num("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
	CHECK(!num("18446744073709551616", UINT64_MAX, &v));	/* 2^64: overflow is "above max" */
	CHECK(!num("99999999999999999999999", UINT64_MAX, &v));
	CHECK(num("4294967295", UINT32_MAX, &v) && v == UINT32_MAX);
	CHECK(!num("4294967296", UINT32_MAX, &v));
	CHECK(!num("1", 0, &v) && num("0", 0, &v) && v == 0);
}

static void
test_split(void)
{
	struct span head, rest;

	span_split(span_cstr("MAIL FROM:<a@b> SIZE=1"), ' ', &head, &rest);
	CHECK(span_eq(head, "MAIL") && span_eq(rest, "FROM:<a@b> SIZE=1"));
	span_split(span_cstr("QUIT"), ' ', &head, &rest);
	CHECK(span_eq(head, "QUIT") && rest.len == 0);
	span_split(span_cstr("NOOP "), ' ', &head, &rest);	/* a trailing space: an empty argument */
	CHECK(span_eq(head, "NOOP") && rest.len == 0);
	span_split(span_cstr(" x"), ' ', &head, &rest);
	CHECK(head.len == 0 && span_eq(rest, "x"));
	span_split(span_make("", 0), ' ', &head, &rest);
	CHECK(head.len == 0 && rest.len == 0);
}

int
main(void)
{
	test_to_u64();
	test_split();
	return tap_done();
}
