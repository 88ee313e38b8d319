/*
 * pop3/commands.c: the POP3 command table (RFC 1939, RFC 2449 CAPA, RFC
 * 2595 STLS, RFC 5034 AUTH), its checks and its handlers. proto_dispatch()
 * applies the table's policy (states, arguments, credentials before TLS),
 * then a command's check (message numbers, TOP's line count, USER before
 * PASS), then its handler. Owning worker only.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "server/dispatch.h"
#include "server/pop3/internal.h"
#include "core/compat.h"

static bool
offers_stls(const struct pop3_session *s)
{
	return !conn_is_tls(s->conn) && s->conn->proto == LISTEN_POP3;
}

/*
 * A message number or TOP's line count: digits only, at most ten of them
 * (leading zeros included), more is a syntax error; the value is checked
 * afterwards (LIST 4294967297 is no message, never message 1). Ten digits
 * hold any snapshot (SNAPSHOT_MAX messages) and any line count.
 */
#define POP3_NUMBER_DIGITS_MAX 10
#define POP3_MSGNUM_MAX 9999999999ull
#define POP3_TOP_LINES_MAX 9999999999ull

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
	uint64_t n;

	if (!arg.len || arg.len > POP3_NUMBER_DIGITS_MAX)
		return MSG_NO_NUMBER;
	if (!span_to_u64(arg, POP3_MSGNUM_MAX, &n))
		return MSG_NOT_DIGITS;
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
		pop3_bad_command(s, "-ERR Syntax error: a message number is needed\r\n");
		return false;
	case MSG_NOT_DIGITS:
		pop3_bad_command(s, "-ERR Syntax error: a message number is digits only\r\n");
		return false;
	case MSG_NONE:
		pop3_reply(s, "-ERR No such message\r\n");
		return false;
	default:
		pop3_reply(s, "-ERR Message already deleted\r\n");
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
	pop3_reply(s, "+OK Capability list follows\r\n");
	if (offers_stls(s))
		pop3_reply(s, "STLS\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION && authflow_allowed(s->conn))
		pop3_reply(s, "USER\r\nSASL PLAIN LOGIN\r\n");
	pop3_reply(s, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n");
	if (s->conn->cfg->pop3.login_delay)
		conn_printf(s->conn, "LOGIN-DELAY %u\r\n", s->conn->cfg->pop3.login_delay);
	pop3_reply(s, "IMPLEMENTATION postie\r\n.\r\n");
}

static bool
check_stls(void *v, struct span arg)
{
	(void)arg;
	if (offers_stls(v))
		return true;
	pop3_bad_command(v, "-ERR STLS not available\r\n");
	return false;
}

static void
cmd_stls(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	pop3_reply(s, "+OK Begin TLS negotiation\r\n");
	if (conn_starttls(s->conn)) {
		log_msg(LOG_LEVEL_ERR, "sid=%s event=stls error=\"no TLS credentials\"", s->conn->sid);
		conn_close_after_flush(s->conn);
	}
}

static bool
check_user(void *s, struct span arg)
{
	if (arg.len <= AUTH_LOGIN_MAX)
		return true;
	pop3_bad_command(s, "-ERR [AUTH] Login too long\r\n");
	return false;
}

static void
cmd_user(void *v, struct span arg)
{
	struct pop3_session *s = v;

	memcpy(s->user, arg.p, arg.len);
	s->user[arg.len] = '\0';
	pop3_reply(s, "+OK\r\n");
}

static bool
check_pass(void *v, struct span arg)
{
	struct pop3_session *s = v;

	(void)arg;
	if (s->user[0])
		return true;
	pop3_bad_command(s, "-ERR USER first\r\n");
	return false;
}

static void
cmd_pass(void *v, struct span arg)
{
	struct pop3_session *s = v;

	authflow_check(s->conn, "pop3", span_cstr(s->user), arg, pop3_logged_in);
	s->user[0] = '\0';
}

static void
sasl_bad_command(struct conn *c, const char *text)
{
	pop3_bad_command(c->session, text);
}

static void
sasl_login_failed(struct conn *c, const char *text)
{
	pop3_login_failed(c->session, text);
}

/* POP3's side of the SASL exchange (RFC 5034). */
const struct sasl_exchange_ops pop3_sasl_ops = {
	.proto = "pop3",
	.continuation = "+ ",
	.bad_mech = "-ERR Unsupported authentication mechanism\r\n",
	.bad_response = "-ERR Cannot decode the response\r\n",
	.bad_line = "-ERR Line too long or malformed\r\n",
	.cancelled = "-ERR Authentication cancelled\r\n",
	.bad_authz = "-ERR [AUTH] Authentication failed\r\n",
	.bad_command = sasl_bad_command,
	.auth_failed = sasl_login_failed,
	.done = pop3_logged_in,
};

static void
cmd_auth(void *v, struct span arg)
{
	struct pop3_session *s = v;

	if (!arg.len) {	/* some clients list the mechanisms this way */
		pop3_reply(s, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
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
 * retr.c: a maildrop of SNAPSHOT_MAX messages makes a listing of tens of
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
	pop3_retr_listing(s, uidl);
}

static void cmd_list(void *s, struct span arg) { listing(s, arg, false); }
static void cmd_uidl(void *s, struct span arg) { listing(s, arg, true); }

/* TOP msg lines: the line count is checked first, then the message. */
static bool
top_args(struct span arg, struct span *num_out, uint64_t *lines_out)
{
	struct span lines;

	span_split(arg, ' ', num_out, &lines);
	return lines.len <= POP3_NUMBER_DIGITS_MAX && span_to_u64(lines, POP3_TOP_LINES_MAX, lines_out);
}

static bool
check_top(void *s, struct span arg)
{
	struct span num;
	uint64_t lines;

	if (!top_args(arg, &num, &lines)) {
		pop3_bad_command(s, "-ERR Syntax: TOP msg lines\r\n");
		return false;
	}
	return check_msg(s, num);
}

static void
cmd_retr(void *s, struct span arg)
{
	pop3_retr_body(s, msg_index(s, arg), false, 0);
}

static void
cmd_top(void *s, struct span arg)
{
	struct span num;
	uint64_t lines = 0;

	top_args(arg, &num, &lines);	/* check_top() said they are good */
	pop3_retr_body(s, msg_index(s, num), true, lines);
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
	pop3_reply(s, "+OK\r\n");
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
	{ "QUIT", POP3_STATE_ANY,           PROTO_NOARG,  NULL, NULL, NULL,          pop3_quit },
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
	pop3_bad_command(s, text);
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

void
pop3_dispatch(struct pop3_session *s, struct span line)
{
	proto_dispatch(&pop3_rules, s, line);
}
