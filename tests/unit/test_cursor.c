/* core/cursor.c: the binary codec: byte order, bounds, the sticky error. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "core/cursor.h"
#include "core/err.h"
#include "tap.h"

static void
test_roundtrip(void)
{
	static const unsigned char want[] =
	    "\x01" "\x02\x03" "\x04\x05\x06\x07" "\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
	    "\x02" "ab" "\x00\x03" "cde" "\x00\x00" "xy";
	unsigned char area[sizeof(want) - 1];
	struct cursor c;
	struct span s;
	char str[4];
	struct buf b;

	cursor_writer(&c, area, sizeof(area));
	cursor_put_u8(&c, 1);
	cursor_put_u16(&c, 0x0203);
	cursor_put_u32(&c, 0x04050607u);
	cursor_put_u64(&c, 0x08090a0b0c0d0e0full);
	cursor_put_str8(&c, span_cstr("ab"));
	cursor_put_str16(&c, span_cstr("cde"));
	cursor_put_str16(&c, span_cstr(""));
	cursor_put(&c, "xy", 2);
	CHECK(cursor_end(&c) == 0 && cursor_len(&c) == sizeof(area) && memcmp(area, want, sizeof(area)) == 0);

	/* counting only: the same length, nothing written */
	cursor_writer(&c, NULL, SIZE_MAX);
	cursor_put_u64(&c, 1);
	cursor_put_str16(&c, span_cstr("cde"));
	CHECK(cursor_end(&c) == 0 && cursor_len(&c) == 13);

	/* appending to a buf */
	buf_init(&b, 0);
	buf_append(&b, "z", 1);
	cursor_appender(&c, &b);
	cursor_put_u32(&c, 0x04050607u);
	CHECK(cursor_end(&c) == 0 && cursor_len(&c) == 4 && b.len == 5 && memcmp(b.data, "z\x04\x05\x06\x07", 5) == 0);
	buf_free(&b);

	cursor_reader(&c, span_make(want, sizeof(want) - 1));
	CHECK(cursor_get_u8(&c) == 1 && cursor_get_u16(&c) == 0x0203 && cursor_get_u32(&c) == 0x04050607u &&
	    cursor_get_u64(&c) == 0x08090a0b0c0d0e0full);
	s = cursor_get_str8(&c);
	CHECK(span_eq(s, "ab"));
	cursor_get_cstr16(&c, str, sizeof(str));
	CHECK(strcmp(str, "cde") == 0);
	CHECK(cursor_get_str16(&c).len == 0 && cursor_left(&c) == 2 && cursor_end(&c) == ERR_SYNTAX);
	CHECK(span_eq(cursor_get(&c, 2), "xy") && cursor_left(&c) == 0 && cursor_end(&c) == 0);
}

static void
test_bounds(void)
{
	static char big[UINT16_MAX + 2];
	unsigned char area[8];
	struct cursor c;
	char str[3];
	struct buf b;

	/* writing one byte past the area: the first error sticks, later puts do nothing */
	cursor_writer(&c, area, 4);
	cursor_put_u32(&c, 1);
	CHECK(cursor_end(&c) == 0);
	cursor_put_u8(&c, 2);
	CHECK(cursor_end(&c) == ERR_LIMIT && cursor_len(&c) == 4);
	cursor_writer(&c, area, sizeof(area));
	cursor_put_u32(&c, 1);
	cursor_fail(&c, ERR_CORRUPT);
	cursor_put_u32(&c, 2);
	cursor_fail(&c, ERR_SYNTAX);
	CHECK(cursor_end(&c) == ERR_CORRUPT && cursor_len(&c) == 4);

	/* strings at their prefix's limit and one past it */
	memset(big, 'a', sizeof(big));
	cursor_writer(&c, NULL, SIZE_MAX);
	cursor_put_str8(&c, span_make(big, UINT8_MAX));
	CHECK(cursor_end(&c) == 0 && cursor_len(&c) == 1 + UINT8_MAX);
	cursor_put_str8(&c, span_make(big, UINT8_MAX + 1));
	CHECK(cursor_end(&c) == ERR_LIMIT && cursor_len(&c) == 1 + UINT8_MAX);
	cursor_writer(&c, NULL, SIZE_MAX);
	cursor_put_str16(&c, span_make(big, UINT16_MAX));
	CHECK(cursor_end(&c) == 0 && cursor_len(&c) == 2 + UINT16_MAX);
	cursor_put_str16(&c, span_make(big, UINT16_MAX + 1));
	CHECK(cursor_end(&c) == ERR_LIMIT);

	/* a buf at its max; a buf that failed before */
	buf_init(&b, 3);
	cursor_appender(&c, &b);
	cursor_put_u32(&c, 7);
	CHECK(cursor_end(&c) == ERR_LIMIT && b.len == 0);
	cursor_appender(&c, &b);
	cursor_put_u8(&c, 1);
	CHECK(cursor_end(&c) == ERR_LIMIT && b.len == 0);
	buf_free(&b);

	/* reading past the end, a length that lies, a string that does not fit */
	cursor_reader(&c, span_make("\x00\x01\x02", 3));
	CHECK(cursor_get_u16(&c) == 1 && cursor_get_u16(&c) == 0 && cursor_end(&c) == ERR_SYNTAX);
	CHECK(cursor_get_u8(&c) == 0 && cursor_left(&c) == 0);	/* sticky: the byte left is not read */
	cursor_reader(&c, span_make("\x05" "abc", 4));
	CHECK(cursor_get_str8(&c).len == 0 && cursor_end(&c) == ERR_SYNTAX);
	cursor_reader(&c, span_make("\x00\x03" "abc", 5));
	cursor_get_cstr16(&c, str, sizeof(str));
	CHECK(cursor_end(&c) == ERR_SYNTAX && str[0] == '\0');
	cursor_reader(&c, span_make("\x00\x02" "ab", 4));
	cursor_get_cstr16(&c, str, sizeof(str));
	CHECK(cursor_end(&c) == 0 && strcmp(str, "ab") == 0);
	cursor_reader(&c, span_make(NULL, 0));
	CHECK(cursor_end(&c) == 0 && cursor_get(&c, 0).len == 0 && cursor_end(&c) == 0);
	CHECK(cursor_get_u64(&c) == 0 && cursor_end(&c) == ERR_SYNTAX);

	/* a reader cannot write, a writer cannot read */
	cursor_reader(&c, span_make("x", 1));
	cursor_put_u8(&c, 1);
	CHECK(cursor_end(&c) == ERR_STATE);
	cursor_writer(&c, area, sizeof(area));
	CHECK(cursor_get_u8(&c) == 0 && cursor_end(&c) == ERR_STATE);
}

int
main(void)
{
	test_roundtrip();
	test_bounds();
	return tap_done();
}
