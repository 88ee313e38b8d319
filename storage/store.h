/*
 * store.h: the only storage API the server and tools see. One LMDB
 * environment under storage.path holds the accounts registry, the
 * mailboxes, the message bodies and the outbound queue. Handles are
 * opaque, errors are project codes (core/err.h).
 *
 * Threads: every function may be called from any thread. Reads run in
 * short read transactions that end before the function returns. Writes
 * from the server go through store_submit(): one writer thread gathers the
 * requests of many sessions into one transaction, commits it with a sync,
 * and only then calls each request's done(). The synchronous admin writes
 * (accounts, aliases) run their own short write transaction; LMDB
 * serialises them with the writer and with other processes (postiectl).
 *
 * Common errors: ERR_STORE_FULL (map or disk full: temporary for the
 * client), ERR_STORE (other LMDB or I/O failure, logged once), ERR_NOMEM.
 */
#ifndef POSTIE_STORE_H
#define POSTIE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Limits, with their reasons. */
#define STORE_LOGIN_MAX 255		/* as the auth helper (STYLE 3) */
#define STORE_ADDRESS_MAX 256		/* RFC 5321 4.5.3.1.3: a path */
#define STORE_CHUNK_MAX (64 * 1024)	/* the largest body chunk (and a good read piece) */
#define STORE_ALIAS_TARGETS_MAX 100	/* targets of one alias */
#define STORE_EXPAND_DEPTH 8		/* nested aliases */
#define STORE_EXPAND_MAX 1000		/* addresses one recipient may expand to */
#define STORE_BATCH_MAX 512		/* requests in one group commit */
#define STORE_UIDL_LEN 16		/* hex digits of a UIDL */

struct store_opts {
	const char *path;	/* a directory (created if missing) */
	uint64_t map_size;	/* initial map size; grown as the store fills */
	uint64_t map_max;	/* never grow past it (0 = only the disk limits it) */
	bool read_only;
};

/*
 * Open (creating an empty store in an empty directory). Clears readers
 * left by crashed processes. Refuses a foreign or damaged file, or a newer
 * schema, with ERR_CORRUPT and a log line; never overwrites one.
 * Returns 0, ERR_CORRUPT, ERR_PERM, ERR_IO, ERR_STORE.
 */
int store_open(const struct store_opts *opts, struct store **out);
/* The store's directory (for spool files on the same file system). */
const char *store_path(const struct store *st);
/* Stops the writer (finishing queued requests) and closes. NULL is fine. */
void store_close(struct store *st);

/* ------------------------------------------------------------------ accounts */

struct store_account {
	char login[STORE_LOGIN_MAX + 1];
	uint64_t quota;		/* bytes, 0 = none */
	uint64_t created;	/* unix time */
	bool enabled;
	uint32_t count;		/* messages in the mailbox */
	uint64_t bytes;		/* their total size */
	uint32_t next_uid;	/* never reused */
};

/* A login: 1..255 bytes of [a-z0-9._-], not starting with '.' or '-'. */
bool store_valid_login(const char *login);

/* ERR_SYNTAX (bad login), ERR_EXISTS. */
int store_user_add(struct store *st, const char *login, uint64_t quota);
/*
 * Remove a login with its addresses and aliases pointing only at it.
 * Without purge a mailbox that still holds messages is refused (ERR_STATE);
 * with purge its messages go too. ERR_NOTFOUND.
 */
int store_user_del(struct store *st, const char *login, bool purge);
int store_user_get(struct store *st, const char *login, struct store_account *out);	/* ERR_NOTFOUND */
int store_user_set_quota(struct store *st, const char *login, uint64_t quota);
/* Call fn for each account in login order; a non-zero return from fn stops and is returned. */
int store_user_list(struct store *st, int (*fn)(void *arg, const struct store_account *a), void *arg);

/* Extra addresses of a login (lower-cased domain). ERR_SYNTAX, ERR_NOTFOUND (login), ERR_EXISTS. */
int store_address_add(struct store *st, const char *address, const char *login);
int store_address_del(struct store *st, const char *address);	/* ERR_NOTFOUND */
int store_address_list(struct store *st, const char *login,
    int (*fn)(void *arg, const char *address), void *arg);

/*
 * An alias and its targets (logins, or addresses local or remote). A new
 * alias that would make a loop or expand past the limits is refused with
 * ERR_LIMIT, and the store is unchanged. ERR_SYNTAX, ERR_EXISTS.
 */
