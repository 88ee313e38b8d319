#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/htable.h"
#include "core/xmalloc.h"
#include "core/compat.h"

/* A slot: used (1 octet), key length (2 octets), key (key_max), value. */
#define SLOT_HEAD 3

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do {						\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);		\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;					\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;					\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);		\
} while (0)

static uint64_t
load_le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* SipHash with c compression and d finalization rounds (Aumasson and Bernstein). */
static uint64_t
siphash(unsigned c, unsigned d, uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
	uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, left = len & 7;
	unsigned r;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load_le64(in + i);
		v3 ^= m;
		for (r = 0; r < c; r++)
			SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	while (left--)
		b |= (uint64_t)in[i + left] << (8 * left);
	v3 ^= b;
	for (r = 0; r < c; r++)
		SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (r = 0; r < d; r++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
htable_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	return siphash(1, 3, k0, k1, data, len);
}

/* Exposed for the tests' reference vectors only (SipHash-2-4). */
uint64_t htable_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len);
uint64_t
htable_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	return siphash(2, 4, k0, k1, data, len);
}

void
htable_init(struct htable *t, size_t nslots, size_t key_max, size_t value_size)
{
	uint64_t k[2];

	/* a random key; without getrandom (very early boot) the table still works, only less hidden */
	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
		k[0] = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;
		k[1] = (uint64_t)(uintptr_t)&k;
	}
	t->k0 = k[0];
	t->k1 = k[1];
	t->nslots = nslots < HTABLE_PROBES ? HTABLE_PROBES : nslots;
	t->key_max = key_max;
	t->value_size = value_size;
	/* values start aligned for any type */
	t->slot_size = (SLOT_HEAD + key_max + 15) / 16 * 16 + (value_size + 15) / 16 * 16;
	t->slots = xcalloc(t->nslots, t->slot_size);
}

void
htable_free(struct htable *t)
{
	free(t->slots);
	t->slots = NULL;
}

static unsigned char *
slot(const struct htable *t, size_t i)
{
	return t->slots + (i % t->nslots) * t->slot_size;
}

static void *
value_of(const struct htable *t, unsigned char *s)
{
	return s + (SLOT_HEAD + t->key_max + 15) / 16 * 16;
}

static size_t
key_len(const unsigned char *s)
{
	return (size_t)s[1] << 8 | s[2];
}

static bool
holds(const unsigned char *s, struct span key)
{
	return s[0] && key_len(s) == key.len && (key.len == 0 || memcmp(s + SLOT_HEAD, key.p, key.len) == 0);
}

/* The slot holding key, or NULL; *first is the start of its neighbourhood. */
static unsigned char *
find(const struct htable *t, struct span key, size_t *first)
{
	size_t i;

	*first = (size_t)(htable_siphash(t->k0, t->k1, key.p, key.len) % t->nslots);
	for (i = 0; i < HTABLE_PROBES; i++) {
		unsigned char *s = slot(t, *first + i);

		if (holds(s, key))
			return s;
	}
	return NULL;
}

void *
htable_get(const struct htable *t, struct span key)
{
	size_t first;
	unsigned char *s;

	if (key.len > t->key_max)
		return NULL;
	s = find(t, key, &first);
	return s ? value_of(t, s) : NULL;
}

void *
htable_put(struct htable *t, struct span key, htable_victim_fn better_victim, void *arg)
{
	unsigned char *s, *pick = NULL;
	size_t first, i;

	if (key.len > t->key_max || key.len > 0xffff)
		return NULL;
	if ((s = find(t, key, &first)))
		return value_of(t, s);
	for (i = 0; i < HTABLE_PROBES; i++) {
		s = slot(t, first + i);
		if (!s[0]) {
			pick = s;
			break;
		}
		if (better_victim && (!pick || better_victim(value_of(t, s), value_of(t, pick), arg)))
			pick = s;
	}
	if (!pick)
		return NULL;
	memset(pick, 0, t->slot_size);
	pick[0] = 1;
	pick[1] = (unsigned char)(key.len >> 8);
	pick[2] = (unsigned char)key.len;
	if (key.len)
		memcpy(pick + SLOT_HEAD, key.p, key.len);
	return value_of(t, pick);
}

void
htable_del(struct htable *t, struct span key)
{
	size_t first;
	unsigned char *s;

	if (key.len <= t->key_max && (s = find(t, key, &first)))
		memset(s, 0, t->slot_size);
}

void
htable_del_value(struct htable *t, void *value)
{
	unsigned char *s = (unsigned char *)value - (SLOT_HEAD + t->key_max + 15) / 16 * 16;

	memset(s, 0, t->slot_size);
}

void
htable_each(struct htable *t, bool (*fn)(struct span key, void *value, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < t->nslots; i++) {
		unsigned char *s = slot(t, i);

		if (s[0] && fn(span_make(s + SLOT_HEAD, key_len(s)), value_of(t, s), arg))
			memset(s, 0, t->slot_size);
	}
}
