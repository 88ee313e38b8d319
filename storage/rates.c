/*
 * rates.c: what each authenticated login sent in the current hour
 * (smtp.max_messages_per_hour, smtp.max_recipients_per_hour), kept in the
 * store so that a restart does not give a stolen password a fresh hour.
 * A delivery adds its message and recipients in its own transaction, so
 * the count costs no commit and no sync of its own; the server reads a
 * login's record once, when it first needs that login's counter.
 *
 * Record (keys.c): rates  login -> [hour u64][messages u32][recipients u32]
 * One record per login that ever sent: the logins PAM accepts bound them.
 */
#include "config.h"

#include <string.h>

#include "core/cursor.h"
#include "core/err.h"
#include "storage/internal.h"
#include "core/compat.h"

#define RATE_REC_LEN 16	/* 8 + 4 + 4: rate_encode() */

static int
rate_key(const char *login, MDB_val *k)
{
	size_t n = strlen(login);

	if (!n || n > STORE_LOGIN_MAX)
		return ERR_SYNTAX;
	*k = mval(login, n);
	return 0;
}

static void
rate_encode(const struct store_rate *r, unsigned char out[RATE_REC_LEN])
{
	struct cursor c;

	cursor_writer(&c, out, RATE_REC_LEN);
	cursor_put_u64(&c, r->hour);
	cursor_put_u32(&c, r->messages);
	cursor_put_u32(&c, r->recipients);
	ASSERT(cursor_end(&c) == 0 && cursor_len(&c) == RATE_REC_LEN);
}

static int
rate_decode(const MDB_val *v, struct store_rate *out)
{
	struct store_rate r;
	struct cursor c;

	cursor_reader(&c, span_make(v->mv_data, v->mv_size));
	r.hour = cursor_get_u64(&c);
	r.messages = cursor_get_u32(&c);
	r.recipients = cursor_get_u32(&c);
	if (cursor_end(&c))
		return ERR_CORRUPT;	/* out untouched */
	*out = r;
	return 0;
}

static int
rate_load(struct store *st, MDB_txn *txn, const MDB_val *k, struct store_rate *out)
{
	MDB_val key = *k, v;
	int rc = mdb_get(txn, st->rates, &key, &v);

	if (rc)
		return rc == MDB_NOTFOUND ? ERR_NOTFOUND : store_err(rc, "rate_get");
	return rate_decode(&v, out);
}

int
store_rate_get(struct store *st, const char *login, struct store_rate *out)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = rate_key(login, &k)))
		return rc;
	if (!st->has_rates)
		return ERR_NOTFOUND;	/* an older store opened read-only */
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	rc = rate_load(st, txn, &k, out);
	store_read_end(st, txn);
	return rc;
}

int
rates_apply_add(struct store *st, MDB_txn *txn, const char *login, uint64_t hour, uint32_t recipients)
{
	struct store_rate r;
	unsigned char rec[RATE_REC_LEN];
	MDB_val k, v;
	int rc;

	if ((rc = rate_key(login, &k)))
		return rc;
	rc = rate_load(st, txn, &k, &r);
	if (rc == ERR_NOTFOUND || rc == ERR_CORRUPT || (rc == 0 && r.hour < hour)) {
		/* a new hour starts from zero; a damaged record is replaced, not fatal */
		memset(&r, 0, sizeof(r));
		r.hour = hour;
	} else if (rc) {
		return rc;
	} else if (r.hour > hour) {
		return 0;	/* counted in an hour that is over: nothing left to limit */
	}
	r.messages = r.messages == UINT32_MAX ? r.messages : r.messages + 1;
	r.recipients = r.recipients > UINT32_MAX - recipients ? UINT32_MAX : r.recipients + recipients;
	rate_encode(&r, rec);
	v = mval(rec, sizeof(rec));
	if ((rc = mdb_put(txn, st->rates, &k, &v, 0)))
		return store_err(rc, "rate_put");
	return 0;
}
