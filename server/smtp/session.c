#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/authflow.h"
#include "server/dispatch.h"
#include "server/sasl_exchange.h"
#include "server/conn.h"
#include "core/err.h"
#include "core/linereader.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "auth/throttle.h"
#include "server/smtp/internal.h"
#include "server/smtp/session.h"
#include "core/compat.h"

void
smtp_reply(struct smtp_session *s, const char *text)
{
	conn_write(s->conn, text, strlen(text));
}

void
smtp_set_state(struct smtp_session *s, enum smtp_state st)
{
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_msg(LOG_LEVEL_DEBUG, "sid=%s event=state from=%u to=%u", s->conn->sid, s->state, st);
	s->state = st;
}

/* A client error: count it; past the limit say goodbye (RFC 5321 4.3.2: 421). */
void
smtp_bad_command(struct smtp_session *s, const char *text)
{
	struct conn *c = s->conn;

	smtp_reply(s, text);
	if (++s->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=bad_commands ip=%s count=%u",
		    c->sid, c->ip, s->bad_commands);
		conn_printf(c, "421 4.7.0 %s Too many errors, closing connection\r\n", c->cfg->hostname);
		conn_close_after_flush(c);
	}
}

/* HELO/EHLO argument: a domain or address literal; printable ASCII only. */
static bool
valid_helo(struct span arg)
{
	size_t i;

	if (arg.len == 0 || arg.len >= 256)
		return false;
	for (i = 0; i < arg.len; i++)
		if (arg.p[i] <= ' ' || arg.p[i] >= 0x7f)
			return false;
	return true;
}

static bool
offers_starttls(const struct smtp_session *s)
{
	const struct conn *c = s->conn;

	return !conn_is_tls(c) && (c->proto == LISTEN_SMTP || c->proto == LISTEN_SUBMISSION);
}

static bool
check_ehlo(void *v, struct span arg)
{
	if (valid_helo(arg))
		return true;
	smtp_bad_command(v, "501 5.5.4 Syntax: EHLO hostname\r\n");
	return false;
}

static bool
check_helo(void *v, struct span arg)
{
	if (valid_helo(arg))
		return true;
	smtp_bad_command(v, "501 5.5.4 Syntax: HELO hostname\r\n");
	return false;
}

static void
cmd_ehlo(void *v, struct span arg)
{
	struct smtp_session *s = v;
	struct conn *c = s->conn;

	memcpy(s->helo, arg.p, arg.len);
	s->helo[arg.len] = '\0';
	smtp_txn_reset(s);	/* RFC 5321 4.1.4: EHLO resets the transaction */
	smtp_set_state(s, SMTP_STATE_READY);
	conn_printf(c, "250-%s greets %s [%s]\r\n", c->cfg->hostname, s->helo, c->ip);
	conn_printf(c, "250-SIZE %" PRIu64 "\r\n", c->cfg->smtp.max_message_size);
	smtp_reply(s, "250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n");
	if (offers_starttls(s))
		smtp_reply(s, "250-STARTTLS\r\n");
	if (authflow_allowed(c) && !s->authenticated)
		smtp_reply(s, "250-AUTH PLAIN LOGIN\r\n");
	smtp_reply(s, "250-PIPELINING\r\n");
	smtp_reply(s, "250 ENHANCEDSTATUSCODES\r\n");
}

static void
cmd_helo(void *v, struct span arg)
{
	struct smtp_session *s = v;
	struct conn *c = s->conn;

	memcpy(s->helo, arg.p, arg.len);
	s->helo[arg.len] = '\0';
	smtp_txn_reset(s);
	smtp_set_state(s, SMTP_STATE_READY);
	conn_printf(c, "250 %s\r\n", c->cfg->hostname);
}

static void
cmd_noop(void *s, struct span arg)
{
	(void)arg;	/* RFC 5321 4.1.1.9: a parameter is allowed and ignored */
	smtp_reply(s, "250 2.0.0 OK\r\n");
}

static void
cmd_rset(void *s, struct span arg)
{
	(void)arg;
	smtp_txn_reset(s);
	smtp_reply(s, "250 2.0.0 OK\r\n");
}

static void
cmd_help(void *s, struct span arg)
{
	(void)arg;
	smtp_reply(s, "214 2.0.0 See RFC 5321\r\n");
}

static void
cmd_quit(void *v, struct span arg)
{
	struct smtp_session *s = v;
	struct conn *c = s->conn;

	(void)arg;
	conn_printf(c, "221 2.0.0 %s Bye\r\n", c->cfg->hostname);
	conn_close_after_flush(c);
}

static bool
check_starttls(void *v, struct span arg)
{
	struct smtp_session *s = v;

	(void)arg;
	if (offers_starttls(s))
		return true;
	smtp_bad_command(s, conn_is_tls(s->conn) ? "503 5.5.1 Already using TLS\r\n"
	    : "502 5.5.1 STARTTLS not offered here\r\n");
	return false;
}

static void
cmd_starttls(void *v, struct span arg)
{
	struct smtp_session *s = v;

	(void)arg;
	smtp_reply(s, "220 2.0.0 Ready to start TLS\r\n");
	if (conn_starttls(s->conn)) {
		log_msg(LOG_LEVEL_ERR, "sid=%s event=starttls error=\"no TLS credentials\"", s->conn->sid);
		conn_close_after_flush(s->conn);
	}
}

static void
auth_failed(struct conn *c, const char *text)
{
	struct smtp_session *s = c->session;

	smtp_reply(s, text);
	if (++s->auth_failures >= SMTP_AUTH_FAILURES_MAX) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=auth_failures ip=%s", c->sid, c->ip);
		conn_printf(c, "421 4.7.0 %s Too many authentication failures\r\n", c->cfg->hostname);
		conn_close_after_flush(c);
	}
}

static void
auth_done(struct conn *c, enum authflow_result r, const char *login)
{
	struct smtp_session *s = c->session;

	switch (r) {
	case AUTHFLOW_OK:
		s->authenticated = true;
		snprintf(s->login, sizeof(s->login), "%s", login);
		conn_set_cmd_timeout(c, c->cfg->limits.idle_timeout < c->cfg->limits.command_timeout
		    ? c->cfg->limits.idle_timeout : c->cfg->limits.command_timeout);
		smtp_reply(s, "235 2.7.0 Authentication successful\r\n");
		break;
	case AUTHFLOW_FAIL:
		auth_failed(c, "535 5.7.8 Authentication credentials invalid\r\n");
		break;
	case AUTHFLOW_THROTTLED:
		auth_failed(c, "454 4.7.0 Too many failed logins, try again later\r\n");
		break;
	default:
		smtp_reply(s, "454 4.7.0 Temporary authentication failure\r\n");
		break;
	}
}

static void
sasl_bad_command(struct conn *c, const char *text)
{
	smtp_bad_command(c->session, text);
}

/* SMTP's side of the SASL exchange (RFC 4954). */
static const struct sasl_exchange_ops smtp_sasl_ops = {
	.proto = "smtp",
	.continuation = "334 ",
	.bad_mech = "504 5.5.4 Unrecognized authentication type\r\n",
	.bad_response = "501 5.5.2 Cannot decode the response\r\n",
	.bad_line = "500 5.5.2 Line too long or malformed\r\n",
	.cancelled = "501 5.0.0 Authentication cancelled\r\n",
	.bad_authz = "535 5.7.8 Authentication credentials invalid\r\n",
	.bad_command = sasl_bad_command,
	.auth_failed = auth_failed,
	.done = auth_done,
};

static void
cmd_auth(void *v, struct span arg)
{
	struct smtp_session *s = v;

	sasl_exchange_start(&s->sasl, arg);
}

/* The mail transaction's handlers live in mail.c. */
static void run_mail(void *s, struct span arg) { smtp_cmd_mail(s, arg); }
static void run_rcpt(void *s, struct span arg) { smtp_cmd_rcpt(s, arg); }
static void run_data(void *s, struct span arg) { smtp_cmd_data(s, arg); }
static void run_vrfy(void *s, struct span arg) { smtp_cmd_vrfy(s, arg); }
static void run_bdat(void *s, struct span arg) { smtp_cmd_bdat(s, arg); }

#define SMTP_STATE_ALL (SMTP_STATE_ANY | SMTP_STATE_BDAT)

