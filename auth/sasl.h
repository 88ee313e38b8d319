/*
 * auth/sasl.h: SASL PLAIN (RFC 4616) and LOGIN, shared by SMTP AUTH
 * (RFC 4954) and POP3 AUTH (RFC 5034). A pure state machine: the protocol
 * feeds it the initial response and each client line, and sends the
 * challenge it gets back. Strict base64; "*" cancels; PLAIN's authzid
 * must be empty or equal to the login.
 */
#ifndef POSTIE_AUTH_SASL_H
#define POSTIE_AUTH_SASL_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/span.h"

/* RFC 4954 section 4: an AUTH line may be up to 12288 octets. */
#define SASL_LINE_MAX 12288

enum sasl_status {
	SASL_CONTINUE,		/* send "334 <challenge>" / "+ <challenge>" and read a line */
	SASL_DONE,		/* login and password are ready */
	SASL_BAD_MECH,		/* not PLAIN or LOGIN */
	SASL_BAD_SYNTAX,	/* bad base64, missing NULs, NUL in the login, too long */
	SASL_BAD_AUTHZ,		/* PLAIN authzid is another identity */
	SASL_CANCELLED		/* the client sent "*" */
};

struct sasl {
	enum { SASL_MECH_PLAIN, SASL_MECH_LOGIN } mech;
	int step;
	struct buf login;	/* secret bufs: wiped when freed */
	struct buf password;
	const char *challenge;	/* base64 text to send with SASL_CONTINUE */
};

void sasl_init(struct sasl *s);
void sasl_free(struct sasl *s);	/* wipes */

/*
 * Begin with mechanism mech; ir is the initial response (has_ir false when
 * none was given; "=" means an empty one).
 */
enum sasl_status sasl_start(struct sasl *s, struct span mech, bool has_ir, struct span ir);
/* Feed the client's next line. */
enum sasl_status sasl_step(struct sasl *s, struct span line);

/* Strict base64 (RFC 4648 section 4, padding required, no spaces) into out. 0 or ERR_SYNTAX/ERR_LIMIT. */
int sasl_base64_decode(struct span in, struct buf *out);

#endif
