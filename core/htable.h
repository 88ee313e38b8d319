/*
 * htable.h: the bounded hash table behind every per-address, per-login and
 * per-destination table (connection counts, login throttle, login cache,
 * POP3 login delay, hourly counts, delivery destinations).
 *
 * Slots are allocated once, at init: memory never grows with what clients
 * send. A key lives in one of HTABLE_PROBES slots after its hash, and every
 * lookup looks at all of them (so removal needs no tombstones), which bounds
 * each operation. When those slots are all taken, htable_put reuses the one
 * the caller's `better_victim` prefers (its oldest or least useful entry),
 * or, with no such function, fails. Keys come from clients: the hash is
 * SipHash-1-3 under a random key drawn at init, so nobody can aim keys at
 * one neighbourhood.
 *
 * No lock inside: each table's owner says which lock or thread guards it.
 */
#ifndef POSTIE_HTABLE_H
#define POSTIE_HTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

/* Slots a key may occupy: the cost of a lookup, and the eviction choice. */
#define HTABLE_PROBES 8

/* Is value a a better slot to reuse than value b? */
typedef bool (*htable_victim_fn)(const void *a, const void *b, void *arg);

struct htable {
	unsigned char *slots;	/* nslots x slot_size: used, key length, key, value */
	size_t nslots, key_max, value_size, slot_size;
	uint64_t k0, k1;	/* the hash key */
};

/*
 * nslots slots for keys of at most key_max octets, each with value_size
 * octets of value (zeroed when an entry is made). Aborts on no memory, as
 * xmalloc does.
 */
void htable_init(struct htable *t, size_t nslots, size_t key_max, size_t value_size);
void htable_free(struct htable *t);

/* The value of key, or NULL. A key longer than key_max is never found. */
void *htable_get(const struct htable *t, struct span key);

/*
 * The value of key; made (zeroed) when missing, in a free slot of its
 * neighbourhood or else in the one better_victim prefers (reused: zeroed).
 * NULL when better_victim is NULL and every slot of the neighbourhood is
 * taken, or when key is longer than key_max.
 */
void *htable_put(struct htable *t, struct span key, htable_victim_fn better_victim, void *arg);

/* Forget key (nothing when absent). */
void htable_del(struct htable *t, struct span key);

/* Remove the entry whose value this is (from htable_get or htable_put). */
void htable_del_value(struct htable *t, void *value);

/*
 * Call fn for each entry, in slot order; an entry for which fn returns true
 * is removed. Costs nslots steps: for sweeps, not for the hot path.
 */
void htable_each(struct htable *t, bool (*fn)(struct span key, void *value, void *arg), void *arg);

/* SipHash-1-3 of data under (k0, k1): exposed for the tests. */
uint64_t htable_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif
