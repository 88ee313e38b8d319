/*
 * verify.c: the integrity check behind `postiectl verify`. One read
 * transaction (a consistent snapshot, while the server runs) walks every
 * database and cross-checks references, counts and indexes.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

struct bodycount {
	uint64_t id;
	uint32_t refs;
};

struct check {
	void (*report)(void *arg, const char *problem);
	void *arg;
	unsigned problems;
	struct bodycount *bodies;	/* references seen, sorted by id at the end */
	size_t nbodies, capbodies;
};

static void __attribute__((format(printf, 2, 3)))
problem(struct check *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->problems++;
	if (c->report)
		c->report(c->arg, msg);
}

static void
reference(struct check *c, uint64_t body)
{
	if (c->nbodies == c->capbodies) {
		c->capbodies = c->capbodies ? c->capbodies * 2 : 1024;
		c->bodies = xrealloc(c->bodies, c->capbodies * sizeof(*c->bodies));
	}
	c->bodies[c->nbodies].id = body;
	c->bodies[c->nbodies++].refs = 1;
}

static int
cmp_body(const void *a, const void *b)
{
	uint64_t x = ((const struct bodycount *)a)->id, y = ((const struct bodycount *)b)->id;
	return x < y ? -1 : x > y;
}

/* Mailboxes: entries belong to accounts, counters match, uids below next_uid. */
static void
check_mail(struct store *st, MDB_txn *txn, struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int op = MDB_FIRST;
	char login[STORE_LOGIN_MAX + 1] = "";
	struct store_account a;
	bool have = false;
	uint64_t count = 0, bytes = 0;

	if (mdb_cursor_open(txn, st->mail, &cur))
		return;
	for (;;) {
		int rc = mdb_cursor_get(cur, &k, &v, op);
		const unsigned char *kp = k.mv_data;
		struct mail_rec m;
		bool same;

		op = MDB_NEXT;
		same = rc == 0 && kp[0] == strlen(login) && memcmp(kp + 1, login, kp[0]) == 0 && *login;
		if (!same && have && (a.count != count || a.bytes != bytes))
			problem(c, "mailbox %s: counters say %u messages / %" PRIu64 " bytes, entries %" PRIu64 " / %" PRIu64,
			    login, a.count, a.bytes, count, bytes);
		if (rc)
			break;
		if (k.mv_size < 5 || (size_t)kp[0] + 5 != k.mv_size || mail_rec_decode(&v, &m)) {
			problem(c, "mail: malformed entry");
			continue;
		}
		if (!same) {
			memcpy(login, kp + 1, kp[0]);
			login[kp[0]] = '\0';
			have = accounts_load(st, txn, login, &a) == 0;
			count = bytes = 0;
			if (!have)
				problem(c, "mail: messages of %s, which has no account", login);
		}
		count++;
		bytes += m.size;
		if (have && key_get_u32(kp + 1 + kp[0]) >= a.next_uid)
			problem(c, "mailbox %s: uid %u not below next uid %u", login,
			    key_get_u32(kp + 1 + kp[0]), a.next_uid);
		reference(c, m.body);
	}
	mdb_cursor_close(cur);
}

/* Queue: decodable entries, each in the time index and the index pointing back. */
static void
check_queue(struct store *st, MDB_txn *txn, struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int op = MDB_FIRST;
	uint64_t entries = 0;
	MDB_stat ms;

	if (mdb_cursor_open(txn, st->queue, &cur))
		return;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		struct store_qentry q;
		unsigned char tkey[16];
		MDB_val tk = { 16, tkey }, tv;

		op = MDB_NEXT;
		entries++;
		if (k.mv_size != 8 || queue_decode(&v, key_get_u64(k.mv_data), &q)) {
			problem(c, "queue: undecodable entry");
			continue;
		}
		key_qtime(tkey, q.next_attempt, q.id);
		if (mdb_get(txn, st->qtime, &tk, &tv))
			problem(c, "queue %016" PRIx64 ": missing from the time index", q.id);
		reference(c, q.body_id);
		store_qentry_free(&q);
	}
	mdb_cursor_close(cur);
	mdb_stat(txn, st->qtime, &ms);
	if (ms.ms_entries != entries)
		problem(c, "queue: %" PRIu64 " entries but %zu in the time index", entries, (size_t)ms.ms_entries);
}

