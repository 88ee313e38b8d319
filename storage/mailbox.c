/*
 * mailbox.c: a login's maildrop: delivery (one body, many mailboxes, in
 * the writer's transaction), expunge, the snapshot POP3 works on, chunked
 * body reads, and the one-session-per-mailbox locks.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cursor.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

/* A mailbox larger than this is refused by snapshot (memory per POP3 session). */
#define SNAPSHOT_MAX 1000000

/* mail: [body u64][size u64][arrival u64][msgid u64][pop3 size u64] */
void
mail_rec_encode(const struct mail_rec *m, unsigned char out[MAIL_REC_LEN])
{
	struct cursor c;

	cursor_writer(&c, out, MAIL_REC_LEN);
	cursor_put_u64(&c, m->body);
	cursor_put_u64(&c, m->size);
	cursor_put_u64(&c, m->arrival);
	cursor_put_u64(&c, m->msgid);
	cursor_put_u64(&c, m->pop3_size);
	ASSERT(cursor_end(&c) == 0 && cursor_len(&c) == MAIL_REC_LEN);
}

int
mail_rec_decode(const MDB_val *v, struct mail_rec *out)
{
	struct cursor c;

	cursor_reader(&c, span_make(v->mv_data, v->mv_size));
	out->body = cursor_get_u64(&c);
	out->size = cursor_get_u64(&c);
	out->arrival = cursor_get_u64(&c);
	out->msgid = cursor_get_u64(&c);
	out->pop3_size = cursor_get_u64(&c);
	return cursor_end(&c) ? ERR_CORRUPT : 0;
}

/* bodyref: [refs u32][size u64][chunks u32] */
void
bodyref_encode(const struct bodyref *r, unsigned char out[BODYREF_LEN])
{
	struct cursor c;

	cursor_writer(&c, out, BODYREF_LEN);
	cursor_put_u32(&c, r->refs);
	cursor_put_u64(&c, r->size);
	cursor_put_u32(&c, r->chunks);
	ASSERT(cursor_end(&c) == 0 && cursor_len(&c) == BODYREF_LEN);
}

int
bodyref_decode(const MDB_val *v, struct bodyref *out)
{
	struct cursor c;

	cursor_reader(&c, span_make(v->mv_data, v->mv_size));
	out->refs = cursor_get_u32(&c);
	out->size = cursor_get_u64(&c);
	out->chunks = cursor_get_u32(&c);
	return cursor_end(&c) ? ERR_CORRUPT : 0;
}

/* Copy the message bytes [off, off + n) from prefix + content into dst. */
static int
copy_source(const struct store_delivery *d, uint64_t off, unsigned char *dst, size_t n)
{
	while (n) {
		size_t k;

		if (off < d->prefix_len) {
			k = d->prefix_len - (size_t)off < n ? d->prefix_len - (size_t)off : n;
			memcpy(dst, d->prefix + off, k);	/* UNSAFE: off < prefix_len, k bounded by both */
		} else if (d->fd < 0) {
			uint64_t c = off - d->prefix_len;
			if (c + n > d->mem_len)
				return ERR_STATE;
			k = n;
			memcpy(dst, d->mem + c, k);	/* UNSAFE: c + n <= mem_len checked above */
		} else {
			ssize_t r = pread(d->fd, dst, n, (off_t)(off - d->prefix_len));
			if (r <= 0) {
				log_msg(LOG_LEVEL_ERR, "event=store_error where=spool_read error=\"%s\"",
				    r < 0 ? strerror(errno) : "short file");
				return ERR_STORE;
			}
			k = (size_t)r;
		}
		dst += k;
		off += k;
		n -= k;
	}
	return 0;
}

/*
 * Octets POP3 adds by dot-stuffing (RFC 1939 3): one per line that starts
 * with '.'. *at_line_start carries the state across pieces.
 */
