#include "config.h"

#include <string.h>

#include "core/buf.h"
#include "core/linereader.h"
#include "tap.h"

/* Feed text into a fresh reader with limit max; return the first result. */
static enum lr_result
first(const char *text, size_t len, size_t max, struct span *line, size_t *used)
{
	static struct buf b;
	struct linereader lr;

	buf_free(&b);
	buf_init(&b, 0);
	buf_append(&b, text, len);
	linereader_init(&lr, max);
	return linereader_next(&lr, &b, line, used);
}

static void
test_table(void)
{
	static const struct {
		const char *in;
		size_t len;
		enum lr_result want;
		const char *line;
		size_t used;
	} cases[] = {
		{ "", 0, LR_MORE, "", 0 },
		{ "NOOP", 4, LR_MORE, "", 0 },
		{ "NOOP\r", 5, LR_MORE, "", 0 },
		{ "NOOP\r\n", 6, LR_LINE, "NOOP", 6 },
		{ "\r\n", 2, LR_LINE, "", 2 },
		{ "NOOP\r\nQUIT\r\n", 12, LR_LINE, "NOOP", 6 },
		{ "NOOP\n", 5, LR_BAD, "", 5 },		/* bare LF */
		{ "\n", 1, LR_BAD, "", 1 },
		{ "NO\rOP\r\n", 7, LR_BAD, "", 7 },	/* bare CR */
		{ "NO\0OP\r\n", 7, LR_BAD, "", 7 },	/* NUL */
		{ "\r\r\n", 3, LR_BAD, "", 3 },
		{ "\xff\xfe\r\n", 4, LR_LINE, "\xff\xfe", 4 },	/* 8-bit is the parser's business */
		{ "12345678\r\n", 10, LR_LINE, "12345678", 10 },	/* exactly at the limit (10) */
		{ "123456789\r\n", 11, LR_TOO_LONG, "", 11 },	/* one past it */
		{ "1234567890", 10, LR_TOO_LONG, "", 10 },	/* no LF within the limit */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct span line;
		size_t used;
		enum lr_result r = first(cases[i].in, cases[i].len, 10, &line, &used);

		CHECK_MSG(r == cases[i].want && used == cases[i].used &&
		    (r != LR_LINE || (line.len == strlen(cases[i].line) &&
		    memcmp(line.p, cases[i].line, line.len) == 0)), cases[i].in);
	}
}

/* An overlong line is reported once and never becomes a second command. */
static void
test_overlong_discard(void)
{
	struct linereader lr;
	struct buf b;
	struct span line;
	size_t used;

	buf_init(&b, 0);
	linereader_init(&lr, 8);
	buf_append_str(&b, "AAAAAAAAAA");	/* 10 bytes, no LF */
	CHECK(linereader_next(&lr, &b, &line, &used) == LR_TOO_LONG && used == 10);
	buf_consume(&b, used);
	buf_append_str(&b, "QUIT");		/* still the same line */
	CHECK(linereader_next(&lr, &b, &line, &used) == LR_MORE && used == 4);
	buf_consume(&b, used);
	buf_append_str(&b, "X\r\nNOOP\r\n");	/* its end, then a real command */
	CHECK(linereader_next(&lr, &b, &line, &used) == LR_MORE && used == 3);
	buf_consume(&b, used);
	CHECK(linereader_next(&lr, &b, &line, &used) == LR_LINE && span_eq(line, "NOOP"));
	buf_free(&b);
}

int
main(void)
{
	test_table();
	test_overlong_discard();
	return tap_done();
}
