/*
 * accounts.c: logins with mailboxes, their extra addresses, aliases, and
 * the resolution of a recipient address to mailboxes and remote addresses.
 * Addresses and aliases are kept lower-cased; logins are lower case by rule.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cursor.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "storage/internal.h"
#include "core/compat.h"

#define ACCOUNT_REC_LEN 33	/* 8 + 8 + 1 + 4 + 8 + 4: account_encode() */

bool
store_valid_login(const char *login)
{
	size_t n = strlen(login), i;

	if (n == 0 || n > STORE_LOGIN_MAX || login[0] == '.' || login[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = login[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Bytes of the UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates), 0 if it is none. */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] >= 0xc2 && p[0] <= 0xdf && (p[1] & 0xc0) == 0x80)
		return 2;
	if (p[0] >= 0xe0 && p[0] <= 0xef && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
	    !(p[0] == 0xe0 && p[1] < 0xa0) && !(p[0] == 0xed && p[1] >= 0xa0))
		return 3;
	if (p[0] >= 0xf0 && p[0] <= 0xf4 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
	    (p[3] & 0xc0) == 0x80 && !(p[0] == 0xf0 && p[1] < 0x90) && !(p[0] == 0xf4 && p[1] >= 0x90))
		return 4;
	return 0;
}

/*
 * local@domain, lengths per RFC 5321 4.5.3.1, no spaces or specials. The
 * local part may be UTF-8 (RFC 6531 3.3, for SMTPUTF8 mail); the domain is
 * ASCII (an IDN in its A-label form).
 */
static bool
valid_address(const char *a)
{
	const char *at = strrchr(a, '@');
	size_t n = strlen(a), i, k;

	if (!at || at == a || n > STORE_ADDRESS_MAX || (size_t)(at - a) > 64 || !at[1] ||
	    strlen(at + 1) > 255)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c >= 0x80 && a + i < at && (k = utf8_len((const unsigned char *)a + i)) &&
		    a + i + k <= at) {
			i += k - 1;
			continue;
		}
		if (c <= ' ' || c >= 0x7f || strchr("<>(),;:\\\"[]", c) || (c == '@' && a + i != at))
			return false;
	}
	for (i = 1; at[i]; i++)
		if (!isalnum((unsigned char)at[i]) && at[i] != '.' && at[i] != '-')
			return false;
	return at[1] != '.' && at[1] != '-';
}

static void
lower(char *out, const char *in, size_t cap)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < cap; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

static MDB_val
sval(const char *s)
{
	return mval(s, strlen(s));
}

/* The account record: [quota u64][created u64][enabled u8][count u32][bytes u64][next_uid u32]. */
static void
account_encode(const struct store_account *a, unsigned char out[ACCOUNT_REC_LEN])
{
	struct cursor c;

	cursor_writer(&c, out, ACCOUNT_REC_LEN);
	cursor_put_u64(&c, a->quota);
	cursor_put_u64(&c, a->created);
	cursor_put_u8(&c, a->enabled);
	cursor_put_u32(&c, a->count);
	cursor_put_u64(&c, a->bytes);
	cursor_put_u32(&c, a->next_uid);
	ASSERT(cursor_end(&c) == 0 && cursor_len(&c) == ACCOUNT_REC_LEN);
}

/* The numbers of the record into out (its login is the key's). */
static int
account_decode(const MDB_val *v, struct store_account *out)
{
	struct cursor c;

	cursor_reader(&c, span_make(v->mv_data, v->mv_size));
	out->quota = cursor_get_u64(&c);
	out->created = cursor_get_u64(&c);
	out->enabled = cursor_get_u8(&c) != 0;
	out->count = cursor_get_u32(&c);
	out->bytes = cursor_get_u64(&c);
	out->next_uid = cursor_get_u32(&c);
	return cursor_end(&c) ? ERR_CORRUPT : 0;
}

