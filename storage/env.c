/*
 * env.c: the LMDB environment, its databases, transactions, map growth,
 * and the group-commit writer thread.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cursor.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

/* How often the writer clears reader slots of crashed processes. */
#define READER_CHECK_SECONDS 60
/* Grow the map ahead of need once it is this full (percent). */
#define MAP_GROW_AT 80
/* Bytes of the data file kept written ahead of LMDB's last page: a
   sixteenth of what is used, within these bounds; written in pieces of
   FILL_PIECE, each synced on its own (fill_piece). */
#define PREALLOC_MIN (1ull << 20)
#define PREALLOC_MAX (8ull << 20)
#define FILL_PIECE (128 * 1024)

int
store_err(int rc, const char *where)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return ERR_NOTFOUND;
	case MDB_KEYEXIST:
		return ERR_EXISTS;
	case MDB_MAP_FULL:
	case ENOSPC:
	case EDQUOT:
		log_msg(LOG_LEVEL_ERR, "event=store_full where=%s error=\"%s\"", where, mdb_strerror(rc));
		return ERR_STORE_FULL;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_VERSION_MISMATCH:
	case MDB_PAGE_NOTFOUND:
		log_msg(LOG_LEVEL_CRIT, "event=store_corrupt where=%s error=\"%s\"", where, mdb_strerror(rc));
		return ERR_CORRUPT;
	case EACCES:
		log_msg(LOG_LEVEL_ERR, "event=store_error where=%s error=\"%s\"", where, mdb_strerror(rc));
		return ERR_PERM;
	default:
		log_msg(LOG_LEVEL_ERR, "event=store_error where=%s error=\"%s\"", where, mdb_strerror(rc));
		return ERR_STORE;
	}
}

/* Another process grew the map: adopt its size. Takes the resize lock exclusive. */
static int
adopt_map_size(struct store *st)
{
	int rc;

	pthread_rwlock_wrlock(&st->resize_lock);
	rc = mdb_env_set_mapsize(st->env, 0);
	pthread_rwlock_unlock(&st->resize_lock);
	return rc;
}

int
store_read_begin(struct store *st, MDB_txn **txn)
{
	int rc, tries;

	for (tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&st->resize_lock);
		rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
		if (rc != MDB_MAP_RESIZED)
			break;
		pthread_rwlock_unlock(&st->resize_lock);
		if ((rc = adopt_map_size(st)))
			return store_err(rc, "read_begin");
	}
	if (rc) {
		pthread_rwlock_unlock(&st->resize_lock);
		return store_err(rc, "read_begin");
	}
	return 0;
}

void
store_read_end(struct store *st, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->resize_lock);
}

int
store_write_begin(struct store *st, MDB_txn **txn)
{
	int rc, tries;

	if (st->read_only)
		return ERR_PERM;
	for (tries = 0; tries < 3; tries++) {
		rc = mdb_txn_begin(st->env, NULL, 0, txn);
		if (rc != MDB_MAP_RESIZED)
			break;
		if ((rc = adopt_map_size(st)))
			break;
	}
	return rc ? store_err(rc, "write_begin") : 0;
}

int
store_write_commit(struct store *st, MDB_txn *txn, const char *where)
{
	int rc = mdb_txn_commit(txn);

	(void)st;
	return rc ? store_err(rc, where) : 0;
}

/* Current map size and bytes in use. */
static void
map_usage(struct store *st, uint64_t *size, uint64_t *used)
{
	MDB_envinfo info;
	MDB_stat s;

	mdb_env_info(st->env, &info);
	mdb_env_stat(st->env, &s);
	*size = info.me_mapsize;
	*used = ((uint64_t)info.me_last_pgno + 1) * s.ms_psize;
}

