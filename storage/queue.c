/*
 * queue.c: outbound messages waiting for delivery. An entry holds the
 * envelope and per-recipient state; qtime indexes entries by their next
 * attempt, so the runner finds due work without scanning the queue.
 *
 * Entry encoding (core/cursor.h: big-endian, strings with a u16 length):
 *   [created u64][next u64][attempts u32][body u64][size u64][flags u8]
 *   [sender][envid][nrcpts u32] then per recipient
 *   [state u8][notify u8][address][orcpt][reply]
 * followed by [login] when the notify byte has QR_LOCAL (a local recipient
 * waiting for room in its mailbox; records without it read as before).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cursor.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

/* An entry at most: 100,000 recipients of ~1.3 KB each is far past any limit we accept. */
#define QUEUE_REC_MAX (128u << 20)

/* The flags byte (schema 1 stored only RET there, as 0 or 1). */
#define QF_RET_FULL 1u
#define QF_DELAY_WARNED 2u
#define QF_LEASED 4u
#define QF_BOUNCE 8u
#define QF_RET_HDRS 16u
#define QF_SUCCESS_HDRS 32u
/* In a recipient's notify byte, above the STORE_NOTIFY_* bits: a login follows. */
#define QR_LOCAL 0x80u

static void
put_str(struct cursor *c, const char *s)
{
	cursor_put_str16(c, span_cstr(s));
}

/* Append q's record to b; ERR_LIMIT when it does not fit (b's max, a string's u16 length). */
static int
encode(const struct store_qentry *q, struct buf *b)
{
	struct cursor c;
	size_t i;

	cursor_appender(&c, b);
	cursor_put_u64(&c, q->created);
	cursor_put_u64(&c, q->next_attempt);
	cursor_put_u32(&c, q->attempts);
	cursor_put_u64(&c, q->body_id);
	cursor_put_u64(&c, q->size);
	cursor_put_u8(&c, (uint8_t)((q->ret_full ? QF_RET_FULL : 0) | (q->delay_warned ? QF_DELAY_WARNED : 0) |
	    (q->leased ? QF_LEASED : 0) | (q->bounce_requested ? QF_BOUNCE : 0) |
	    (q->ret_hdrs ? QF_RET_HDRS : 0) | (q->success_hdrs ? QF_SUCCESS_HDRS : 0)));
	put_str(&c, q->sender);
	put_str(&c, q->envid);
	cursor_put_u32(&c, (uint32_t)q->nrcpts);
	for (i = 0; i < q->nrcpts; i++) {
		cursor_put_u8(&c, q->rcpts[i].state);
		cursor_put_u8(&c, (uint8_t)(q->rcpts[i].notify | (*q->rcpts[i].login ? QR_LOCAL : 0)));
		put_str(&c, q->rcpts[i].address);
		put_str(&c, q->rcpts[i].orcpt);
		put_str(&c, q->rcpts[i].reply);
		if (*q->rcpts[i].login)
			put_str(&c, q->rcpts[i].login);
	}
	return cursor_end(&c);
}