static uint64_t
count_stuffing(const unsigned char *p, size_t n, bool *at_line_start)
{
	const unsigned char *end = p + n, *nl;
	uint64_t dots = 0;

	if (!n)
		return 0;
	if (*at_line_start && *p == '.')
		dots++;
	/* line by line with memchr: this runs in the writer, once per stored byte */
	while ((nl = memchr(p, '\n', (size_t)(end - p))) && nl + 1 < end) {
		if (nl[1] == '.')
			dots++;
		p = nl + 1;
	}
	*at_line_start = end[-1] == '\n';
	return dots;
}

static int
write_body(struct store *st, MDB_txn *txn, const struct store_delivery *d, uint64_t size,
    uint32_t refs, uint64_t *id_out, uint64_t *pop3_size_out)
{
	bool line_start = true;
	uint64_t dots = 0;
	unsigned char key[12], ref[BODYREF_LEN];
	uint32_t chunk, nchunks = (uint32_t)((size + st->chunk_size - 1) / st->chunk_size);
	struct bodyref br = { refs, size, nchunks };
	uint64_t id;
	MDB_val k, v;
	int rc;

	if ((rc = store_next_id(st, txn, &id)))
		return rc;
	for (chunk = 0; chunk < nchunks; chunk++) {
		uint64_t off = (uint64_t)chunk * st->chunk_size;

		key_chunk(key, id, chunk);
		k.mv_size = sizeof(key);
		k.mv_data = key;
		v.mv_size = size - off < st->chunk_size ? (size_t)(size - off) : st->chunk_size;
		/* MDB_RESERVE: LMDB hands us the page space, we copy straight into it */
		if ((rc = mdb_put(txn, st->bodies, &k, &v, MDB_RESERVE | MDB_APPEND)))
			return store_err(rc, "body_put");
		if ((rc = copy_source(d, off, v.mv_data, v.mv_size)))
			return rc;
		dots += count_stuffing(v.mv_data, v.mv_size, &line_start);
	}
	/* a message that does not end with CRLF gets one before the final "." */
	*pop3_size_out = size + dots + (size && !line_start ? 2 : 0);
	key_put_u64(key, id);
	bodyref_encode(&br, ref);
	k.mv_size = 8;
	k.mv_data = key;
	v.mv_size = sizeof(ref);
	v.mv_data = ref;
	if ((rc = mdb_put(txn, st->bodyref, &k, &v, 0)))
		return store_err(rc, "bodyref_put");
	*id_out = id;
	return 0;
}

/* One message record for body in a's mailbox (loaded, with room checked), and a's counters. */
static int
put_mail(struct store *st, MDB_txn *txn, struct store_account *a, uint64_t body, uint64_t size,
    uint64_t pop3_size, uint64_t now)
{
	unsigned char key[STORE_LOGIN_MAX + 5], rec[MAIL_REC_LEN];
	struct mail_rec m = { body, size, now, 0, pop3_size };
	MDB_val k, v;
	int rc;

	if ((rc = store_next_id(st, txn, &m.msgid)))
		return rc;
	k.mv_size = key_mail(key, a->login, a->next_uid++);
	k.mv_data = key;
	mail_rec_encode(&m, rec);
	v.mv_size = sizeof(rec);
	v.mv_data = rec;
	if ((rc = mdb_put(txn, st->mail, &k, &v, MDB_NOOVERWRITE)))
		return store_err(rc, "mail_put");
	a->count++;
	a->bytes += size;
	return accounts_save(st, txn, a);
}

static bool
has_room(const struct store_account *a, uint64_t size)
{
	return (!a->quota || a->bytes + size <= a->quota) && a->next_uid != UINT32_MAX;
}

