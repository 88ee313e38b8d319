/*
 * client.c: the outbound SMTP client session. Commands are built here and
 * sent through the transport; every reply goes through reply.c. The order
 * of replies is the order of commands (RFC 2920 3.1), so a pipelined group
 * is one write and then one reply read per command.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "server/delivery/client.h"
#include "storage/store.h"
#include "core/compat.h"

/* Body bytes read from the store at once, and the stuffed output they may become. */
#define BODY_PIECE (64 * 1024)
/* How long QUIT's reply is waited for: the mail is delivered already. */
#define QUIT_WAIT_MS 5000
/* Why a certificate was refused: a few reasons and a host name; longer is cut (it ends in a reply). */
#define TLS_REASON_MAX 200

void
smtpc_init(struct smtpc *c, const struct smtpc_transport *t, const struct smtpc_opts *o)
{
	memset(c, 0, sizeof(*c));
	ASSERT(o->tls != SMTPC_TLS_VERIFY || o->tls_name);
	c->t = t;
	c->o = o;
	buf_init(&c->in, SMTPC_INPUT_MAX);
	smtp_reply_reader_init(&c->rr);
}

void
smtpc_free(struct smtpc *c)
{
	buf_free(&c->in);
	smtp_reply_reader_free(&c->rr);
}

void
smtpc_clean_text(char *out, size_t cap, const char *prefix, int code, struct span text)
{
	size_t n, i;
	int k = code ? snprintf(out, cap, "%s%s%d ", prefix, *prefix ? " " : "", code) :
	    snprintf(out, cap, "%s%s", prefix, *prefix ? " " : "");

	if (k < 0 || (size_t)k >= cap)
		return;
	n = (size_t)k;
	/* one line of printable ASCII: it goes into DSN headers and log lines */
	for (i = 0; i < text.len && n + 1 < cap && n < SMTPC_REPLY_MAX; i++)
		out[n++] = text.p[i] >= 0x20 && text.p[i] < 0x7f ? (char)text.p[i] : ' ';
	out[n] = '\0';
}

static void
fail_status(struct smtpc *c, const char *status, const char *what)
{
	snprintf(c->error, sizeof(c->error), "%s: %s %s", c->o->peer_name, status, what);
	c->broken = true;
}

static void
fail(struct smtpc *c, const char *what)
{
	/* RFC 3463 4.4.2: bad connection; the DSN and the queue show the reason */
	fail_status(c, "4.4.2", what);
}

/* Failure text from a reply: "host said: 451 4.3.0 ...". */
static void
reply_text(const struct smtpc *c, const struct smtp_reply *rep, char *out, size_t cap)
{
	char prefix[300];

	snprintf(prefix, sizeof(prefix), "%s said:", c->o->peer_name);
	smtpc_clean_text(out, cap, prefix, rep->code, buf_span(&rep->text));
}

static int
send_text(struct smtpc *c, const struct buf *b)
{
	int rc = c->t->write(c->t->io, b->data, b->len, clock_now_ms() + c->o->command_timeout_ms);

	if (rc)
		fail(c, rc == ERR_TIMEOUT ? "timed out sending a command" : "connection lost sending a command");
	return rc;
}

/* The next whole reply by timeout. 0 or an error (c->broken and c->error set). */
static int
read_reply(struct smtpc *c, unsigned timeout_ms, struct smtp_reply *out)
{
	uint64_t deadline = clock_now_ms() + timeout_ms;

	for (;;) {
		size_t used = 0;
		enum smtp_reply_result r = SMTP_REPLY_MORE;
		int rc;

		if (c->in.len)
			r = smtp_reply_read(&c->rr, &c->in, &used, out);
		buf_consume(&c->in, used);
		if (r == SMTP_REPLY_DONE)
			return 0;
		if (r == SMTP_REPLY_BAD) {
			fail(c, "malformed reply (bad code, line too long, too many lines or bare CR/LF)");
			return ERR_PROTO;
		}
		if (used)
			continue;	/* a continuation line: look for the next one */
		if ((rc = c->t->fill(c->t->io, &c->in, deadline))) {
			fail(c, rc == ERR_TIMEOUT ? "timed out waiting for a reply" :
			    rc == ERR_CLOSED ? "connection closed by the server" : "connection failed");
			return rc;
		}
	}
}

