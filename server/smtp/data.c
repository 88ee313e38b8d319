#include "config.h"

#include <string.h>
#include <strings.h>

#include "server/smtp/data.h"
#include "core/compat.h"

void
smtp_data_init(struct smtp_data *d, uint64_t max_size,
    void (*emit)(void *arg, const unsigned char *p, size_t n), void *arg)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_LINE_START;
	d->max_size = max_size;
	d->in_headers = true;
	d->emit = emit;
	d->arg = arg;
}

static void
fail(struct smtp_data *d, enum smtp_data_error e)
{
	if (!d->error)
		d->error = e;
}

/*
 * Pass n content bytes on, counting them against the line and size limits.
 * A limit takes effect at the very byte that crosses it, as if the bytes
 * came one by one: the first error and the bytes emitted before it do not
 * depend on how the input was cut into reads (a run of ordinary bytes comes
 * here in one call when it arrives whole, in several when split).
 */
static void
out(struct smtp_data *d, const unsigned char *p, size_t n)
{
	size_t line_room = d->line_len < SMTP_DATA_LINE_MAX ? SMTP_DATA_LINE_MAX - d->line_len : 0;
	uint64_t size_room = d->size < d->max_size ? d->max_size - d->size : 0;
	size_t fits = n, i;

	if (fits > line_room)
		fits = line_room;
	if (fits > size_room)
		fits = (size_t)size_room;	/* UNSAFE: size_room < fits <= n, a size_t */
	for (i = 0; !d->saw_8bit && i < n; i++)
		d->saw_8bit = p[i] >= 0x80;
	for (i = 0; d->in_headers && d->head_len < sizeof(d->head) && i < n; i++)
		d->head[d->head_len++] = (char)p[i];	/* UNSAFE: bounded by sizeof(d->head) */
	if (!d->error && fits)
		d->emit(d->arg, p, fits);	/* UNSAFE: fits <= n */
	d->size += n;
	d->line_len += n;
	/* the byte at p[fits] crossed a limit; the line is checked first at the same byte */
	if (fits < n)
		fail(d, line_room <= size_room ? SMTP_DATA_LINE_TOO_LONG : SMTP_DATA_TOO_BIG);
}

/* A CRLF ended a line: header bookkeeping. */
static void
line_end(struct smtp_data *d)
{
	if (d->in_headers) {
		if (d->line_len == 2) {
			d->in_headers = false;	/* the empty line ends the header section */
		} else if (d->head[0] != ' ' && d->head[0] != '\t') {
			if (++d->headers > SMTP_DATA_HEADERS_MAX)
				fail(d, SMTP_DATA_TOO_MANY_HEADERS);
			if (d->head_len >= 11 && strncasecmp(d->head, "message-id:", 11) == 0)
				d->has_message_id = true;
			if (d->head_len >= 5 && strncasecmp(d->head, "date:", 5) == 0)
				d->has_date = true;
		}
	}
	d->line_len = 0;
	d->head_len = 0;
}

size_t
smtp_data_feed(struct smtp_data *d, const unsigned char *in, size_t n)
{
	static const unsigned char crlf[2] = { '\r', '\n' };
	size_t i;

	for (i = 0; i < n && d->state != DS_END; i++) {
		unsigned char c = in[i];

		if (c == '\0')
			fail(d, SMTP_DATA_BARE_CR_LF);
		switch (d->state) {
		case DS_LINE_START:
			if (c == '.' && !d->bdat) {
				d->state = DS_DOT;	/* an end, or a stuffed dot */
				break;
			}
			/* fall through */
		case DS_MID:
			if (c == '\r') {
				d->state = DS_CR;
			} else if (c == '\n' || c == '\0') {
				if (c == '\n')
					fail(d, SMTP_DATA_BARE_CR_LF);	/* a bare LF ends no line */
				out(d, &c, 1);
				d->state = DS_MID;
			} else {
				/* the rest of an ordinary run goes out in one piece: the hot path */
				size_t j = i + 1;

				while (j < n && in[j] != '\r' && in[j] != '\n' && in[j] != '\0')
					j++;
				out(d, in + i, j - i);	/* UNSAFE: i < j <= n */
				i = j - 1;
				d->state = DS_MID;
			}
			break;
		case DS_DOT:
			if (c == '\r') {
				d->state = DS_DOT_CR;
				break;
			}
			/* RFC 5321 4.5.2: a leading dot is removed; the byte is ordinary */
			if (c == '\n')
				fail(d, SMTP_DATA_BARE_CR_LF);	/* "\r\n.\n" ends nothing */
			out(d, &c, 1);
			d->state = DS_MID;
			break;
		case DS_DOT_CR:
			if (c == '\n') {
				d->state = DS_END;
				break;
			}
			/* ".\r" then something else: a bare CR; the dot was stuffing */
			fail(d, SMTP_DATA_BARE_CR_LF);
			out(d, crlf, 1);	/* the CR */
			d->state = DS_MID;
			i--;	/* look at c again as an ordinary byte */
			break;
		case DS_CR:
			if (c == '\n') {
				out(d, crlf, 2);
				line_end(d);
				d->state = DS_LINE_START;
				break;
			}
			fail(d, SMTP_DATA_BARE_CR_LF);	/* CR not followed by LF */
			out(d, crlf, 1);
			d->state = DS_MID;
			i--;
			break;
		case DS_END:
			break;
		}
	}
	return i;
}

void
smtp_data_bdat_last(struct smtp_data *d)
{
	static const unsigned char cr = '\r';

	if (d->state == DS_CR) {
		fail(d, SMTP_DATA_BARE_CR_LF);	/* a CR with no LF after it */
		out(d, &cr, 1);
	}
	d->state = DS_END;
}
