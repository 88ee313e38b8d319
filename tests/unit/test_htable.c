#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/htable.h"
#include "tap.h"

uint64_t htable_siphash24(uint64_t k0, uint64_t k1, const void *data, size_t len);

struct counter {
	unsigned n;
	unsigned age;
};

static bool
older(const void *a, const void *b, void *arg)
{
	(void)arg;
	return ((const struct counter *)a)->age < ((const struct counter *)b)->age;
}

/* The reference vectors of the SipHash paper (SipHash-2-4, key 00..0f, message 00..len-1). */
static void
test_siphash(void)
{
	unsigned char msg[15];
	uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
	size_t i;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	CHECK(htable_siphash24(k0, k1, msg, 0) == 0x726fdb47dd0e0e31ull);
	CHECK(htable_siphash24(k0, k1, msg, 1) == 0x74f839c593dc67fdull);
	CHECK(htable_siphash24(k0, k1, msg, 8) == 0x93f5f5799a932462ull);
	CHECK(htable_siphash24(k0, k1, msg, 15) == 0xa129ca6149be45e5ull);
	/* the table's hash is keyed: two keys give two hashes */
	CHECK(htable_siphash(1, 2, "x", 1) != htable_siphash(1, 3, "x", 1));
}

static void
test_put_get_del(void)
{
	struct htable t;
	struct counter *c;
	char key[16];
	unsigned i, found = 0;

	/* roomy: 30 keys in 4096 slots cannot fill a neighbourhood of 8 (the hash key is random) */
	htable_init(&t, 4096, 8, sizeof(struct counter));
	CHECK(htable_get(&t, span_cstr("a")) == NULL);
	c = htable_put(&t, span_cstr("a"), NULL, NULL);
	CHECK(c && c->n == 0);
	c->n = 5;
	CHECK(htable_put(&t, span_cstr("a"), NULL, NULL) == c && c->n == 5);	/* found, not made again */
	CHECK(htable_get(&t, span_cstr("a")) == c);
	CHECK(htable_get(&t, span_cstr("b")) == NULL);
	CHECK(htable_put(&t, span_cstr("123456789"), NULL, NULL) == NULL);	/* key_max + 1 */
	CHECK(htable_get(&t, span_cstr("123456789")) == NULL);
	CHECK(htable_put(&t, span_cstr("12345678"), NULL, NULL) != NULL);	/* exactly key_max */
	htable_del(&t, span_cstr("a"));
	CHECK(htable_get(&t, span_cstr("a")) == NULL);
	/* many keys: each is found where it was put, removal keeps the others */
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		c = htable_put(&t, span_cstr(key), NULL, NULL);
		if (c)
			c->n = i;
	}
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		c = htable_get(&t, span_cstr(key));
		found += c && c->n == i;
		if (i % 2 && c)
			htable_del_value(&t, c);
	}
	CHECK(found == 30);
	found = 0;
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		found += htable_get(&t, span_cstr(key)) != NULL;
	}
	CHECK(found == 15);
	htable_free(&t);
}

/* A full neighbourhood: without a victim rule put fails, with one the oldest goes. */
static void
test_bounded(void)
{
	struct htable t;
	struct counter *c;
	char key[16];
	unsigned i, made = 0, refused = 0;

	htable_init(&t, HTABLE_PROBES, 8, sizeof(struct counter));	/* one neighbourhood */
	for (i = 0; i < HTABLE_PROBES + 3; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		if ((c = htable_put(&t, span_cstr(key), NULL, NULL))) {
			c->age = i;
			made++;
		} else {
			refused++;
		}
	}
	CHECK(made == HTABLE_PROBES && refused == 3);
	c = htable_put(&t, span_cstr("new"), older, NULL);
	CHECK(c != NULL && c->age == 0);			/* reused, zeroed */
	CHECK(htable_get(&t, span_cstr("k0")) == NULL);	/* the oldest went */
	CHECK(htable_get(&t, span_cstr("k1")) != NULL);
	htable_free(&t);
}

static bool
drop_even(struct span key, void *value, void *arg)
{
	unsigned *seen = arg;

	(void)key;
	(*seen)++;
	return ((struct counter *)value)->n % 2 == 0;
}

static void
test_each(void)
{
	struct htable t;
	struct counter *c;
	char key[16];
	unsigned i, seen = 0, left = 0;

	htable_init(&t, 256, 8, sizeof(struct counter));
	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		c = htable_put(&t, span_cstr(key), NULL, NULL);
		c->n = i;
	}
	htable_each(&t, drop_even, &seen);
	CHECK(seen == 10);
	for (i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		left += htable_get(&t, span_cstr(key)) != NULL;
	}
	CHECK(left == 5);
	htable_free(&t);
}

int
main(void)
{
	test_siphash();
	test_put_get_del();
	test_bounded();
	test_each();
	return tap_done();
}
