#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/throttle.h"
#include "core/htable.h"
#include "core/log.h"
#include "core/compat.h"

struct entry {
	unsigned failures;
	uint64_t window_start;
};

/*
 * The counters, keyed "a:<address>" or "l:<login>" (address_key(),
 * login_key()), on core/htable. Guarded by `lock`: any worker thread (SMTP
 * and POP3 logins) calls in, and nothing is held across I/O.
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct htable table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
table_init(void)
{
	htable_init(&table, THROTTLE_SLOTS, THROTTLE_KEY_MAX - 1, sizeof(struct entry));
}

/* What better_victim compares by. */
struct victim_ctx {
	uint64_t now;
	unsigned window;
};

static bool
expired(const struct entry *e, uint64_t now, unsigned window)
{
	return now >= e->window_start + window;
}

/*
 * Is a better to reuse than b? Expired, then fewest failures, then oldest
 * (a free slot is taken before any of them, by htable_put).
 */
static bool
better_victim(const void *va, const void *vb, void *arg)
{
	const struct entry *a = va, *b = vb;
	const struct victim_ctx *x = arg;

	if (expired(a, x->now, x->window) != expired(b, x->now, x->window))
		return expired(a, x->now, x->window);
	if (a->failures != b->failures)
		return a->failures < b->failures;
	return a->window_start < b->window_start;
}

/* The entry for key, or NULL; with create, a new one (a victim reused when its slots are full). Lock held. */
static struct entry *
find(const char *key, bool create, uint64_t now, unsigned window)
{
	struct victim_ctx x = { now, window };
	struct span k = span_cstr(key);	/* keys come from address_key(), login_key(): bounded */
	struct entry *e;

	pthread_once(&table_once, table_init);
	if ((e = htable_get(&table, k))) {
		if (expired(e, now, window)) {	/* its window is over: start again */
			e->failures = 0;
			e->window_start = now;
		}
		return e;
	}
	if (!create)
		return NULL;
	e = htable_put(&table, k, better_victim, &x);	/* never NULL: a victim rule, a bounded key */
	e->window_start = now;
	return e;
}

/*
 * The address a client is counted by: IPv6 by its /64 (one customer's
 * block: counting single addresses there would count nothing),
 * IPv4-mapped IPv6 as IPv4, anything else as given.
 */
static void
address_key(char *out, size_t n, const char *ip)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, ip, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			if (inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text)))
				ip = text;
		} else {
			memset(&a6.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) &&
			    snprintf(out, n, "a:%s/64", text) < (int)n)
				return;
		}
	}
	if (snprintf(out, n, "a:%s", ip) >= (int)n)
		out[n - 1] = '\0';	/* cut: still a bounded, stable key */
}

static void
login_key(char *out, size_t n, const char *login)
{
	if (snprintf(out, n, "l:%s", login) >= (int)n)
		out[n - 1] = '\0';
}

/* Is ip or login at its limit? Lock held. */
static bool
blocked_locked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	char k[THROTTLE_KEY_MAX];
	struct entry *e;
	bool blocked = false;

	address_key(k, sizeof(k), ip);
	if ((e = find(k, false, now, lim->window)) && e->failures >= lim->max_failures)
		blocked = true;
	if (login && *login) {
		login_key(k, sizeof(k), login);
		if ((e = find(k, false, now, lim->window)) &&
		    e->failures >= lim->max_failures * THROTTLE_LOGIN_FACTOR)
			blocked = true;
	}
	return blocked;
}

/* Count one failure for ip and login. Lock held. */
static void
record_locked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	char k[THROTTLE_KEY_MAX];
	struct entry *e;

	address_key(k, sizeof(k), ip);
	e = find(k, true, now, lim->window);
	if (e->failures < ~0u)
		e->failures++;
	if (login && *login) {
		login_key(k, sizeof(k), login);
		e = find(k, true, now, lim->window);
		if (e->failures < ~0u)
			e->failures++;
	}
}

/* Take back one failure counted at `started` for key, if its window still holds it. Lock held. */
static void
release_key(const char *key, const struct throttle_limits *lim, uint64_t started, uint64_t now)
{
	struct entry *e = find(key, false, now, lim->window);

	if (e && e->failures > 0 && e->window_start <= started)
		e->failures--;
}

bool
throttle_is_blocked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	bool blocked;

	pthread_mutex_lock(&lock);
	blocked = blocked_locked(ip, login, lim, now);
	pthread_mutex_unlock(&lock);
	return blocked;
}

void
throttle_record_failure(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	pthread_mutex_lock(&lock);
	record_locked(ip, login, lim, now);
	pthread_mutex_unlock(&lock);
}

bool
throttle_begin(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	bool ok;

	pthread_mutex_lock(&lock);
	ok = !blocked_locked(ip, login, lim, now);
	if (ok)
		record_locked(ip, login, lim, now);
	pthread_mutex_unlock(&lock);
	return ok;
}

void
throttle_release(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t started,
    uint64_t now)
{
	char k[THROTTLE_KEY_MAX];

	pthread_mutex_lock(&lock);
	address_key(k, sizeof(k), ip);
	release_key(k, lim, started, now);
	if (login && *login) {
		login_key(k, sizeof(k), login);
		release_key(k, lim, started, now);
	}
	pthread_mutex_unlock(&lock);
}

static bool
forget(struct span key, void *value, void *arg)
{
	(void)key;
	(void)value;
	(void)arg;
	return true;
}

void
throttle_reset(void)
{
	pthread_mutex_lock(&lock);
	pthread_once(&table_once, table_init);
	htable_each(&table, forget, NULL);
	pthread_mutex_unlock(&lock);
}

void
throttle_log_failure(const char *sid, const char *proto, const char *ip, const char *login, const char *reason)
{
	char safe[LOG_SAFE_SIZE];

	log_msg(LOG_LEVEL_NOTICE, "sid=%s event=auth result=fail proto=%s ip=%s login=\"%s\" reason=%s",
	    sid, proto, ip, log_safe(safe, span_cstr(login ? login : "")), reason);
}

void
throttle_address_key(char *out, size_t n, const char *ip)
{
	address_key(out, n, ip);
}
