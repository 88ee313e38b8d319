/*
 * pop3/session.c: the POP3 server session (RFC 1939, RFC 2449 CAPA and
 * response codes, RFC 2595 STLS, RFC 5034 AUTH). After login the session
 * works on a snapshot of the maildrop taken at that moment; DELE only
 * marks; QUIT applies every deletion in one durable commit; a session that
 * ends any other way deletes nothing. One session per mailbox at a time.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/proto.h"
#include "auth/throttle.h"
#include "server/authflow.h"
#include "server/dispatch.h"
#include "server/sasl_exchange.h"
#include "server/conn.h"
#include "core/err.h"
#include "core/linereader.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/pop3/session.h"
#include "server/server.h"
#include "storage/store.h"
#include "server/worker.h"
#include "core/compat.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 1u << 0,
	POP3_STATE_TRANSACTION   = 1u << 1,
	POP3_STATE_UPDATE        = 1u << 2,	/* QUIT's deletions are being committed */
};
#define POP3_STATE_ANY (POP3_STATE_AUTHORIZATION | POP3_STATE_TRANSACTION)

/* Failed logins in one session before it is closed. */
#define POP3_AUTH_FAILURES_MAX 3
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

/* What a multi-line reply streams: a message body, or a listing of the snapshot. */
enum stream_kind {
	STREAM_BODY,		/* RETR, TOP */
	STREAM_LIST,		/* LIST without an argument */
	STREAM_UIDL,		/* UIDL without an argument */
};

/*
 * The cursor of the multi-line reply being sent. While it is active no
 * command is read; the connection's drained callback moves it on. It holds
 * a position, never the reply: memory per session stays the same whatever
 * the size of the message or of the maildrop.
 */
struct stream {
	bool active;
	enum stream_kind kind;
	size_t next_msg;	/* listings: the snapshot index of the next line */
	bool top;		/* TOP: headers, the blank line, then body_lines lines */
	uint64_t body_id, offset, size;
	uint64_t body_lines, lines_sent;
	bool line_start, in_body;
	size_t line_len;	/* bytes of the current line so far (blank-line detection) */
};

struct pop3_session {
	struct conn *conn;
	enum pop3_state state;
	struct linereader lr;
	unsigned bad_commands, auth_failures;
	char line[POP3_CMDLINE_MAX];
	char user[AUTH_LOGIN_MAX + 1];	/* from USER, waiting for PASS */
	char login[AUTH_LOGIN_MAX + 1];	/* the logged-in mailbox */
	bool locked;
	struct store_msg *msgs;		/* the snapshot taken at login */
	bool *deleted;
	size_t nmsgs;
	struct stream stream;
	struct sasl_exchange sasl;	/* AUTH in progress, if any */
};

static void pop3_input(struct conn *c);
static void pump(struct pop3_session *s);

/*
 * LOGIN-DELAY (RFC 2449 6.8): the last successful login per login, shared by
 * all workers. A fixed table: a collision forgets the older login, which can
 * only make the delay laxer, never lock anyone out.
 */
#define LOGIN_DELAY_SLOTS 4096

static struct {
	char login[AUTH_LOGIN_MAX + 1];
	uint64_t at;
} last_login[LOGIN_DELAY_SLOTS];
static pthread_mutex_t last_login_lock = PTHREAD_MUTEX_INITIALIZER;

/* Too soon after the previous login of this login? If not, record this one. */
static bool
login_too_soon(const char *login, unsigned delay, uint64_t now)
{
	uint32_t h = 2166136261u;
	const char *p;
	bool soon;

	if (!delay)
		return false;
	for (p = login; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	pthread_mutex_lock(&last_login_lock);
	h %= LOGIN_DELAY_SLOTS;
	soon = strcmp(last_login[h].login, login) == 0 && now < last_login[h].at + delay;
	if (!soon) {
		snprintf(last_login[h].login, sizeof(last_login[h].login), "%s", login);
		last_login[h].at = now;
	}
	pthread_mutex_unlock(&last_login_lock);
	return soon;
}

static void
reply(struct pop3_session *s, const char *text)
{
	conn_write(s->conn, text, strlen(text));
}

static void
bad_command(struct pop3_session *s, const char *text)
{
	struct conn *c = s->conn;

	reply(s, text);
	if (++s->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=bad_commands ip=%s count=%u",
		    c->sid, c->ip, s->bad_commands);
		reply(s, "-ERR Too many errors, closing connection\r\n");
		conn_close_after_flush(c);
	}
}

