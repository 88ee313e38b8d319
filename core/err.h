/*
 * err.h: the project's error convention.
 *
 * Functions return int: 0 for success or one of the negative ERR_* codes
 * below. Codes from errno, GnuTLS, LMDB, PAM and c-ares are translated at
 * the one edge that calls those libraries, which logs the library's own
 * message once. Any thread may call err_str().
 */
#ifndef POSTIE_ERR_H
#define POSTIE_ERR_H

enum err_code {
	ERR_OK         = 0,
	ERR_NOMEM      = -1,	/* allocation failed (normally aborts in xmalloc) */
	ERR_LIMIT      = -2,	/* a named limit was exceeded */
	ERR_SYNTAX     = -3,	/* malformed input */
	ERR_STATE      = -4,	/* not allowed in the current state */
	ERR_IO         = -5,	/* system call failed */
	ERR_TLS        = -6,	/* TLS failure; the connection is finished */
	ERR_STORE_FULL = -7,	/* map or disk full: temporary for the client */
	ERR_STORE      = -8,	/* other storage failure: temporary for the client */
	ERR_TIMEOUT    = -9,	/* a deadline passed */
	ERR_NOTFOUND   = -10,	/* no such key, login, message */
	ERR_EXISTS     = -11,	/* already present */
	ERR_AGAIN      = -12,	/* would block; try later */
	ERR_CLOSED     = -13,	/* peer closed the connection */
	ERR_CONFIG     = -14,	/* configuration invalid */
	ERR_PERM       = -15,	/* permission denied / policy refusal */
	ERR_QUOTA      = -16,	/* mailbox quota exceeded */
	ERR_CORRUPT    = -17,	/* stored data fails a consistency check */
	ERR_AUTH       = -18,	/* credentials rejected */
	ERR_TEMP       = -19,	/* temporary failure of a dependency (helper, DNS) */
	ERR_PROTO      = -20,	/* peer broke the protocol */
	ERR_MAX_       = -21
};

/* A short static description of code; never NULL. */
const char *err_str(int code);

/* Translate errno (as left by a failed system call) to a project code. */
int err_from_errno(int errnum);

/*
 * ASSERT(): our own code is wrong. Logs file:line and aborts. Never use it
 * to check input from the network, a file or a user.
 */
void err_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn));
#define ASSERT(e) ((e) ? (void)0 : err_assert_fail(#e, __FILE__, __LINE__))

#endif