int store_alias_add(struct store *st, const char *alias, const char *const *targets, size_t n);
int store_alias_del(struct store *st, const char *alias);	/* ERR_NOTFOUND */
int store_alias_list(struct store *st, int (*fn)(void *arg, const char *alias, const char *target), void *arg);

/*
 * Where mail for address goes. is_local says whether a domain is one of
 * ours. Each local mailbox (login) and each remote address is passed to
 * fn once (duplicates removed). Returns 0, ERR_NOTFOUND (no mailbox or
 * alias: 550 5.1.1 at RCPT), ERR_LIMIT (expansion too large), ERR_SYNTAX.
 */
struct store_target_fns {
	bool (*is_local)(void *arg, const char *domain);
	void (*local)(void *arg, const char *login);
	void (*remote)(void *arg, const char *address);
	void *arg;
};
int store_resolve(struct store *st, const char *address, const struct store_target_fns *fns);

/* ------------------------------------------------------------------ mailboxes */

struct store_msg {
	uint32_t uid;		/* per mailbox, increasing, never reused */
	uint64_t size;		/* octets stored (what store_body_read returns) */
	uint64_t pop3_size;	/* octets RETR sends: dot-stuffed, CRLF-terminated (LIST) */
	uint64_t arrival;	/* unix time */
	uint64_t body_id;
	char uidl[STORE_UIDL_LEN + 1];	/* unique forever in the store */
};

/*
 * The message list of login at this instant, in uid order (malloc'd;
 * free() it). ERR_NOTFOUND (no such login).
 */
int store_mailbox_snapshot(struct store *st, const char *login, struct store_msg **msgs_out,
    size_t *n_out);

/*
 * Copy up to n bytes of a body from offset into buf, in one short read
 * transaction; *got_out is 0 at the end. ERR_NOTFOUND (no such body: it
 * was expunged by the only session that may, so it is a bug or damage).
 */
int store_body_read(struct store *st, uint64_t body_id, uint64_t offset, void *buf, size_t n,
    size_t *got_out);

/* One POP3 session per mailbox (in this process): ERR_EXISTS when held. */
int store_mailbox_lock(struct store *st, const char *login);
void store_mailbox_unlock(struct store *st, const char *login);

/* ------------------------------------------------------------------ queue */

/* A recipient of a queued message (outbound). */
struct store_qrcpt {
	char address[STORE_ADDRESS_MAX + 1];
	char orcpt[512];	/* RFC 3461 ORCPT as received (xtext), "" = none */
	uint8_t notify;		/* STORE_NOTIFY_* bits; 0 = default (failure) */
	uint8_t state;		/* STORE_RCPT_* */
	char reply[512];	/* the last remote reply for it */
	/* "" for a remote recipient. Else a local mailbox: a member of an alias
	   (address) whose mailbox was over its quota when the message came; the
	   runner retries it with STORE_OP_QUEUE_LOCAL */
	char login[STORE_LOGIN_MAX + 1];
};
enum { STORE_NOTIFY_NEVER = 1, STORE_NOTIFY_SUCCESS = 2, STORE_NOTIFY_FAILURE = 4, STORE_NOTIFY_DELAY = 8 };
/*
 * DELIVERED_REPORT and EXPANDED_REPORT: delivered here (to a mailbox, or
 * by an alias to several targets) and NOTIFY=SUCCESS asked, the success
 * report not yet made; the queue runner makes it and records DELIVERED
 * (RFC 3461 5.2.3, 5.2.7.3). Until then the entry stays.
 */
enum {
	STORE_RCPT_PENDING = 0, STORE_RCPT_DELIVERED = 1, STORE_RCPT_FAILED = 2,
	STORE_RCPT_DELIVERED_REPORT = 3, STORE_RCPT_EXPANDED_REPORT = 4
};
#define STORE_RCPT_REPORT_DUE(state) ((state) == STORE_RCPT_DELIVERED_REPORT || (state) == STORE_RCPT_EXPANDED_REPORT)
/* not final yet: still to deliver, or its success report still to make */
#define STORE_RCPT_OPEN(state) ((state) == STORE_RCPT_PENDING || STORE_RCPT_REPORT_DUE(state))

