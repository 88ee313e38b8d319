/*
 * smtp/mail.c: the mail transaction: MAIL, RCPT, DATA, and delivery.
 * Recipients are resolved at RCPT time (no bounce later for an unknown
 * local user); the message streams through the DATA decoder into a spool
 * (memory, then an unlinked file past SPOOL_MEM_MAX); at the end one store
 * request delivers it to every local mailbox and queues the remote
 * recipients, and 250 is sent only after that commit returned.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "auth/throttle.h"
#include "server/server.h"
#include "server/smtp/internal.h"
#include "storage/store.h"
#include "server/worker.h"
#include "core/compat.h"

/* A message kept in memory up to this size; a larger one goes to a file. */
#define SPOOL_MEM_MAX (256 * 1024)

struct spool {
	struct buf mem;
	int fd;			/* -1 until the message outgrows memory */
	uint64_t len;
	int err;
};

struct smtp_txn {
	struct smtp_mail mail;
	char **logins;		/* local mailboxes, each once */
	size_t nlogins;
	/* per login: -1, or the stand-in of the RCPT that reached it through an
	   alias with several targets; such a mailbox without room at the end of
	   data gets its copy queued (the stand-in) instead of refusing the message */
	int *login_stand_in;
	struct store_qrcpt *stand_ins;	/* one per such RCPT */
	size_t nstand_ins;
	struct store_qrcpt *remote;	/* remote recipients (queued) */
	size_t nremote;
	struct store_qrcpt *reports;	/* local recipients owed a success report (queued too) */
	size_t nreports;
	size_t nrcpts;		/* recipients accepted (for the limit) */
	/* taken from the login's hourly allowance, given back unless delivered */
	char rate_login[STORE_LOGIN_MAX + 1];
	uint64_t rate_hour;
	unsigned rate_messages, rate_recipients;
	char first_rcpt[STORE_ADDRESS_MAX + 1];
	struct smtp_data data;
	struct spool spool;
	/* BDAT */
	bool chunking;		/* the message comes in BDAT chunks */
	bool last;		/* the chunk being read is the LAST one */
	uint64_t chunk_left;	/* bytes of the current chunk still to read */
};

/* A delivery in flight: owns everything the store request points to. */
struct delivery {
	struct store_req req;
	struct conn *conn;
	struct smtp_txn *txn;
	struct buf prefix;
	struct store_qentry q;
	struct store_qrcpt *qrcpts;	/* remote and reports together, when there are reports */
	const struct store_qrcpt **defer;	/* per login, for alias members */
	bool *deferred;			/* per login: queued for lack of room */
	int rc;
};

