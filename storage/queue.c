/*
 * queue.c: outbound messages waiting for delivery. An entry holds the
 * envelope and per-recipient state; qtime indexes entries by their next
 * attempt, so the runner finds due work without scanning the queue.
 *
 * Entry encoding (big-endian, strings with a u16 length):
 *   [created u64][next u64][attempts u32][body u64][size u64][ret u8]
 *   [sender][envid][nrcpts u32] then per recipient
 *   [state u8][notify u8][address][orcpt][reply]
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

/* An entry at most: 100,000 recipients of ~1.3 KB each is far past any limit we accept. */
#define QUEUE_REC_MAX (128u << 20)

static void
put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned char len[2] = { (unsigned char)(n >> 8), (unsigned char)n };

	buf_append(b, len, 2);
	buf_append(b, s, n);
}

static int
encode(const struct store_qentry *q, struct buf *b)
{
	unsigned char num[8];
	size_t i;

	key_put_u64(num, q->created);
	buf_append(b, num, 8);
	key_put_u64(num, q->next_attempt);
	buf_append(b, num, 8);
	key_put_u32(num, q->attempts);
	buf_append(b, num, 4);
	key_put_u64(num, q->body_id);
	buf_append(b, num, 8);
	key_put_u64(num, q->size);
	buf_append(b, num, 8);
	num[0] = q->ret_full;
	buf_append(b, num, 1);
	put_str(b, q->sender);
	put_str(b, q->envid);
	key_put_u32(num, (uint32_t)q->nrcpts);
	buf_append(b, num, 4);
	for (i = 0; i < q->nrcpts; i++) {
		num[0] = q->rcpts[i].state;
		num[1] = q->rcpts[i].notify;
		buf_append(b, num, 2);
		put_str(b, q->rcpts[i].address);
		put_str(b, q->rcpts[i].orcpt);
		put_str(b, q->rcpts[i].reply);
	}
	return b->err;
}

/* A bounded reader over a stored record; any overrun marks it bad. */
struct rd {
	const unsigned char *p;
	size_t left;
	bool bad;
};

static const unsigned char *
take(struct rd *r, size_t n)
{
	const unsigned char *p = r->p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t
rd_u64(struct rd *r)
{
	const unsigned char *p = take(r, 8);
	return p ? key_get_u64(p) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
	const unsigned char *p = take(r, 4);
	return p ? key_get_u32(p) : 0;
}

static unsigned
rd_u8(struct rd *r)
{
	const unsigned char *p = take(r, 1);
	return p ? p[0] : 0;
}

static void
rd_str(struct rd *r, char *out, size_t cap)
{
	const unsigned char *lp = take(r, 2), *s;
	size_t n = lp ? (size_t)lp[0] << 8 | lp[1] : 0;

	out[0] = '\0';
	if (!lp || n >= cap || !(s = take(r, n))) {
		r->bad = true;
		return;
	}
	memcpy(out, s, n);
	out[n] = '\0';
}

int
queue_decode(const MDB_val *v, uint64_t id, struct store_qentry *out)
{
	struct rd r = { v->mv_data, v->mv_size, false };
	size_t i;

	memset(out, 0, sizeof(*out));
	out->id = id;
	out->created = rd_u64(&r);
	out->next_attempt = rd_u64(&r);
	out->attempts = rd_u32(&r);
	out->body_id = rd_u64(&r);
	out->size = rd_u64(&r);
	out->ret_full = rd_u8(&r) != 0;
	rd_str(&r, out->sender, sizeof(out->sender));
	rd_str(&r, out->envid, sizeof(out->envid));
	out->nrcpts = rd_u32(&r);
	/* each recipient takes at least 8 bytes: a larger count is damage */
	if (r.bad || out->nrcpts > r.left / 8) {
		out->nrcpts = 0;
		return ERR_CORRUPT;
	}
	out->rcpts = xcalloc(out->nrcpts ? out->nrcpts : 1, sizeof(*out->rcpts));
	for (i = 0; i < out->nrcpts && !r.bad; i++) {
		out->rcpts[i].state = (uint8_t)rd_u8(&r);
		out->rcpts[i].notify = (uint8_t)rd_u8(&r);
		rd_str(&r, out->rcpts[i].address, sizeof(out->rcpts[i].address));
		rd_str(&r, out->rcpts[i].orcpt, sizeof(out->rcpts[i].orcpt));
		rd_str(&r, out->rcpts[i].reply, sizeof(out->rcpts[i].reply));
	}
	if (r.bad || r.left) {
		store_qentry_free(out);
		return ERR_CORRUPT;
	}
	return 0;
}

void
store_qentry_free(struct store_qentry *q)
{
	free(q->rcpts);
	q->rcpts = NULL;
	q->nrcpts = 0;
}

int
queue_apply_insert(struct store *st, MDB_txn *txn, const struct store_qentry *q, uint64_t *id_out)
{
	unsigned char key[8], tkey[16];
	struct buf b;
	uint64_t id;
	MDB_val k = { 8, key }, v, tk = { 16, tkey }, empty = { 0, NULL };
	int rc;

	if (!q->nrcpts)
		return ERR_STATE;
	if ((rc = store_next_id(st, txn, &id)))
		return rc;
	buf_init(&b, QUEUE_REC_MAX);
	if (encode(q, &b)) {
		buf_free(&b);
		return ERR_LIMIT;
	}
	key_put_u64(key, id);
	v.mv_size = b.len;
	v.mv_data = b.data;
	rc = mdb_put(txn, st->queue, &k, &v, MDB_NOOVERWRITE);
	buf_free(&b);
	if (rc)
		return store_err(rc, "queue_put");
	key_qtime(tkey, q->next_attempt, id);
	if ((rc = mdb_put(txn, st->qtime, &tk, &empty, 0)))
		return store_err(rc, "qtime_put");
	*id_out = id;
	return 0;
}

int
store_queue_get(struct store *st, uint64_t id, struct store_qentry *out)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	MDB_txn *txn;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	key_put_u64(key, id);
	rc = mdb_get(txn, st->queue, &k, &v);
	rc = rc ? (rc == MDB_NOTFOUND ? ERR_NOTFOUND : store_err(rc, "queue_get")) : queue_decode(&v, id, out);
	store_read_end(st, txn);
	return rc;
}

int
store_queue_list(struct store *st, int (*fn)(void *arg, const struct store_qentry *q), void *arg)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, op = MDB_FIRST;

	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->queue, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "cursor");
	}
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		struct store_qentry q;

		op = MDB_NEXT;
		if (k.mv_size != 8 || queue_decode(&v, key_get_u64(k.mv_data), &q)) {
			rc = ERR_CORRUPT;
			break;
		}
		rc = fn(arg, &q);
		store_qentry_free(&q);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	return rc;
}

int
store_queue_due(struct store *st, uint64_t now, uint64_t *ids_out, size_t max, size_t *n_out)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	size_t n = 0;
	int rc, op = MDB_FIRST;

	*n_out = 0;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->qtime, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "cursor");
	}
	/* the index is in time order: stop at the first entry not yet due */
	while (n < max && mdb_cursor_get(cur, &k, &v, op) == 0 && k.mv_size == 16 &&
	    key_get_u64(k.mv_data) <= now) {
		op = MDB_NEXT;
		ids_out[n++] = key_get_u64((unsigned char *)k.mv_data + 8);
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	*n_out = n;
	return 0;
}