struct store_qentry {
	uint64_t id;
	char sender[STORE_ADDRESS_MAX + 1];	/* "" = null sender */
	char envid[101];			/* RFC 3461 ENVID, "" = none */
	bool ret_full;				/* RET=FULL, else HDRS */
	bool ret_hdrs;				/* RET=HDRS was given (passed on as it came) */
	bool delay_warned;			/* a delay DSN went out already */
	bool leased;				/* taken by a runner until next_attempt */
	bool bounce_requested;			/* postiectl queue bounce: fail what is pending */
	bool success_hdrs;			/* from an unauthenticated session: a success
						   report returns the headers only, whatever RET */
	uint64_t created, next_attempt;
	uint32_t attempts;
	uint64_t body_id, size;
	struct store_qrcpt *rcpts;		/* malloc'd with the entry (store_qentry_free) */
	size_t nrcpts;
};
void store_qentry_free(struct store_qentry *q);

/* The entry id (ERR_NOTFOUND); *out must be freed with store_qentry_free(). */
int store_queue_get(struct store *st, uint64_t id, struct store_qentry *out);
/* Each entry in id order (the entry is valid during the call only). */
int store_queue_list(struct store *st, int (*fn)(void *arg, const struct store_qentry *q), void *arg);
/* Ids of entries due at now, oldest due first, at most max, from the time index. */
int store_queue_due(struct store *st, uint64_t now, uint64_t *ids_out, size_t max, size_t *n_out);

/*
 * Admin writes on the live queue (their own short write transaction).
 * delete: the entry goes with its reference to the body (ERR_NOTFOUND).
 * flush: entry id (0 = every entry) becomes due at now; *n_out counts them.
 * release: at start-up, entries leased by a runner that died are due now.
 */
int store_queue_delete(struct store *st, uint64_t id);
int store_queue_flush(struct store *st, uint64_t id, uint64_t now, size_t *n_out);
int store_queue_release(struct store *st, uint64_t now, size_t *n_out);
/* bounce: entry id is due now and its pending recipients are to fail (DSN) at the runner. ERR_NOTFOUND. */
int store_queue_bounce(struct store *st, uint64_t id, uint64_t now);

/* ------------------------------------------------------------------ hourly counts */

/*
 * What an authenticated login sent in one hour (smtp.max_messages_per_hour,
 * smtp.max_recipients_per_hour), kept so a restart does not reset it. A
 * delivery adds to it in its own transaction (store_delivery.rate_login);
 * the server reads it when it first needs the login's counter.
 */
struct store_rate {
	uint64_t hour;		/* unix time / 3600 */
	uint32_t messages;
	uint32_t recipients;	/* RCPT commands accepted */
};
/* The login's record (zeros and ERR_NOTFOUND when there is none). ERR_SYNTAX, ERR_CORRUPT. */
int store_rate_get(struct store *st, const char *login, struct store_rate *out);

/* ------------------------------------------------------------------ writes */

struct store_delivery {
	/* the message: prefix (headers the server adds) followed by the content,
	   which is in memory (mem) or in a file (fd, read from offset 0) */
	const unsigned char *prefix;
	size_t prefix_len;
	const unsigned char *mem;
	size_t mem_len;
	int fd;			/* -1 when the content is in memory */
	uint64_t fd_len;
	/* local mailboxes (logins), each gets the message once */
	const char *const *logins;
	size_t nlogins;
	/* remote recipients: queued in the same transaction (NULL = none; an
	   entry without recipients is written only when a login is deferred) */
	const struct store_qentry *queue;
	/*
	 * Per login (NULL, or a NULL element = none): the queue recipient that
	 * stands for it when its mailbox is over its quota at commit (address,
	 * orcpt, notify; the store sets login, state and reply). It is added to
	 * the entry `queue` (which must then be given) instead of failing the
	 * delivery, as long as another mailbox or a remote recipient takes the
	 * message now; when nothing would, the request fails with ERR_QUOTA.
	 */
	const struct store_qrcpt *const *defer;
	uint64_t now;		/* arrival time */
	/* the authenticated sender's hourly record (store_rate_get): one message and
	   rate_recipients more in rate_hour, in this transaction (NULL = not counted) */
	const char *rate_login;
	uint64_t rate_hour;
	uint32_t rate_recipients;
	/* out */
	uint64_t body_id_out;
	uint64_t queue_id_out;
	const char *failed_login_out;	/* which login was over quota (ERR_QUOTA) */
	bool *deferred_out;	/* per login (NULL = not wanted): queued instead of delivered */
};

struct store_expunge {
	const char *login;
	const uint32_t *uids;	/* sorted or not; unknown uids are ignored */
	size_t nuids;
};

