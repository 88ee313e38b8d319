#include "config.h"

#include <pthread.h>
#include <string.h>

#include "auth/throttle.h"
#include "core/log.h"
#include "core/compat.h"

struct entry {
	char key[300];		/* "a:<ip>" or "l:<login>" */
	unsigned failures;
	uint64_t window_start;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry table[THROTTLE_SLOTS];

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* The entry for key (probing 8 slots), or NULL; with create, the oldest of them is reused. */
static struct entry *
find(const char *key, bool create, uint64_t now, unsigned window)
{
	uint32_t h = hash(key);
	struct entry *oldest = NULL;
	unsigned i;

	for (i = 0; i < 8; i++) {
		struct entry *e = &table[(h + i) % THROTTLE_SLOTS];

		if (e->key[0] && strcmp(e->key, key) == 0) {
			if (now >= e->window_start + window) {	/* its window is over: start again */
				e->failures = 0;
				e->window_start = now;
			}
			return e;
		}
		if (!oldest || (oldest->key[0] && (!e->key[0] || e->window_start < oldest->window_start)))
			oldest = e;
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->key, key, strlen(key) + 1);	/* keys come from make_key(): bounded */
	oldest->window_start = now;
	return oldest;
}

static void
make_key(char *out, size_t n, char kind, const char *what)
{
	size_t len = strlen(what);

	if (len > n - 3)
		len = n - 3;
	out[0] = kind;
	out[1] = ':';
	memcpy(out + 2, what, len);
	out[2 + len] = '\0';
}

bool
throttle_is_blocked(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	char k[300];
	struct entry *e;
	bool blocked = false;

	pthread_mutex_lock(&lock);
	make_key(k, sizeof(k), 'a', ip);
	if ((e = find(k, false, now, lim->window)) && e->failures >= lim->max_failures)
		blocked = true;
	if (login && *login) {
		make_key(k, sizeof(k), 'l', login);
		if ((e = find(k, false, now, lim->window)) &&
		    e->failures >= lim->max_failures * THROTTLE_LOGIN_FACTOR)
			blocked = true;
	}
	pthread_mutex_unlock(&lock);
	return blocked;
}

void
throttle_record_failure(const char *ip, const char *login, const struct throttle_limits *lim, uint64_t now)
{
	char k[300];
	struct entry *e;

	pthread_mutex_lock(&lock);
	make_key(k, sizeof(k), 'a', ip);
	if ((e = find(k, true, now, lim->window)))
		e->failures++;
	if (login && *login) {
		make_key(k, sizeof(k), 'l', login);
		if ((e = find(k, true, now, lim->window)))
			e->failures++;
	}
	pthread_mutex_unlock(&lock);
}

void
throttle_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(table, 0, sizeof(table));
	pthread_mutex_unlock(&lock);
}

void
throttle_log_failure(const char *sid, const char *proto, const char *ip, const char *login, const char *reason)
{
	char safe[LOG_SAFE_SIZE];

	log_msg(LOG_LEVEL_NOTICE, "sid=%s event=auth result=fail proto=%s ip=%s login=\"%s\" reason=%s",
	    sid, proto, ip, log_safe(safe, span_cstr(login ? login : "")), reason);
}
