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

#include "core/err.h"
#include "storage/internal.h"
#include "core/compat.h"

#define RATE_REC_LEN 16

static int
rate_key(const char *login, MDB_val *k)
{
	size_t n = strlen(login);

	if (!n || n > STORE_LOGIN_MAX)
		return ERR_SYNTAX;
	*k = mval(login, n);
	return 0;
}

static int
rate_load(struct store *st, MDB_txn *txn, const MDB_val *k, struct store_rate *out)
{
	MDB_val key = *k, v;
	int rc = mdb_get(txn, st->rates, &key, &v);

	if (rc)
		return rc == MDB_NOTFOUND ? ERR_NOTFOUND : store_err(rc, "rate_get");
	if (v.mv_size != RATE_REC_LEN)
		return ERR_CORRUPT;
	out->hour = key_get_u64(v.mv_data);
	out->messages = key_get_u32((const unsigned char *)v.mv_data + 8);
	out->recipients = key_get_u32((const unsigned char *)v.mv_data + 12);
	return 0;
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
	key_put_u64(rec, r.hour);
	key_put_u32(rec + 8, r.messages);
	key_put_u32(rec + 12, r.recipients);
	v = mval(rec, sizeof(rec));
	if ((rc = mdb_put(txn, st->rates, &k, &v, 0)))
		return store_err(rc, "rate_put");
	return 0;
}
