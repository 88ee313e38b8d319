/*
 * linereader.h: split client input into command lines, strictly.
 *
 * linereader_next() looks at the start of an input buffer and says what is
 * there; it never consumes: the caller handles the result and then consumes
 * *used_out bytes. A line is a span without its CRLF, valid until the
 * buffer changes. Any thread (pure; the state is the caller's).
 *
 * - An overlong line is reported once (LR_TOO_LONG) and discarded up to its
 *   LF, so it gets one error reply and can never turn into two commands.
 * - A NUL byte, a bare LF (no CR before it) or a bare CR (not followed by
 *   LF) makes the line LR_BAD, consumed up to its LF (SMTP smuggling class).
 */
#ifndef POSTIE_LINEREADER_H
#define POSTIE_LINEREADER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/span.h"

enum lr_result {
	LR_LINE,	/* *line_out is a complete line without CRLF */
	LR_MORE,	/* no complete line yet; read more */
	LR_TOO_LONG,	/* a line longer than max (CRLF included); report once */
	LR_BAD		/* NUL, bare CR or bare LF in the line */
};

struct linereader {
	size_t max;		/* longest line allowed, CRLF included */
	bool discarding;	/* inside an overlong line already reported */
};

static inline void
linereader_init(struct linereader *lr, size_t max)
{
	lr->max = max;
	lr->discarding = false;
}

/*
 * Look at in. Returns an enum lr_result; *used_out is how many bytes the
 * caller must consume after handling it (may be non-zero with LR_MORE when
 * the rest of an overlong line is being discarded).
 */
enum lr_result linereader_next(struct linereader *lr, const struct buf *in,
    struct span *line_out, size_t *used_out);

#endif