/* Send one command and read its reply. */
static int
command(struct smtpc *c, const struct buf *cmd, unsigned timeout_ms, struct smtp_reply *rep)
{
	int rc = send_text(c, cmd);

	return rc ? rc : read_reply(c, timeout_ms, rep);
}

static bool
keyword(struct span line, const char *kw, struct span *arg_out)
{
	size_t n = strlen(kw);

	if (line.len < n || !span_ieq(span_head(line, n), kw) || (line.len > n && line.p[n] != ' ' && line.p[n] != '='))
		return false;
	*arg_out = span_tail(line, line.len > n ? n + 1 : n);
	return true;
}

/* The EHLO reply's lines after the first name extensions (RFC 5321 4.1.1.1). */
static void
parse_ehlo(struct smtpc *c, const struct smtp_reply *rep)
{
	struct span rest = buf_span(&rep->text), line, arg;
	bool first = true;

	c->ext = 0;
	c->max_size = 0;
	while (rest.len) {
		const unsigned char *nl = memchr(rest.p, '\n', rest.len);
		size_t n = nl ? (size_t)(nl - rest.p) : rest.len;

		line = span_head(rest, n);
		rest = span_tail(rest, nl ? n + 1 : n);
		if (first) {
			first = false;
			continue;
		}
		if (keyword(line, "PIPELINING", &arg))
			c->ext |= SMTPC_EXT_PIPELINING;
		else if (keyword(line, "8BITMIME", &arg))
			c->ext |= SMTPC_EXT_8BITMIME;
		else if (keyword(line, "STARTTLS", &arg))
			c->ext |= SMTPC_EXT_STARTTLS;
		else if (keyword(line, "DSN", &arg))
			c->ext |= SMTPC_EXT_DSN;
		else if (keyword(line, "SMTPUTF8", &arg))
			c->ext |= SMTPC_EXT_SMTPUTF8;
		else if (keyword(line, "SIZE", &arg)) {
			uint64_t v;

			c->ext |= SMTPC_EXT_SIZE;
			/* 0: no fixed limit (RFC 1870 4), and so is a value that is not a number we can
			   read: the peer's own reply to the transaction decides, not a guessed limit */
			c->max_size = span_to_u64(arg, SMTPC_PEER_SIZE_MAX, &v) ? v : 0;
		} else if (keyword(line, "AUTH", &arg)) {
			while (arg.len) {
				const unsigned char *sp = memchr(arg.p, ' ', arg.len);
				size_t k = sp ? (size_t)(sp - arg.p) : arg.len;

				if (span_ieq(span_head(arg, k), "PLAIN"))
					c->ext |= SMTPC_EXT_AUTH_PLAIN;
				else if (span_ieq(span_head(arg, k), "LOGIN"))
					c->ext |= SMTPC_EXT_AUTH_LOGIN;
				arg = span_tail(arg, sp ? k + 1 : k);
			}
		}
	}
}

/* EHLO, or HELO when EHLO is refused. */
static enum smtpc_result
hello(struct smtpc *c)
{
	struct smtp_reply rep = { 0 };
	struct buf cmd;
	enum smtpc_result res = SMTPC_OK;

	buf_init(&cmd, 512);
	buf_printf(&cmd, "EHLO %s\r\n", c->o->helo_name);
	if (command(c, &cmd, c->o->command_timeout_ms, &rep))
		res = SMTPC_TEMP;
	else if (smtp_reply_class(&rep) == 2)
		parse_ehlo(c, &rep);
	else if (c->tls) {
		reply_text(c, &rep, c->error, sizeof(c->error));	/* no HELO after STARTTLS: ESMTP is needed */
		res = smtp_reply_class(&rep) == 5 ? SMTPC_PERM : SMTPC_TEMP;
	} else {
		buf_free(&rep.text);
		buf_reset(&cmd);
		buf_printf(&cmd, "HELO %s\r\n", c->o->helo_name);
		c->ext = 0;
		if (command(c, &cmd, c->o->command_timeout_ms, &rep))
			res = SMTPC_TEMP;
		else if (smtp_reply_class(&rep) != 2) {
			reply_text(c, &rep, c->error, sizeof(c->error));
			res = smtp_reply_class(&rep) == 5 ? SMTPC_PERM : SMTPC_TEMP;
		}
	}
	buf_free(&rep.text);
	buf_free(&cmd);
	return res;
}