static bool
offers_stls(const struct pop3_session *s)
{
	return !conn_is_tls(s->conn) && s->conn->proto == LISTEN_POP3;
}

enum msg_lookup {
	MSG_OK,
	MSG_NO_NUMBER,		/* empty or longer than ten digits */
	MSG_NOT_DIGITS,
	MSG_NONE,		/* 0, or past the snapshot */
	MSG_DELETED,
};

/* A message number: digits only, 1..n, not deleted. */
static enum msg_lookup
msg_lookup(const struct pop3_session *s, struct span arg, size_t *index_out)
{
	uint64_t n = 0;
	size_t i;

	if (!arg.len || arg.len > 10)
		return MSG_NO_NUMBER;
	for (i = 0; i < arg.len; i++) {
		if (arg.p[i] < '0' || arg.p[i] > '9')
			return MSG_NOT_DIGITS;
		n = n * 10 + (uint64_t)(arg.p[i] - '0');	/* at most 10 digits: no overflow */
	}
	if (n == 0 || n > s->nmsgs)
		return MSG_NONE;
	if (s->deleted[n - 1])
		return MSG_DELETED;
	*index_out = (size_t)(n - 1);
	return MSG_OK;
}

/* The check of a command naming a message: a syntax error is a bad command, a missing message is not. */
static bool
check_msg(void *v, struct span arg)
{
	struct pop3_session *s = v;
	size_t i;

	switch (msg_lookup(s, arg, &i)) {
	case MSG_OK:
		return true;
	case MSG_NO_NUMBER:
		bad_command(s, "-ERR Syntax error: a message number is needed\r\n");
		return false;
	case MSG_NOT_DIGITS:
		bad_command(s, "-ERR Syntax error: a message number is digits only\r\n");
		return false;
	case MSG_NONE:
		reply(s, "-ERR No such message\r\n");
		return false;
	default:
		reply(s, "-ERR Message already deleted\r\n");
		return false;
	}
}

/* LIST and UIDL: a message number is optional. */
static bool
check_msg_opt(void *s, struct span arg)
{
	return !arg.len || check_msg(s, arg);
}

/* The message a checked argument names. */
static size_t
msg_index(const struct pop3_session *s, struct span arg)
{
	size_t i = 0;
	enum msg_lookup r = msg_lookup(s, arg, &i);

	ASSERT(r == MSG_OK);	/* check_msg() said so, and nothing ran in between */
	return i;
}

/* ------------------------------------------------------------ AUTHORIZATION */