/* The queue entry of a delivery: d->queue's recipients, then a local one per deferred login. */
static int
insert_queued(struct store *st, MDB_txn *txn, struct store_delivery *d, const bool *deferred,
    size_t ndeferred, uint64_t body, uint64_t size)
{
	struct store_qentry q = *d->queue;
	struct store_qrcpt *r = NULL;
	size_t i;
	int rc;

	q.body_id = body;
	q.size = size;
	if (ndeferred) {
		r = xcalloc(q.nrcpts + ndeferred, sizeof(*r));
		if (q.nrcpts)
			memcpy(r, d->queue->rcpts, q.nrcpts * sizeof(*r));
		for (i = 0; i < d->nlogins; i++) {
			if (!deferred[i])
				continue;
			r[q.nrcpts] = *d->defer[i];
			snprintf(r[q.nrcpts].login, sizeof(r[q.nrcpts].login), "%s", d->logins[i]);
			r[q.nrcpts].state = STORE_RCPT_PENDING;
			snprintf(r[q.nrcpts].reply, sizeof(r[q.nrcpts].reply), "452 4.2.2 Mailbox full");
			q.nrcpts++;
		}
		q.rcpts = r;
	}
	rc = queue_apply_insert(st, txn, &q, &d->queue_id_out);
	free(r);
	return rc;
}

/* Every mailbox must exist and have room before anything is written; one full with a stand-in is deferred (RCPT said 250). */
static int
load_mailboxes(struct store *st, MDB_txn *txn, struct store_delivery *d, uint64_t size,
    struct store_account *accts, bool *deferred, size_t *ndeferred_out, size_t *takers_out)
{
	size_t i;
	int rc;

	for (i = 0; i < d->nlogins; i++) {
		if ((rc = accounts_load(st, txn, d->logins[i], &accts[i]))) {
			d->failed_login_out = d->logins[i];
			return rc;
		}
		if (has_room(&accts[i], size)) {
			(*takers_out)++;
			continue;
		}
		if (!d->defer || !d->defer[i] || !d->queue) {
			d->failed_login_out = d->logins[i];
			return ERR_QUOTA;
		}
		deferred[i] = true;
		(*ndeferred_out)++;
	}
	return 0;
}

/* Remote recipients of the delivery's queue entry (each one takes the message). */
static size_t
remote_takers(const struct store_delivery *d)
{
	size_t i, n = 0;

	for (i = 0; d->queue && i < d->queue->nrcpts; i++)
		n += d->queue->rcpts[i].state == STORE_RCPT_PENDING;	/* remote */
	return n;
}

/* With the body stored: a mail record per mailbox that took it, the queue entry, the hourly counts. */
static int
write_entries(struct store *st, MDB_txn *txn, struct store_delivery *d, struct store_account *accts,
    const bool *deferred, size_t ndeferred, uint64_t body, uint64_t size, uint64_t pop3_size)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < d->nlogins; i++)
		if (!deferred[i] && (rc = put_mail(st, txn, &accts[i], body, size, pop3_size, d->now)))
			return rc;
	if (d->queue && (d->queue->nrcpts || ndeferred))
		rc = insert_queued(st, txn, d, deferred, ndeferred, body, size);
	if (rc == 0 && d->deferred_out)
		memcpy(d->deferred_out, deferred, d->nlogins * sizeof(*deferred));
	if (rc == 0 && d->rate_login)
		rc = rates_apply_add(st, txn, d->rate_login, d->rate_hour, d->rate_recipients);
	return rc;
}