int
queue_decode(const MDB_val *v, uint64_t id, struct store_qentry *out)
{
	struct cursor c;
	unsigned flags;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->id = id;
	cursor_reader(&c, span_make(v->mv_data, v->mv_size));
	out->created = cursor_get_u64(&c);
	out->next_attempt = cursor_get_u64(&c);
	out->attempts = cursor_get_u32(&c);
	out->body_id = cursor_get_u64(&c);
	out->size = cursor_get_u64(&c);
	flags = cursor_get_u8(&c);
	out->ret_full = (flags & QF_RET_FULL) != 0;
	out->delay_warned = (flags & QF_DELAY_WARNED) != 0;
	out->leased = (flags & QF_LEASED) != 0;
	out->bounce_requested = (flags & QF_BOUNCE) != 0;
	out->ret_hdrs = (flags & QF_RET_HDRS) != 0;
	out->success_hdrs = (flags & QF_SUCCESS_HDRS) != 0;
	cursor_get_cstr16(&c, out->sender, sizeof(out->sender));
	cursor_get_cstr16(&c, out->envid, sizeof(out->envid));
	out->nrcpts = cursor_get_u32(&c);
	/* each recipient takes at least 8 bytes: a larger count is damage */
	if (c.err || out->nrcpts > cursor_left(&c) / 8) {
		out->nrcpts = 0;
		return ERR_CORRUPT;
	}
	out->rcpts = xcalloc(out->nrcpts ? out->nrcpts : 1, sizeof(*out->rcpts));
	for (i = 0; i < out->nrcpts && !c.err; i++) {
		unsigned notify;

		out->rcpts[i].state = cursor_get_u8(&c);
		notify = cursor_get_u8(&c);
		out->rcpts[i].notify = (uint8_t)(notify & ~QR_LOCAL);
		cursor_get_cstr16(&c, out->rcpts[i].address, sizeof(out->rcpts[i].address));
		cursor_get_cstr16(&c, out->rcpts[i].orcpt, sizeof(out->rcpts[i].orcpt));
		cursor_get_cstr16(&c, out->rcpts[i].reply, sizeof(out->rcpts[i].reply));
		if (notify & QR_LOCAL) {
			cursor_get_cstr16(&c, out->rcpts[i].login, sizeof(out->rcpts[i].login));
			if (!store_valid_login(out->rcpts[i].login))
				cursor_fail(&c, ERR_CORRUPT);
		}
	}
	if (cursor_end(&c)) {
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

/* Read entry id inside txn (ERR_NOTFOUND when it is gone). */
static int
load(struct store *st, MDB_txn *txn, uint64_t id, struct store_qentry *out)
{
	unsigned char key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	memset(out, 0, sizeof(*out));
	key_put_u64(key, id);
	if ((rc = mdb_get(txn, st->queue, &k, &v)))
		return rc == MDB_NOTFOUND ? ERR_NOTFOUND : store_err(rc, "queue_get");
	return queue_decode(&v, id, out);
}

/* Write q back; old_next is the time its index key holds now. */
static int
rewrite(struct store *st, MDB_txn *txn, const struct store_qentry *q, uint64_t old_next)
{
	unsigned char key[8], tkey[16];
	MDB_val k = { 8, key }, v, tk = { 16, tkey }, empty = { 0, NULL };
	struct buf b;
	int rc;

	buf_init(&b, QUEUE_REC_MAX);
	if (encode(q, &b)) {
		buf_free(&b);
		return ERR_LIMIT;
	}
	key_put_u64(key, q->id);
	v.mv_size = b.len;
	v.mv_data = b.data;
	rc = mdb_put(txn, st->queue, &k, &v, 0);
	buf_free(&b);
	if (rc)
		return store_err(rc, "queue_put");
	if (old_next != q->next_attempt) {
		key_qtime(tkey, old_next, q->id);
		if ((rc = mdb_del(txn, st->qtime, &tk, NULL)) && rc != MDB_NOTFOUND)
			return store_err(rc, "qtime_del");
		key_qtime(tkey, q->next_attempt, q->id);
		if ((rc = mdb_put(txn, st->qtime, &tk, &empty, 0)))
			return store_err(rc, "qtime_put");
	}
	return 0;
}

/* Remove q, its index key and its reference to the body. */
static int
remove_entry(struct store *st, MDB_txn *txn, const struct store_qentry *q)
{
	unsigned char key[8], tkey[16];
	MDB_val k = { 8, key }, tk = { 16, tkey };
	int rc;

	key_put_u64(key, q->id);
	if ((rc = mdb_del(txn, st->queue, &k, NULL)))
		return store_err(rc, "queue_del");
	key_qtime(tkey, q->next_attempt, q->id);
	if ((rc = mdb_del(txn, st->qtime, &tk, NULL)) && rc != MDB_NOTFOUND)
		return store_err(rc, "qtime_del");
	return body_unref(st, txn, q->body_id);
}

int
queue_apply_claim(struct store *st, MDB_txn *txn, const struct store_qclaim *c)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < c->nids && !rc; i++) {
		struct store_qentry q;
		uint64_t old;

		if ((rc = load(st, txn, c->ids[i], &q))) {
			if (rc == ERR_NOTFOUND)
				rc = 0;	/* deleted by an admin since the runner looked */
			continue;
		}
		old = q.next_attempt;
		q.next_attempt = c->until;
		q.leased = true;
		rc = rewrite(st, txn, &q, old);
		store_qentry_free(&q);
	}
	return rc;
}

int
queue_apply_update(struct store *st, MDB_txn *txn, struct store_qupdate *u)
{
	struct store_qentry q;
	uint64_t old;
	size_t i, pending = 0;
	int rc;

	u->removed_out = false;
	u->bounce_failed_out = 0;
	if ((rc = load(st, txn, u->id, &q)))
		return rc;
	if (u->bounce) {
		MDB_txn *child;

		if ((rc = mdb_txn_begin(st->env, txn, 0, &child))) {
			rc = store_err(rc, "nested_begin");
			goto out;
		}
		rc = mailbox_apply_deliver(st, child, u->bounce);
		if (rc == 0 && (rc = mdb_txn_commit(child)))
			rc = store_err(rc, "nested_commit");
		else if (rc)
			mdb_txn_abort(child);
		if (rc == ERR_STORE_FULL || rc == ERR_STORE || rc == ERR_CORRUPT)
			goto out;	/* the whole update waits for space */
		u->bounce_failed_out = rc;
		rc = 0;
	}
	for (i = 0; i < u->nresults; i++) {
		struct store_qrcpt *r;

		if (u->results[i].index >= q.nrcpts)
			continue;
		r = &q.rcpts[u->results[i].index];
		if (!STORE_RCPT_OPEN(r->state))
			continue;	/* a recipient done is never changed again */
		r->state = u->results[i].state;
		snprintf(r->reply, sizeof(r->reply), "%s", u->results[i].reply);
	}
	for (i = 0; i < q.nrcpts; i++)
		pending += STORE_RCPT_OPEN(q.rcpts[i].state);
	if (!pending) {
		rc = remove_entry(st, txn, &q);
		u->removed_out = rc == 0;
		goto out;
	}
	old = q.next_attempt;
	q.next_attempt = u->next_attempt;
	q.attempts = u->attempts;
	q.delay_warned = q.delay_warned || u->delay_warned;
	q.leased = false;
	rc = rewrite(st, txn, &q, old);
out:
	store_qentry_free(&q);
	return rc;
}