static void
cmd_capa(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	reply(s, "+OK Capability list follows\r\n");
	if (offers_stls(s))
		reply(s, "STLS\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION && authflow_allowed(s->conn))
		reply(s, "USER\r\nSASL PLAIN LOGIN\r\n");
	reply(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n");
	if (s->conn->cfg->pop3.login_delay)
		conn_printf(s->conn, "LOGIN-DELAY %u\r\n", s->conn->cfg->pop3.login_delay);
	reply(s, "IMPLEMENTATION postie\r\n.\r\n");
}

static bool
check_stls(void *v, struct span arg)
{
	(void)arg;
	if (offers_stls(v))
		return true;
	bad_command(v, "-ERR STLS not available\r\n");
	return false;
}

static void
cmd_stls(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	reply(s, "+OK Begin TLS negotiation\r\n");
	if (conn_starttls(s->conn)) {
		log_msg(LOG_LEVEL_ERR, "sid=%s event=stls error=\"no TLS credentials\"", s->conn->sid);
		conn_close_after_flush(s->conn);
	}
}

static void
login_failed(struct pop3_session *s, const char *text)
{
	struct conn *c = s->conn;

	reply(s, text);
	if (++s->auth_failures >= POP3_AUTH_FAILURES_MAX) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=auth_failures ip=%s", c->sid, c->ip);
		reply(s, "-ERR Too many authentication failures\r\n");
		conn_close_after_flush(c);
	}
}

/* PAM said yes: lock the maildrop and take its snapshot (RFC 1939 section 4). */
static void
logged_in(struct conn *c, enum authflow_result r, const char *login)
{
	struct pop3_session *s = c->session;
	int rc;

	if (r == AUTHFLOW_FAIL) {
		login_failed(s, "-ERR [AUTH] Authentication failed\r\n");
		return;
	}
	if (r == AUTHFLOW_THROTTLED) {
		login_failed(s, "-ERR [SYS/TEMP] Too many failed logins, try again later\r\n");
		return;
	}
	if (r != AUTHFLOW_OK) {
		reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n");
		return;
	}
	if (login_too_soon(login, c->cfg->pop3.login_delay, (uint64_t)time(NULL))) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=login_delay login=\"%s\"", c->sid, login);
		conn_printf(c, "-ERR [LOGIN-DELAY] Wait %u seconds between logins\r\n", c->cfg->pop3.login_delay);
		return;
	}
	if (store_mailbox_lock(server_store, login)) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=mailbox_in_use login=\"%s\"", c->sid, login);
		reply(s, "-ERR [IN-USE] Mailbox is in use by another session\r\n");
		return;
	}
	rc = store_mailbox_snapshot(server_store, login, &s->msgs, &s->nmsgs);
	if (rc) {
		store_mailbox_unlock(server_store, login);
		log_msg(LOG_LEVEL_ERR, "sid=%s event=snapshot login=\"%s\" error=\"%s\"", c->sid, login, err_str(rc));
		/* a damaged or oversized maildrop will not get better by retrying */
		reply(s, rc == ERR_CORRUPT || rc == ERR_LIMIT ?
		    "-ERR [SYS/PERM] Mailbox cannot be opened; contact the administrator\r\n" :
		    "-ERR [SYS/TEMP] Mailbox unavailable, try again later\r\n");
		return;
	}
	s->locked = true;
	snprintf(s->login, sizeof(s->login), "%s", login);
	s->deleted = xcalloc(s->nmsgs ? s->nmsgs : 1, sizeof(bool));
	s->state = POP3_STATE_TRANSACTION;
	conn_set_cmd_timeout(c, c->cfg->limits.idle_timeout < c->cfg->limits.command_timeout
	    ? c->cfg->limits.idle_timeout : c->cfg->limits.command_timeout);
	conn_printf(c, "+OK Logged in, %zu messages\r\n", s->nmsgs);
}

static bool
check_user(void *s, struct span arg)
{
	if (arg.len <= AUTH_LOGIN_MAX)
		return true;
	bad_command(s, "-ERR [AUTH] Login too long\r\n");
	return false;
}

static void
cmd_user(void *v, struct span arg)
{
	struct pop3_session *s = v;

	memcpy(s->user, arg.p, arg.len);
	s->user[arg.len] = '\0';
	reply(s, "+OK\r\n");
}

static bool
check_pass(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	if (s->user[0])
		return true;
	bad_command(s, "-ERR USER first\r\n");
	return false;
}

static void
cmd_pass(void *v, struct span arg)
{
	struct pop3_session *s = v;

	authflow_check(s->conn, "pop3", span_cstr(s->user), arg, logged_in);
	s->user[0] = '\0';
}

static void
sasl_bad_command(struct conn *c, const char *text)
{
	bad_command(c->session, text);
}

static void
sasl_login_failed(struct conn *c, const char *text)
{
	login_failed(c->session, text);
}

/* POP3's side of the SASL exchange (RFC 5034). */
static const struct sasl_exchange_ops pop3_sasl_ops = {
	.proto = "pop3",
	.continuation = "+ ",
	.bad_mech = "-ERR Unsupported authentication mechanism\r\n",
	.bad_response = "-ERR Cannot decode the response\r\n",
	.bad_line = "-ERR Line too long or malformed\r\n",
	.cancelled = "-ERR Authentication cancelled\r\n",
	.bad_authz = "-ERR [AUTH] Authentication failed\r\n",
	.bad_command = sasl_bad_command,
	.auth_failed = sasl_login_failed,
	.done = logged_in,
};