int
mailbox_apply_deliver(struct store *st, MDB_txn *txn, struct store_delivery *d)
{
	uint64_t size = d->prefix_len + (d->fd < 0 ? d->mem_len : d->fd_len), body = 0, pop3_size = 0;
	struct store_account *accts;
	bool *deferred;
	size_t i, ndeferred = 0, takers = 0;
	uint32_t refs;
	int rc = 0;

	d->failed_login_out = NULL;
	accts = xcalloc(d->nlogins ? d->nlogins : 1, sizeof(*accts));
	deferred = xcalloc(d->nlogins ? d->nlogins : 1, sizeof(*deferred));
	if ((rc = load_mailboxes(st, txn, d, size, accts, deferred, &ndeferred, &takers)))
		goto out;
	takers += remote_takers(d);
	if (ndeferred && !takers) {
		/* nobody would take it now: the client keeps it and tries later, as for one full mailbox */
		for (i = 0; !deferred[i]; i++)
			;
		d->failed_login_out = d->logins[i];
		rc = ERR_QUOTA;
		goto out;
	}
	refs = (uint32_t)(d->nlogins - ndeferred);
	if (d->queue && (d->queue->nrcpts || ndeferred))
		refs++;
	if (!refs) {
		rc = ERR_STATE;
		goto out;
	}
	if ((rc = write_body(st, txn, d, size, refs, &body, &pop3_size)))
		goto out;
	d->body_id_out = body;
	rc = write_entries(st, txn, d, accts, deferred, ndeferred, body, size, pop3_size);
out:
	free(deferred);
	free(accts);
	return rc;
}

/* Octets RETR sends for a stored body (what write_body computed when it was stored). */
static int
body_pop3_size(struct store *st, MDB_txn *txn, uint64_t body, uint64_t size, uint64_t *out)
{
	unsigned char key[12];
	bool line_start = true;
	uint64_t dots = 0, off = 0;
	uint32_t chunk;
	MDB_val k, v;
	int rc;

	for (chunk = 0; off < size; chunk++) {
		key_chunk(key, body, chunk);
		k = mval(key, sizeof(key));
		if ((rc = mdb_get(txn, st->bodies, &k, &v)))
			return rc == MDB_NOTFOUND ? ERR_CORRUPT : store_err(rc, "body_get");
		if (!v.mv_size || v.mv_size > size - off)
			return ERR_CORRUPT;
		dots += count_stuffing(v.mv_data, v.mv_size, &line_start);
		off += v.mv_size;
	}
	*out = size + dots + (size && !line_start ? 2 : 0);
	return 0;
}

int
mailbox_apply_append(struct store *st, MDB_txn *txn, const char *login, uint64_t body, uint64_t size,
    uint64_t now)
{
	unsigned char key[8], ref[BODYREF_LEN];
	struct store_account a;
	struct bodyref br;
	uint64_t pop3_size = 0;	/* set by body_pop3_size; gcc -O1 (TSan) cannot see it */
	MDB_val k = { 8, key }, v;
	int rc;

	if ((rc = accounts_load(st, txn, login, &a)))
		return rc;
	if (!has_room(&a, size))
		return ERR_QUOTA;
	/* the mailbox holds one more reference to the body the queue entry keeps */
	key_put_u64(key, body);
	if ((rc = mdb_get(txn, st->bodyref, &k, &v)))
		return rc == MDB_NOTFOUND ? ERR_CORRUPT : store_err(rc, "bodyref_get");
	if (bodyref_decode(&v, &br))
		return ERR_CORRUPT;
	br.refs++;
	bodyref_encode(&br, ref);
	v = mval(ref, sizeof(ref));
	if ((rc = mdb_put(txn, st->bodyref, &k, &v, 0)))
		return store_err(rc, "bodyref_put");
	if ((rc = body_pop3_size(st, txn, body, size, &pop3_size)))
		return rc;
	return put_mail(st, txn, &a, body, size, pop3_size, now);
}