int
queue_apply_local(struct store *st, MDB_txn *txn, struct store_qlocal *l)
{
	struct store_qentry q;
	size_t i, delivered = 0;
	int rc;

	if ((rc = load(st, txn, l->id, &q)))
		return rc;
	for (i = 0; i < l->n; i++) {
		struct store_qrcpt *r = l->idx[i] < q.nrcpts ? &q.rcpts[l->idx[i]] : NULL;
		MDB_txn *child;

		if (!r || r->state != STORE_RCPT_PENDING || !*r->login) {
			l->results_out[i] = ERR_STATE;
			continue;
		}
		/* each copy in its own nested transaction: a full mailbox rolls back alone */
		if ((rc = mdb_txn_begin(st->env, txn, 0, &child))) {
			rc = store_err(rc, "nested_begin");
			goto out;
		}
		rc = mailbox_apply_append(st, child, r->login, q.body_id, q.size, l->now);
		if (rc == 0 && (rc = mdb_txn_commit(child)))
			rc = store_err(rc, "nested_commit");
		else if (rc)
			mdb_txn_abort(child);
		if (rc != 0 && rc != ERR_QUOTA && rc != ERR_NOTFOUND)
			goto out;	/* the store itself: the whole request fails */
		l->results_out[i] = rc;
		if (rc == 0) {
			r->state = STORE_RCPT_DELIVERED;
			snprintf(r->reply, sizeof(r->reply), "250 2.0.0 delivered to the mailbox");
			delivered++;
		}
	}
	rc = delivered ? rewrite(st, txn, &q, q.next_attempt) : 0;
out:
	store_qentry_free(&q);
	return rc;
}

int
store_queue_delete(struct store *st, uint64_t id)
{
	struct store_qentry q;
	MDB_txn *txn;
	int rc;

	if ((rc = store_write_begin(st, &txn)))
		return rc;
	if ((rc = load(st, txn, id, &q)) || (rc = remove_entry(st, txn, &q))) {
		store_qentry_free(&q);
		mdb_txn_abort(txn);
		return rc;
	}
	store_qentry_free(&q);
	return store_write_commit(st, txn, "queue_delete");
}

/* Make entries due at now: one (id), every one (id 0), or only leased ones; maybe to bounce. */
static int
make_due(struct store *st, uint64_t id, uint64_t now, bool only_leased, bool bounce, size_t *n_out)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0, i;
	int rc, op = MDB_FIRST;

	*n_out = 0;
	if ((rc = store_write_begin(st, &txn)))
		return rc;
	if (id) {
		ids = xmalloc(sizeof(*ids));
		ids[n++] = id;
	} else {
		/* collect first: rewriting while the cursor walks would move it */
		if ((rc = mdb_cursor_open(txn, st->queue, &cur))) {
			mdb_txn_abort(txn);
			return store_err(rc, "cursor");
		}
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			op = MDB_NEXT;
			if (k.mv_size != 8)
				continue;
			if (n == cap)
				ids = xrealloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));
			ids[n++] = key_get_u64(k.mv_data);
		}
		mdb_cursor_close(cur);
	}
	rc = 0;
	for (i = 0; i < n && !rc; i++) {
		struct store_qentry q;
		uint64_t old;

		if ((rc = load(st, txn, ids[i], &q)))
			break;
		if (!only_leased || q.leased) {
			old = q.next_attempt;
			q.next_attempt = now;
			q.leased = false;
			q.bounce_requested |= bounce;
			if (!(rc = rewrite(st, txn, &q, old)))
				(*n_out)++;
		}
		store_qentry_free(&q);
	}
	free(ids);
	if (rc) {
		mdb_txn_abort(txn);
		*n_out = 0;
		return rc;
	}
	return store_write_commit(st, txn, "queue_flush");
}

int
store_queue_flush(struct store *st, uint64_t id, uint64_t now, size_t *n_out)
{
	return make_due(st, id, now, false, false, n_out);
}

int
store_queue_bounce(struct store *st, uint64_t id, uint64_t now)
{
	size_t n;

	return make_due(st, id, now, false, true, &n);
}

int
store_queue_release(struct store *st, uint64_t now, size_t *n_out)
{
	return make_due(st, 0, now, true, false, n_out);
}
