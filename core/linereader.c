#include <config.h>

#include <string.h>

#include "core/linereader.h"
#include "core/compat.h"

enum lr_result
linereader_next(struct linereader *lr, const struct buf *in, struct span *line_out,
    size_t *used_out)
{
	const unsigned char *p = in->data, *lf;
	size_t len = in->len, n;

	*line_out = span_make(p, 0);
	*used_out = 0;
	lf = len ? memchr(p, '\n', len) : NULL;

	if (lr->discarding) {
		if (!lf) {
			*used_out = len;	/* still inside the overlong line: drop what came */
			return LR_MORE;
		}
		lr->discarding = false;
		*used_out = (size_t)(lf - p) + 1;
		return LR_MORE;
	}
	if (!lf) {
		if (len >= lr->max) {
			/* no LF within max bytes: report now, drop the rest as it comes */
			lr->discarding = true;
			*used_out = len;
			return LR_TOO_LONG;
		}
		return LR_MORE;
	}
	n = (size_t)(lf - p) + 1;	/* line length with its LF */
	*used_out = n;
	if (n > lr->max)
		return LR_TOO_LONG;
	if (n < 2 || p[n - 2] != '\r')
		return LR_BAD;			/* bare LF */
	/* UNSAFE: n >= 2, so the content is p[0 .. n-2) */
	if (memchr(p, '\r', n - 2) || memchr(p, '\0', n - 2))
		return LR_BAD;			/* bare CR or NUL inside the line */
	*line_out = span_make(p, n - 2);
	return LR_LINE;
}