int
body_unref(struct store *st, MDB_txn *txn, uint64_t body_id)
{
	unsigned char key[12], ref[BODYREF_LEN];
	MDB_val k = { 8, key }, v;
	struct bodyref br;
	uint32_t c;
	int rc;

	key_put_u64(key, body_id);
	if ((rc = mdb_get(txn, st->bodyref, &k, &v)))
		return rc == MDB_NOTFOUND ? ERR_CORRUPT : store_err(rc, "bodyref_get");
	if (bodyref_decode(&v, &br))
		return ERR_CORRUPT;
	if (br.refs > 1) {
		br.refs--;
		bodyref_encode(&br, ref);
		v = mval(ref, sizeof(ref));
		rc = mdb_put(txn, st->bodyref, &k, &v, 0);
		return rc ? store_err(rc, "bodyref_put") : 0;
	}
	/* the last reference: the body goes */
	if ((rc = mdb_del(txn, st->bodyref, &k, NULL)))
		return store_err(rc, "bodyref_del");
	for (c = 0; c < br.chunks; c++) {
		MDB_val ck = { 12, key };

		key_chunk(key, body_id, c);
		if ((rc = mdb_del(txn, st->bodies, &ck, NULL)) && rc != MDB_NOTFOUND)
			return store_err(rc, "body_del");
	}
	return 0;
}

int
mailbox_apply_expunge(struct store *st, MDB_txn *txn, const struct store_expunge *e)
{
	struct store_account a;
	size_t i;
	int rc;

	if ((rc = accounts_load(st, txn, e->login, &a)))
		return rc;
	for (i = 0; i < e->nuids; i++) {
		unsigned char key[STORE_LOGIN_MAX + 5];
		MDB_val k = { key_mail(key, e->login, e->uids[i]), key }, v;
		struct mail_rec m;

		if ((rc = mdb_get(txn, st->mail, &k, &v))) {
			if (rc == MDB_NOTFOUND)
				continue;	/* already gone: deleting twice deletes once */
			return store_err(rc, "mail_get");
		}
		if (mail_rec_decode(&v, &m))
			return ERR_CORRUPT;
		if ((rc = mdb_del(txn, st->mail, &k, NULL)))
			return store_err(rc, "mail_del");
		if ((rc = body_unref(st, txn, m.body)))
			return rc;
		a.count--;
		a.bytes -= m.size;
	}
	return accounts_save(st, txn, &a);
}

int
mailbox_purge(struct store *st, MDB_txn *txn, const char *login)
{
	unsigned char key[STORE_LOGIN_MAX + 5];
	size_t plen = key_mail(key, login, 0) - 4;
	MDB_cursor *cur;
	MDB_val k = { plen + 4, key }, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, st->mail, &cur)))
		return store_err(rc, "cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == plen + 4 && memcmp(k.mv_data, key, plen) == 0) {
		struct mail_rec m;
		uint64_t body = mail_rec_decode(&v, &m) == 0 ? m.body : 0;

		if ((rc = mdb_cursor_del(cur, 0)) || (rc = body_unref(st, txn, body)))
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == EINVAL)
		return 0;
	return rc < 0 && rc > ERR_MAX_ ? rc : store_err(rc, "purge");
}

int
store_mailbox_snapshot(struct store *st, const char *login, struct store_msg **msgs_out, size_t *n_out)
{
	unsigned char key[STORE_LOGIN_MAX + 5];
	struct store_msg *msgs = NULL;
	struct store_account a;
	size_t n = 0, cap = 0, plen;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc;

	*msgs_out = NULL;
	*n_out = 0;
	if (!store_valid_login(login))
		return ERR_NOTFOUND;
	plen = key_mail(key, login, 0) - 4;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = accounts_load(st, txn, login, &a)) || (rc = mdb_cursor_open(txn, st->mail, &cur))) {
		store_read_end(st, txn);
		return rc > 0 ? store_err(rc, "cursor") : rc;
	}
	k.mv_size = plen + 4;
	k.mv_data = key;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == plen + 4 && memcmp(k.mv_data, key, plen) == 0) {
		struct store_msg *m;
		struct mail_rec mr;

		if ((rc = mail_rec_decode(&v, &mr)) || n >= SNAPSHOT_MAX) {
			rc = rc ? rc : ERR_LIMIT;
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			msgs = xrealloc(msgs, cap * sizeof(*msgs));
		}
		m = &msgs[n++];
		m->uid = key_get_u32((unsigned char *)k.mv_data + plen);
		m->body_id = mr.body;
		m->size = mr.size;
		m->arrival = mr.arrival;
		m->pop3_size = mr.pop3_size;
		snprintf(m->uidl, sizeof(m->uidl), "%016" PRIx64, mr.msgid);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	if (rc != MDB_NOTFOUND && rc != 0) {
		free(msgs);
		return rc < 0 ? rc : store_err(rc, "snapshot");
	}
	*msgs_out = msgs;
	*n_out = n;
	return 0;
}