/* Double the map (bounded by map_max). 0, or ERR_STORE_FULL when it cannot grow. */
static int
grow_map(struct store *st)
{
	uint64_t size, used, want;
	int rc;

	map_usage(st, &size, &used);
	want = size * 2;
	if (st->map_max && want > st->map_max)
		want = st->map_max;
	if (want <= size)
		return ERR_STORE_FULL;
	pthread_rwlock_wrlock(&st->resize_lock);
	rc = mdb_env_set_mapsize(st->env, (size_t)want);
	pthread_rwlock_unlock(&st->resize_lock);
	if (rc)
		return store_err(rc, "grow_map");
	log_msg(LOG_LEVEL_NOTICE, "event=store_grow map_size=%llu used=%llu",
	    (unsigned long long)want, (unsigned long long)used);
	return 0;
}

/*
 * LMDB writes its new pages past the end of data.mdb, so nearly every
 * commit grows the file, and then its fdatasync must also commit the
 * filesystem's journal (ext4 here: a small commit took 0.30 to 0.45 ms
 * so, 0.22 to 0.27 ms into blocks the file already had). So while it has
 * nothing else to do the writer writes zeros ahead of the last page, a
 * piece at a time with its own fdatasync, and commits then overwrite
 * blocks that exist. The zeros must be on disk before the next commit, or
 * its fdatasync would carry them (filling from a commit made p99 latency
 * 6 ms). A request that arrives meanwhile waits for one piece at most.
 *
 * Each piece is written inside a write transaction, LMDB's cross-process
 * writer lock, so no other writer (postiectl) is putting pages there
 * meanwhile; what lies past the newest meta's last page is unused by any
 * reader. Nothing is synced less. A failed write (a full disk) stops the
 * filling until the store has grown by half a step.
 */
static uint64_t
fill_ahead(uint64_t used)
{
	uint64_t ahead = used / 16;

	return ahead < PREALLOC_MIN ? PREALLOC_MIN : ahead > PREALLOC_MAX ? PREALLOC_MAX : ahead;
}

/* Start when less than half the run is left, then fill it whole: a piece
   is worth its sync only when it is a whole piece. */
static bool
fill_wanted(struct store *st)
{
	uint64_t ahead = fill_ahead(st->used);

	if (st->used && st->file_end < st->used + ahead / 2)
		st->filling = true;
	if (st->filling && st->file_end >= st->used + ahead)
		st->filling = false;
	return st->filling;
}

/* One piece of zeros at the end of data.mdb, synced. Always moves file_end
   on (or past the goal), so the idle writer never spins on it. */
static void
fill_piece(struct store *st)
{
	static unsigned char zeros[FILL_PIECE];
	uint64_t size, used = st->used, goal, want;
	struct stat sb;
	MDB_txn *txn;
	int fd;

	/* on failure, stop until the store has grown by half a step */
	if (store_write_begin(st, &txn)) {
		st->file_end = used + fill_ahead(used) * 3 / 2;
		return;
	}
	map_usage(st, &size, &used);	/* under the lock: the newest meta */
	goal = used + fill_ahead(used);
	want = goal < size ? goal : size;	/* past the map, LMDB writes nothing */
	if (mdb_env_get_fd(st->env, &fd) || fstat(fd, &sb) || (uint64_t)sb.st_size >= want) {
		st->file_end = goal;
	} else {
		size_t n = want - (uint64_t)sb.st_size < sizeof(zeros) ? (size_t)(want - (uint64_t)sb.st_size) :
		    sizeof(zeros);

		if (pwrite(fd, zeros, n, sb.st_size) == (ssize_t)n && fdatasync(fd) == 0)
			st->file_end = (uint64_t)sb.st_size + n;
		else	/* a full disk: LMDB says so when it matters */
			st->file_end = used + fill_ahead(used) * 3 / 2;
	}
	st->used = used;
	mdb_txn_abort(txn);
}

