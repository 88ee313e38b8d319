/*
 * auth/sasl.h: SASL PLAIN (RFC 4616) and LOGIN, shared by SMTP AUTH
 * (RFC 4954) and POP3 AUTH (RFC 5034). A pure state machine, no I/O, no
 * logging, no globals: the session feeds it the initial response and each
 * client line, and sends the challenge it gets back ("334 " / "+ ").
 * Strict base64 (RFC 4648 section 4: alphabet, padding, canonical bits; no
 * whitespace); "*" cancels (RFC 4954 section 4); "=" is an empty response;
 * PLAIN's authzid must be empty or equal to the login (no proxy logins).
 *
 * Callers: one session, on its owning worker; struct sasl belongs to it.
 * The login and password end up in secret bufs, wiped by sasl_free() and
 * by the next sasl_start().
 */
#ifndef POSTIE_AUTH_SASL_H
#define POSTIE_AUTH_SASL_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/span.h"

/* RFC 4954 section 4: an AUTH line may be up to 12288 octets. */
#define SASL_LINE_MAX 12288

/*
 * Decoded sizes come from auth/proto.h: login 1..AUTH_LOGIN_MAX (255)
 * bytes without control characters, password up to AUTH_PASSWORD_MAX
 * (1024) without NUL, PLAIN's authzid up to AUTH_LOGIN_MAX. These are what
 * postie-auth accepts; refusing more here keeps secrets off the heap.
 */

enum sasl_status {
	SASL_CONTINUE,		/* send "334 <challenge>" / "+ <challenge>" and read a line */
	SASL_DONE,		/* login and password are ready */
	SASL_BAD_MECH,		/* not PLAIN or LOGIN */
	SASL_BAD_SYNTAX,	/* s->err says why: ERR_SYNTAX (bad base64, missing NULs,
				   NUL or control character in the login, empty login) or
				   ERR_LIMIT (line, login, authzid or password too long) */
	SASL_BAD_AUTHZ,		/* PLAIN authzid is another identity (ERR_AUTH) */
	SASL_CANCELLED		/* the client sent "*" */
};

struct sasl {
	enum { SASL_MECH_PLAIN, SASL_MECH_LOGIN } mech;
	int step;		/* 0 = no exchange in progress */
	int err;		/* with a SASL_BAD_*: ERR_SYNTAX, ERR_LIMIT or ERR_AUTH; else 0 */
	struct buf login;	/* secret bufs: valid after SASL_DONE until the next */
	struct buf password;	/* sasl_start() or sasl_free() */
	const char *challenge;	/* base64 text to send with SASL_CONTINUE; static storage */
};

/* Ready s for sasl_start(). No error. */
void sasl_init(struct sasl *s);
/* Wipe and release the login and password; s can be sasl_init()ed again. */
void sasl_free(struct sasl *s);

/*
 * Begin an exchange with mechanism mech (case-insensitive "PLAIN" or
 * "LOGIN"). has_ir: an initial response ir was given on the command line
 * ("=" is an empty one, "*" cancels). Returns SASL_CONTINUE with
 * s->challenge set, or SASL_DONE, or an error status (SASL_BAD_MECH,
 * SASL_BAD_SYNTAX, SASL_BAD_AUTHZ, SASL_CANCELLED), after which the
 * exchange is over. Spans are only read during the call.
 */
enum sasl_status sasl_start(struct sasl *s, struct span mech, bool has_ir, struct span ir);

/*
 * Feed the client's next line (without CRLF; at most SASL_LINE_MAX octets,
 * more is SASL_BAD_SYNTAX with ERR_LIMIT). Same results as sasl_start();
 * after anything but SASL_CONTINUE the exchange is over, and a further
 * step gives SASL_BAD_SYNTAX (ERR_STATE in s->err).
 */
enum sasl_status sasl_step(struct sasl *s, struct span line);

/*
 * Strict base64 (RFC 4648 section 4: padding required, canonical, no
 * spaces or line breaks) of in, appended to out. The empty input decodes
 * to nothing. Returns 0, ERR_SYNTAX, or ERR_LIMIT (out's max reached;
 * out then holds a partial result).
 */
int sasl_base64_decode(struct span in, struct buf *out);

/* Base64 of n bytes appended to out (the outbound client's AUTH). 0 or ERR_LIMIT. */
int sasl_base64_encode(const void *p, size_t n, struct buf *out);

#endif