static void
spool_emit(void *arg, const unsigned char *p, size_t n)
{
	struct spool *sp = arg;

	if (sp->err)
		return;
	sp->len += n;
	if (sp->fd < 0 && sp->mem.len + n <= SPOOL_MEM_MAX) {
		buf_append(&sp->mem, p, n);
		return;
	}
	if (sp->fd < 0) {
		/* an unlinked file in the store's directory: gone with the process */
		sp->fd = open(server_store ? store_path(server_store) : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (sp->fd < 0 || write(sp->fd, sp->mem.data, sp->mem.len) != (ssize_t)sp->mem.len) {
			log_msg(LOG_LEVEL_ERR, "event=spool error=\"%s\"", strerror(errno));
			sp->err = ERR_IO;
			return;
		}
		buf_free(&sp->mem);
	}
	while (n) {
		ssize_t w = write(sp->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_msg(LOG_LEVEL_ERR, "event=spool error=\"%s\"", strerror(errno));
			sp->err = errno == ENOSPC ? ERR_STORE_FULL : ERR_IO;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void rate_give_back(struct smtp_txn *t);

static void
txn_free(struct smtp_txn *t)
{
	size_t i;

	if (!t)
		return;
	rate_give_back(t);
	for (i = 0; i < t->nlogins; i++)
		free(t->logins[i]);
	free(t->logins);
	free(t->login_stand_in);
	free(t->stand_ins);
	free(t->remote);
	free(t->reports);
	buf_free(&t->spool.mem);
	if (t->spool.fd >= 0)
		close(t->spool.fd);
	free(t);
}

void
smtp_txn_reset(struct smtp_session *s)
{
	txn_free(s->txn);
	s->txn = NULL;
	if (s->state & (SMTP_STATE_TXN | SMTP_STATE_DATA | SMTP_STATE_BDAT))
		smtp_set_state(s, SMTP_STATE_READY);
}

uint64_t
smtp_bdat_pending(const struct smtp_session *s)
{
	return s->txn && s->txn->chunking ? s->txn->chunk_left : 0;
}

static bool
is_submission(const struct conn *c)
{
	return c->proto == LISTEN_SUBMISSION || c->proto == LISTEN_SUBMISSIONS;
}

/*
 * --- hourly counters ---
 * Per authenticated login: messages and recipients (smtp.max_messages_per_hour,
 * smtp.max_recipients_per_hour), a stolen password's reach. Per client
 * address: success reports asked from unauthenticated sessions
 * (smtp.max_success_reports_per_hour), a reflection channel (STYLE 16).
 * A count is taken when the command is accepted, under the lock that
 * decides, so parallel sessions cannot all pass one check; a transaction
 * that ends without delivery gives its login's counts back. A login's
 * counts also go to the store with each delivery (store_rate_get), and a
 * counter is seeded from there when first needed, so a restart resets nothing.
 */

#define HOURLY_SLOTS 4096	/* bounded memory; a full neighbourhood forgets its oldest hour */
#define HOURLY_PROBES 8		/* slots one key may use: the cost of each lookup */

enum { RATE_MESSAGES, RATE_RECIPIENTS, RATE_REPORTS = 0 };

struct hourly_slot {
	char key[THROTTLE_KEY_MAX];	/* a login, or an address key (throttle_address_key) */
	uint64_t hour;
	unsigned n[2];		/* logins: RATE_MESSAGES, RATE_RECIPIENTS; addresses: RATE_REPORTS */
};

static struct hourly_table {
	pthread_mutex_t lock;
	struct hourly_slot slot[HOURLY_SLOTS];
} by_login = { PTHREAD_MUTEX_INITIALIZER, { { "", 0, { 0, 0 } } } },
    by_address = { PTHREAD_MUTEX_INITIALIZER, { { "", 0, { 0, 0 } } } };

static uint64_t
this_hour(void)
{
	return (uint64_t)time(NULL) / 3600;
}

/* key's slot (a new one, zeroed for hour, when add is set), its counts moved on to hour. Lock held. */
static struct hourly_slot *
hourly_find(struct hourly_table *t, const char *key, uint64_t hour, bool add)
{
	uint32_t h = 2166136261u;
	size_t i, pick = HOURLY_SLOTS;
	const char *p;

	for (p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (i = 0; i < HOURLY_PROBES; i++) {
		struct hourly_slot *sl = &t->slot[(h + i) % HOURLY_SLOTS];

		if (strcmp(sl->key, key) == 0) {
			if (sl->hour < hour) {
				sl->hour = hour;
				sl->n[0] = sl->n[1] = 0;
			}
			return sl;
		}
		if (pick == HOURLY_SLOTS || sl->hour < t->slot[pick].hour)
			pick = (h + i) % HOURLY_SLOTS;
	}
	if (!add)
		return NULL;
	snprintf(t->slot[pick].key, sizeof(t->slot[pick].key), "%s", key);
	t->slot[pick].hour = hour;
	t->slot[pick].n[0] = t->slot[pick].n[1] = 0;
	return &t->slot[pick];
}

/*
 * Take one of what (RATE_MESSAGES, RATE_RECIPIENTS) from the login's
 * allowance of max this hour; t remembers it, to give it back unless the
 * message is delivered. 0 = no limit. Returns 0, ERR_LIMIT (spent), or the
 * store's error reading the saved count (fail closed: a temporary reply).
 */
static int
rate_take(struct smtp_txn *t, const char *login, int what, unsigned max)
{
	uint64_t hour = this_hour();
	struct hourly_slot *sl;
	struct store_rate saved = { 0, 0, 0 };
	int rc = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&by_login.lock);
	sl = hourly_find(&by_login, login, hour, false);
	pthread_mutex_unlock(&by_login.lock);
	if (!sl) {
		/* first use since start (or since its slot was reused): the store's count, read outside the lock */
		rc = server_store ? store_rate_get(server_store, login, &saved) : ERR_NOTFOUND;
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if (rc || saved.hour != hour)
			memset(&saved, 0, sizeof(saved));
	}
	pthread_mutex_lock(&by_login.lock);
	if (!(sl = hourly_find(&by_login, login, hour, false))) {
		sl = hourly_find(&by_login, login, hour, true);
		sl->n[RATE_MESSAGES] = saved.messages;
		sl->n[RATE_RECIPIENTS] = saved.recipients;
	}
	if (sl->n[what] >= max) {
		rc = ERR_LIMIT;
	} else {
		sl->n[what]++;
		if (t->rate_hour != hour) {	/* a new hour: what was taken before counts there */
			t->rate_messages = t->rate_recipients = 0;
			t->rate_hour = hour;
		}
		*(what == RATE_MESSAGES ? &t->rate_messages : &t->rate_recipients) += 1;
		snprintf(t->rate_login, sizeof(t->rate_login), "%s", login);
		rc = 0;
	}
	pthread_mutex_unlock(&by_login.lock);
	return rc;
}

/* The transaction ends without delivery: what it took is given back. */
static void
rate_give_back(struct smtp_txn *t)
{
	struct hourly_slot *sl;

	if (!t->rate_messages && !t->rate_recipients)
		return;
	pthread_mutex_lock(&by_login.lock);
	sl = hourly_find(&by_login, t->rate_login, t->rate_hour, false);
	if (sl && sl->hour == t->rate_hour) {
		sl->n[RATE_MESSAGES] -= sl->n[RATE_MESSAGES] < t->rate_messages ? sl->n[RATE_MESSAGES] : t->rate_messages;
		sl->n[RATE_RECIPIENTS] -= sl->n[RATE_RECIPIENTS] < t->rate_recipients ? sl->n[RATE_RECIPIENTS] :
		    t->rate_recipients;
	}
	pthread_mutex_unlock(&by_login.lock);
}

/* One more success report for the client's address this hour, or false when they are spent. */
static bool
report_take(const char *ip, unsigned max)
{
	char key[THROTTLE_KEY_MAX];
	struct hourly_slot *sl;
	bool ok;

	if (!max)
		return true;
	throttle_address_key(key, sizeof(key), ip);	/* IPv6 by its /64, as the login throttle */
	pthread_mutex_lock(&by_address.lock);
	sl = hourly_find(&by_address, key, this_hour(), true);
	ok = sl->n[RATE_REPORTS] < max;
	if (ok)
		sl->n[RATE_REPORTS]++;
	pthread_mutex_unlock(&by_address.lock);
	return ok;
}

/* Take from the login's hourly allowance; when refused, reply (450 4.7.1 when spent) and say true. */
static bool
rate_refused(struct smtp_session *s, struct smtp_txn *t, int what, unsigned max)
{
	struct conn *c = s->conn;
	int rc = rate_take(t, s->login, what, max);

	if (rc == ERR_LIMIT) {
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=rate_limit login=\"%s\" limit=%s max=%u ip=%s", c->sid, s->login,
		    what == RATE_MESSAGES ? "messages_per_hour" : "recipients_per_hour", max, c->ip);
		smtp_reply(s, what == RATE_MESSAGES ? "450 4.7.1 Too many messages this hour, try again later\r\n" :
		    "450 4.7.1 Too many recipients this hour, try again later\r\n");
	} else if (rc) {
		log_msg(LOG_LEVEL_ERR, "sid=%s event=rate_limit login=\"%s\" error=\"%s\"", c->sid, s->login, err_str(rc));
		smtp_reply(s, "451 4.3.0 Temporary lookup failure\r\n");
	}
	return rc != 0;
}

/* --- MAIL --- */

/* store_resolve() with the local domains of the session's configuration. */
struct resolve_ctx {
	const struct config *cfg;
	void (*local)(void *arg, const char *login);
	void (*remote)(void *arg, const char *address);
	void *arg;
};

static bool
ctx_is_local(void *arg, const char *domain)
{
	return config_is_local_domain(((struct resolve_ctx *)arg)->cfg, span_cstr(domain));
}

static void
ctx_local(void *arg, const char *login)
{
	struct resolve_ctx *x = arg;
	x->local(x->arg, login);
}

static void
ctx_remote(void *arg, const char *address)
{
	struct resolve_ctx *x = arg;
	x->remote(x->arg, address);
}

static int
resolve(const struct config *cfg, const char *address, void (*local)(void *, const char *),
    void (*remote)(void *, const char *), void *arg)
{
	struct resolve_ctx x = { cfg, local, remote, arg };
	struct store_target_fns fns = { ctx_is_local, ctx_local, ctx_remote, &x };

	return store_resolve(server_store, address, &fns);
}

struct owner_check {
	const char *login;
	bool owned;
};

static void
owner_local(void *arg, const char *login)
{
	struct owner_check *oc = arg;

	if (strcmp(login, oc->login) == 0)
		oc->owned = true;
}

static void
ignore_remote(void *arg, const char *address)
{
	(void)arg;
	(void)address;
}

/* Does address deliver to the session's own mailbox? (smtp.sender_must_match) */
static bool
owned_by(struct smtp_session *s, const char *address)
{
	struct owner_check oc = { s->login, false };
	const char *at = strrchr(address, '@');

	if (!at || !config_is_local_domain(s->conn->cfg, span_cstr(at + 1)))
		return false;
	return resolve(s->conn->cfg, address, owner_local, ignore_remote, &oc) == 0 && oc.owned;
}

void
smtp_cmd_mail(struct smtp_session *s, struct span arg)
{
	struct conn *c = s->conn;
	struct smtp_txn *t;
	enum smtp_parse_result r;

	if (s->messages >= c->cfg->smtp.max_messages_per_session) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=messages_per_session ip=%s", c->sid, c->ip);
		conn_printf(c, "421 4.7.0 %s Too many messages in one session\r\n", c->cfg->hostname);
		conn_close_after_flush(c);
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->spool.fd = -1;
	r = smtp_parse_mail(arg, &t->mail);
	if (r) {
		txn_free(t);
		smtp_bad_command(s, r == SMTP_PARSE_PARAM ? "555 5.5.4 Unsupported or repeated parameter\r\n" :
		    r == SMTP_PARSE_UTF8 ? "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n" :
		    "501 5.5.4 Syntax error in MAIL command\r\n");
		return;
	}
	if (t->mail.size > c->cfg->smtp.max_message_size) {
		txn_free(t);
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
		return;
	}
	/*
	 * The null sender is no one's address either: it is for the reports a
	 * mail system makes itself (RFC 5321 4.5.5), nothing can bounce or
	 * answer it, and an authenticated user who could use it would send
	 * anonymously. Refused like any address the user does not own.
	 */
	if (s->authenticated && c->cfg->smtp.sender_must_match &&
	    (t->mail.path.is_null || !owned_by(s, t->mail.path.addr))) {
		char safe[LOG_SAFE_SIZE];

		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=sender_refused login=\"%s\" sender=\"%s\"", c->sid, s->login,
		    log_safe(safe, span_cstr(t->mail.path.addr)));
		txn_free(t);
		smtp_reply(s, "553 5.7.1 Sender address not owned by the authenticated user\r\n");
		return;
	}
	if (s->authenticated && rate_refused(s, t, RATE_MESSAGES, c->cfg->smtp.max_messages_per_hour)) {
		txn_free(t);
		return;
	}
	s->txn = t;
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, "250 2.1.0 Ok\r\n");
}

/* --- RCPT --- */

struct rcpt_targets {
	struct smtp_session *s;
	const struct smtp_rcpt *rcpt;
	size_t ntargets;	/* what the address resolved to */
	char **full;		/* targets known to have no room now (not in the txn yet) */
	size_t nfull;
};

static void
txn_add_login(struct smtp_txn *t, const char *login)
{
	t->logins = xrealloc(t->logins, (t->nlogins + 1) * sizeof(char *));
	t->login_stand_in = xrealloc(t->login_stand_in, (t->nlogins + 1) * sizeof(int));
	t->login_stand_in[t->nlogins] = -1;
	t->logins[t->nlogins++] = xstrdup(login);
}

static void
add_local(void *arg, const char *login)
{
	struct rcpt_targets *rt = arg;
	struct smtp_txn *t = rt->s->txn;
	struct store_account a;
	size_t i;

	rt->ntargets++;
	for (i = 0; i < t->nlogins; i++)
		if (strcmp(t->logins[i], login) == 0)
			return;
	/* known to be over quota now: say so at RCPT (452 4.2.2), not after DATA */
	if (store_user_get(server_store, login, &a) == 0 && a.quota &&
	    a.bytes + (t->mail.size ? t->mail.size : 1) > a.quota) {
		rt->full = xrealloc(rt->full, (rt->nfull + 1) * sizeof(char *));
		rt->full[rt->nfull++] = xstrdup(login);
		return;
	}
	txn_add_login(t, login);
}

/*
 * An alias with several targets: a member whose mailbox has no room
 * (now, or at the end of data) must not refuse the others, nor lose its
 * copy. It gets a stand-in, queued in the delivery's commit and retried by
 * the queue runner until it fits or expires (then the sender gets a DSN
 * naming the alias). Its targets are not asked for success again (the
 * alias reports "expanded", RFC 3461 5.2.7.3).
 */
static void
add_stand_in(struct smtp_txn *t, const struct smtp_rcpt *rcpt, const char *addr, struct rcpt_targets *rt,
    size_t first_login)
{
	struct store_qrcpt *q;
	size_t i;

	t->stand_ins = xrealloc(t->stand_ins, (t->nstand_ins + 1) * sizeof(*t->stand_ins));
	q = &t->stand_ins[t->nstand_ins];
	memset(q, 0, sizeof(*q));
	snprintf(q->address, sizeof(q->address), "%s", addr);
	snprintf(q->orcpt, sizeof(q->orcpt), "%s", rcpt->orcpt);
	q->notify = rcpt->notify;
	if (q->notify & STORE_NOTIFY_SUCCESS) {
		q->notify &= (uint8_t)~STORE_NOTIFY_SUCCESS;
		if (!(q->notify & (STORE_NOTIFY_FAILURE | STORE_NOTIFY_DELAY)))
			q->notify = STORE_NOTIFY_NEVER;
	}
	for (i = 0; i < rt->nfull; i++)
		txn_add_login(t, rt->full[i]);	/* the store queues it at commit: still no room there */
	for (i = first_login; i < t->nlogins; i++)
		t->login_stand_in[i] = (int)t->nstand_ins;
	t->nstand_ins++;
}

static void
add_remote(void *arg, const char *address)
{
	struct rcpt_targets *rt = arg;
	struct smtp_txn *t = rt->s->txn;
	struct store_qrcpt *q;
	size_t i;

	rt->ntargets++;
	for (i = 0; i < t->nremote; i++)
		if (strcmp(t->remote[i].address, address) == 0)
			return;
	t->remote = xrealloc(t->remote, (t->nremote + 1) * sizeof(*t->remote));
	q = &t->remote[t->nremote++];
	memset(q, 0, sizeof(*q));
	snprintf(q->address, sizeof(q->address), "%s", address);
	q->notify = rt->rcpt->notify;
	snprintf(q->orcpt, sizeof(q->orcpt), "%s", rt->rcpt->orcpt);
}

/*
 * NOTIFY=SUCCESS for a local address: the success report is made by the
 * queue runner from a queue recipient recorded in the delivery's own
 * commit (RFC 3461 5.2.3). An alias that gave several targets is
 * "expanded" (5.2.7.3), and its targets are not asked for success again;
 * one remote target is a relay like any other, NOTIFY going on with it.
 */
static void
add_report(struct smtp_session *s, const struct smtp_rcpt *rcpt, const char *addr, size_t nlocal, size_t first_remote)
{
	struct smtp_txn *t = s->txn;
	size_t nremote = t->nremote - first_remote, i;
	struct store_qrcpt *q;

	/* a report never goes to the null sender, so none is queued for it */
	if (!(rcpt->notify & STORE_NOTIFY_SUCCESS) || nlocal + nremote == 0 || !*t->mail.path.addr)
		return;
	if (!nlocal && nremote == 1)
		return;	/* one remote target: relayed like any other */
	t->reports = xrealloc(t->reports, (t->nreports + 1) * sizeof(*t->reports));
	q = &t->reports[t->nreports++];
	memset(q, 0, sizeof(*q));
	snprintf(q->address, sizeof(q->address), "%s", addr);
	snprintf(q->orcpt, sizeof(q->orcpt), "%s", rcpt->orcpt);
	q->notify = rcpt->notify;
	if (nlocal + nremote == 1) {
		q->state = STORE_RCPT_DELIVERED_REPORT;
		snprintf(q->reply, sizeof(q->reply), "delivered to the mailbox");
		return;
	}
	q->state = STORE_RCPT_EXPANDED_REPORT;
	snprintf(q->reply, sizeof(q->reply), "forwarded to %zu recipients", nlocal + nremote);
	for (i = first_remote; i < t->nremote; i++) {
		t->remote[i].notify &= (uint8_t)~STORE_NOTIFY_SUCCESS;
		if (!(t->remote[i].notify & (STORE_NOTIFY_FAILURE | STORE_NOTIFY_DELAY)))
			t->remote[i].notify = STORE_NOTIFY_NEVER;
	}
}

static void
rcpt_targets_free(struct rcpt_targets *rt)
{
	size_t i;

	for (i = 0; i < rt->nfull; i++)
		free(rt->full[i]);
	free(rt->full);
	rt->full = NULL;
	rt->nfull = 0;
}

/* What a recipient adds to the transaction, counted before it is resolved. */
struct rcpt_mark {
	size_t nlogins, nremote, nreports, nstand_ins;
};

/* A recipient refused after it was (partly) resolved: forget what it added. */
static void
rcpt_undo(struct smtp_txn *t, const struct rcpt_mark *m)
{
	while (t->nlogins > m->nlogins)
		free(t->logins[--t->nlogins]);
	t->nremote = m->nremote;
	t->nreports = m->nreports;
	t->nstand_ins = m->nstand_ins;
}

void
smtp_cmd_rcpt(struct smtp_session *s, struct span arg)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct rcpt_targets rt = { s, NULL, 0, NULL, 0 };
	struct smtp_rcpt rcpt;
	enum smtp_parse_result r;
	char addr[STORE_ADDRESS_MAX + 1], safe[LOG_SAFE_SIZE];
	struct span domain;
	struct rcpt_mark mark = { t->nlogins, t->nremote, t->nreports, t->nstand_ins };
	int rc;

	r = smtp_parse_rcpt(arg, &rcpt);
	if (r) {
		smtp_bad_command(s, r == SMTP_PARSE_PARAM ? "555 5.5.4 Unsupported or repeated parameter\r\n" :
		    "501 5.5.4 Syntax error in RCPT command\r\n");
		return;
	}
	if (rcpt.path.has_utf8 && !t->mail.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n");
		return;
	}
	if (t->nrcpts >= c->cfg->smtp.max_recipients) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=recipients ip=%s", c->sid, c->ip);
		smtp_reply(s, "452 4.5.3 Too many recipients\r\n");
		return;
	}
	if (smtp_path_has_routing(&rcpt.path)) {
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=rcpt_refused reason=routing ip=%s rcpt=\"%s\"", c->sid, c->ip,
		    log_safe(safe, span_cstr(rcpt.path.addr)));
		smtp_reply(s, "550 5.7.1 Source routing is not accepted\r\n");
		return;
	}
	if (rcpt.path.is_postmaster)	/* RFC 5321 4.5.1: <postmaster> is always accepted */
		snprintf(addr, sizeof(addr), "postmaster@%s", c->cfg->domains[0]);
	else
		snprintf(addr, sizeof(addr), "%s", rcpt.path.addr);
	domain = span_cstr(strrchr(addr, '@') + 1);
	if (!s->authenticated && (rcpt.notify & STORE_NOTIFY_SUCCESS) && *t->mail.path.addr &&
	    !report_take(c->ip, c->cfg->smtp.max_success_reports_per_hour)) {
		/* past the limit: as if SUCCESS had not been asked (what is left, or NEVER) */
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=dsn_limit ip=%s max=%u rcpt=\"%s\" note=\"NOTIFY=SUCCESS ignored\"",
		    c->sid, c->ip, c->cfg->smtp.max_success_reports_per_hour, log_safe(safe, span_cstr(addr)));
		rcpt.notify &= (uint8_t)~STORE_NOTIFY_SUCCESS;
		if (!(rcpt.notify & (STORE_NOTIFY_FAILURE | STORE_NOTIFY_DELAY)))
			rcpt.notify = STORE_NOTIFY_NEVER;
	}
	rt.rcpt = &rcpt;
	if (config_is_local_domain(c->cfg, domain)) {
		rc = resolve(c->cfg, addr, add_local, add_remote, &rt);
		/* no room in any mailbox it reaches (a direct one, or every member): the client keeps it */
		if (rc == 0 && rt.nfull && rt.nfull == rt.ntargets) {
			log_msg(LOG_LEVEL_INFO, "sid=%s event=rcpt_refused reason=quota ip=%s rcpt=\"%s\"", c->sid, c->ip,
			    log_safe(safe, span_cstr(addr)));
			rcpt_targets_free(&rt);
			smtp_reply(s, "452 4.2.2 Mailbox full\r\n");
			return;
		}
		if (rc == 0 && rt.ntargets > 1)
			add_stand_in(t, &rcpt, addr, &rt, mark.nlogins);
		rcpt_targets_free(&rt);
		if (rc) {
			rcpt_undo(t, &mark);	/* an alias that failed part way: none of it */
			log_msg(LOG_LEVEL_INFO, "sid=%s event=rcpt_refused reason=%s ip=%s rcpt=\"%s\"", c->sid,
			    rc == ERR_NOTFOUND ? "unknown" : err_str(rc), c->ip, log_safe(safe, span_cstr(addr)));
			if (rc == ERR_NOTFOUND || rc == ERR_SYNTAX)
				smtp_reply(s, "550 5.1.1 Recipient address rejected: no such mailbox\r\n");
			else if (rc == ERR_LIMIT)
				smtp_reply(s, "550 5.4.6 Alias expands too far\r\n");
			else
				smtp_reply(s, "451 4.3.0 Temporary lookup failure\r\n");
			return;
		}
		add_report(s, &rcpt, addr, t->nlogins - mark.nlogins, mark.nremote);
	} else if (s->authenticated) {
		add_remote(&rt, addr);
	} else {
		/* no open relay: other domains only from an authenticated session */
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=relay_denied ip=%s rcpt=\"%s\"", c->sid, c->ip,
		    log_safe(safe, span_cstr(addr)));
		smtp_reply(s, "554 5.7.1 Relay access denied\r\n");
		return;
	}
	if (s->authenticated && rate_refused(s, t, RATE_RECIPIENTS, c->cfg->smtp.max_recipients_per_hour)) {
		rcpt_undo(t, &mark);
		return;
	}
	if (!t->nrcpts)
		snprintf(t->first_rcpt, sizeof(t->first_rcpt), "%s", addr);
	t->nrcpts++;
	smtp_set_state(s, SMTP_STATE_RCPT);
	smtp_reply(s, "250 2.1.5 Ok\r\n");
}

