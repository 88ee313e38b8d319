/*
 * pop3/internal.h: shared by the POP3 session files: session.c (states,
 * login, mailbox lock and snapshot, QUIT and UPDATE, the connection's
 * callbacks), commands.c (the command table, its checks and handlers) and
 * retr.c (the cursor streaming RETR, TOP and the LIST/UIDL listings).
 * Owning worker only.
 */
#ifndef POSTIE_POP3_INTERNAL_H
#define POSTIE_POP3_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/proto.h"
#include "core/linereader.h"
#include "core/span.h"
#include "server/authflow.h"
#include "server/conn.h"
#include "server/pop3/session.h"
#include "server/sasl_exchange.h"
#include "storage/store.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 1u << 0,
	POP3_STATE_TRANSACTION   = 1u << 1,
	POP3_STATE_UPDATE        = 1u << 2,	/* QUIT's deletions are being committed */
};
#define POP3_STATE_ANY (POP3_STATE_AUTHORIZATION | POP3_STATE_TRANSACTION)

/* Failed logins in one session before it is closed. */
#define POP3_AUTH_FAILURES_MAX 3

/* What a multi-line reply streams: a message body, or a listing of the snapshot. */
enum pop3_stream_kind {
	POP3_STREAM_BODY,	/* RETR, TOP */
	POP3_STREAM_LIST,	/* LIST without an argument */
	POP3_STREAM_UIDL,	/* UIDL without an argument */
};

/*
 * The cursor of the multi-line reply being sent (retr.c). While it is
 * active no command is read; the connection's drained callback moves it
 * on. It holds a position, never the reply: memory per session stays the
 * same whatever the size of the message or of the maildrop.
 */
struct pop3_stream {
	bool active;
	enum pop3_stream_kind kind;
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
	struct pop3_stream stream;
	struct sasl_exchange sasl;	/* AUTH in progress, if any */
};

/* session.c */
void pop3_reply(struct pop3_session *s, const char *text);
/* A client error: reply, count it; past limits.max_bad_commands say goodbye. */
void pop3_bad_command(struct pop3_session *s, const char *text);
/* A failed login: reply, count it; past POP3_AUTH_FAILURES_MAX say goodbye. */
void pop3_login_failed(struct pop3_session *s, const char *text);
/* authflow's answer (USER/PASS and AUTH): lock the maildrop and take its snapshot. */
void pop3_logged_in(struct conn *c, enum authflow_result r, const char *login);
/* QUIT: sign off, or enter UPDATE and commit the deletions (RFC 1939 section 6). */
void pop3_quit(void *session, struct span arg);

/* commands.c */
extern const struct sasl_exchange_ops pop3_sasl_ops;
/* One command line (valid during the call) through proto_dispatch(). */
void pop3_dispatch(struct pop3_session *s, struct span line);

/* retr.c */
/* Start LIST or UIDL of every message not deleted ("+OK" sent here). */
void pop3_retr_listing(struct pop3_session *s, bool uidl);
/* Start RETR (top false) or TOP with body_lines lines of message index i. */
void pop3_retr_body(struct pop3_session *s, size_t i, bool top, uint64_t body_lines);
/* Move the stream on until POP3_STREAM_HIGH bytes wait (the drained callback comes back). */
void pop3_retr_pump(struct pop3_session *s);

#endif
