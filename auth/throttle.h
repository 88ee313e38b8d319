/*
 * auth/throttle.h: failed-login counters per client address and per login.
 * Past the limit within the window, attempts are refused with a temporary
 * error before PAM is asked; the session adds its failure delay with a
 * timer. Successes are never slowed, and they reset nothing: a login that
 * works (an attacker's own account, or the victim's) must not hand a
 * guessing run fresh attempts. An attempt counts from the moment it starts
 * (throttle_begin), so attempts in flight count too; a success gives back
 * only its own attempt.
 *
 * Limits: auth.max_failures per address per auth.failure_window seconds;
 * per login THROTTLE_LOGIN_FACTOR times that (higher, so that a few
 * addresses cannot cheaply lock a customer out, while a distributed guessing
 * run against one login is still stopped: with the defaults 30 per 15
 * minutes). An IPv6 client counts by its /64, the block one customer
 * controls; IPv4-mapped IPv6 counts as the IPv4 address.
 *
 * Windows are fixed: they start at the first failure and, once over, the
 * count starts again from zero.
 *
 * Memory is bounded: a core/htable of THROTTLE_SLOTS entries (about 2.3
 * MiB, made at first use). A key may live in one of HTABLE_PROBES slots;
 * when all are taken, the one reused is, in order: one whose window is
 * over, else the one with the fewest failures (the oldest among equals).
 * So a flood of new addresses evicts mostly harmless entries, not the
 * ones already blocked.
 *
 * Threads: any; one small mutex inside, never held across I/O. Strings are
 * only read during the call; keys are cut at THROTTLE_KEY_MAX bytes.
 */
#ifndef POSTIE_AUTH_THROTTLE_H
#define POSTIE_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define THROTTLE_SLOTS 8192		/* many more than the addresses failing at once */
#define THROTTLE_LOGIN_FACTOR 3
#define THROTTLE_KEY_MAX 260		/* "l:" + a login of AUTH_LOGIN_MAX bytes + NUL */

struct throttle_limits {
	unsigned max_failures;	/* per address, >= 1 (config auth.max_failures) */
	unsigned window;	/* seconds (config auth.failure_window) */
};

/*
 * Would an attempt from ip (numeric) for login be refused now? login may be
 * NULL or "" (not known yet): only the address counts. now is in seconds
 * from any fixed origin, the same for every call. No error.
 */
bool throttle_is_blocked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now);

/* Count one failure for ip and for login (NULL or "": the address only). No error. */
void throttle_record_failure(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now);

/* The key an address is counted by (IPv6 by its /64, as above), cut to n bytes
   (THROTTLE_KEY_MAX is enough), for other per-address counters. No error. */
void throttle_address_key(char *out, size_t n, const char *ip);

/*
 * Start an attempt from ip for login: false (nothing counted) when
 * throttle_is_blocked() would say so; otherwise the attempt is counted as a
 * failure at once, under the lock that decided, and true is returned. So a
 * burst of concurrent attempts gets at most the limit through to PAM, not
 * every attempt that starts before the first answer (STYLE 16: a limit
 * checked when the result comes back can be raced). An attempt that fails
 * stays counted; one that succeeds, or could not be judged (TEMPFAIL: the
 * helper or PAM could not answer, which tells a guesser nothing), is given
 * back with throttle_release(). No error.
 */
bool throttle_begin(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now);

/*
 * Give back one attempt counted by throttle_begin(ip, login, lim, started).
 * Counts of a window that started after `started` are left alone (that
 * window never counted this attempt), as are entries evicted meanwhile.
 * No error.
 */
void throttle_release(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t started,
    uint64_t now);

/* Forget everything (tests, SIGHUP). */
void throttle_reset(void);

/*
 * Log the one line for a failed or refused login, used by SMTP and POP3
 * alike and matched by packaging/fail2ban/filter.d/postie.conf (keep them
 * in step; the order of the fields is part of the contract):
 *   sid=SID event=auth result=fail proto=PROTO ip=IP login="LOGIN" reason=REASON
 * at level notice. login goes through log_safe() (no quote, backslash or
 * control character survives); sid, proto, ip and reason come from the
 * server (an id, a protocol name, a numeric address, a word), login may be
 * NULL. Never pass a password.
 */
void throttle_log_failure(const char *sid, const char *proto, const char *ip, const char *login,
    const char *reason);

#endif
