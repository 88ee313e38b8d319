#include "config.h"

#include <pthread.h>
#include <string.h>

#include "auth/proto.h"
#include "core/err.h"
#include "logincache.h"
#include "tls.h"
#include "core/compat.h"

struct entry {
	char login[AUTH_LOGIN_MAX + 1];
	unsigned char mac[TLS_HMAC_LEN];
	uint64_t stored, generation;
	bool used;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry table[LOGINCACHE_SLOTS];
static unsigned char key[32];
static bool ready;

int
logincache_init(void)
{
	if (tls_random(key, sizeof(key)))
		return ERR_TLS;
	ready = true;
	return 0;
}

static uint32_t
slot_of(struct span login)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < login.len; i++)
		h = (h ^ login.p[i]) * 16777619u;
	return h % LOGINCACHE_SLOTS;
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
	e = &table[slot_of(login)];
	hit = e->used && span_eq(login, e->login) && e->generation == generation &&
	    now < e->stored + ttl && same(e->mac, mac);
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
	e = &table[slot_of(login)];	/* one slot per hash: a collision forgets the older */
	memcpy(e->login, login.p, login.len);
	e->login[login.len] = '\0';
	memcpy(e->mac, mac, TLS_HMAC_LEN);
	e->stored = now;
	e->generation = generation;
	e->used = true;
	pthread_mutex_unlock(&lock);
}

void
logincache_flush(void)
{
	pthread_mutex_lock(&lock);
	explicit_bzero(table, sizeof(table));
	pthread_mutex_unlock(&lock);
}