/*
 * Every command the session knows, with the states it is allowed in and
 * its policy (STYLE 8; the order of the checks is in server/dispatch.h).
 * PROTO_AUTH on the transaction: MAIL answers 530 on a submission
 * listener before AUTH (RCPT, DATA and BDAT cannot come before MAIL).
 */
static const struct proto_cmd smtp_cmds[] = {
	{ "EHLO",     SMTP_STATE_ANY,   PROTO_ARG,   NULL, NULL, check_ehlo, cmd_ehlo },
	{ "HELO",     SMTP_STATE_ANY,   PROTO_ARG,   NULL, NULL, check_helo, cmd_helo },
	{ "STARTTLS", SMTP_STATE_READY, PROTO_NOARG, NULL, NULL, check_starttls, cmd_starttls },
	{ "NOOP",     SMTP_STATE_ALL,   0,           NULL, NULL, NULL, cmd_noop },
	{ "RSET",     SMTP_STATE_ALL,   PROTO_NOARG, NULL, NULL, NULL, cmd_rset },
	{ "HELP",     SMTP_STATE_ANY,   0,           NULL, NULL, NULL, cmd_help },
	{ "QUIT",     SMTP_STATE_ALL,   PROTO_NOARG, NULL, NULL, NULL, cmd_quit },
	{ "AUTH",     SMTP_STATE_READY, PROTO_ARG | PROTO_UNAUTH | PROTO_LOGIN, NULL, NULL, NULL, cmd_auth },
	{ "MAIL",     SMTP_STATE_READY, PROTO_ARG | PROTO_AUTH, "FROM:",
	    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n", NULL, run_mail },
	{ "RCPT",     SMTP_STATE_TXN,   PROTO_ARG | PROTO_AUTH, "TO:",
	    "501 5.5.4 Syntax: RCPT TO:<address>\r\n", NULL, run_rcpt },
	{ "DATA",     SMTP_STATE_RCPT,  PROTO_NOARG | PROTO_AUTH, NULL, NULL, NULL, run_data },
	{ "VRFY",     SMTP_STATE_ANY,   PROTO_ARG,   NULL, NULL, NULL, run_vrfy },
	{ "BDAT",     SMTP_STATE_RCPT | SMTP_STATE_BDAT, PROTO_CHUNK | PROTO_AUTH, NULL, NULL, NULL, run_bdat },
};

static unsigned
rules_state(const void *s)
{
	return ((const struct smtp_session *)s)->state;
}

static bool
rules_may_login(const void *s)
{
	return authflow_allowed(((const struct smtp_session *)s)->conn);
}

static bool
rules_is_authenticated(const void *s)
{
	return ((const struct smtp_session *)s)->authenticated;
}

/* RFC 6409 4.3: a submission listener takes mail only after AUTH. */
static bool
rules_must_auth(const void *v)
{
	const struct smtp_session *s = v;

	return !s->authenticated && (s->conn->proto == LISTEN_SUBMISSION || s->conn->proto == LISTEN_SUBMISSIONS);
}

static void
rules_refuse(void *s, const char *text)
{
	smtp_bad_command(s, text);
}

/*
 * BDAT: mark the chunk for dropping before any check can refuse the
 * command (503 by state, after a refused RCPT or a 530 MAIL, ...); only
 * smtp_cmd_bdat() taking the chunk unmarks it.
 */
static bool
rules_take_chunk(void *v, struct span arg)
{
	struct smtp_session *s = v;
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(arg, &size, &last)) {
		/* the chunk's size is unknown: the session cannot be kept in step */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]; closing\r\n");
		conn_close_after_flush(s->conn);
		return false;
	}
	s->chunk_skip = size;
	return true;
}

static const struct proto_rules smtp_rules = {
	.cmds = smtp_cmds,
	.ncmds = sizeof(smtp_cmds) / sizeof(smtp_cmds[0]),
	.unknown = "500 5.5.2 Command unrecognized\r\n",
	.bad_state = "503 5.5.1 Bad sequence of commands\r\n",
	.no_arg = "501 5.5.4 Syntax error: no parameters allowed\r\n",
	.need_arg = "501 5.5.4 Syntax error: parameter required\r\n",
	.need_tls = "538 5.7.11 Encryption required for requested authentication mechanism\r\n",
	.need_auth = "530 5.7.0 Authentication required\r\n",
	.authenticated = "503 5.5.1 Already authenticated\r\n",
	.state = rules_state,
	.may_login = rules_may_login,
	.must_auth = rules_must_auth,
	.is_authenticated = rules_is_authenticated,
	.refuse = rules_refuse,
	.take_chunk = rules_take_chunk,
};

