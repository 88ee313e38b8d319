#include "config.h"

#include <pthread.h>
#include <string.h>

#include "auth/proto.h"
#include "core/err.h"
#include "core/htable.h"
#include "logincache.h"
#include "tls.h"
#include "core/compat.h"

struct entry {
	unsigned char mac[TLS_HMAC_LEN];
	uint64_t stored, generation;
};

/*
 * Remembered logins, keyed by login, on core/htable. Guarded by `lock`:
 * any worker thread looks up and stores (authflow.c), the main thread
 * flushes on SIGHUP; nothing is held across I/O. Made by logincache_init().
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct htable table;
static unsigned char key[32];
static bool ready;

int
logincache_init(void)
{
	if (tls_random(key, sizeof(key)))
		return ERR_TLS;
	htable_init(&table, LOGINCACHE_SLOTS, AUTH_LOGIN_MAX, sizeof(struct entry));
	ready = true;
	return 0;
}

/* A full neighbourhood forgets its oldest success. */
static bool
older(const void *a, const void *b, void *arg)
{
	(void)arg;
	return ((const struct entry *)a)->stored < ((const struct entry *)b)->stored;
}

/* The MAC covers the login too, so one entry cannot vouch for another login. */
bool
logincache_mac(struct span login, struct span password, unsigned char out[TLS_HMAC_LEN])
{
	unsigned char msg[AUTH_LOGIN_MAX + 1 + AUTH_PASSWORD_MAX];

	if (!ready || login.len > AUTH_LOGIN_MAX || password.len > AUTH_PASSWORD_MAX)
		return false;
	memcpy(msg, login.p, login.len);
	msg[login.len] = 0;
	memcpy(msg + login.len + 1, password.p, password.len);
	if (tls_hmac_sha256(key, sizeof(key), msg, login.len + 1 + password.len, out)) {
		explicit_bzero(msg, sizeof(msg));
		return false;
	}
	explicit_bzero(msg, sizeof(msg));
	return true;
}

/* Constant time: how long a comparison takes says nothing of the password. */
static bool
same(const unsigned char *a, const unsigned char *b)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < TLS_HMAC_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

bool
logincache_hit(struct span login, const unsigned char mac[TLS_HMAC_LEN], unsigned ttl, uint64_t generation,
    uint64_t now)
{
	struct entry *e;
	bool hit;

	if (!ready || !ttl || login.len > AUTH_LOGIN_MAX)
		return false;
	pthread_mutex_lock(&lock);
	e = htable_get(&table, login);
	hit = e && e->generation == generation && now < e->stored + ttl && same(e->mac, mac);
	pthread_mutex_unlock(&lock);
	return hit;
}

void
logincache_store(struct span login, const unsigned char mac[TLS_HMAC_LEN], uint64_t generation, uint64_t now)
{
	struct entry *e;

	if (!ready || login.len > AUTH_LOGIN_MAX)
		return;
	pthread_mutex_lock(&lock);
	e = htable_put(&table, login, older, NULL);	/* never NULL: a victim rule, a bounded key */
	memcpy(e->mac, mac, TLS_HMAC_LEN);
	e->stored = now;
	e->generation = generation;
	pthread_mutex_unlock(&lock);
}

/* htable_each clears each slot it removes. */
static bool
forget(struct span login, void *value, void *arg)
{
	(void)login;
	(void)value;
	(void)arg;
	return true;
}

void
logincache_flush(void)
{
	if (!ready)
		return;
	pthread_mutex_lock(&lock);
	htable_each(&table, forget, NULL);
	pthread_mutex_unlock(&lock);
}
