/*
 * internal.h: shared by the storage/ files only. The key layout of every
 * database is described in keys.c.
 */
#ifndef POSTIE_STORAGE_INTERNAL_H
#define POSTIE_STORAGE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/store.h"

#define STORE_SCHEMA_VERSION 1
/* LMDB's page header (16 octets on 64-bit, 12 on 32-bit): an overflow page
   holds the page size less this of a value */
#define LMDB_PAGE_HEADER 16
/* Readers at once: I/O workers, job threads, the writer, tools. */
#define STORE_MAX_READERS 1024

struct store {
	MDB_env *env;
	char *path;
	bool read_only;
	uint64_t map_max;
	MDB_dbi meta, accounts, addresses, aliases, mail, bodies, bodyref, queue, qtime, rates;
	bool has_rates;	/* false only in an older store opened read-only */
	/* bytes in a body chunk, fixed when the store was made (meta "chunk") */
	uint32_t chunk_size;

	/* read transactions take this shared; growing the map takes it exclusive,
	   because mdb_env_set_mapsize() needs no transaction open in the process */
	pthread_rwlock_t resize_lock;

	/* the group-commit writer */
	pthread_t writer;
	bool writer_running, closing;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct store_req *pending, *pending_tail;
	uint64_t commits, requests;
	/* the writer's own view: bytes of pages in use, and data.mdb written up to here */
	uint64_t used, file_end;
	bool filling;

	/* POP3 mailbox locks: a small list behind one mutex */
	pthread_mutex_t lock_mutex;
	char **locked;
	size_t nlocked, caplocked;
};

/* An MDB_val over bytes LMDB will only read (its struct is not const-correct). */
static inline MDB_val
mval(const void *p, size_t n)
{
	MDB_val v = { n, (void *)(uintptr_t)p };
	return v;
}

/* LMDB result -> project code, logging LMDB's own message once. */
int store_err(int mdb_rc, const char *where);

/* Read transactions: begin (taking the resize lock shared) and end. */
int store_read_begin(struct store *st, MDB_txn **txn);
void store_read_end(struct store *st, MDB_txn *txn);
/* A synchronous write transaction for admin writes; commit or abort. */
int store_write_begin(struct store *st, MDB_txn **txn);
int store_write_commit(struct store *st, MDB_txn *txn, const char *where);

/* keys.c: keys (and the meta scalars) as fixed-width big-endian integers and
   length-prefixed strings, built in one place so byte order is sort order. */
void key_put_u32(unsigned char *p, uint32_t v);
void key_put_u64(unsigned char *p, uint64_t v);
uint32_t key_get_u32(const unsigned char *p);
uint64_t key_get_u64(const unsigned char *p);
/* mail key: [len u8][login][uid u32]; returns its length */
size_t key_mail(unsigned char *out, const char *login, uint32_t uid);
/* body chunk key: [body u64][chunk u32] */
void key_chunk(unsigned char out[12], uint64_t body, uint32_t chunk);
/* queue time key: [when u64][id u64] */
void key_qtime(unsigned char out[16], uint64_t when, uint64_t id);
/* A fresh id (bodies, messages, queue entries share one counter). */
int store_next_id(struct store *st, MDB_txn *txn, uint64_t *out);

/*
 * Records (the values of the databases, layouts in keys.c) are encoded and
 * decoded with core/cursor.h, each by the file that owns its database, in
 * one encoder and one decoder beside each other. A decoder returns 0 or
 * ERR_CORRUPT and consumes the record exactly.
 */

/* accounts.c */
int accounts_load(struct store *st, MDB_txn *txn, const char *login, struct store_account *out);
int accounts_save(struct store *st, MDB_txn *txn, const struct store_account *a);

/* mailbox.c: the mail and bodyref records */
#define MAIL_REC_LEN 40
struct mail_rec {
	uint64_t body, size, arrival, msgid;
	uint64_t pop3_size;	/* octets RETR sends: dot-stuffed, CRLF-terminated */
};
void mail_rec_encode(const struct mail_rec *m, unsigned char out[MAIL_REC_LEN]);
int mail_rec_decode(const MDB_val *v, struct mail_rec *out);
#define BODYREF_LEN 16
struct bodyref {
	uint32_t refs;		/* mailboxes and queue entries holding the body */
	uint64_t size;
	uint32_t chunks;
};
void bodyref_encode(const struct bodyref *r, unsigned char out[BODYREF_LEN]);
int bodyref_decode(const MDB_val *v, struct bodyref *out);

/* mailbox.c: the writer's operations, inside its transaction */
int mailbox_apply_deliver(struct store *st, MDB_txn *txn, struct store_delivery *d);
/* body (stored, referenced by a queue entry) into login's mailbox too: ERR_QUOTA, ERR_NOTFOUND */
int mailbox_apply_append(struct store *st, MDB_txn *txn, const char *login, uint64_t body, uint64_t size,
    uint64_t now);
int mailbox_apply_expunge(struct store *st, MDB_txn *txn, const struct store_expunge *e);
int body_unref(struct store *st, MDB_txn *txn, uint64_t body_id);
int mailbox_purge(struct store *st, MDB_txn *txn, const char *login);

/* rates.c: one more message and recipients for login in hour (the delivery's transaction) */
int rates_apply_add(struct store *st, MDB_txn *txn, const char *login, uint64_t hour, uint32_t recipients);

/* queue.c */
int queue_apply_insert(struct store *st, MDB_txn *txn, const struct store_qentry *q, uint64_t *id_out);
int queue_decode(const MDB_val *v, uint64_t id, struct store_qentry *out);
int queue_apply_claim(struct store *st, MDB_txn *txn, const struct store_qclaim *c);
int queue_apply_update(struct store *st, MDB_txn *txn, struct store_qupdate *u);
int queue_apply_local(struct store *st, MDB_txn *txn, struct store_qlocal *l);

#endif