int
accounts_load(struct store *st, MDB_txn *txn, const char *login, struct store_account *out)
{
	struct store_account a;
	MDB_val k = sval(login), v;
	int rc = mdb_get(txn, st->accounts, &k, &v);

	if (rc)
		return rc == MDB_NOTFOUND ? ERR_NOTFOUND : store_err(rc, "account_get");
	memset(&a, 0, sizeof(a));
	if (k.mv_size > STORE_LOGIN_MAX || account_decode(&v, &a))
		return ERR_CORRUPT;	/* out untouched */
	memcpy(a.login, login, k.mv_size);
	*out = a;
	return 0;
}

int
accounts_save(struct store *st, MDB_txn *txn, const struct store_account *a)
{
	unsigned char p[ACCOUNT_REC_LEN];
	MDB_val k = sval(a->login), v = { sizeof(p), p };
	int rc;

	account_encode(a, p);
	rc = mdb_put(txn, st->accounts, &k, &v, 0);
	return rc ? store_err(rc, "account_put") : 0;
}

/* Run fn(st, txn, arg) in a write transaction, committing only on success. */
static int
in_write(struct store *st, int (*fn)(struct store *, MDB_txn *, void *), void *arg, const char *what)
{
	MDB_txn *txn;
	int rc = store_write_begin(st, &txn);

	if (rc)
		return rc;
	rc = fn(st, txn, arg);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return store_write_commit(st, txn, what);
}

struct user_args {
	const char *login;
	uint64_t quota;
	bool purge;
};

static int
do_user_add(struct store *st, MDB_txn *txn, void *arg)
{
	struct user_args *ua = arg;
	struct store_account a;

	if (accounts_load(st, txn, ua->login, &a) == 0)
		return ERR_EXISTS;
	memset(&a, 0, sizeof(a));
	memcpy(a.login, ua->login, strlen(ua->login));
	a.quota = ua->quota;
	a.created = (uint64_t)time(NULL);
	a.enabled = true;
	a.next_uid = 1;
	return accounts_save(st, txn, &a);
}

int
store_user_add(struct store *st, const char *login, uint64_t quota)
{
	struct user_args ua = { login, quota, false };

	if (!store_valid_login(login))
		return ERR_SYNTAX;
	return in_write(st, do_user_add, &ua, "user_add");
}

/* Delete every (key, value) of a database whose value equals login / whose dup is target. */
static int
drop_values(MDB_txn *txn, MDB_dbi dbi, const char *value)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = strlen(value);
	int rc, op = MDB_FIRST;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)))
		return store_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (v.mv_size == n && memcmp(v.mv_data, value, n) == 0) {
			if ((rc = mdb_cursor_del(cur, 0)))
				break;
			/* after a delete the cursor already points at the next item */
			op = MDB_GET_CURRENT;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : store_err(rc, "drop_values");
}

static int
do_user_del(struct store *st, MDB_txn *txn, void *arg)
{
	struct user_args *ua = arg;
	struct store_account a;
	MDB_val k = sval(ua->login);
	int rc;

	if ((rc = accounts_load(st, txn, ua->login, &a)))
		return rc;
	if (a.count && !ua->purge)
		return ERR_STATE;
	if ((rc = mailbox_purge(st, txn, ua->login)))
		return rc;
	if ((rc = drop_values(txn, st->addresses, ua->login)) || (rc = drop_values(txn, st->aliases, ua->login)))
		return rc;
	rc = mdb_del(txn, st->accounts, &k, NULL);
	return rc ? store_err(rc, "user_del") : 0;
}

int
store_user_del(struct store *st, const char *login, bool purge)
{
	struct user_args ua = { login, 0, purge };

	if (!store_valid_login(login))
		return ERR_NOTFOUND;
	return in_write(st, do_user_del, &ua, "user_del");
}

int
store_user_get(struct store *st, const char *login, struct store_account *out)
{
	MDB_txn *txn;
	int rc;

	if (!store_valid_login(login))
		return ERR_NOTFOUND;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	rc = accounts_load(st, txn, login, out);
	store_read_end(st, txn);
	return rc;
}

static int
do_set_quota(struct store *st, MDB_txn *txn, void *arg)
{
	struct user_args *ua = arg;
	struct store_account a;
	int rc = accounts_load(st, txn, ua->login, &a);

	if (rc)
		return rc;
	a.quota = ua->quota;
	return accounts_save(st, txn, &a);
}

