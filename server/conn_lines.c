/*
 * conn_lines.c: command lines out of a connection's input. Kept apart from
 * the socket code in conn.c so protocol engines can be tested and fuzzed
 * with tests/unit/fake_conn.c in place of conn.c.
 */
#include "config.h"

#include <string.h>

#include "conn.h"
#include "core/compat.h"

enum lr_result
conn_next_line(struct conn *c, struct linereader *lr, char *line_buf, struct span *line_out)
{
	for (;;) {
		size_t used;
		enum lr_result r = linereader_next(lr, &c->in, line_out, &used);

		if (r == LR_LINE) {
			/* copy, then consume: a handler may reset the input (STARTTLS) */
			memcpy(line_buf, line_out->p, line_out->len);
			line_buf[line_out->len] = '\0';
			*line_out = span_make(line_buf, line_out->len);
			buf_consume(&c->in, used);
			conn_touch(c);
			return r;
		}
		if (r == LR_MORE && used) {
			buf_consume(&c->in, used);	/* the tail of an overlong line */
			continue;
		}
		if (r != LR_MORE) {
			*line_out = span_head(*line_out, 0);
			buf_consume(&c->in, used);
		}
		return r;
	}
}