int
store_body_read(struct store *st, uint64_t body_id, uint64_t offset, void *buf, size_t n,
    size_t *got_out)
{
	unsigned char key[12], want[12], *out = buf;
	MDB_val k = { 8, key }, v;
	MDB_cursor *cur;
	MDB_cursor_op op = MDB_SET_KEY;
	struct bodyref br;
	uint64_t size;
	uint32_t chunk;
	size_t got = 0, within;
	MDB_txn *txn;
	int rc;

	*got_out = 0;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	key_put_u64(key, body_id);
	rc = mdb_get(txn, st->bodyref, &k, &v);
	if (rc || bodyref_decode(&v, &br)) {
		store_read_end(st, txn);
		return rc == MDB_NOTFOUND ? ERR_NOTFOUND : rc ? store_err(rc, "bodyref_get") : ERR_CORRUPT;
	}
	size = br.size;
	if ((rc = mdb_cursor_open(txn, st->bodies, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "body_cursor");
	}
	/* find the chunk holding offset, then walk on: the chunks of a body are adjacent keys */
	chunk = (uint32_t)(offset / st->chunk_size);
	within = (size_t)(offset % st->chunk_size);
	while (got < n && offset < size) {
		size_t take;

		key_chunk(want, body_id, chunk);
		k = mval(want, sizeof(want));
		if ((rc = mdb_cursor_get(cur, &k, &v, op)) || k.mv_size != sizeof(want) ||
		    memcmp(k.mv_data, want, sizeof(want)) != 0 || v.mv_size <= within ||
		    (v.mv_size != st->chunk_size && offset + (v.mv_size - within) < size)) {
			mdb_cursor_close(cur);
			store_read_end(st, txn);
			return rc ? store_err(rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc, "body_get") : ERR_CORRUPT;
		}
		take = v.mv_size - within < n - got ? v.mv_size - within : n - got;
		memcpy(out + got, (unsigned char *)v.mv_data + within, take);	/* UNSAFE: within < mv_size, take bounded by both */
		got += take;
		offset += take;
		within = 0;
		chunk++;
		op = MDB_NEXT;
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	*got_out = got;
	return 0;
}

int
store_mailbox_lock(struct store *st, const char *login)
{
	size_t i;

	pthread_mutex_lock(&st->lock_mutex);
	for (i = 0; i < st->nlocked; i++) {
		if (strcmp(st->locked[i], login) == 0) {
			pthread_mutex_unlock(&st->lock_mutex);
			return ERR_EXISTS;
		}
	}
	if (st->nlocked == st->caplocked) {
		st->caplocked = st->caplocked ? st->caplocked * 2 : 64;
		st->locked = xrealloc(st->locked, st->caplocked * sizeof(char *));
	}
	st->locked[st->nlocked++] = xstrdup(login);
	pthread_mutex_unlock(&st->lock_mutex);
	return 0;
}

void
store_mailbox_unlock(struct store *st, const char *login)
{
	size_t i;

	pthread_mutex_lock(&st->lock_mutex);
	for (i = 0; i < st->nlocked; i++) {
		if (strcmp(st->locked[i], login) == 0) {
			free(st->locked[i]);
			st->locked[i] = st->locked[--st->nlocked];
			break;
		}
	}
	pthread_mutex_unlock(&st->lock_mutex);
}
