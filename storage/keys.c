/*
 * keys.c: the on-disk layout. Integers are fixed-width big-endian so that
 * LMDB's byte order is numeric order; strings carry a length prefix so no
 * key needs a NUL.
 *
 *   meta       "schema" -> u32 version; "next_id" -> u64; "auth_gen" -> u64;
 *              "chunk" -> u32 body chunk size (absent: STORE_CHUNK_MAX)
 *   accounts   login -> [quota u64][created u64][enabled u8][count u32][bytes u64][next_uid u32]
 *   addresses  address -> login                 (extra addresses of a login)
 *   aliases    alias -> target, one duplicate per target (MDB_DUPSORT)
 *   mail       [len u8][login][uid u32] -> [body u64][size u64][arrival u64][msgid u64]
 *                                             [pop3 size u64: dot-stuffed octets]
 *   bodies     [body u64][chunk u32] -> chunk_size bytes, the last chunk fewer
 *   bodyref    [body u64] -> [refs u32][size u64][chunks u32]
 *   queue      [id u64] -> the envelope (queue.c)
 *   qtime      [next_attempt u64][id u64] -> ""  (index of due work)
 *   rates      login -> [hour u64][messages u32][recipients u32]  (sent this hour, rates.c)
 *
 * Keys are built here with the fixed-width helpers below. Values (records)
 * are encoded and decoded with core/cursor.h, in one encoder/decoder pair
 * in the file that owns the database: accounts.c (accounts), mailbox.c
 * (mail, bodyref), queue.c (queue), rates.c (rates). A new record's pair
 * goes beside its database's code, its layout in the table above.
 *
 * The UIDL of a message is its msgid in hex: ids come from one counter
 * that only grows, so a UIDL is never reused, whatever is deleted.
 */
#include "config.h"

#include <string.h>

#include "core/err.h"
#include "storage/internal.h"
#include "core/compat.h"

void
key_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void
key_put_u64(unsigned char *p, uint64_t v)
{
	key_put_u32(p, (uint32_t)(v >> 32));
	key_put_u32(p + 4, (uint32_t)v);
}

uint32_t
key_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t
key_get_u64(const unsigned char *p)
{
	return (uint64_t)key_get_u32(p) << 32 | key_get_u32(p + 4);
}

size_t
key_mail(unsigned char *out, const char *login, uint32_t uid)
{
	size_t n = strlen(login);

	ASSERT(n <= STORE_LOGIN_MAX);
	out[0] = (unsigned char)n;
	memcpy(out + 1, login, n);
	key_put_u32(out + 1 + n, uid);
	return n + 5;
}

void
key_chunk(unsigned char out[12], uint64_t body, uint32_t chunk)
{
	key_put_u64(out, body);
	key_put_u32(out + 8, chunk);
}

void
key_qtime(unsigned char out[16], uint64_t when, uint64_t id)
{
	key_put_u64(out, when);
	key_put_u64(out + 8, id);
}

int
store_next_id(struct store *st, MDB_txn *txn, uint64_t *out)
{
	MDB_val k = mval("next_id", 7), v;
	unsigned char buf[8];
	uint64_t id = 1;
	int rc = mdb_get(txn, st->meta, &k, &v);

	if (rc == 0 && v.mv_size == 8)
		id = key_get_u64(v.mv_data);
	else if (rc != MDB_NOTFOUND)
		return rc ? store_err(rc, "next_id") : ERR_CORRUPT;
	key_put_u64(buf, id + 1);
	v.mv_size = 8;
	v.mv_data = buf;
	if ((rc = mdb_put(txn, st->meta, &k, &v, 0)))
		return store_err(rc, "next_id");
	*out = id;
	return 0;
}
