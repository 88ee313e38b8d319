#include "config.h"

#include <string.h>

#include "core/err.h"
#include "server/delivery/reply.h"
#include "core/compat.h"

void
smtp_reply_reader_init(struct smtp_reply_reader *r)
{
	linereader_init(&r->lr, SMTP_REPLY_LINE_MAX);
	memset(&r->cur, 0, sizeof(r->cur));
	buf_init(&r->cur.text, SMTP_REPLY_TEXT_MAX);
}

void
smtp_reply_reader_free(struct smtp_reply_reader *r)
{
	buf_free(&r->cur.text);
}

/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39 */
static int
parse_code(struct span line)
{
	if (line.len < 3 || line.p[0] < '2' || line.p[0] > '5' || line.p[1] < '0' ||
	    line.p[1] > '5' || line.p[2] < '0' || line.p[2] > '9')
		return -1;
	return (line.p[0] - '0') * 100 + (line.p[1] - '0') * 10 + (line.p[2] - '0');
}

enum smtp_reply_result
smtp_reply_read(struct smtp_reply_reader *r, const struct buf *in, size_t *used_out,
    struct smtp_reply *out)
{
	struct span line, text;
	enum lr_result lr = linereader_next(&r->lr, in, &line, used_out);
	bool last;
	int code;

	if (lr == LR_MORE)
		return SMTP_REPLY_MORE;
	if (lr != LR_LINE)
		return SMTP_REPLY_BAD;	/* overlong, bare CR/LF or NUL */
	code = parse_code(line);
	if (code < 0 || (line.len > 3 && line.p[3] != ' ' && line.p[3] != '-'))
		return SMTP_REPLY_BAD;
	if (r->cur.nlines && code != r->cur.code)
		return SMTP_REPLY_BAD;	/* every line of a reply has the same code */
	if (++r->cur.nlines > SMTP_REPLY_LINES_MAX)
		return SMTP_REPLY_BAD;
	r->cur.code = code;
	last = line.len == 3 || line.p[3] == ' ';
	text = span_tail(line, 4);
	if (r->cur.text.len && buf_room(&r->cur.text) > 0)
		buf_append(&r->cur.text, "\n", 1);
	if (text.len > buf_room(&r->cur.text))
		text = span_head(text, buf_room(&r->cur.text));	/* keep what fits; still one reply */
	buf_append_span(&r->cur.text, text);
	r->cur.text.err = 0;
	if (!last)
		return SMTP_REPLY_MORE;
	*out = r->cur;
	memset(&r->cur, 0, sizeof(r->cur));
	buf_init(&r->cur.text, SMTP_REPLY_TEXT_MAX);
	return SMTP_REPLY_DONE;
}
