#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "core/err.h"
#include "core/linereader.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "pop3/session.h"
#include "core/compat.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 1u << 0,
	POP3_STATE_TRANSACTION   = 1u << 1,
};
#define POP3_STATE_ANY (POP3_STATE_AUTHORIZATION | POP3_STATE_TRANSACTION)

enum {
	CMD_NOARG = 1u << 0,
};

struct pop3_session {
	struct conn *conn;
	enum pop3_state state;
	struct linereader lr;
	unsigned bad_commands;
	char line[POP3_CMDLINE_MAX];
};

struct pop3_cmd {
	const char *verb;
	unsigned states;
	unsigned flags;
	void (*run)(struct pop3_session *s, struct span arg);
};

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

static void
cmd_capa(struct pop3_session *s, struct span arg)
{
	(void)arg;
	reply(s, "+OK Capability list follows\r\n");
	if (offers_stls(s))
		reply(s, "STLS\r\n");
	reply(s, "RESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION postie\r\n.\r\n");
}

static void
cmd_noop(struct pop3_session *s, struct span arg)
{
	(void)arg;
	reply(s, "+OK\r\n");
}

static void
cmd_quit(struct pop3_session *s, struct span arg)
{
	(void)arg;
	reply(s, "+OK postie POP3 server signing off\r\n");
	conn_close_after_flush(s->conn);
}

static void
cmd_stls(struct pop3_session *s, struct span arg)
{
	(void)arg;
	if (!offers_stls(s)) {
		bad_command(s, "-ERR STLS not available\r\n");
		return;
	}
	reply(s, "+OK Begin TLS negotiation\r\n");
	if (conn_starttls(s->conn)) {
		log_msg(LOG_LEVEL_ERR, "sid=%s event=stls error=\"no TLS credentials\"", s->conn->sid);
		conn_close_after_flush(s->conn);
	}
}

static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", POP3_STATE_ANY,           CMD_NOARG, cmd_capa },
	{ "STLS", POP3_STATE_AUTHORIZATION, CMD_NOARG, cmd_stls },
	{ "NOOP", POP3_STATE_TRANSACTION,   CMD_NOARG, cmd_noop },
	{ "QUIT", POP3_STATE_ANY,           CMD_NOARG, cmd_quit },
};

static void
dispatch(struct pop3_session *s, struct span line)
{
	const struct pop3_cmd *cmd = NULL;
	long sp = span_find(line, ' ');
	struct span verb = sp < 0 ? line : span_head(line, (size_t)sp);
	struct span arg = sp < 0 ? span_make(line.p + line.len, 0) : span_tail(line, (size_t)sp + 1);
	size_t i;

	for (i = 0; i < sizeof(pop3_cmds) / sizeof(pop3_cmds[0]); i++) {
		if (span_ieq(verb, pop3_cmds[i].verb)) {
			cmd = &pop3_cmds[i];
			break;
		}
	}
	if (!cmd) {
		bad_command(s, "-ERR Unknown command\r\n");
		return;
	}
	if (!(cmd->states & s->state)) {
		bad_command(s, "-ERR Command not valid in this state\r\n");
		return;
	}
	if ((cmd->flags & CMD_NOARG) && arg.len) {
		bad_command(s, "-ERR Syntax error: no arguments allowed\r\n");
		return;
	}
	cmd->run(s, arg);
}

static void *
pop3_create(struct conn *c)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->conn = c;
	s->state = POP3_STATE_AUTHORIZATION;
	linereader_init(&s->lr, POP3_CMDLINE_MAX);
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

	while (conn_can_take_input(c)) {
		struct span line;
		enum lr_result r = conn_next_line(c, &s->lr, s->line, &line);

		if (r == LR_MORE)
			break;
		if (r == LR_LINE) {
			dispatch(s, line);
		} else if (r == LR_TOO_LONG) {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=line_length ip=%s", c->sid, c->ip);
			bad_command(s, "-ERR Line too long\r\n");
		} else {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=bad_line ip=%s", c->sid, c->ip);
			bad_command(s, "-ERR Bad characters in command line\r\n");
		}
	}
}

static void
pop3_tls_ready(struct conn *c)
{
	struct pop3_session *s = c->session;

	linereader_init(&s->lr, POP3_CMDLINE_MAX);
}

static void
pop3_timeout(struct conn *c, enum conn_timeout why)
{
	(void)why;
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
	free(c->session);
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
	.drained = NULL,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.destroy = pop3_destroy,
	.busy_reply = pop3_busy_reply,
};