static void *
smtp_create(struct conn *c)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->conn = c;
	s->state = SMTP_STATE_INIT;
	linereader_init(&s->lr, SMTP_CMDLINE_MAX);
	sasl_exchange_init(&s->sasl, &smtp_sasl_ops, c);
	return s;
}

static void
smtp_start(struct conn *c)
{
	conn_printf(c, "220 %s ESMTP postie\r\n", c->cfg->hostname);
}

static void
smtp_input(struct conn *c)
{
	struct smtp_session *s = c->session;

	/* one line at a time, replies in order; stop when the session waits or ends */
	while (conn_can_take_input(c)) {
		struct span line;
		enum lr_result r;

		if (s->chunk_skip) {
			/* the chunk of a refused BDAT: read and dropped, never run as commands */
			size_t n = conn_input(c)->len < s->chunk_skip ? conn_input(c)->len : (size_t)s->chunk_skip;

			if (!n)
				break;
			conn_consume(c, n);
			conn_touch(c);	/* the chunk is arriving: the deadline is per piece, as for DATA */
			s->chunk_skip -= n;
			continue;
		}
		if (s->state == SMTP_STATE_DATA) {
			if (!s->txn || !conn_input(c)->len)
				break;	/* committing, or waiting for more of the message */
			if (smtp_bdat_pending(s))
				smtp_bdat_input(s);
			else
				smtp_data_input(s);
			continue;
		}
		if (sasl_exchange_reading(&s->sasl)) {
			if (sasl_exchange_input(&s->sasl) == LR_MORE)
				break;	/* no whole line yet */
			continue;
		}
		r = conn_next_line(c, &s->lr, s->line, &line);
		if (r == LR_MORE)
			break;
		if (r == LR_LINE) {
			proto_dispatch(&smtp_rules, s, line);
		} else if (r == LR_TOO_LONG) {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=line_length ip=%s", c->sid, c->ip);
			smtp_bad_command(s, "500 5.5.2 Line too long\r\n");
		} else {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=bad_line ip=%s", c->sid, c->ip);
			smtp_bad_command(s, "500 5.5.2 Bare CR, bare LF or NUL in command line\r\n");
		}
	}
}

static void
smtp_tls_ready(struct conn *c)
{
	struct smtp_session *s = c->session;

	/* RFC 3207 section 4.2: forget everything learnt before TLS */
	s->helo[0] = '\0';
	s->authenticated = false;
	s->login[0] = '\0';
	sasl_exchange_end(&s->sasl);
	smtp_txn_reset(s);
	linereader_init(&s->lr, SMTP_CMDLINE_MAX);
	smtp_set_state(s, SMTP_STATE_INIT);
}

static void
smtp_timeout(struct conn *c, enum conn_timeout why)
{
	(void)why;
	conn_printf(c, "421 4.4.2 %s Timeout, closing connection\r\n", c->cfg->hostname);
}

static void
smtp_shutdown(struct conn *c)
{
	conn_printf(c, "421 4.3.2 %s Service shutting down, try again later\r\n", c->cfg->hostname);
}

static void
smtp_destroy(struct conn *c)
{
	struct smtp_session *s = c->session;

	sasl_exchange_end(&s->sasl);
	smtp_txn_reset(s);
	free(c->session);
	c->session = NULL;
}

static const char *
smtp_busy_reply(const struct config *cfg)
{
	static __thread char text[320];

	snprintf(text, sizeof(text), "421 4.7.0 %s Too many connections, try again later\r\n",
	    cfg->hostname);
	return text;
}

const struct proto_ops smtp_proto_ops = {
	.name = "smtp",
	.create = smtp_create,
	.start = smtp_start,
	.input = smtp_input,
	.tls_ready = smtp_tls_ready,
	.drained = NULL,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.destroy = smtp_destroy,
	.busy_reply = smtp_busy_reply,
};
