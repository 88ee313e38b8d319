/*
 * tap.h: the unit test harness. Each CHECK() prints one TAP line, so the
 * automake TAP driver counts single checks; tap_done() prints the plan and
 * gives main()'s exit status. Header-only on purpose: one copy per test.
 */
#ifndef POSTIE_TAP_H
#define POSTIE_TAP_H

#include <stdio.h>

static int tap_count, tap_failures;

static inline int
tap_check(int ok, const char *what, const char *file, int line)
{
	tap_count++;
	if (!ok)
		tap_failures++;
	printf("%sok %d - %s:%d ", ok ? "" : "not ", tap_count, file, line);
	/* names may come from test data: keep each result on one TAP line */
	for (; *what; what++)
		putchar((unsigned char)*what < 0x20 || (unsigned char)*what >= 0x7f ? '?' : *what);
	putchar('\n');
	fflush(stdout);
	return ok;
}

/* CHECK(expr): one test point. CHECK_MSG(expr, name): with a readable name. */
#define CHECK(e) tap_check(!!(e), #e, __FILE__, __LINE__)
#define CHECK_MSG(e, name) tap_check(!!(e), (name), __FILE__, __LINE__)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failures ? 1 : 0;
}

#endif