static int
open_dbs(struct store *st, MDB_txn *txn, unsigned flags)
{
	static const struct { const char *name; size_t off; unsigned extra; } dbs[] = {
		{ "meta", offsetof(struct store, meta), 0 },
		{ "accounts", offsetof(struct store, accounts), 0 },
		{ "addresses", offsetof(struct store, addresses), 0 },
		{ "aliases", offsetof(struct store, aliases), MDB_DUPSORT },
		{ "mail", offsetof(struct store, mail), 0 },
		{ "bodies", offsetof(struct store, bodies), 0 },
		{ "bodyref", offsetof(struct store, bodyref), 0 },
		{ "queue", offsetof(struct store, queue), 0 },
		{ "qtime", offsetof(struct store, qtime), 0 },
	};
	size_t i;
	int rc;

	for (i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		rc = mdb_dbi_open(txn, dbs[i].name, flags | dbs[i].extra,
		    (MDB_dbi *)((char *)st + dbs[i].off));
		if (rc)
			return rc;
	}
	/* added within schema 1: made by the first read-write open of an older
	   store; absent there when it is opened read-only, and then read as empty */
	rc = mdb_dbi_open(txn, "rates", flags, &st->rates);
	st->has_rates = rc == 0;
	return rc == MDB_NOTFOUND && !(flags & MDB_CREATE) ? 0 : rc;
}

/*
 * The body chunk size. A new store fits a chunk to one LMDB overflow page
 * (the page less its header), so a 4 KiB message costs one page to write
 * instead of two, and no body ever needs a contiguous run of free pages.
 * Stores made before this record existed keep their 64 KiB chunks.
 */
static int
chunk_size_setup(struct store *st, MDB_txn *txn, bool fresh)
{
	MDB_val k = mval("chunk", 5), v;
	unsigned char buf[4];
	MDB_stat es;
	int rc;

	if (fresh) {
		mdb_env_stat(st->env, &es);
		st->chunk_size = es.ms_psize - LMDB_PAGE_HEADER;
		key_put_u32(buf, st->chunk_size);
		v = mval(buf, 4);
		rc = mdb_put(txn, st->meta, &k, &v, 0);
		return rc ? store_err(rc, "chunk_size") : 0;
	}
	rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		st->chunk_size = STORE_CHUNK_MAX;
		return 0;
	}
	if (rc)
		return store_err(rc, "chunk_size");
	if (v.mv_size != 4 || key_get_u32(v.mv_data) < 256 || key_get_u32(v.mv_data) > STORE_CHUNK_MAX) {
		log_msg(LOG_LEVEL_CRIT, "event=store_corrupt path=\"%s\" error=\"bad chunk size record\"", st->path);
		return ERR_CORRUPT;
	}
	st->chunk_size = key_get_u32(v.mv_data);
	return 0;
}

/* A new store gets the schema record; an existing one must carry ours. */
static int
check_schema(struct store *st)
{
	MDB_val k = mval("schema", 6), v;
	unsigned char buf[4];
	bool fresh = false;
	MDB_txn *txn;
	MDB_stat ms;
	int rc;

	rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
	if (rc)
		return store_err(rc, "open");
	/* the unnamed main database lists the named ones; anything else is foreign */
	rc = open_dbs(st, txn, st->read_only ? 0 : MDB_CREATE);
	if (rc) {
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
			log_msg(LOG_LEVEL_CRIT, "event=store_foreign path=\"%s\" error=\"not a postie store\"", st->path);
			return ERR_CORRUPT;
		}
		return store_err(rc, "open_dbs");
	}
	rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		fresh = true;
		mdb_stat(txn, st->accounts, &ms);
		if (ms.ms_entries || st->read_only) {
			mdb_txn_abort(txn);
			log_msg(LOG_LEVEL_CRIT, "event=store_foreign path=\"%s\" error=\"no schema record\"", st->path);
			return ERR_CORRUPT;
		}
		key_put_u32(buf, STORE_SCHEMA_VERSION);
		v.mv_size = 4;
		v.mv_data = buf;
		if ((rc = mdb_put(txn, st->meta, &k, &v, 0))) {
			mdb_txn_abort(txn);
			return store_err(rc, "schema");
		}
	} else if (rc || v.mv_size != 4 || key_get_u32(v.mv_data) != STORE_SCHEMA_VERSION) {
		mdb_txn_abort(txn);
		log_msg(LOG_LEVEL_CRIT, "event=store_foreign path=\"%s\" error=\"schema %u, this postie knows %u\"",
		    st->path, rc || v.mv_size != 4 ? 0 : key_get_u32(v.mv_data), STORE_SCHEMA_VERSION);
		return ERR_CORRUPT;
	}
	if ((rc = chunk_size_setup(st, txn, fresh))) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	return rc ? store_err(rc, "schema") : 0;
}