static enum smtpc_result
starttls(struct smtpc *c)
{
	struct smtp_reply rep = { 0 };
	struct buf cmd;
	bool verify = c->o->tls == SMTPC_TLS_VERIFY;
	char why[TLS_REASON_MAX];
	int rc;

	buf_init(&cmd, 64);
	buf_append_str(&cmd, "STARTTLS\r\n");
	rc = command(c, &cmd, c->o->command_timeout_ms, &rep);
	buf_free(&cmd);
	if (rc)
		return SMTPC_TEMP;
	if (smtp_reply_class(&rep) != 2) {
		reply_text(c, &rep, c->error, sizeof(c->error));
		buf_free(&rep.text);
		c->tls_failed = true;
		return SMTPC_TEMP;
	}
	buf_free(&rep.text);
	/* RFC 3207 4.2: whatever came with or after the 220 is not from the TLS peer */
	if (c->in.len) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 10);
		char peer[LOG_SAFE_SIZE];
		unsigned suppressed;

		if (log_ratelimit_ok(&rl, &suppressed))
			log_msg(LOG_LEVEL_WARN, "event=relay_tls_injection peer=\"%s\" discarded=%zu suppressed=%u",
			    log_safe(peer, span_cstr(c->o->peer_name)), c->in.len, suppressed);
	}
	buf_reset(&c->in);
	smtp_reply_reader_free(&c->rr);
	smtp_reply_reader_init(&c->rr);
	rc = c->t->starttls(c->t->io, verify ? c->o->tls_name : NULL, clock_now_ms() + c->o->command_timeout_ms,
	    why, sizeof(why));
	if (rc && verify && why[0]) {
		/* not the server we meant (or not provably): never a retry in plaintext */
		char peer[LOG_SAFE_SIZE], text[LOG_SAFE_SIZE], what[sizeof(why) + 64];

		log_msg(LOG_LEVEL_WARN, "event=relay_tls_verify result=fail peer=\"%s\" reason=\"%s\"",
		    log_safe(peer, span_cstr(c->o->peer_name)), log_safe(text, span_cstr(why)));
		snprintf(what, sizeof(what), "TLS certificate not accepted: %s", why);
		fail_status(c, "4.7.5", what);	/* RFC 3463 X.7.5: cryptographic failure */
		return SMTPC_TEMP;
	}
	if (rc) {
		c->tls_failed = true;
		fail(c, rc == ERR_TIMEOUT ? "TLS handshake timed out" : "TLS handshake failed");
		return SMTPC_TEMP;
	}
	c->tls = true;
	c->tls_verified = verify;
	return hello(c);	/* RFC 3207 4.2: the server forgets what it said before */
}