static void
cmd_auth(void *v, struct span arg)
{
	struct pop3_session *s = v;

	if (!arg.len) {	/* some clients list the mechanisms this way */
		reply(s, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	sasl_exchange_start(&s->sasl, arg);
}

/* ------------------------------------------------------------ TRANSACTION */

static void
cmd_stat(void *v, struct span arg)
{
	struct pop3_session *s = v;
	uint64_t bytes = 0;
	size_t i, n = 0;

	(void)arg;
	for (i = 0; i < s->nmsgs; i++) {
		if (!s->deleted[i]) {
			n++;
			bytes += s->msgs[i].pop3_size;
		}
	}
	conn_printf(s->conn, "+OK %zu %" PRIu64 "\r\n", n, bytes);
}

/*
 * LIST and UIDL: one message, or all that are not deleted, streamed by
 * pump(): a maildrop of SNAPSHOT_MAX messages makes a listing of tens of
 * megabytes, far past limits.output_buffer_max, and one cheap command must
 * not make the server hold a large answer.
 */
static void
listing(struct pop3_session *s, struct span arg, bool uidl)
{
	if (arg.len) {
		size_t i = msg_index(s, arg);

		if (uidl)
			conn_printf(s->conn, "+OK %zu %s\r\n", i + 1, s->msgs[i].uidl);
		else
			conn_printf(s->conn, "+OK %zu %" PRIu64 "\r\n", i + 1, s->msgs[i].pop3_size);
		return;
	}
	memset(&s->stream, 0, sizeof(s->stream));
	s->stream.active = true;
	s->stream.kind = uidl ? STREAM_UIDL : STREAM_LIST;
	reply(s, "+OK\r\n");
	pump(s);
}

static void cmd_list(void *s, struct span arg) { listing(s, arg, false); }
static void cmd_uidl(void *s, struct span arg) { listing(s, arg, true); }

/*
 * The listing's next lines, one per message not deleted, in snapshot
 * order, then the terminating "." (RFC 1939 section 5, LIST and UIDL).
 */
static void
pump_listing(struct pop3_session *s)
{
	struct stream *st = &s->stream;
	struct conn *c = s->conn;

	while (st->active && conn_out_pending(c) < POP3_STREAM_HIGH && !conn_is_closed(c)) {
		size_t i = st->next_msg;

		/* limits.output_buffer_max may be as small as POP3_STREAM_HIGH itself */
		if (buf_room(&c->out) < POP3_LISTING_LINE_MAX)
			break;	/* the drained callback comes back when the client read some */
		if (i >= s->nmsgs) {
			reply(s, ".\r\n");
			st->active = false;
			break;
		}
		st->next_msg++;
		if (s->deleted[i])
			continue;
		if (st->kind == STREAM_UIDL)
			conn_printf(c, "%zu %s\r\n", i + 1, s->msgs[i].uidl);
		else
			conn_printf(c, "%zu %" PRIu64 "\r\n", i + 1, s->msgs[i].pop3_size);
	}
}

/*
 * The message being retrieved: dot-stuffed (RFC 1939 section 3), in store
 * pieces.
 */
static void
pump_body(struct pop3_session *s)
{
	static __thread unsigned char piece[POP3_READ_PIECE], out[2 * POP3_READ_PIECE + 8];
	struct stream *r = &s->stream;
	struct conn *c = s->conn;

	while (r->active && conn_out_pending(c) < POP3_STREAM_HIGH && !conn_is_closed(c)) {
		size_t got = 0, i, o = 0, want = sizeof(piece), room = buf_room(&c->out);
		bool done = false;
		int rc;

		/* stuffing can double a piece: never queue more than the output buffer takes */
		if (room < 2 * want + 8)
			want = room > 24 ? (room - 8) / 2 : 0;
		if (!want)
			break;	/* the drained callback comes back when the client read some */
		rc = r->offset < r->size ? store_body_read(server_store, r->body_id, r->offset, piece, want, &got) : 0;

		if (rc) {
			/* the snapshot promised this message: fail closed, say nothing more */
			log_msg(LOG_LEVEL_ERR, "sid=%s event=retr error=\"%s\"", c->sid, err_str(rc));
			conn_close(c, "store_read_failed");
			break;
		}
		if (!r->top) {
			/* RETR: copy whole lines, adding a dot before each that starts with one */
			i = 0;
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
		}
		/* TOP: byte by byte, counting the body's lines */
		for (i = r->top ? 0 : got; i < got && !done; i++) {
			unsigned char b = piece[i];

			if (r->line_start) {
				if (r->top && r->in_body && r->lines_sent >= r->body_lines) {
					done = true;
					break;
				}
				if (b == '.')
					out[o++] = '.';	/* UNSAFE: out holds two bytes per input byte */
			}
			out[o++] = b;
			r->line_len++;
			r->line_start = b == '\n';
			if (b == '\n') {
				if (r->top && !r->in_body && r->line_len <= 2)
					r->in_body = true;	/* the blank line ending the headers */
				else if (r->top && r->in_body)
					r->lines_sent++;
				r->line_len = 0;
			}
		}
		r->offset += i;
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
static void
pump(struct pop3_session *s)
{
	struct conn *c = s->conn;
	bool saved = c->in_callback;

	c->in_callback = true;	/* queue only; the loop sends */
	if (s->stream.kind == STREAM_BODY)
		pump_body(s);
	else
		pump_listing(s);
	c->in_callback = saved;
}

/* TOP msg lines: the line count is checked first, then the message. */
static bool
top_args(struct span arg, struct span *num_out, uint64_t *lines_out)
{
	struct span lines;
	uint64_t n = 0;
	size_t i;

	span_split(arg, ' ', num_out, &lines);
	if (!lines.len || lines.len > 10)
		return false;
	for (i = 0; i < lines.len; i++) {
		if (lines.p[i] < '0' || lines.p[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(lines.p[i] - '0');
	}
	*lines_out = n;
	return true;
}

static bool
check_top(void *s, struct span arg)
{
	struct span num;
	uint64_t lines;

	if (!top_args(arg, &num, &lines)) {
		bad_command(s, "-ERR Syntax: TOP msg lines\r\n");
		return false;
	}
	return check_msg(s, num);
}

static void
retrieve(struct pop3_session *s, struct span num, bool top, uint64_t nlines)
{
	const struct store_msg *m = &s->msgs[msg_index(s, num)];

	memset(&s->stream, 0, sizeof(s->stream));
	s->stream.active = true;
	s->stream.kind = STREAM_BODY;
	s->stream.top = top;
	s->stream.body_lines = nlines;
	s->stream.body_id = m->body_id;
	s->stream.size = m->size;
	s->stream.line_start = true;
	if (top)
		reply(s, "+OK\r\n");
	else
		conn_printf(s->conn, "+OK %" PRIu64 " octets\r\n", m->pop3_size);
	pump(s);
}

static void
cmd_retr(void *s, struct span arg)
{
	retrieve(s, arg, false, 0);
}

static void
cmd_top(void *s, struct span arg)
{
	struct span num;
	uint64_t lines = 0;

	top_args(arg, &num, &lines);	/* check_top() said they are good */
	retrieve(s, num, true, lines);
}

static void
cmd_dele(void *v, struct span arg)
{
	struct pop3_session *s = v;
	size_t i = msg_index(s, arg);

	s->deleted[i] = true;	/* only marked: QUIT applies it */
	conn_printf(s->conn, "+OK Message %zu deleted\r\n", i + 1);
}

static void
cmd_rset(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	memset(s->deleted, 0, s->nmsgs * sizeof(bool));
	conn_printf(s->conn, "+OK %zu messages\r\n", s->nmsgs);
}

static void
cmd_noop(void *s, struct span arg)
{
	(void)arg;
	reply(s, "+OK\r\n");
}

/* The UPDATE state's commit: owns copies of what it needs (the session may end first). */
struct update {
	struct store_req req;
	struct conn *conn;
	char login[AUTH_LOGIN_MAX + 1];
	uint32_t *uids;
	size_t n;
	int rc;
};

static void
update_done_here(void *arg)
{
	struct update *u = arg;
	struct conn *c = u->conn;

	if (!conn_is_closed(c)) {
		struct pop3_session *s = c->session;

		if (u->rc) {
			log_msg(LOG_LEVEL_ERR, "sid=%s event=expunge login=\"%s\" error=\"%s\"", c->sid, u->login,
			    err_str(u->rc));
			reply(s, "-ERR [SYS/TEMP] Deletions could not be committed; nothing was deleted\r\n");
		} else {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=expunge login=\"%s\" deleted=%zu", c->sid, u->login, u->n);
			conn_printf(c, "+OK postie POP3 server signing off (%zu messages deleted)\r\n", u->n);
		}
		conn_resume(c);
		conn_close_after_flush(c);
	}
	conn_unref(c);
	free(u->uids);
	free(u);
}

static void
update_done(void *arg, int rc)
{
	struct update *u = arg;

	u->rc = rc;
	worker_post(u->conn->worker, update_done_here, u);	/* from the store's writer thread */
}

static void
cmd_quit(void *v, struct span arg)
{
	struct pop3_session *s = v;
	struct update *u;
	size_t i;

	(void)arg;
	if (s->state == POP3_STATE_AUTHORIZATION) {
		reply(s, "+OK postie POP3 server signing off\r\n");
		conn_close_after_flush(s->conn);
		return;
	}
	/* RFC 1939 section 6: UPDATE applies every DELE at once, or none */
	u = xcalloc(1, sizeof(*u));
	u->uids = xcalloc(s->nmsgs ? s->nmsgs : 1, sizeof(uint32_t));
	for (i = 0; i < s->nmsgs; i++)
		if (s->deleted[i])
			u->uids[u->n++] = s->msgs[i].uid;
	if (!u->n) {
		free(u->uids);
		free(u);
		reply(s, "+OK postie POP3 server signing off\r\n");
		conn_close_after_flush(s->conn);
		return;
	}
	s->state = POP3_STATE_UPDATE;
	snprintf(u->login, sizeof(u->login), "%s", s->login);
	u->conn = conn_ref(s->conn);
	u->req.op = STORE_OP_EXPUNGE;
	u->req.u.expunge.login = u->login;
	u->req.u.expunge.uids = u->uids;
	u->req.u.expunge.nuids = u->n;
	conn_pause(s->conn);
	if (store_submit(server_store, &u->req, update_done, u)) {
		conn_resume(s->conn);
		conn_unref(u->conn);
		free(u->uids);
		free(u);
		reply(s, "-ERR [SYS/TEMP] Server stopping; nothing was deleted\r\n");
		conn_close_after_flush(s->conn);
	}
}

/*
 * Every command the session knows, with the states it is allowed in and
 * its policy (STYLE 8; the order of the checks is in server/dispatch.h).
 * PROTO_LOGIN: RFC 2595 2.1, no credentials before STLS (the capability
 * list does not offer them); AUTH without an argument lists mechanisms.
 */
static const struct proto_cmd pop3_cmds[] = {
	{ "CAPA", POP3_STATE_ANY,           PROTO_NOARG,  NULL, NULL, NULL,          cmd_capa },
	{ "STLS", POP3_STATE_AUTHORIZATION, PROTO_NOARG,  NULL, NULL, check_stls,    cmd_stls },
	{ "USER", POP3_STATE_AUTHORIZATION, PROTO_ARG | PROTO_LOGIN, NULL, NULL, check_user, cmd_user },
	{ "PASS", POP3_STATE_AUTHORIZATION, PROTO_SECRET | PROTO_LOGIN, NULL, NULL, check_pass, cmd_pass },
	{ "AUTH", POP3_STATE_AUTHORIZATION, PROTO_LOGIN,  NULL, NULL, NULL,          cmd_auth },
	{ "STAT", POP3_STATE_TRANSACTION,   PROTO_NOARG,  NULL, NULL, NULL,          cmd_stat },
	{ "LIST", POP3_STATE_TRANSACTION,   0,            NULL, NULL, check_msg_opt, cmd_list },
	{ "UIDL", POP3_STATE_TRANSACTION,   0,            NULL, NULL, check_msg_opt, cmd_uidl },
	{ "RETR", POP3_STATE_TRANSACTION,   PROTO_ARG,    NULL, NULL, check_msg,     cmd_retr },
	{ "TOP",  POP3_STATE_TRANSACTION,   PROTO_ARG,    NULL, NULL, check_top,     cmd_top },
	{ "DELE", POP3_STATE_TRANSACTION,   PROTO_ARG,    NULL, NULL, check_msg,     cmd_dele },
	{ "RSET", POP3_STATE_TRANSACTION,   PROTO_NOARG,  NULL, NULL, NULL,          cmd_rset },
	{ "NOOP", POP3_STATE_TRANSACTION,   PROTO_NOARG,  NULL, NULL, NULL,          cmd_noop },
	{ "QUIT", POP3_STATE_ANY,           PROTO_NOARG,  NULL, NULL, NULL,          cmd_quit },
};

static unsigned
rules_state(const void *s)
{
	return ((const struct pop3_session *)s)->state;
}

static bool
rules_may_login(const void *s)
{
	return authflow_allowed(((const struct pop3_session *)s)->conn);
}

static void
rules_refuse(void *s, const char *text)
{
	bad_command(s, text);
}

static const struct proto_rules pop3_rules = {
	.cmds = pop3_cmds,
	.ncmds = sizeof(pop3_cmds) / sizeof(pop3_cmds[0]),
	.unknown = "-ERR Unknown command\r\n",
	.bad_state = "-ERR Command not valid in this state\r\n",
	.no_arg = "-ERR Syntax error: no arguments allowed\r\n",
	.need_arg = "-ERR Syntax error: an argument is needed\r\n",
	.need_tls = "-ERR [AUTH] Plaintext authentication disallowed; use STLS first\r\n",
	.state = rules_state,
	.may_login = rules_may_login,
	.refuse = rules_refuse,
};

static void *
pop3_create(struct conn *c)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->conn = c;
	s->state = POP3_STATE_AUTHORIZATION;
	linereader_init(&s->lr, POP3_CMDLINE_MAX);
	sasl_exchange_init(&s->sasl, &pop3_sasl_ops, c);
	return s;
}

static void
pop3_start(struct conn *c)
{
	conn_printf(c, "+OK %s POP3 server ready\r\n", c->cfg->hostname);
}

static void
pop3_input(struct conn *c)
{
	struct pop3_session *s = c->session;

	/* one command at a time, in order; nothing new while a message or listing streams */
	while (conn_can_take_input(c) && !s->stream.active && s->state != POP3_STATE_UPDATE) {
		struct span line;
		enum lr_result r;

		if (sasl_exchange_reading(&s->sasl)) {
			if (sasl_exchange_input(&s->sasl) == LR_MORE)
				break;
			continue;
		}
		r = conn_next_line(c, &s->lr, s->line, &line);
		if (r == LR_MORE)
			break;
		if (r == LR_LINE) {
			proto_dispatch(&pop3_rules, s, line);
			explicit_bzero(s->line, sizeof(s->line));	/* it may have held a password */
		} else if (r == LR_TOO_LONG) {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=line_length ip=%s", c->sid, c->ip);
			bad_command(s, "-ERR Line too long\r\n");
		} else {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=bad_line ip=%s", c->sid, c->ip);
			bad_command(s, "-ERR Bad characters in command line\r\n");
		}
	}
}

/* The client read what we queued: go on streaming, then take the next commands. */
static void
pop3_drained(struct conn *c)
{
	struct pop3_session *s = c->session;

	if (s->stream.active) {
		pump(s);
		if (!s->stream.active && conn_input(c)->len)
			conn_resume_input(c);	/* pipelined commands wait in the buffer */
	}
}

static void
pop3_tls_ready(struct conn *c)
{
	struct pop3_session *s = c->session;

	linereader_init(&s->lr, POP3_CMDLINE_MAX);
	s->user[0] = '\0';
	sasl_exchange_end(&s->sasl);
}

static void
pop3_timeout(struct conn *c, enum conn_timeout why)
{
	(void)why;
	/* a timed-out session deletes nothing (RFC 1939 section 6) */
	conn_printf(c, "-ERR Timeout, closing connection\r\n");
}

static void
pop3_shutdown(struct conn *c)
{
	conn_printf(c, "-ERR [SYS/TEMP] Server shutting down, try again later\r\n");
}

static void
pop3_destroy(struct conn *c)
{
	struct pop3_session *s = c->session;

	if (s->locked)
		store_mailbox_unlock(server_store, s->login);
	sasl_exchange_end(&s->sasl);
	free(s->msgs);
	free(s->deleted);
	free(s);
	c->session = NULL;
}

static const char *
pop3_busy_reply(const struct config *cfg)
{
	(void)cfg;
	return "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
}

const struct proto_ops pop3_proto_ops = {
	.name = "pop3",
	.create = pop3_create,
	.start = pop3_start,
	.input = pop3_input,
	.tls_ready = pop3_tls_ready,
	.drained = pop3_drained,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.destroy = pop3_destroy,
	.busy_reply = pop3_busy_reply,
};
