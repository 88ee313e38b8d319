/*
 * pop3/retr.c: the streamed multi-line replies of POP3: RETR and TOP
 * (the message read from the store in POP3_READ_PIECE pieces, each in its
 * own short read transaction, dot-stuffed, RFC 1939 section 3) and LIST
 * and UIDL without an argument (a line per message of the snapshot). One
 * cursor per session (struct pop3_stream); the connection's drained
 * callback moves it on, so a session holds one piece or a few lines for
 * its client, never a whole message or listing. Owning worker only.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "server/pop3/internal.h"
#include "server/server.h"
#include "core/compat.h"

/* RETR reads the store in pieces of this size (one chunk), each in its own short transaction. */
#define POP3_READ_PIECE (64 * 1024)
/*
 * The longest LIST or UIDL line: a message number and a size (at most 20
 * digits each), or a number and a UIDL, with a space and CRLF. A listing
 * waits for the client when less room than this is left in the output.
 */
#define POP3_LISTING_LINE_MAX 64
_Static_assert(20 + 1 + 20 + 2 <= POP3_LISTING_LINE_MAX && STORE_UIDL_LEN <= 20,
    "a listing line fits POP3_LISTING_LINE_MAX");

/*
 * The listing's next lines, one per message not deleted, in snapshot
 * order, then the terminating "." (RFC 1939 section 5, LIST and UIDL).
 */
static void
pump_listing(struct pop3_session *s)
{
	struct pop3_stream *st = &s->stream;
	struct conn *c = s->conn;

	while (st->active && conn_out_pending(c) < POP3_STREAM_HIGH && !conn_is_closed(c)) {
		size_t i = st->next_msg;

		/* limits.output_buffer_max may be as small as POP3_STREAM_HIGH itself */
		if (buf_room(&c->out) < POP3_LISTING_LINE_MAX)
			break;	/* the drained callback comes back when the client read some */
		if (i >= s->nmsgs) {
			pop3_reply(s, ".\r\n");
			st->active = false;
			break;
		}
		st->next_msg++;
		if (s->deleted[i])
			continue;
		if (st->kind == POP3_STREAM_UIDL)
			conn_printf(c, "%zu %s\r\n", i + 1, s->msgs[i].uidl);
		else
			conn_printf(c, "%zu %" PRIu64 "\r\n", i + 1, s->msgs[i].pop3_size);
	}
}

/*
 * RETR: the whole lines of piece (got bytes) into out, a dot added before
 * each line that starts with one (RFC 1939 section 3). Returns the bytes
 * written; out must hold 2 * got.
 */
static size_t
stuff_lines(struct pop3_stream *r, const unsigned char *piece, size_t got, unsigned char *out)
{
	size_t i = 0, o = 0;

	while (i < got) {
		const unsigned char *nl;
		size_t len;

		if (r->line_start && piece[i] == '.')
			out[o++] = '.';	/* UNSAFE: out holds two bytes per input byte */
		nl = memchr(piece + i, '\n', got - i);
		len = nl ? (size_t)(nl - (piece + i)) + 1 : got - i;
		memcpy(out + o, piece + i, len);	/* UNSAFE: o + len <= 2 * got */
		o += len;
		i += len;
		r->line_start = nl != NULL;
	}
	return o;
}

/*
 * TOP: byte by byte, counting the body's lines: the headers, the blank
 * line, then r->body_lines lines, dot-stuffed. Returns the bytes written to
 * out (which must hold 2 * got); *used_out is what was taken of piece, and
 * *done_out says the last line asked for is out.
 */