static void *writer_main(void *arg);

int
store_open(const struct store_opts *opts, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	int rc, dead = 0;

	*out = NULL;
	st->path = xstrdup(opts->path);
	st->read_only = opts->read_only;
	st->map_max = opts->map_max;
	pthread_rwlock_init(&st->resize_lock, NULL);
	pthread_mutex_init(&st->wlock, NULL);
	pthread_cond_init(&st->wcond, NULL);
	pthread_mutex_init(&st->lock_mutex, NULL);
	if (!opts->read_only && mkdir(opts->path, 0750) < 0 && errno != EEXIST) {
		log_msg(LOG_LEVEL_ERR, "event=store_open path=\"%s\" error=\"%s\"", opts->path, strerror(errno));
		rc = err_from_errno(errno);
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env)) || (rc = mdb_env_set_maxdbs(st->env, 16)) ||
	    (rc = mdb_env_set_maxreaders(st->env, STORE_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(st->env, (size_t)(opts->map_size ? opts->map_size : 1 << 30)))) {
		rc = store_err(rc, "env_create");
		goto fail;
	}
	/* default durability: every commit is synced (no NOSYNC, no NOMETASYNC) */
	rc = mdb_env_open(st->env, opts->path, (opts->read_only ? MDB_RDONLY : 0) | MDB_NOTLS, 0640);
	if (rc) {
		rc = store_err(rc, "env_open");
		if (rc == ERR_CORRUPT)
			log_msg(LOG_LEVEL_CRIT, "event=store_foreign path=\"%s\" error=\"refusing a file that is not a postie store\"",
			    opts->path);
		goto fail;
	}
	/* readers left by a crashed process would pin old pages forever */
	mdb_reader_check(st->env, &dead);
	if (dead)
		log_msg(LOG_LEVEL_NOTICE, "event=store_readers cleared=%d", dead);
	if ((rc = check_schema(st)))
		goto fail;
	if (!opts->read_only) {
		if ((rc = pthread_create(&st->writer, NULL, writer_main, st))) {
			log_msg(LOG_LEVEL_CRIT, "event=thread_create what=store_writer error=\"%s\"", strerror(rc));
			rc = ERR_STORE;
			goto fail;
		}
		st->writer_running = true;
	}
	*out = st;
	return 0;
fail:
	store_close(st);
	return rc;
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

void
store_close(struct store *st)
{
	size_t i;

	if (!st)
		return;
	if (st->writer_running) {
		pthread_mutex_lock(&st->wlock);
		st->closing = true;
		pthread_cond_signal(&st->wcond);
		pthread_mutex_unlock(&st->wlock);
		pthread_join(st->writer, NULL);
	}
	if (st->env)
		mdb_env_close(st->env);
	for (i = 0; i < st->nlocked; i++)
		free(st->locked[i]);
	free(st->locked);
	pthread_rwlock_destroy(&st->resize_lock);
	pthread_mutex_destroy(&st->wlock);
	pthread_cond_destroy(&st->wcond);
	pthread_mutex_destroy(&st->lock_mutex);
	free(st->path);
	free(st);
}

/* --- the group-commit writer --- */

int
store_submit(struct store *st, struct store_req *req, void (*done)(void *arg, int rc), void *arg)
{
	req->done = done;
	req->arg = arg;
	req->next = NULL;
	req->rc = 0;
	pthread_mutex_lock(&st->wlock);
	if (st->closing || !st->writer_running) {
		pthread_mutex_unlock(&st->wlock);
		return ERR_STATE;
	}
	if (st->pending_tail)
		st->pending_tail->next = req;
	else
		st->pending = req;
	st->pending_tail = req;
	pthread_cond_signal(&st->wcond);
	pthread_mutex_unlock(&st->wlock);
	return 0;
}

struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	int rc;
};

static void
wake_waiter(void *arg, int rc)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&w->m);
	w->rc = rc;
	w->done = true;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

int
store_submit_wait(struct store *st, struct store_req *req)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };
	int rc = store_submit(st, req, wake_waiter, &w);

	if (rc)
		return rc;
	pthread_mutex_lock(&w.m);
	while (!w.done)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_mutex_destroy(&w.m);
	pthread_cond_destroy(&w.c);
	return w.rc;
}

static int
apply(struct store *st, MDB_txn *txn, struct store_req *req)
{
	switch (req->op) {
	case STORE_OP_DELIVER:
		return mailbox_apply_deliver(st, txn, &req->u.deliver);
	case STORE_OP_EXPUNGE:
		return mailbox_apply_expunge(st, txn, &req->u.expunge);
	case STORE_OP_QUEUE_CLAIM:
		return queue_apply_claim(st, txn, &req->u.claim);
	case STORE_OP_QUEUE_UPDATE:
		return queue_apply_update(st, txn, &req->u.update);
	case STORE_OP_QUEUE_LOCAL:
		return queue_apply_local(st, txn, &req->u.local);
	}
	return ERR_STATE;
}

/*
 * One transaction for the whole batch; each request in a nested
 * transaction, so a request that fails (over quota, unknown login) rolls
 * back alone. Returns true when the map was full and growing it may help.
 */
static bool
run_batch(struct store *st, struct store_req *batch, bool may_grow)
{
	struct store_req *r;
	MDB_txn *txn;
	bool map_full = false;
	int rc = store_write_begin(st, &txn);

	if (rc) {
		for (r = batch; r; r = r->next)
			r->rc = rc;
		return false;
	}
	for (r = batch; r; r = r->next) {
		MDB_txn *child;

		r->rc = mdb_txn_begin(st->env, txn, 0, &child);
		if (r->rc) {
			r->rc = store_err(r->rc, "nested_begin");
			continue;
		}
		r->rc = apply(st, child, r);
		if (r->rc == 0 && (rc = mdb_txn_commit(child)))
			r->rc = store_err(rc, "nested_commit");
		else if (r->rc)
			mdb_txn_abort(child);
		/* inside a transaction only the map can be full; the disk shows at commit */
		if (r->rc == ERR_STORE_FULL && may_grow) {
			map_full = true;
			break;
		}
	}
	if (map_full) {
		mdb_txn_abort(txn);
		return true;
	}
	rc = mdb_txn_commit(txn);	/* the sync: nothing is acknowledged before it returns */
	if (rc) {
		rc = store_err(rc, "commit");
		for (r = batch; r; r = r->next)
			if (!r->rc)
				r->rc = rc;
	}
	return false;
}

static void *
writer_main(void *arg)
{
	struct store *st = arg;
	time_t last_check = time(NULL);

	for (;;) {
		struct store_req *batch, *r, *next, *rest;
		uint64_t size, used;
		size_t n = 0;

		pthread_mutex_lock(&st->wlock);
		while (!st->pending && !st->closing) {
			if (fill_wanted(st)) {
				pthread_mutex_unlock(&st->wlock);
				fill_piece(st);
				pthread_mutex_lock(&st->wlock);
				continue;
			}
			pthread_cond_wait(&st->wcond, &st->wlock);
		}
		if (!st->pending && st->closing) {
			pthread_mutex_unlock(&st->wlock);
			return NULL;
		}
		/* take up to STORE_BATCH_MAX waiting requests: one sync for all */
		batch = st->pending;
		for (r = batch; r->next && ++n < STORE_BATCH_MAX; r = r->next)
			;
		rest = r->next;
		r->next = NULL;
		st->pending = rest;
		if (!rest)
			st->pending_tail = NULL;
		pthread_mutex_unlock(&st->wlock);

		if (run_batch(st, batch, true)) {
			/* grown or not, the second run answers every request */
			grow_map(st);
			run_batch(st, batch, false);
		}
		map_usage(st, &size, &used);
		if (used * 100 > size * MAP_GROW_AT)
			grow_map(st);
		pthread_mutex_lock(&st->wlock);
		st->used = used;
		st->commits++;
		for (r = batch; r; r = r->next)
			st->requests++;
		pthread_mutex_unlock(&st->wlock);
		for (r = batch; r; r = next) {
			next = r->next;	/* done() may free r */
			r->done(r->arg, r->rc);
		}
		if (time(NULL) - last_check >= READER_CHECK_SECONDS) {
			int dead = 0;

			mdb_reader_check(st->env, &dead);
			if (dead)
				log_msg(LOG_LEVEL_NOTICE, "event=store_readers cleared=%d", dead);
			last_check = time(NULL);
		}
	}
}