void
smtp_cmd_vrfy(struct smtp_session *s, struct span arg)
{
	(void)arg;	/* RFC 5321 3.5.3: 252, and no account disclosure */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
}

/* --- DATA and BDAT --- */

void smtp_bdat_input(struct smtp_session *s);

void
smtp_cmd_data(struct smtp_session *s, struct span arg)
{
	struct smtp_txn *t = s->txn;

	(void)arg;
	smtp_data_init(&t->data, s->conn->cfg->smtp.max_message_size, spool_emit, &t->spool);
	buf_init(&t->spool.mem, SPOOL_MEM_MAX);
	smtp_set_state(s, SMTP_STATE_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

/*
 * BDAT size [LAST] (RFC 3030). proto_dispatch() parsed the line and marked the
 * chunk for dropping (s->chunk_skip); accepting it means taking it over:
 * its bytes are always read, whatever the answer will be, so they can
 * never be taken for commands.
 */
void
smtp_cmd_bdat(struct smtp_session *s, struct span arg)
{
	struct smtp_txn *t = s->txn;
	uint64_t size = 0;
	bool last = false;
	enum smtp_parse_result r = smtp_parse_bdat(arg, &size, &last);

	ASSERT(r == SMTP_PARSE_OK && size == s->chunk_skip);	/* proto_dispatch() checked it */
	s->chunk_skip = 0;
	if (!t->chunking) {
		t->chunking = true;
		smtp_data_init(&t->data, s->conn->cfg->smtp.max_message_size, spool_emit, &t->spool);
		smtp_data_bdat(&t->data);
		buf_init(&t->spool.mem, SPOOL_MEM_MAX);
	}
	t->chunk_left = size;
	t->last = last;
	smtp_set_state(s, SMTP_STATE_DATA);
	smtp_bdat_input(s);
}

static void
rfc5322_date(char *out, size_t n, time_t when)
{
	struct tm tm;

	gmtime_r(&when, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* The headers postie adds in front of the message. */
static void
build_prefix(struct smtp_session *s, struct buf *b)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	const char *with = s->authenticated ? (conn_is_tls(c) ? "ESMTPSA" : "ESMTPA") :
	    (conn_is_tls(c) ? "ESMTPS" : "ESMTP");
	char date[64];
	time_t now = time(NULL);

	rfc5322_date(date, sizeof(date), now);
	buf_printf(b, "Return-Path: <%s>\r\n", t->mail.path.addr);
	/* RFC 5321 4.4; the helo name and login were checked printable, no CR/LF can get in */
	buf_printf(b, "Received: from %s ([%s])\r\n\tby %s (postie) with %s id %s%u", s->helo[0] ? s->helo : "unknown",
	    c->ip, c->cfg->hostname, with, c->sid, s->messages + 1);
	if (conn_is_tls(c))
		buf_printf(b, "\r\n\t(using %s with cipher %s)", conn_tls_version(c), conn_tls_cipher(c));
	if (s->authenticated)
		buf_printf(b, "\r\n\t(authenticated as %s)", s->login);
	if (t->nrcpts == 1)
		buf_printf(b, "\r\n\tfor <%s>", t->first_rcpt);
	buf_printf(b, ";\r\n\t%s\r\n", date);
	/* RFC 6409 8.2, 8.3: submission completes what the client left out */
	if (is_submission(c) && !t->data.has_date)
		buf_printf(b, "Date: %s\r\n", date);
	if (is_submission(c) && !t->data.has_message_id)
		buf_printf(b, "Message-ID: <%s.%u.%ld@%s>\r\n", c->sid, s->messages + 1, (long)now, c->cfg->hostname);
}

/* Alias members whose copy the commit queued, for lack of room in their mailbox. */
static void
log_deferred(const struct delivery *d)
{
	const struct smtp_txn *t = d->txn;
	char from[LOG_SAFE_SIZE], to[LOG_SAFE_SIZE];
	size_t i;

	for (i = 0; d->deferred && i < t->nlogins; i++)
		if (d->deferred[i])
			log_msg(LOG_LEVEL_INFO, "sid=%s event=local_deferred queue=%016" PRIx64 " body=%016" PRIx64
			    " from=\"%s\" to=\"%s\" login=\"%s\" attempt=0 reply=\"452 4.2.2 Mailbox full\"", d->conn->sid,
			    d->req.u.deliver.queue_id_out, d->req.u.deliver.body_id_out,
			    log_safe(from, span_cstr(t->mail.path.addr)),
			    log_safe(to, span_cstr(d->defer[i]->address)), t->logins[i]);
}

static void
delivered_here(void *arg)
{
	struct delivery *d = arg;
	struct conn *c = d->conn;

	if (!conn_is_closed(c)) {
		struct smtp_session *s = c->session;
		char safe[LOG_SAFE_SIZE];

		switch (d->rc) {
		case 0:
			s->messages++;
			d->txn->rate_messages = d->txn->rate_recipients = 0;	/* delivered: they stay taken */
			log_msg(LOG_LEVEL_INFO, "sid=%s event=accepted from=\"%s\" local=%zu remote=%zu size=%" PRIu64
			    " body=%016" PRIx64, c->sid, log_safe(safe, span_cstr(d->txn->mail.path.addr)),
			    d->txn->nlogins, d->txn->nremote,
			    d->req.u.deliver.prefix_len + d->txn->spool.len, d->req.u.deliver.body_id_out);
			conn_printf(c, "250 2.0.0 Ok: queued as %016" PRIx64 "\r\n", d->req.u.deliver.body_id_out);
			log_deferred(d);
			if ((d->txn->nremote || d->txn->nreports) && server_queued)
				server_queued();	/* outbound: the runner looks now, not at its next tick */
			break;
		case ERR_QUOTA:
			/* the login is ours, not the client's: it goes to the log only */
			log_msg(LOG_LEVEL_INFO, "sid=%s event=data_refused reason=quota login=\"%s\"", c->sid,
			    d->req.u.deliver.failed_login_out ? d->req.u.deliver.failed_login_out : "?");
			smtp_reply(s, "452 4.2.2 Mailbox full\r\n");
			break;
		case ERR_STORE_FULL:
			smtp_reply(s, "452 4.3.1 Insufficient system storage\r\n");
			break;
		default:
			log_msg(LOG_LEVEL_ERR, "sid=%s event=deliver error=\"%s\"", c->sid, err_str(d->rc));
			smtp_reply(s, "451 4.3.0 Local error in processing\r\n");
			break;
		}
		smtp_set_state(s, SMTP_STATE_READY);
		conn_resume(c);
	}
	conn_unref(c);
	txn_free(d->txn);
	buf_free(&d->prefix);
	free(d->qrcpts);
	free(d->defer);
	free(d->deferred);
	free(d);
}

static void
delivered(void *arg, int rc)
{
	struct delivery *d = arg;

	d->rc = rc;
	worker_post(d->conn->worker, delivered_here, d);	/* from the store's writer */
}

/* The end of data: refuse, or commit and answer after the commit. */
static void
finish(struct smtp_session *s)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct delivery *d;
	const char *refusal = NULL;

	switch (t->data.error) {
	case SMTP_DATA_OK:
		break;
	case SMTP_DATA_BARE_CR_LF:
		refusal = "550 5.6.0 Message contains a bare CR or LF or a NUL (RFC 5321 2.3.8)\r\n";
		break;
	case SMTP_DATA_LINE_TOO_LONG:
		refusal = "550 5.6.0 Message line longer than 1000 octets\r\n";
		break;
	case SMTP_DATA_TOO_BIG:
		refusal = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
		break;
	case SMTP_DATA_TOO_MANY_HEADERS:
		refusal = "552 5.3.4 Too many header lines\r\n";
		break;
	}
	if (!refusal && t->spool.err)
		refusal = t->spool.err == ERR_STORE_FULL ? "452 4.3.1 Insufficient system storage\r\n" :
		    "451 4.3.0 Local error in processing\r\n";
	if (refusal) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=data_refused ip=%s reason=%d", c->sid, c->ip, (int)t->data.error);
		smtp_reply(s, refusal);
		smtp_txn_reset(s);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->conn = conn_ref(c);
	d->txn = t;
	buf_init(&d->prefix, 0);
	build_prefix(s, &d->prefix);
	s->txn = NULL;	/* the delivery owns it now */
	d->req.op = STORE_OP_DELIVER;
	d->req.u.deliver.prefix = d->prefix.data;
	d->req.u.deliver.prefix_len = d->prefix.len;
	d->req.u.deliver.mem = t->spool.mem.data;
	d->req.u.deliver.mem_len = t->spool.mem.len;
	d->req.u.deliver.fd = t->spool.fd;
	d->req.u.deliver.fd_len = t->spool.len;
	d->req.u.deliver.logins = (const char *const *)t->logins;
	d->req.u.deliver.nlogins = t->nlogins;
	d->req.u.deliver.now = (uint64_t)time(NULL);
	if (t->nstand_ins) {
		size_t i;

		d->defer = xcalloc(t->nlogins, sizeof(*d->defer));
		d->deferred = xcalloc(t->nlogins, sizeof(*d->deferred));
		for (i = 0; i < t->nlogins; i++)
			d->defer[i] = t->login_stand_in[i] < 0 ? NULL : &t->stand_ins[t->login_stand_in[i]];
		d->req.u.deliver.defer = d->defer;
		d->req.u.deliver.deferred_out = d->deferred;
	}
	if (*t->rate_login) {	/* the login's hourly record, in the same commit (rate_take) */
		d->req.u.deliver.rate_login = t->rate_login;
		d->req.u.deliver.rate_hour = t->rate_hour;
		d->req.u.deliver.rate_recipients = (uint32_t)t->nrcpts;
	}
	/* an entry is given for alias members too: the store writes it only if one is deferred */
	if (t->nremote || t->nreports || t->nstand_ins) {
		snprintf(d->q.sender, sizeof(d->q.sender), "%s", t->mail.path.addr);
		snprintf(d->q.envid, sizeof(d->q.envid), "%s", t->mail.envid);
		d->q.ret_full = t->mail.ret_full;
		d->q.ret_hdrs = t->mail.ret_hdrs;
		/* a stranger's NOTIFY=SUCCESS RET=FULL would mail the content to any address (STYLE 16) */
		d->q.success_hdrs = !s->authenticated;
		d->q.created = d->q.next_attempt = d->req.u.deliver.now;
		d->q.rcpts = t->remote;
		d->q.nrcpts = t->nremote;
		if (t->nreports) {
			d->qrcpts = xcalloc(t->nremote + t->nreports, sizeof(*d->qrcpts));
			if (t->nremote)
				memcpy(d->qrcpts, t->remote, t->nremote * sizeof(*d->qrcpts));
			memcpy(d->qrcpts + t->nremote, t->reports, t->nreports * sizeof(*d->qrcpts));
			d->q.rcpts = d->qrcpts;
			d->q.nrcpts = t->nremote + t->nreports;
		}
		d->req.u.deliver.queue = &d->q;
	}
	conn_pause(c);	/* no command is read until the commit answered */
	if (store_submit(server_store, &d->req, delivered, d)) {
		d->rc = ERR_STATE;
		delivered_here(d);
	}
}

void
smtp_bdat_input(struct smtp_session *s)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct buf *in = conn_input(c);
	size_t take = in->len < t->chunk_left ? in->len : (size_t)t->chunk_left;

	if (take) {
		smtp_data_feed(&t->data, in->data, take);	/* BDAT mode consumes all it is given */
		conn_consume(c, take);
		conn_touch(c);
		t->chunk_left -= take;
	}
	if (t->chunk_left)
		return;
	if (t->last) {
		smtp_data_bdat_last(&t->data);
		finish(s);
		return;
	}
	/* a chunk in the middle: say how it went, then wait for the next BDAT */
	if (t->data.error || t->spool.err)
		smtp_reply(s, "554 5.6.0 Message refused; send RSET\r\n");
	else
		conn_printf(c, "250 2.0.0 %" PRIu64 " octets received\r\n", t->data.size);
	smtp_set_state(s, SMTP_STATE_BDAT);
}

void
smtp_data_input(struct smtp_session *s)
{
	struct conn *c = s->conn;
	struct buf *in = conn_input(c);
	size_t used = smtp_data_feed(&s->txn->data, in->data, in->len);

	conn_consume(c, used);
	if (used)
		conn_touch(c);	/* data is arriving: the deadline is per chunk */
	if (smtp_data_done(&s->txn->data))
		finish(s);
}
