/*
 * pop3/session.c: the POP3 server session (RFC 1939, RFC 2449 CAPA and
 * response codes, RFC 2595 STLS, RFC 5034 AUTH). After login the session
 * works on a snapshot of the maildrop taken at that moment; DELE only
 * marks; QUIT applies every deletion in one durable commit; a session that
 * ends any other way deletes nothing. One session per mailbox at a time.
 * This file holds the states, the login (lock, snapshot, LOGIN-DELAY),
 * QUIT and UPDATE and the connection's callbacks; the command table and
 * handlers are in commands.c, the streamed replies in retr.c.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/proto.h"
#include "auth/throttle.h"
#include "server/authflow.h"
#include "server/conn.h"
#include "core/err.h"
#include "core/htable.h"
#include "core/linereader.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/pop3/internal.h"
#include "server/server.h"
#include "storage/store.h"
#include "server/worker.h"
#include "core/compat.h"

/*
 * LOGIN-DELAY (RFC 2449 6.8): the time of the last successful login per
 * login, shared by all workers, on the bounded hash table (core/htable.h):
 * LOGIN_DELAY_SLOTS entries allocated at the first login, and when a
 * login's neighbourhood is full the oldest login there is forgotten, which
 * can only make the delay laxer, never lock anyone out.
 */
#define LOGIN_DELAY_SLOTS 4096

static struct htable last_login;	/* login -> uint64_t, when it last logged in */
static pthread_once_t last_login_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t last_login_lock = PTHREAD_MUTEX_INITIALIZER;

static void
last_login_init(void)
{
	htable_init(&last_login, LOGIN_DELAY_SLOTS, AUTH_LOGIN_MAX, sizeof(uint64_t));
}

/* The victim when a neighbourhood is full: the login that logged in longest ago. */
static bool
logged_in_earlier(const void *a, const void *b, void *arg)
{
	(void)arg;
	return *(const uint64_t *)a < *(const uint64_t *)b;
}

/* Too soon after the previous login of this login? If not, record this one. */
static bool
login_too_soon(const char *login, unsigned delay, uint64_t now)
{
	uint64_t *at;
	bool soon = false;

	if (!delay)
		return false;
	pthread_once(&last_login_once, last_login_init);
	pthread_mutex_lock(&last_login_lock);
	at = htable_put(&last_login, span_cstr(login), logged_in_earlier, NULL);
	if (at) {	/* NULL only for a login longer than AUTH_LOGIN_MAX: none gets here */
		soon = *at && now < *at + delay;	/* a new entry is zero: never logged in */
		if (!soon)
			*at = now;
	}
	pthread_mutex_unlock(&last_login_lock);
	return soon;
}

void
pop3_reply(struct pop3_session *s, const char *text)
{
	conn_write(s->conn, text, strlen(text));
}

void
pop3_bad_command(struct pop3_session *s, const char *text)
{
	struct conn *c = s->conn;

	pop3_reply(s, text);
	if (++s->bad_commands >= c->cfg->limits.max_bad_commands) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=bad_commands ip=%s count=%u",
		    c->sid, c->ip, s->bad_commands);
		pop3_reply(s, "-ERR Too many errors, closing connection\r\n");
		conn_close_after_flush(c);
	}
}

void
pop3_login_failed(struct pop3_session *s, const char *text)
{
	struct conn *c = s->conn;

	pop3_reply(s, text);
	if (++s->auth_failures >= POP3_AUTH_FAILURES_MAX) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=auth_failures ip=%s", c->sid, c->ip);
		pop3_reply(s, "-ERR Too many authentication failures\r\n");
		conn_close_after_flush(c);
	}
}

/* PAM said yes: lock the maildrop and take its snapshot (RFC 1939 section 4). */
void
pop3_logged_in(struct conn *c, enum authflow_result r, const char *login)
{
	struct pop3_session *s = c->session;
	int rc;

	if (r == AUTHFLOW_FAIL) {
		pop3_login_failed(s, "-ERR [AUTH] Authentication failed\r\n");
		return;
	}
	if (r == AUTHFLOW_THROTTLED) {
		pop3_login_failed(s, "-ERR [SYS/TEMP] Too many failed logins, try again later\r\n");
		return;
	}
	if (r != AUTHFLOW_OK) {
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n");
		return;
	}
	if (login_too_soon(login, c->cfg->pop3.login_delay, (uint64_t)time(NULL))) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=login_delay login=\"%s\"", c->sid, login);
		conn_printf(c, "-ERR [LOGIN-DELAY] Wait %u seconds between logins\r\n", c->cfg->pop3.login_delay);
		return;
	}
	if (store_mailbox_lock(c->srv->store, login)) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=mailbox_in_use login=\"%s\"", c->sid, login);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is in use by another session\r\n");
		return;
	}
	rc = store_mailbox_snapshot(c->srv->store, login, &s->msgs, &s->nmsgs);
	if (rc) {
		store_mailbox_unlock(c->srv->store, login);
		log_msg(LOG_LEVEL_ERR, "sid=%s event=snapshot login=\"%s\" error=\"%s\"", c->sid, login, err_str(rc));
		/* a damaged or oversized maildrop will not get better by retrying */
		pop3_reply(s, rc == ERR_CORRUPT || rc == ERR_LIMIT ?
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
			pop3_reply(s, "-ERR [SYS/TEMP] Deletions could not be committed; nothing was deleted\r\n");
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

void
pop3_quit(void *v, struct span arg)
{
	struct pop3_session *s = v;
	struct update *u;
	size_t i;

	(void)arg;
	if (s->state == POP3_STATE_AUTHORIZATION) {
		pop3_reply(s, "+OK postie POP3 server signing off\r\n");
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
		pop3_reply(s, "+OK postie POP3 server signing off\r\n");
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
	if (store_submit(s->conn->srv->store, &u->req, update_done, u)) {
		conn_resume(s->conn);
		conn_unref(u->conn);
		free(u->uids);
		free(u);
		pop3_reply(s, "-ERR [SYS/TEMP] Server stopping; nothing was deleted\r\n");
		conn_close_after_flush(s->conn);
	}
}

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
			pop3_dispatch(s, line);
			explicit_bzero(s->line, sizeof(s->line));	/* it may have held a password */
		} else if (r == LR_TOO_LONG) {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=line_length ip=%s", c->sid, c->ip);
			pop3_bad_command(s, "-ERR Line too long\r\n");
		} else {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=bad_line ip=%s", c->sid, c->ip);
			pop3_bad_command(s, "-ERR Bad characters in command line\r\n");
		}
	}
}

/* The client read what we queued: go on streaming, then take the next commands. */
static void
pop3_drained(struct conn *c)
{
	struct pop3_session *s = c->session;

	if (s->stream.active) {
		pop3_retr_pump(s);
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
		store_mailbox_unlock(c->srv->store, s->login);
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
