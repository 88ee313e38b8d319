/*
 * smtp/hourly.c: the per-login and per-address hourly counts (hourly.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/throttle.h"
#include "core/err.h"
#include "core/htable.h"
#include "server/smtp/hourly.h"
#include "storage/store.h"
#include "core/compat.h"

#define HOURLY_SLOTS 4096	/* per table; bounded memory: a full neighbourhood forgets its oldest hour */
#define HOURLY_KEY_MAX (THROTTLE_KEY_MAX - 1)	/* a login (STORE_LOGIN_MAX), or an address key */

enum { RATE_REPORTS = 0 };	/* n[] of an address entry; a login's is indexed by enum hourly_what */

struct hourly_count {
	uint64_t hour;
	unsigned n[2];		/* logins: HOURLY_MESSAGES, HOURLY_RECIPIENTS; addresses: RATE_REPORTS */
};

/*
 * One table of counts on core/htable, made at first use. Guarded by its
 * own lock: any worker thread takes and gives back counts (MAIL, RCPT, the
 * end of a transaction); never held across I/O.
 */
struct hourly_table {
	pthread_mutex_t lock;
	struct htable counts;	/* key: a login, or throttle_address_key(); value: struct hourly_count */
	bool ready;
};

static struct hourly_table by_login = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct hourly_table by_address = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t
this_hour(void)
{
	return (uint64_t)time(NULL) / 3600;
}

static bool
older_hour(const void *a, const void *b, void *arg)
{
	(void)arg;
	return ((const struct hourly_count *)a)->hour < ((const struct hourly_count *)b)->hour;
}

/* key's counts (new ones, zero for hour, when add is set), moved on to hour. Lock held. */
static struct hourly_count *
hourly_find(struct hourly_table *t, const char *key, uint64_t hour, bool add)
{
	struct span k = span_make(key, strnlen(key, HOURLY_KEY_MAX));	/* cut, as a key always was */
	struct hourly_count *c;

	if (!t->ready) {
		htable_init(&t->counts, HOURLY_SLOTS, HOURLY_KEY_MAX, sizeof(struct hourly_count));
		t->ready = true;
	}
	if ((c = htable_get(&t->counts, k))) {
		if (c->hour < hour) {
			c->hour = hour;
			c->n[0] = c->n[1] = 0;
		}
		return c;
	}
	if (!add)
		return NULL;
	c = htable_put(&t->counts, k, older_hour, NULL);	/* never NULL: a victim rule, a bounded key */
	c->hour = hour;
	return c;
}

int
hourly_take(struct hourly_taken *t, struct store *st, const char *login, enum hourly_what what, unsigned max)
{
	uint64_t hour = this_hour();
	struct hourly_count *hc;
	struct store_rate saved = { 0, 0, 0 };
	int rc = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&by_login.lock);
	hc = hourly_find(&by_login, login, hour, false);
	pthread_mutex_unlock(&by_login.lock);
	if (!hc) {
		/* first use since start (or since its slot was reused): the store's count, read outside the lock */
		rc = st ? store_rate_get(st, login, &saved) : ERR_NOTFOUND;
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if (rc || saved.hour != hour)
			memset(&saved, 0, sizeof(saved));
	}
	pthread_mutex_lock(&by_login.lock);
	if (!(hc = hourly_find(&by_login, login, hour, false))) {
		hc = hourly_find(&by_login, login, hour, true);
		hc->n[HOURLY_MESSAGES] = saved.messages;
		hc->n[HOURLY_RECIPIENTS] = saved.recipients;
	}
	if (hc->n[what] >= max) {
		rc = ERR_LIMIT;
	} else {
		hc->n[what]++;
		if (t->hour != hour) {	/* a new hour: what was taken before counts there */
			t->messages = t->recipients = 0;
			t->hour = hour;
		}
		*(what == HOURLY_MESSAGES ? &t->messages : &t->recipients) += 1;
		snprintf(t->login, sizeof(t->login), "%s", login);
		rc = 0;
	}
	pthread_mutex_unlock(&by_login.lock);
	return rc;
}

void
hourly_give_back(struct hourly_taken *t)
{
	struct hourly_count *hc;

	if (!t->messages && !t->recipients)
		return;
	pthread_mutex_lock(&by_login.lock);
	hc = hourly_find(&by_login, t->login, t->hour, false);
	if (hc && hc->hour == t->hour) {
		hc->n[HOURLY_MESSAGES] -= hc->n[HOURLY_MESSAGES] < t->messages ? hc->n[HOURLY_MESSAGES] : t->messages;
		hc->n[HOURLY_RECIPIENTS] -= hc->n[HOURLY_RECIPIENTS] < t->recipients ? hc->n[HOURLY_RECIPIENTS] :
		    t->recipients;
	}
	pthread_mutex_unlock(&by_login.lock);
}

void
hourly_keep(struct hourly_taken *t)
{
	t->messages = t->recipients = 0;
}

bool
hourly_report_take(const char *ip, unsigned max)
{
	char key[THROTTLE_KEY_MAX];
	struct hourly_count *hc;
	bool ok;

	if (!max)
		return true;
	throttle_address_key(key, sizeof(key), ip);	/* IPv6 by its /64, as the login throttle */
	pthread_mutex_lock(&by_address.lock);
	hc = hourly_find(&by_address, key, this_hour(), true);
	ok = hc->n[RATE_REPORTS] < max;
	if (ok)
		hc->n[RATE_REPORTS]++;
	pthread_mutex_unlock(&by_address.lock);
	return ok;
}