/* AUTH PLAIN or LOGIN (RFC 4954) with the configured credentials. */
static enum smtpc_result
authenticate(struct smtpc *c)
{
	const char *u = c->o->auth_user, *p = c->o->auth_password;
	struct smtp_reply rep = { 0 };
	struct buf cmd, raw;
	enum smtpc_result res = SMTPC_OK;
	int rc;

	if (!c->tls_verified) {
		/* an unverified peer may be anyone in the path: the credentials would be theirs */
		fail(c, c->tls ? "AUTH configured but the server's certificate was not verified (credentials go only "
		    "to a verified server)" : "AUTH configured but the server offers no TLS (credentials are never "
		    "sent in the clear)");
		return SMTPC_TEMP;
	}
	buf_init(&cmd, 4096);
	buf_init(&raw, 2048);
	cmd.secret = raw.secret = true;
	if (c->ext & SMTPC_EXT_AUTH_PLAIN || !(c->ext & SMTPC_EXT_AUTH_LOGIN)) {
		buf_append(&raw, "", 1);
		buf_append_str(&raw, u);
		buf_append(&raw, "", 1);
		buf_append_str(&raw, p);
		buf_append_str(&cmd, "AUTH PLAIN ");
		sasl_base64_encode(raw.data, raw.len, &cmd);
		buf_append_str(&cmd, "\r\n");
		rc = command(c, &cmd, c->o->command_timeout_ms, &rep);
	} else {
		const char *steps[2] = { u, p };
		int i;

		buf_append_str(&cmd, "AUTH LOGIN\r\n");
		rc = command(c, &cmd, c->o->command_timeout_ms, &rep);
		for (i = 0; i < 2 && !rc && rep.code == 334; i++) {
			buf_free(&rep.text);
			buf_reset(&cmd);
			sasl_base64_encode(steps[i], strlen(steps[i]), &cmd);
			buf_append_str(&cmd, "\r\n");
			rc = command(c, &cmd, c->o->command_timeout_ms, &rep);
		}
	}
	if (rc)
		res = SMTPC_TEMP;
	else if (smtp_reply_class(&rep) != 2) {
		/* a refused login is our configuration's problem: retry, an admin will see the log */
		reply_text(c, &rep, c->error, sizeof(c->error));
		char peer[LOG_SAFE_SIZE], text[LOG_SAFE_SIZE];

		log_msg(LOG_LEVEL_ERR, "event=relay_auth result=fail peer=\"%s\" reply=\"%s\"",
		    log_safe(peer, span_cstr(c->o->peer_name)), log_safe(text, span_cstr(c->error)));
		res = SMTPC_TEMP;
	}
	buf_free(&rep.text);
	buf_free(&cmd);
	buf_free(&raw);
	return res;
}

enum smtpc_result
smtpc_open(struct smtpc *c)
{
	struct smtp_reply rep = { 0 };
	enum smtpc_result res;

	if (read_reply(c, c->o->command_timeout_ms, &rep))
		return SMTPC_TEMP;
	if (smtp_reply_class(&rep) != 2) {
		reply_text(c, &rep, c->error, sizeof(c->error));
		res = smtp_reply_class(&rep) == 5 ? SMTPC_PERM : SMTPC_TEMP;
		buf_free(&rep.text);
		return res;
	}
	buf_free(&rep.text);
	if ((res = hello(c)))
		return res;
	if (c->o->tls != SMTPC_TLS_NONE && c->t->starttls && c->ext & SMTPC_EXT_STARTTLS) {
		if ((res = starttls(c)))
			return res;
	} else if (c->o->tls == SMTPC_TLS_VERIFY) {
		fail(c, "TLS required but the server does not offer STARTTLS");
		return SMTPC_TEMP;
	}
	if (c->o->auth_user && *c->o->auth_user)
		return authenticate(c);
	return SMTPC_OK;
}

/* xtext (RFC 3461 4) as stored: printable, no space, no "=" (checked again: it goes into a command). */
static bool
is_xtext(const char *s)
{
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == '=')
			return false;
	return true;
}

static void
add_notify(struct buf *b, uint8_t notify)
{
	const char *sep = "";

	if (!notify)
		return;
	buf_append_str(b, " NOTIFY=");
	if (notify & STORE_NOTIFY_NEVER) {
		buf_append_str(b, "NEVER");
		return;
	}
	if (notify & STORE_NOTIFY_SUCCESS) {
		buf_append_str(b, "SUCCESS");
		sep = ",";
	}
	if (notify & STORE_NOTIFY_FAILURE) {
		buf_printf(b, "%sFAILURE", sep);
		sep = ",";
	}
	if (notify & STORE_NOTIFY_DELAY)
		buf_printf(b, "%sDELAY", sep);
}

static void
rcpt_command(struct buf *b, const struct smtpc_rcpt *r, bool dsn)
{
	buf_printf(b, "RCPT TO:<%s>", r->address);
	if (dsn)
		add_notify(b, r->notify);
	if (dsn && *r->orcpt && is_xtext(r->orcpt))
		buf_printf(b, " ORCPT=%s", r->orcpt);
	buf_append_str(b, "\r\n");
}

