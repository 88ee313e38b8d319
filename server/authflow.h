/*
 * authflow.h: one login path for SMTP AUTH and POP3 USER/PASS and AUTH.
 * Throttle first (refused before PAM is asked; the attempt counts from
 * then on and is given back on success or TEMPFAIL), then the PAM helper, then
 * the accounts registry (a login needs a mailbox to use the service), one
 * log line per failure, and a delayed answer to a failure (set with a
 * timer: no thread sleeps). Owning worker only.
 */
#ifndef POSTIE_AUTHFLOW_H
#define POSTIE_AUTHFLOW_H

#include "conn.h"
#include "core/span.h"
#include "storage/store.h"

enum authflow_result {
	AUTHFLOW_OK,
	AUTHFLOW_FAIL,		/* bad credentials, locked account, or no mailbox */
	AUTHFLOW_TEMPFAIL,	/* PAM or the helper could not answer */
	AUTHFLOW_THROTTLED	/* too many failures from this address or for this login */
};

/*
 * Check login and password for connection c. The connection is paused
 * until done(c, result, login) runs on c's worker; login is the checked
 * login (valid during the call). done is not called if c closes first.
 */
void authflow_check(struct conn *c, const char *proto, struct span login, struct span password,
    void (*done)(struct conn *c, enum authflow_result r, const char *login));

/* Whether a password may be sent on c now (TLS, or loopback when allowed). */
bool authflow_allowed(const struct conn *c);

#endif
