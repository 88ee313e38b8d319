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
#include "server/server.h"
#include "server/smtp/hourly.h"
#include "storage/store.h"
#include "core/compat.h"

#define HOURLY_SLOTS 4096	/* bounded memory; a full neighbourhood forgets its oldest hour */
#define HOURLY_PROBES 8		/* slots one key may use: the cost of each lookup */

enum { RATE_REPORTS = 0 };	/* n[] of an address slot; a login's is indexed by enum hourly_what */

struct hourly_slot {
	char key[THROTTLE_KEY_MAX];	/* a login, or an address key (throttle_address_key) */
	uint64_t hour;
	unsigned n[2];		/* logins: HOURLY_MESSAGES, HOURLY_RECIPIENTS; addresses: RATE_REPORTS */
};

static struct hourly_table {
	pthread_mutex_t lock;
	struct hourly_slot slot[HOURLY_SLOTS];
} by_login = { PTHREAD_MUTEX_INITIALIZER, { { "", 0, { 0, 0 } } } },
    by_address = { PTHREAD_MUTEX_INITIALIZER, { { "", 0, { 0, 0 } } } };

static uint64_t
this_hour(void)
{
	return (uint64_t)time(NULL) / 3600;
}

/* key's slot (a new one, zeroed for hour, when add is set), its counts moved on to hour. Lock held. */
static struct hourly_slot *
hourly_find(struct hourly_table *t, const char *key, uint64_t hour, bool add)
{
	uint32_t h = 2166136261u;
	size_t i, pick = HOURLY_SLOTS;
	const char *p;

	for (p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (i = 0; i < HOURLY_PROBES; i++) {
		struct hourly_slot *sl = &t->slot[(h + i) % HOURLY_SLOTS];

		if (strcmp(sl->key, key) == 0) {
			if (sl->hour < hour) {
				sl->hour = hour;
				sl->n[0] = sl->n[1] = 0;
			}
			return sl;
		}
		if (pick == HOURLY_SLOTS || sl->hour < t->slot[pick].hour)
			pick = (h + i) % HOURLY_SLOTS;
	}
	if (!add)
		return NULL;
	snprintf(t->slot[pick].key, sizeof(t->slot[pick].key), "%s", key);
	t->slot[pick].hour = hour;
	t->slot[pick].n[0] = t->slot[pick].n[1] = 0;
	return &t->slot[pick];
}

int
hourly_take(struct hourly_taken *t, const char *login, enum hourly_what what, unsigned max)
{
	uint64_t hour = this_hour();
	struct hourly_slot *sl;
	struct store_rate saved = { 0, 0, 0 };
	int rc = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&by_login.lock);
	sl = hourly_find(&by_login, login, hour, false);
	pthread_mutex_unlock(&by_login.lock);
	if (!sl) {
		/* first use since start (or since its slot was reused): the store's count, read outside the lock */
		rc = server_store ? store_rate_get(server_store, login, &saved) : ERR_NOTFOUND;
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if (rc || saved.hour != hour)
			memset(&saved, 0, sizeof(saved));
	}
	pthread_mutex_lock(&by_login.lock);
	if (!(sl = hourly_find(&by_login, login, hour, false))) {
		sl = hourly_find(&by_login, login, hour, true);
		sl->n[HOURLY_MESSAGES] = saved.messages;
		sl->n[HOURLY_RECIPIENTS] = saved.recipients;
	}
	if (sl->n[what] >= max) {
		rc = ERR_LIMIT;
	} else {
		sl->n[what]++;
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
	struct hourly_slot *sl;

	if (!t->messages && !t->recipients)
		return;
	pthread_mutex_lock(&by_login.lock);
	sl = hourly_find(&by_login, t->login, t->hour, false);
	if (sl && sl->hour == t->hour) {
		sl->n[HOURLY_MESSAGES] -= sl->n[HOURLY_MESSAGES] < t->messages ? sl->n[HOURLY_MESSAGES] : t->messages;
		sl->n[HOURLY_RECIPIENTS] -= sl->n[HOURLY_RECIPIENTS] < t->recipients ? sl->n[HOURLY_RECIPIENTS] :
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
	struct hourly_slot *sl;
	bool ok;

	if (!max)
		return true;
	throttle_address_key(key, sizeof(key), ip);	/* IPv6 by its /64, as the login throttle */
	pthread_mutex_lock(&by_address.lock);
	sl = hourly_find(&by_address, key, this_hour(), true);
	ok = sl->n[RATE_REPORTS] < max;
	if (ok)
		sl->n[RATE_REPORTS]++;
	pthread_mutex_unlock(&by_address.lock);
	return ok;
}