/* --- admin --- */

int
store_stats(struct store *st, struct store_stats *out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_stat ms;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	mdb_stat(txn, st->accounts, &ms);
	out->users = ms.ms_entries;
	mdb_stat(txn, st->mail, &ms);
	out->messages = ms.ms_entries;
	mdb_stat(txn, st->queue, &ms);
	out->queued = ms.ms_entries;
	mdb_stat(txn, st->bodyref, &ms);
	out->bodies = ms.ms_entries;
	if (mdb_cursor_open(txn, st->accounts, &cur) == 0) {
		int op = MDB_FIRST;
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			struct store_account a;
			char login[STORE_LOGIN_MAX + 1];

			op = MDB_NEXT;
			if (k.mv_size > STORE_LOGIN_MAX)
				continue;
			memcpy(login, k.mv_data, k.mv_size);
			login[k.mv_size] = '\0';
			if (accounts_load(st, txn, login, &a) == 0)
				out->message_bytes += a.bytes;
		}
		mdb_cursor_close(cur);
	}
	if (mdb_cursor_open(txn, st->bodyref, &cur) == 0) {
		int op = MDB_FIRST;
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			struct cursor c;
			uint64_t size;

			op = MDB_NEXT;
			/* the size of a bodyref record (mailbox.c); what cannot be read, verify reports */
			cursor_reader(&c, span_make(v.mv_data, v.mv_size));
			cursor_get_u32(&c);
			size = cursor_get_u64(&c);
			if (!c.err)
				out->body_bytes += size;
		}
		mdb_cursor_close(cur);
	}
	store_read_end(st, txn);
	map_usage(st, &out->map_size, &out->map_used);
	pthread_mutex_lock(&st->wlock);
	out->commits = st->commits;
	out->requests = st->requests;
	pthread_mutex_unlock(&st->wlock);
	return 0;
}

int
store_backup(struct store *st, const char *dir)
{
	int rc;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_msg(LOG_LEVEL_ERR, "event=backup dir=\"%s\" error=\"%s\"", dir, strerror(errno));
		return err_from_errno(errno);
	}
	/* a read transaction of its own inside LMDB: consistent while writers go on */
	rc = mdb_env_copy2(st->env, dir, MDB_CP_COMPACT);
	return rc ? store_err(rc, "backup") : 0;
}

int
store_auth_generation(struct store *st, uint64_t *out)
{
	MDB_val k = mval("auth_gen", 8), v;
	MDB_txn *txn;
	int rc;

	*out = 0;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	rc = mdb_get(txn, st->meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		*out = key_get_u64(v.mv_data);
	store_read_end(st, txn);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(rc, "auth_gen");
}

int
store_auth_flush(struct store *st)
{
	MDB_val k = mval("auth_gen", 8), v;
	unsigned char buf[8];
	uint64_t gen = 0;
	MDB_txn *txn;
	int rc;

	if ((rc = store_write_begin(st, &txn)))
		return rc;
	if (mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 8)
		gen = key_get_u64(v.mv_data);
	key_put_u64(buf, gen + 1);
	v = mval(buf, 8);
	if ((rc = mdb_put(txn, st->meta, &k, &v, 0))) {
		mdb_txn_abort(txn);
		return store_err(rc, "auth_flush");
	}
	return store_write_commit(st, txn, "auth_flush");
}
