/*
 * smtp/internal.h: shared by the SMTP session files (session.c: commands
 * and AUTH; mail.c: the mail transaction). Owning worker only.
 */
#ifndef POSTIE_SMTP_INTERNAL_H
#define POSTIE_SMTP_INTERNAL_H

#include "server/conn.h"
#include "core/linereader.h"
#include "server/smtp/data.h"
#include "server/smtp/parse.h"
#include "server/smtp/session.h"
#include "server/sasl_exchange.h"

struct smtp_txn;

enum smtp_state {
	SMTP_STATE_INIT  = 1u << 0,	/* greeted, no EHLO/HELO yet */
	SMTP_STATE_READY = 1u << 1,	/* after EHLO/HELO */
	SMTP_STATE_MAIL  = 1u << 2,	/* after MAIL */
	SMTP_STATE_RCPT  = 1u << 3,	/* at least one recipient accepted */
	SMTP_STATE_DATA  = 1u << 4,	/* receiving the message, or committing it */
	SMTP_STATE_BDAT  = 1u << 5,	/* between BDAT chunks (RFC 3030) */
};
#define SMTP_STATE_ANY (SMTP_STATE_INIT | SMTP_STATE_READY | SMTP_STATE_MAIL | SMTP_STATE_RCPT)
#define SMTP_STATE_TXN (SMTP_STATE_MAIL | SMTP_STATE_RCPT)

/* Failed AUTH attempts in one session before it is closed. */
#define SMTP_AUTH_FAILURES_MAX 3

struct smtp_session {
	struct conn *conn;
	enum smtp_state state;
	struct linereader lr;
	unsigned bad_commands;
	char helo[256];		/* the client's EHLO/HELO name, validated printable */
	char line[SMTP_CMDLINE_MAX];	/* the command being handled, NUL-terminated */

	/* AUTH (RFC 4954) */
	bool authenticated;
	char login[256];	/* the authenticated login */
	unsigned auth_failures;
	struct sasl_exchange sasl;	/* the exchange in progress, if any */

	/*
	 * Bytes of a refused BDAT's chunk still to read and drop.
	 * proto_dispatch() sets it (PROTO_CHUNK) before any check; only smtp_cmd_bdat() taking the chunk
	 * clears it, so no refusal can leave the chunk to be read as commands.
	 */
	uint64_t chunk_skip;

	/* the mail transaction (mail.c) */
	struct smtp_txn *txn;	/* NULL outside MAIL .. end of DATA */
	unsigned messages;	/* accepted in this session */
};


void smtp_reply(struct smtp_session *s, const char *text);
void smtp_bad_command(struct smtp_session *s, const char *text);
void smtp_set_state(struct smtp_session *s, enum smtp_state st);

/*
 * mail.c: the mail transaction's run steps, called by proto_dispatch()
 * after the table's policy (session.c smtp_cmds[]): MAIL and RCPT get what
 * follows "FROM:" / "TO:", and MAIL only where AUTH is not missing.
 */
void smtp_cmd_mail(struct smtp_session *s, struct span arg);
void smtp_cmd_rcpt(struct smtp_session *s, struct span arg);
void smtp_cmd_data(struct smtp_session *s, struct span arg);
void smtp_cmd_vrfy(struct smtp_session *s, struct span arg);
void smtp_cmd_bdat(struct smtp_session *s, struct span arg);
/* Bytes of the current BDAT chunk still to read (0: none pending). */
uint64_t smtp_bdat_pending(const struct smtp_session *s);
/* BDAT chunk bytes arrived: take up to the chunk's size. */
void smtp_bdat_input(struct smtp_session *s);
/* DATA bytes arrived: feed the decoder; returns after the end or when input runs out. */
void smtp_data_input(struct smtp_session *s);
/* Forget the transaction (RSET, EHLO, STARTTLS, the end of a session). */
void smtp_txn_reset(struct smtp_session *s);

#endif