int
store_user_set_quota(struct store *st, const char *login, uint64_t quota)
{
	struct user_args ua = { login, quota, false };

	if (!store_valid_login(login))
		return ERR_NOTFOUND;
	return in_write(st, do_set_quota, &ua, "set_quota");
}

int
store_user_list(struct store *st, int (*fn)(void *arg, const struct store_account *a), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, op = MDB_FIRST;

	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->accounts, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "cursor");
	}
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		char login[STORE_LOGIN_MAX + 1];
		struct store_account a;

		op = MDB_NEXT;
		if (k.mv_size > STORE_LOGIN_MAX)
			continue;
		memcpy(login, k.mv_data, k.mv_size);
		login[k.mv_size] = '\0';
		if (accounts_load(st, txn, login, &a) == 0 && (rc = fn(arg, &a)))
			break;
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	return rc;
}

/* --- addresses --- */

struct addr_args {
	char address[STORE_ADDRESS_MAX + 1];
	const char *login;
};

static int
do_address_add(struct store *st, MDB_txn *txn, void *arg)
{
	struct addr_args *aa = arg;
	struct store_account a;
	MDB_val k = sval(aa->address), v = sval(aa->login), old;
	int rc;

	if ((rc = accounts_load(st, txn, aa->login, &a)))
		return rc;
	if (mdb_get(txn, st->aliases, &k, &old) == 0)
		return ERR_EXISTS;	/* an address is either a mailbox's or an alias */
	rc = mdb_put(txn, st->addresses, &k, &v, MDB_NOOVERWRITE);
	return rc ? store_err(rc, "address_add") : 0;
}

int
store_address_add(struct store *st, const char *address, const char *login)
{
	struct addr_args aa;

	if (!valid_address(address))
		return ERR_SYNTAX;
	if (!store_valid_login(login))
		return ERR_NOTFOUND;
	lower(aa.address, address, sizeof(aa.address));
	aa.login = login;
	return in_write(st, do_address_add, &aa, "address_add");
}

static int
do_address_del(struct store *st, MDB_txn *txn, void *arg)
{
	struct addr_args *aa = arg;
	MDB_val k = sval(aa->address);
	int rc = mdb_del(txn, st->addresses, &k, NULL);

	return rc ? store_err(rc, "address_del") : 0;
}

int
store_address_del(struct store *st, const char *address)
{
	struct addr_args aa;

	if (strlen(address) > STORE_ADDRESS_MAX)
		return ERR_NOTFOUND;
	lower(aa.address, address, sizeof(aa.address));
	return in_write(st, do_address_del, &aa, "address_del");
}

int
store_address_list(struct store *st, const char *login, int (*fn)(void *arg, const char *address), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = strlen(login);
	int rc, op = MDB_FIRST;

	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->addresses, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "cursor");
	}
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		char address[STORE_ADDRESS_MAX + 1];

		op = MDB_NEXT;
		if (v.mv_size != n || memcmp(v.mv_data, login, n) != 0 || k.mv_size > STORE_ADDRESS_MAX)
			continue;
		memcpy(address, k.mv_data, k.mv_size);
		address[k.mv_size] = '\0';
		if ((rc = fn(arg, address)))
			break;
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	return rc;
}

/* --- resolution and aliases --- */

struct expansion {
	struct store *st;
	MDB_txn *txn;
	const struct store_target_fns *fns;
	bool checking;			/* alias_add: only loops and size matter */
	const char *path[STORE_EXPAND_DEPTH + 1];	/* aliases being expanded, for loops */
	char **seen;			/* targets already passed on, for duplicates */
	size_t nseen;
	size_t count;
};

static bool
seen_before(struct expansion *x, const char *what)
{
	size_t i;

	for (i = 0; i < x->nseen; i++)
		if (strcmp(x->seen[i], what) == 0)
			return true;
	x->seen = xrealloc(x->seen, (x->nseen + 1) * sizeof(char *));
	x->seen[x->nseen++] = xstrdup(what);
	return false;
}

