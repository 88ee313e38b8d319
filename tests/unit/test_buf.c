#include "config.h"

#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "tap.h"

static void
test_limits(void)
{
	struct buf b;

	buf_init(&b, 8);
	CHECK(buf_append_str(&b, "12345678") == 0);	/* exactly at the limit */
	CHECK(b.len == 8 && b.data[8] == '\0');
	CHECK(buf_append(&b, "9", 1) == ERR_LIMIT);	/* one past it */
	CHECK(b.err == ERR_LIMIT && b.len == 8);
	CHECK(buf_append(&b, "", 0) == ERR_LIMIT);	/* the first error sticks */
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.err == 0);
}

static void
test_printf_consume(void)
{
	struct buf b;

	buf_init(&b, 0);
	CHECK(buf_printf(&b, "%s=%d", "x", 42) == 0);
	CHECK(span_eq(buf_span(&b), "x=42"));
	buf_consume(&b, 2);
	CHECK(span_eq(buf_span(&b), "42"));
	buf_consume(&b, 10);
	CHECK(b.len == 0);
	buf_free(&b);
	buf_init(&b, 4);
	CHECK(buf_printf(&b, "%d", 12345) == ERR_LIMIT);
	buf_free(&b);
}

static void
test_reserve(void)
{
	struct buf b;
	unsigned char *p;

	buf_init(&b, 16);
	p = buf_reserve(&b, 10);
	CHECK(p != NULL);
	memcpy(p, "abc", 3);
	buf_commit(&b, 3);
	CHECK(span_eq(buf_span(&b), "abc"));
	CHECK(buf_reserve(&b, 14) == NULL);
	b.secret = true;
	buf_free(&b);
}

static void
test_log_safe(void)
{
	char out[LOG_SAFE_SIZE];
	unsigned char big[300];

	CHECK(strcmp(log_safe(out, span_cstr("bob")), "bob") == 0);
	CHECK(strcmp(log_safe(out, span_make("a\r\n\"\0", 5)), "a\\x0d\\x0a\\x22\\x00") == 0);
	memset(big, 0xff, sizeof(big));
	log_safe(out, span_make(big, sizeof(big)));
	CHECK(strlen(out) == LOG_SAFE_MAX * 4 + 3);
}

int
main(void)
{
	test_limits();
	test_printf_consume();
	test_reserve();
	test_log_safe();
	return tap_done();
}
