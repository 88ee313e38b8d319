/*
 * sasl_exchange.h: one SASL exchange (PLAIN, LOGIN) for SMTP AUTH (RFC
 * 4954) and POP3 AUTH (RFC 5034): the challenge, the continuation lines
 * (up to SASL_LINE_MAX, their own line reader), "*" to cancel, the outcome
 * of each step, and the credentials handed to authflow_check() (which
 * throttles and delays a failed answer). A protocol gives its texts and
 * its two counters (bad commands, authentication failures) in a
 * struct sasl_exchange_ops; the exchange lives inside its session.
 * Owning worker only.
 */
#ifndef POSTIE_SASL_EXCHANGE_H
#define POSTIE_SASL_EXCHANGE_H

#include <stdbool.h>

#include "auth/sasl.h"
#include "core/linereader.h"
#include "server/authflow.h"
#include "server/conn.h"

struct sasl_exchange_ops {
	const char *proto;		/* "smtp" or "pop3", for authflow and the logs */
	const char *continuation;	/* before a challenge: "334 " or "+ " */
	const char *bad_mech;		/* not PLAIN or LOGIN: a bad command */
	const char *bad_response;	/* undecodable: a bad command */
	const char *bad_line;		/* a continuation line too long or malformed: a bad command */
	const char *cancelled;		/* "*": a plain reply */
	const char *bad_authz;		/* PLAIN's authzid names someone else: a failed login */
	void (*bad_command)(struct conn *c, const char *text);	/* reply, count, maybe close */
	void (*auth_failed)(struct conn *c, const char *text);	/* reply, count, maybe close */
	/* authflow's answer (on c's worker; not called if c closes first) */
	void (*done)(struct conn *c, enum authflow_result r, const char *login);
};

struct sasl_exchange {
	const struct sasl_exchange_ops *ops;
	struct conn *conn;
	struct sasl *sasl;	/* during an exchange only */
	struct linereader lr;
	char *line;		/* SASL_LINE_MAX + 1, while continuation lines are read; wiped */
};

/* At session creation: nothing allocated until an exchange starts. */
void sasl_exchange_init(struct sasl_exchange *x, const struct sasl_exchange_ops *ops, struct conn *c);

/*
 * AUTH's argument: "MECH [initial-response]" (arg valid during the call).
 * Answers (challenge, refusal) or hands the credentials to authflow.
 */
void sasl_exchange_start(struct sasl_exchange *x, struct span arg);

/* Is the next input line a continuation of the exchange? */
bool sasl_exchange_reading(const struct sasl_exchange *x);

/*
 * Read and handle one continuation line. Returns LR_MORE when no whole line
 * is there yet; otherwise the line was consumed and handled (a line too
 * long or malformed ends the exchange as a bad command).
 */
enum lr_result sasl_exchange_input(struct sasl_exchange *x);

/* Forget the exchange (STARTTLS, the end of the session): secrets wiped. */
void sasl_exchange_end(struct sasl_exchange *x);

#endif