static void
all_rcpts(struct smtpc_msg *m, enum smtpc_result res, const char *text)
{
	size_t i;

	for (i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].result = res;
		snprintf(m->rcpts[i].reply, sizeof(m->rcpts[i].reply), "%s", text);
	}
}

/* The content, dot-stuffed (RFC 5321 4.5.2), then CRLF "." CRLF. */
static int
send_body(struct smtpc *c, struct smtpc_msg *m)
{
	static __thread unsigned char piece[BODY_PIECE];
	struct buf out;
	uint64_t off = m->offset;
	bool line_start = true;	/* carried across pieces */
	int rc = 0;

	buf_init(&out, 2 * BODY_PIECE + 8);
	for (;;) {
		size_t got = 0, i, run = 0;

		if (m->read(m->read_arg, off, piece, sizeof(piece), &got)) {
			fail(c, "cannot read the message from the store");
			rc = ERR_STORE;
			break;
		}
		if (!got)
			break;
		off += got;
		buf_reset(&out);
		for (i = 0; i < got; i++) {
			if (line_start && piece[i] == '.') {
				buf_append(&out, piece + run, i - run);
				buf_append(&out, ".", 1);	/* the line's own dot goes with the next run */
				run = i;
			}
			line_start = piece[i] == '\n';
		}
		buf_append(&out, piece + run, got - run);
		if ((rc = c->t->write(c->t->io, out.data, out.len, clock_now_ms() + c->o->command_timeout_ms))) {
			fail(c, rc == ERR_TIMEOUT ? "timed out sending the message" : "connection lost sending the message");
			break;
		}
	}
	if (!rc) {
		buf_reset(&out);
		buf_append_str(&out, line_start ? ".\r\n" : "\r\n.\r\n");
		rc = send_text(c, &out);
	}
	buf_free(&out);
	return rc;
}

/* RSET after a transaction that did not reach the end of DATA. */
static void
reset(struct smtpc *c)
{
	struct smtp_reply rep = { 0 };
	struct buf cmd;

	buf_init(&cmd, 16);
	buf_append_str(&cmd, "RSET\r\n");
	if (!command(c, &cmd, c->o->command_timeout_ms, &rep) && smtp_reply_class(&rep) != 2)
		fail(c, "RSET refused");
	buf_free(&rep.text);
	buf_free(&cmd);
}

/* What the peer said it cannot take fails for good before any command. True when m has its results. */
static bool
cannot_take(const struct smtpc *c, struct smtpc_msg *m)
{
	char text[sizeof(m->rcpts[0].reply)];

	if (c->max_size && m->size > c->max_size)
		snprintf(text, sizeof(text), "%s: 552 5.3.4 message size %" PRIu64 " exceeds the server's limit of %" PRIu64,
		    c->o->peer_name, m->size, c->max_size);
	else if (m->smtputf8 && !(c->ext & SMTPC_EXT_SMTPUTF8))
		snprintf(text, sizeof(text), "%s: 553 5.6.7 non-ASCII address and the server lacks SMTPUTF8 (RFC 6531 3.2)",
		    c->o->peer_name);
	else if (m->body_8bit && !(c->ext & SMTPC_EXT_8BITMIME))
		snprintf(text, sizeof(text), "%s: 554 5.6.3 8-bit message and the server lacks 8BITMIME (RFC 6152 3)",
		    c->o->peer_name);
	else
		return false;
	all_rcpts(m, SMTPC_PERM, text);
	return true;
}

/* MAIL FROM with the parameters the peer takes, into b. */
static void
mail_command(const struct smtpc *c, const struct smtpc_msg *m, bool dsn, struct buf *b)
{
	buf_printf(b, "MAIL FROM:<%s>", m->sender);
	if (c->ext & SMTPC_EXT_SIZE)
		buf_printf(b, " SIZE=%" PRIu64, m->size);
	if (m->body_8bit)
		buf_append_str(b, " BODY=8BITMIME");
	if (m->smtputf8)
		buf_append_str(b, " SMTPUTF8");
	if (dsn && m->has_ret)
		buf_append_str(b, m->ret_full ? " RET=FULL" : " RET=HDRS");
	if (dsn && *m->envid && is_xtext(m->envid))
		buf_printf(b, " ENVID=%s", m->envid);
	buf_append_str(b, "\r\n");
}

