/*
 * dispatch.h: the one command dispatcher of the SMTP and POP3 sessions
 * (STYLE 8, the shape of OpenSMTPD's commands[]). Each protocol gives a
 * table of its verbs (the states each is allowed in, its flags, a check and
 * a run step) and its own reply texts; proto_dispatch() splits the line,
 * finds the verb and applies the whole policy in one place, in this order:
 *
 *   unknown verb                       -> rules->unknown
 *   PROTO_CHUNK: the announced bytes are taken over (before any refusal)
 *   not in one of cmd->states          -> rules->bad_state
 *   PROTO_NOARG with an argument       -> rules->no_arg
 *   PROTO_ARG/SECRET without one       -> rules->need_arg
 *   cmd->prefix missing ("FROM:")      -> cmd->prefix_reply
 *   PROTO_UNAUTH once authenticated    -> rules->authenticated
 *   PROTO_LOGIN with an argument where
 *     passwords may not go             -> rules->need_tls
 *   PROTO_AUTH before authentication   -> rules->need_auth
 *   cmd->check                         -> its own reply
 *   cmd->run
 *
 * Every refusal above is a bad command (rules->refuse counts it). Handlers
 * only act: what decides whether a command may run sits in the table, the
 * rules and the checks. Owning worker only; no state of its own.
 */
#ifndef POSTIE_DISPATCH_H
#define POSTIE_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

enum {
	PROTO_NOARG  = 1u << 0,	/* an argument is a syntax error */
	PROTO_ARG    = 1u << 1,	/* an argument is required */
	PROTO_SECRET = 1u << 2,	/* required, and a secret (POP3 PASS): never logged */
	PROTO_LOGIN  = 1u << 3,	/* an argument carries credentials: only where authflow_allowed()
				   (RFC 2595 section 2.1, RFC 4954 section 4) */
	PROTO_AUTH   = 1u << 4,	/* only after AUTH where the listener demands it (submission) */
	PROTO_UNAUTH = 1u << 5,	/* refused once authenticated (a second AUTH) */
	PROTO_CHUNK  = 1u << 6,	/* the line announces bytes that follow it (BDAT, RFC 3030) */
};

struct proto_cmd {
	const char *verb;	/* upper case; matched case-insensitively on the whole word */
	unsigned states;	/* bitmask of the protocol's states where it is allowed */
	unsigned flags;		/* PROTO_* above */
	const char *prefix;	/* NULL, or what the argument must start with (case-insensitive,
				   e.g. "FROM:"): stripped before check and run */
	const char *prefix_reply;	/* the refusal when it does not */
	/* validate, no effects but the reply: true to go on, false once it has answered */
	bool (*check)(void *session, struct span arg);
	/* act and reply; arg is valid during the call only */
	void (*run)(void *session, struct span arg);
};

/* A protocol's side of dispatch: its table, its reply texts, what it knows of a session. */
struct proto_rules {
	const struct proto_cmd *cmds;
	size_t ncmds;
	const char *unknown, *bad_state, *no_arg, *need_arg;
	const char *need_tls;		/* PROTO_LOGIN */
	const char *need_auth;		/* PROTO_AUTH */
	const char *authenticated;	/* PROTO_UNAUTH */
	unsigned (*state)(const void *session);	/* one bit of the protocol's states */
	bool (*may_login)(const void *session);	/* PROTO_LOGIN: authflow_allowed() */
	bool (*must_auth)(const void *session);	/* PROTO_AUTH: refused now? NULL if unused */
	bool (*is_authenticated)(const void *session);	/* PROTO_UNAUTH; NULL if unused */
	void (*refuse)(void *session, const char *text);	/* reply and count a bad command */
	/*
	 * PROTO_CHUNK: take over the bytes the line announces, before any
	 * refusal, so a refused command's data is never read as commands.
	 * false: the announcement itself is unreadable; it has answered and
	 * the session ends.
	 */
	bool (*take_chunk)(void *session, struct span arg);
};

/* Handle one command line (without CRLF, valid during the call) for session. */
void proto_dispatch(const struct proto_rules *rules, void *session, struct span line);

#endif