/*
 * A runner takes due entries: each is leased (next attempt moved to until,
 * leased set) so it is not due again while delivery runs; an entry gone
 * meanwhile is skipped. A lease left by a crash is undone at start-up
 * (store_queue_release), so every recipient is tried again.
 */
struct store_qclaim {
	const uint64_t *ids;
	size_t nids;
	uint64_t until;
};

/* The outcome of one attempt for recipient index (STORE_RCPT_*). */
struct store_qresult {
	uint32_t index;
	uint8_t state;
	char reply[512];
};

/*
 * The end of an attempt on entry id: recipients' new states and replies,
 * the next attempt (the lease ends), and optionally a DSN delivered in the
 * same transaction (so a crash can neither lose nor repeat it). An entry
 * with no pending recipient left is removed. When the DSN cannot be
 * delivered (its mailbox is full or gone) the update still applies and
 * bounce_failed_out says so. ERR_NOTFOUND: the entry was deleted meanwhile.
 */
struct store_qupdate {
	uint64_t id;
	const struct store_qresult *results;
	size_t nresults;
	uint32_t attempts;		/* the entry's attempt count from now */
	uint64_t next_attempt;
	bool delay_warned;
	struct store_delivery *bounce;	/* NULL = none */
	/* out */
	bool removed_out;
	int bounce_failed_out;		/* 0, or the code the DSN's delivery failed with */
};

/*
 * Another attempt at local recipients of entry id (indexes idx, each a
 * pending recipient with its login set): for each, the body goes into the
 * login's mailbox and the recipient is recorded delivered, in one
 * transaction (so a crash can neither lose nor repeat a copy). The rest of
 * the entry, its lease included, is left as it is; the runner's
 * STORE_OP_QUEUE_UPDATE follows. results_out[i] (n of them): 0 delivered,
 * ERR_QUOTA (still over its quota), ERR_NOTFOUND (no such login any more),
 * ERR_STATE (not a pending local recipient); those stay as they were.
 * The request itself fails with ERR_NOTFOUND (the entry is gone) or a
 * store error.
 */
struct store_qlocal {
	uint64_t id;
	const uint32_t *idx;
	size_t n;
	uint64_t now;		/* arrival time in the mailbox */
	int *results_out;
};

enum store_op {
	STORE_OP_DELIVER, STORE_OP_EXPUNGE, STORE_OP_QUEUE_CLAIM, STORE_OP_QUEUE_UPDATE, STORE_OP_QUEUE_LOCAL
};

struct store_req {
	enum store_op op;
	union {
		struct store_delivery deliver;
		struct store_expunge expunge;
		struct store_qclaim claim;
		struct store_qupdate update;
		struct store_qlocal local;
	} u;
	/* private to the store */
	void (*done)(void *arg, int rc);
	void *arg;
	struct store_req *next;
	int rc;
};

/*
 * Queue req for the writer. done(arg, rc) is called on the writer thread
 * after the commit that holds it (rc 0) or after it failed (ERR_QUOTA for
 * a delivery over a quota, ERR_NOTFOUND for an unknown login,
 * ERR_STORE_FULL, ERR_STORE); a failed request changes nothing. req and
 * everything it points to must stay valid until done() runs.
 * Returns 0, or ERR_STATE when the store is closing (done is not called).
 */
int store_submit(struct store *st, struct store_req *req, void (*done)(void *arg, int rc), void *arg);
/* The same, waiting for the result (tools, tests). */
int store_submit_wait(struct store *st, struct store_req *req);

/* ------------------------------------------------------------------ admin */

struct store_stats {
	uint64_t users, messages, message_bytes, bodies, body_bytes, queued;
	uint64_t map_size, map_used;	/* bytes */
	uint64_t commits, requests;	/* by this process's writer: requests/commits = batching */
};
int store_stats(struct store *st, struct store_stats *out);

/*
 * Check every reference: mailbox entries point at bodies that exist, body
 * reference counts equal their references, chunks are complete, counters
 * match, the queue's time index matches its entries, no orphans. Each
 * problem goes to report (may be NULL). Returns 0 or ERR_CORRUPT.
 */
int store_verify(struct store *st, void (*report)(void *arg, const char *problem), void *arg);

/*
 * The login cache's flush generation: postiectl bumps it, postied compares
 * it on each cache hit, so a flush reaches a running server without a
 * signal. ERR_STORE.
 */
int store_auth_generation(struct store *st, uint64_t *out);
int store_auth_flush(struct store *st);

/* A consistent, compacted copy into dir (empty or missing), while running. */
int store_backup(struct store *st, const char *dir);

#endif