static enum smtpc_result
reply_result(const struct smtp_reply *rep)
{
	return smtp_reply_class(rep) == 2 ? SMTPC_OK : smtp_reply_class(rep) == 5 ? SMTPC_PERM : SMTPC_TEMP;
}

/* The reply to MAIL (freed here): when refused, every recipient gets it. */
static enum smtpc_result
mail_reply(struct smtpc *c, struct smtpc_msg *m, struct smtp_reply *rep)
{
	enum smtpc_result res = SMTPC_OK;
	char text[sizeof(m->rcpts[0].reply)];

	if (smtp_reply_class(rep) != 2) {
		res = smtp_reply_class(rep) == 5 ? SMTPC_PERM : SMTPC_TEMP;
		reply_text(c, rep, text, sizeof(text));
		all_rcpts(m, res, text);
	}
	buf_free(&rep->text);
	return res;
}

/* Read the reply to r's RCPT: r's result when MAIL was accepted. 0 or read_reply's error. */
static int
rcpt_reply(struct smtpc *c, struct smtpc_rcpt *r, enum smtpc_result mail_res, size_t *accepted)
{
	struct smtp_reply rep = { 0 };
	int rc = read_reply(c, c->o->command_timeout_ms, &rep);

	if (!rc && mail_res == SMTPC_OK) {
		reply_text(c, &rep, r->reply, sizeof(r->reply));
		r->result = reply_result(&rep);
		*accepted += r->result == SMTPC_OK;
	}
	buf_free(&rep.text);
	return rc;
}

/* Each recipient still OK gets the reply's outcome and text. */
static void
accepted_rcpts(struct smtpc *c, struct smtpc_msg *m, const struct smtp_reply *rep, enum smtpc_result res)
{
	char text[sizeof(m->rcpts[0].reply)];
	size_t i;

	reply_text(c, rep, text, sizeof(text));
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].result == SMTPC_OK) {
			m->rcpts[i].result = res;
			snprintf(m->rcpts[i].reply, sizeof(m->rcpts[i].reply), "%s", text);
		}
}

/*
 * Read the reply to DATA: 1 for 354 (the content may follow), 0 when
 * refused (the recipients accepted get the refusal), or an error (the
 * session is broken: 354 with no recipient accepted can only be hung up on).
 */
static int
data_reply(struct smtpc *c, struct smtpc_msg *m, enum smtpc_result mail_res, size_t accepted)
{
	struct smtp_reply rep = { 0 };
	int rc = read_reply(c, c->o->command_timeout_ms, &rep);
	bool go = !rc && rep.code == 354;

	if (go && (mail_res != SMTPC_OK || !accepted)) {
		fail(c, "server accepted DATA without recipients");
		rc = ERR_PROTO;
	} else if (!rc && !go && accepted)
		accepted_rcpts(c, m, &rep, smtp_reply_class(&rep) == 5 ? SMTPC_PERM : SMTPC_TEMP);
	buf_free(&rep.text);
	return rc ? rc : go;
}

/*
 * The end of a transaction, for both paths: after 354 (go 1) the content
 * and the final reply, which is each accepted recipient's result; without
 * it (go 0) RSET. go < 0 is an error, passed on. 0 or an error.
 */
static int
finish(struct smtpc *c, struct smtpc_msg *m, int go)
{
	struct smtp_reply rep = { 0 };
	int rc;

	if (go < 0)
		return go;
	if (!go) {
		reset(c);
		return 0;
	}
	if ((rc = send_body(c, m)) || (rc = read_reply(c, c->o->data_timeout_ms, &rep))) {
		buf_free(&rep.text);
		return rc;
	}
	accepted_rcpts(c, m, &rep, reply_result(&rep));
	buf_free(&rep.text);
	return 0;
}

