/*
 * auth/throttle.h: failed-login counters per client address and per login.
 * Past the limit within the window, attempts are refused with a temporary
 * error before PAM is asked. Successes are never slowed.
 *
 * Limits: auth.max_failures per address per auth.failure_window; per login
 * THROTTLE_LOGIN_FACTOR times that (higher, so an attacker cannot lock a
 * customer out cheaply from a few addresses while a guessing run is still
 * stopped). Memory is bounded: a fixed table; when full, the entry whose
 * window is oldest is reused.
 *
 * Threads: any; one small mutex inside, never held across I/O.
 */
#ifndef POSTIE_AUTH_THROTTLE_H
#define POSTIE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define THROTTLE_SLOTS 8192
#define THROTTLE_LOGIN_FACTOR 3

struct throttle_limits {
	unsigned max_failures;	/* per address */
	unsigned window;	/* seconds */
};

/* Would an attempt from ip for login be refused now? */
bool throttle_is_blocked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now);
/* Count a failure of ip for login. */
void throttle_record_failure(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now);
/* Forget everything (tests, SIGHUP). */
void throttle_reset(void);

/*
 * The one log line for a failed login, used by SMTP and POP3 alike, and
 * matched by packaging/fail2ban/filter.d/postie.conf:
 *   sid=... event=auth result=fail proto=smtp ip=192.0.2.7 login="bob" reason=...
 */
void throttle_log_failure(const char *sid, const char *proto, const char *ip, const char *login,
    const char *reason);

#endif