static size_t
stuff_top(struct pop3_stream *r, const unsigned char *piece, size_t got, unsigned char *out,
    size_t *used_out, bool *done_out)
{
	size_t i, o = 0;

	*done_out = false;
	for (i = 0; i < got; i++) {
		unsigned char b = piece[i];

		if (r->line_start) {
			if (r->in_body && r->lines_sent >= r->body_lines) {
				*done_out = true;
				break;
			}
			if (b == '.')
				out[o++] = '.';	/* UNSAFE: out holds two bytes per input byte */
		}
		out[o++] = b;
		r->line_len++;
		r->line_start = b == '\n';
		if (b == '\n') {
			if (!r->in_body && r->line_len <= 2)
				r->in_body = true;	/* the blank line ending the headers */
			else if (r->in_body)
				r->lines_sent++;
			r->line_len = 0;
		}
	}
	*used_out = i;
	return o;
}

/*
 * The message being retrieved: dot-stuffed (RFC 1939 section 3), in store
 * pieces.
 */
static void
pump_body(struct pop3_session *s)
{
	static __thread unsigned char piece[POP3_READ_PIECE], out[2 * POP3_READ_PIECE + 8];
	struct pop3_stream *r = &s->stream;
	struct conn *c = s->conn;

	while (r->active && conn_out_pending(c) < POP3_STREAM_HIGH && !conn_is_closed(c)) {
		size_t got = 0, used, o, want = sizeof(piece), room = buf_room(&c->out);
		bool done = false;
		int rc;

		/* stuffing can double a piece: never queue more than the output buffer takes */
		if (room < 2 * want + 8)
			want = room > 24 ? (room - 8) / 2 : 0;
		if (!want)
			break;	/* the drained callback comes back when the client read some */
		rc = r->offset < r->size ? store_body_read(c->srv->store, r->body_id, r->offset, piece, want, &got) : 0;
		if (rc) {
			/* the snapshot promised this message: fail closed, say nothing more */
			log_msg(LOG_LEVEL_ERR, "sid=%s event=retr error=\"%s\"", c->sid, err_str(rc));
			conn_close(c, "store_read_failed");
			break;
		}
		if (r->top) {
			o = stuff_top(r, piece, got, out, &used, &done);
		} else {
			o = stuff_lines(r, piece, got, out);
			used = got;
		}
		r->offset += used;
		if (o)
			conn_write(c, out, o);
		if (done || r->offset >= r->size || got == 0) {
			if (!r->line_start)
				conn_write(c, "\r\n", 2);
			conn_write(c, ".\r\n", 3);
			r->active = false;
		}
	}
}

/*
 * Move the stream on until POP3_STREAM_HIGH bytes wait for the client; the
 * connection's drained callback brings us back (back-pressure). Output
 * queued per session stays below POP3_STREAM_HIGH plus one piece.
 */
void
pop3_retr_pump(struct pop3_session *s)
{
	struct conn *c = s->conn;
	bool saved = c->in_callback;

	c->in_callback = true;	/* queue only; the loop sends */
	if (s->stream.kind == POP3_STREAM_BODY)
		pump_body(s);
	else
		pump_listing(s);
	c->in_callback = saved;
}

void
pop3_retr_listing(struct pop3_session *s, bool uidl)
{
	memset(&s->stream, 0, sizeof(s->stream));
	s->stream.active = true;
	s->stream.kind = uidl ? POP3_STREAM_UIDL : POP3_STREAM_LIST;
	pop3_reply(s, "+OK\r\n");
	pop3_retr_pump(s);
}

void
pop3_retr_body(struct pop3_session *s, size_t i, bool top, uint64_t nlines)
{
	const struct store_msg *m = &s->msgs[i];

	memset(&s->stream, 0, sizeof(s->stream));
	s->stream.active = true;
	s->stream.kind = POP3_STREAM_BODY;
	s->stream.top = top;
	s->stream.body_lines = nlines;
	s->stream.body_id = m->body_id;
	s->stream.size = m->size;
	s->stream.line_start = true;
	if (top)
		pop3_reply(s, "+OK\r\n");
	else
		conn_printf(s->conn, "+OK %" PRIu64 " octets\r\n", m->pop3_size);
	pop3_retr_pump(s);
}