static void
emit(struct expansion *x, bool local, const char *what)
{
	char key[STORE_ADDRESS_MAX + 3];

	/* a login and a remote address never collide: tag them */
	key[0] = local ? 'L' : 'R';
	lower(key + 1, what, sizeof(key) - 1);
	if (x->checking || seen_before(x, key))
		return;
	if (local)
		x->fns->local(x->fns->arg, what);
	else
		x->fns->remote(x->fns->arg, what);
}

static int expand(struct expansion *x, const char *target, unsigned depth);

/* A bare login: it must have an account (unless only checking). */
static int
expand_login(struct expansion *x, const char *login)
{
	struct store_account a;

	if (!x->checking && accounts_load(x->st, x->txn, login, &a))
		return ERR_NOTFOUND;
	emit(x, true, login);
	return 0;
}

/* Is addr one of the aliases being expanded (a loop)? */
static bool
is_in_path(const struct expansion *x, const char *addr, unsigned depth)
{
	unsigned i;

	for (i = 0; i < depth; i++)
		if (strcmp(x->path[i], addr) == 0)
			return true;
	return false;
}

/* Expand each target of alias addr, one level deeper; addr stays valid while it is on the path. */
static int
expand_alias(struct expansion *x, const char *addr, unsigned depth)
{
	MDB_cursor *cur;
	MDB_val k = sval(addr), v;
	int rc;

	x->path[depth] = addr;
	if ((rc = mdb_cursor_open(x->txn, x->st->aliases, &cur)))
		return store_err(rc, "cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	while (rc == 0) {
		char next[STORE_ADDRESS_MAX + 1];

		if (v.mv_size > STORE_ADDRESS_MAX) {
			rc = ERR_CORRUPT;
			break;
		}
		memcpy(next, v.mv_data, v.mv_size);
		next[v.mv_size] = '\0';
		if ((rc = expand(x, next, depth + 1)))
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A local address that is no alias: an extra address of a login, else LOGIN@D for a local domain D. */
static int
expand_local_address(struct expansion *x, const char *addr, const char *at)
{
	char login[STORE_LOGIN_MAX + 1];
	struct store_account a;
	MDB_val k = sval(addr), v;

	if (mdb_get(x->txn, x->st->addresses, &k, &v) == 0 && v.mv_size <= STORE_LOGIN_MAX) {
		memcpy(login, v.mv_data, v.mv_size);
		login[v.mv_size] = '\0';
		emit(x, true, login);
		return 0;
	}
	/* LOGIN@D for every local domain D */
	if ((size_t)(at - addr) <= STORE_LOGIN_MAX) {
		memcpy(login, addr, (size_t)(at - addr));
		login[at - addr] = '\0';
		if (store_valid_login(login) && accounts_load(x->st, x->txn, login, &a) == 0) {
			emit(x, true, login);
			return 0;
		}
	}
	return ERR_NOTFOUND;
}

/* Resolve target into logins and remote addresses (emit), following aliases up to the limits. */
static int
expand(struct expansion *x, const char *target, unsigned depth)
{
	char addr[STORE_ADDRESS_MAX + 1];
	const char *at;
	MDB_val k, v;

	if (depth > STORE_EXPAND_DEPTH || ++x->count > STORE_EXPAND_MAX)
		return ERR_LIMIT;
	if (strlen(target) > STORE_ADDRESS_MAX)
		return ERR_SYNTAX;
	lower(addr, target, sizeof(addr));
	at = strrchr(addr, '@');
	if (!at)	/* a bare login */
		return expand_login(x, addr);
	if (!x->checking && !x->fns->is_local(x->fns->arg, at + 1)) {
		emit(x, false, target);
		return 0;
	}
	if (is_in_path(x, addr, depth))
		return ERR_LIMIT;	/* a loop */
	k = sval(addr);
	if (mdb_get(x->txn, x->st->aliases, &k, &v) == 0)
		return expand_alias(x, addr, depth);
	if (x->checking)
		return 0;
	return expand_local_address(x, addr, at);
}

static void
expansion_free(struct expansion *x)
{
	size_t i;

	for (i = 0; i < x->nseen; i++)
		free(x->seen[i]);
	free(x->seen);
}

int
store_resolve(struct store *st, const char *address, const struct store_target_fns *fns)
{
	struct expansion x;
	MDB_txn *txn;
	int rc;

	memset(&x, 0, sizeof(x));
	if (!valid_address(address))
		return ERR_SYNTAX;
	if ((rc = store_read_begin(st, &txn)))
		return rc;
	x.st = st;
	x.txn = txn;
	x.fns = fns;
	rc = expand(&x, address, 0);
	store_read_end(st, txn);
	expansion_free(&x);
	return rc;
}

struct alias_args {
	char alias[STORE_ADDRESS_MAX + 1];
	const char *const *targets;
	size_t n;
};

static int
do_alias_add(struct store *st, MDB_txn *txn, void *arg)
{
	struct alias_args *aa = arg;
	struct store_account a;
	struct expansion x;
	MDB_val k = sval(aa->alias), v;
	size_t i;
	int rc;

	if (mdb_get(txn, st->aliases, &k, &v) == 0 || mdb_get(txn, st->addresses, &k, &v) == 0)
		return ERR_EXISTS;
	for (i = 0; i < aa->n; i++) {
		char t[STORE_ADDRESS_MAX + 1];

		lower(t, aa->targets[i], sizeof(t));
		if (!strchr(t, '@') && accounts_load(st, txn, t, &a))
			return ERR_NOTFOUND;	/* a bare target must be a login */
		v = sval(t);
		if ((rc = mdb_put(txn, st->aliases, &k, &v, MDB_NODUPDATA)) && rc != MDB_KEYEXIST)
			return store_err(rc, "alias_add");
	}
	/* refuse what would loop or explode, before it is committed */
	memset(&x, 0, sizeof(x));
	x.st = st;
	x.txn = txn;
	x.checking = true;
	rc = expand(&x, aa->alias, 0);
	expansion_free(&x);
	return rc;
}

int
store_alias_add(struct store *st, const char *alias, const char *const *targets, size_t n)
{
	struct alias_args aa;
	size_t i;

	if (!valid_address(alias) || n == 0 || n > STORE_ALIAS_TARGETS_MAX)
		return n > STORE_ALIAS_TARGETS_MAX ? ERR_LIMIT : ERR_SYNTAX;
	for (i = 0; i < n; i++)
		if (!valid_address(targets[i]) && !store_valid_login(targets[i]))
			return ERR_SYNTAX;
	lower(aa.alias, alias, sizeof(aa.alias));
	aa.targets = targets;
	aa.n = n;
	return in_write(st, do_alias_add, &aa, "alias_add");
}

static int
do_alias_del(struct store *st, MDB_txn *txn, void *arg)
{
	struct alias_args *aa = arg;
	MDB_val k = sval(aa->alias);
	int rc = mdb_del(txn, st->aliases, &k, NULL);

	return rc ? store_err(rc, "alias_del") : 0;
}

int
store_alias_del(struct store *st, const char *alias)
{
	struct alias_args aa;

	if (strlen(alias) > STORE_ADDRESS_MAX)
		return ERR_NOTFOUND;
	lower(aa.alias, alias, sizeof(aa.alias));
	return in_write(st, do_alias_del, &aa, "alias_del");
}

int
store_alias_list(struct store *st, int (*fn)(void *arg, const char *alias, const char *target), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, op = MDB_FIRST;

	if ((rc = store_read_begin(st, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, st->aliases, &cur))) {
		store_read_end(st, txn);
		return store_err(rc, "cursor");
	}
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		char alias[STORE_ADDRESS_MAX + 1], target[STORE_ADDRESS_MAX + 1];

		op = MDB_NEXT;
		if (k.mv_size > STORE_ADDRESS_MAX || v.mv_size > STORE_ADDRESS_MAX)
			continue;
		memcpy(alias, k.mv_data, k.mv_size);
		alias[k.mv_size] = '\0';
		memcpy(target, v.mv_data, v.mv_size);
		target[v.mv_size] = '\0';
		if ((rc = fn(arg, alias, target)))
			break;
	}
	mdb_cursor_close(cur);
	store_read_end(st, txn);
	return rc;
}