/* RFC 2920: MAIL, every RCPT and DATA in one write, then their replies in order. */
static int
send_pipelined(struct smtpc *c, struct smtpc_msg *m, bool dsn, const struct buf *mail)
{
	struct smtp_reply rep = { 0 };
	struct buf group;
	enum smtpc_result mail_res;
	size_t i, accepted = 0;
	int rc;

	buf_init(&group, 0);	/* bounded by the recipients' count, each at most ~800 bytes */
	buf_append(&group, mail->data, mail->len);
	for (i = 0; i < m->nrcpts; i++)
		rcpt_command(&group, &m->rcpts[i], dsn);
	buf_append_str(&group, "DATA\r\n");	/* RFC 2920 3.1: DATA ends the group */
	rc = send_text(c, &group);
	buf_free(&group);
	if (rc || (rc = read_reply(c, c->o->command_timeout_ms, &rep))) {
		buf_free(&rep.text);
		return rc;
	}
	mail_res = mail_reply(c, m, &rep);
	for (i = 0; i < m->nrcpts; i++)
		if ((rc = rcpt_reply(c, &m->rcpts[i], mail_res, &accepted)))
			return rc;
	return finish(c, m, data_reply(c, m, mail_res, accepted));
}

/* One command, one reply: RCPTs only after MAIL was accepted, DATA only with a recipient. */
static int
send_plain(struct smtpc *c, struct smtpc_msg *m, bool dsn, const struct buf *mail)
{
	struct smtp_reply rep = { 0 };
	struct buf cmd;
	enum smtpc_result mail_res;
	size_t i, accepted = 0;
	int rc = 0;

	if ((rc = command(c, mail, c->o->command_timeout_ms, &rep))) {
		buf_free(&rep.text);
		return rc;
	}
	mail_res = mail_reply(c, m, &rep);
	buf_init(&cmd, 0);
	for (i = 0; i < m->nrcpts && mail_res == SMTPC_OK && !rc; i++) {
		buf_reset(&cmd);
		rcpt_command(&cmd, &m->rcpts[i], dsn);
		if (!(rc = send_text(c, &cmd)))
			rc = rcpt_reply(c, &m->rcpts[i], mail_res, &accepted);
	}
	if (!rc && mail_res == SMTPC_OK && accepted) {
		buf_reset(&cmd);
		buf_append_str(&cmd, "DATA\r\n");
		rc = send_text(c, &cmd);
	}
	buf_free(&cmd);
	if (rc)
		return rc;
	return finish(c, m, mail_res == SMTPC_OK && accepted ? data_reply(c, m, mail_res, accepted) : 0);
}

enum smtpc_result
smtpc_send(struct smtpc *c, struct smtpc_msg *m)
{
	bool dsn = (c->ext & SMTPC_EXT_DSN) != 0;
	struct buf mail;
	size_t i;
	int rc;

	for (i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].result = SMTPC_TEMP;
		m->rcpts[i].reply[0] = '\0';
		m->rcpts[i].peer_dsn = dsn;
	}
	if (c->broken) {
		all_rcpts(m, SMTPC_TEMP, c->error);
		return SMTPC_TEMP;
	}
	/* what the peer cannot take is a permanent failure, as it said so itself */
	if (cannot_take(c, m))
		return SMTPC_OK;
	buf_init(&mail, 1024);
	mail_command(c, m, dsn, &mail);
	rc = c->ext & SMTPC_EXT_PIPELINING ? send_pipelined(c, m, dsn, &mail) : send_plain(c, m, dsn, &mail);
	buf_free(&mail);
	if (!rc)
		return c->broken ? SMTPC_TEMP : SMTPC_OK;
	/* no final answer: every recipient waits for the next attempt, with the reason */
	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].result == SMTPC_PERM)
			continue;	/* refused for good before the connection broke */
		m->rcpts[i].result = SMTPC_TEMP;
		snprintf(m->rcpts[i].reply, sizeof(m->rcpts[i].reply), "%s", c->error);
	}
	return SMTPC_TEMP;
}

void
smtpc_quit(struct smtpc *c)
{
	struct smtp_reply rep = { 0 };
	struct buf cmd;

	if (c->broken)
		return;
	buf_init(&cmd, 16);
	buf_append_str(&cmd, "QUIT\r\n");
	command(c, &cmd, QUIT_WAIT_MS, &rep);
	buf_free(&rep.text);
	buf_free(&cmd);
}