/* Sort the references seen and fold them into one entry per body with its count; returns how many bodies. */
static size_t
count_references(struct check *c)
{
	size_t i, j, nuniq = 0;

	if (c->nbodies)
		qsort(c->bodies, c->nbodies, sizeof(*c->bodies), cmp_body);
	for (i = 0; i < c->nbodies; i = j) {
		for (j = i + 1; j < c->nbodies && c->bodies[j].id == c->bodies[i].id; j++)
			;
		c->bodies[nuniq].id = c->bodies[i].id;
		c->bodies[nuniq++].refs = (uint32_t)(j - i);
	}
	return nuniq;
}

/* Compare a body's recorded reference count with the references found; true when any were found. */
static bool
check_refs(struct check *c, size_t nuniq, uint64_t id, uint32_t refs)
{
	struct bodycount key, *found;

	key.id = id;
	found = nuniq ? bsearch(&key, c->bodies, nuniq, sizeof(key), cmp_body) : NULL;
	if (!found)
		problem(c, "body %016" PRIx64 ": orphan (%u references recorded, none found)", id, refs);
	else if (found->refs != refs)
		problem(c, "body %016" PRIx64 ": %u references recorded, %u found", id, refs, found->refs);
	return found != NULL;
}

/* Every chunk of a body present, all but the last full, and together its recorded size. */
static void
check_chunks(struct store *st, MDB_txn *txn, struct check *c, uint64_t id, const struct bodyref *br)
{
	uint64_t total = 0;
	uint32_t n = br->chunks, ch;

	for (ch = 0; ch < n; ch++) {
		unsigned char ckey[12];
		MDB_val ck = { 12, ckey }, cv;

		key_chunk(ckey, id, ch);
		if (mdb_get(txn, st->bodies, &ck, &cv)) {
			problem(c, "body %016" PRIx64 ": chunk %u missing", id, ch);
			break;
		}
		/* reads find an offset's chunk by division: all but the last are full */
		if (ch + 1 < n && cv.mv_size != st->chunk_size)
			problem(c, "body %016" PRIx64 ": chunk %u holds %zu bytes, not %u", id, ch,
			    cv.mv_size, st->chunk_size);
		total += cv.mv_size;
	}
	if (ch == n && total != br->size)
		problem(c, "body %016" PRIx64 ": %" PRIu64 " bytes in chunks, %" PRIu64 " recorded", id, total, br->size);
}

/* Bodies: reference counts equal references; chunks complete; no orphans. */
static void
check_bodies(struct store *st, MDB_txn *txn, struct check *c)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t nuniq, seen = 0;
	int op = MDB_FIRST;
	MDB_stat ms;
	uint64_t chunks = 0;

	nuniq = count_references(c);
	if (mdb_cursor_open(txn, st->bodyref, &cur))
		return;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		uint64_t id;
		struct bodyref br;

		op = MDB_NEXT;
		if (k.mv_size != 8 || bodyref_decode(&v, &br)) {
			problem(c, "bodyref: malformed entry");
			continue;
		}
		id = key_get_u64(k.mv_data);
		if (check_refs(c, nuniq, id, br.refs))
			seen++;
		check_chunks(st, txn, c, id, &br);
		chunks += br.chunks;
	}
	mdb_cursor_close(cur);
	if (seen != nuniq)
		problem(c, "bodies: %zu referenced bodies do not exist", nuniq - seen);
	mdb_stat(txn, st->bodies, &ms);
	if (ms.ms_entries != chunks)
		problem(c, "bodies: %zu chunks stored, %" PRIu64 " belong to bodies", (size_t)ms.ms_entries, chunks);
}

int
store_verify(struct store *st, void (*report)(void *arg, const char *problem), void *arg)
{
	struct check c;
	MDB_txn *txn;
	int rc;

	memset(&c, 0, sizeof(c));
	c.report = report;
	c.arg = arg;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	check_mail(st, txn, &c);
	check_queue(st, txn, &c);
	check_bodies(st, txn, &c);
	store_read_end(st, txn);
	free(c.bodies);
	return c.problems ? ERR_CORRUPT : 0;
}
