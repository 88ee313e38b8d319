/*
 * smtp/mail.c: the mail transaction: MAIL, RCPT, DATA, and delivery.
 * Recipients are resolved at RCPT time (no bounce later for an unknown
 * local user); the message streams through the DATA decoder into a spool
 * (spool.c: memory, then an unlinked file); at the end one store
 * request delivers it to every local mailbox and queues the remote
 * recipients, and 250 is sent only after that commit returned.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/dkim_keys.h"
#include "server/server.h"
#include "server/smtp/hourly.h"
#include "server/smtp/internal.h"
#include "server/smtp/spool.h"
#include "storage/store.h"
#include "server/worker.h"
#include "core/compat.h"

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
	struct hourly_taken rate;	/* from the login's hourly allowance, given back unless delivered */
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
txn_free(struct smtp_txn *t)
{
	size_t i;

	if (!t)
		return;
	hourly_give_back(&t->rate);
	for (i = 0; i < t->nlogins; i++)
		free(t->logins[i]);
	free(t->logins);
	free(t->login_stand_in);
	free(t->stand_ins);
	free(t->remote);
	free(t->reports);
	spool_free(&t->spool);
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

/* Take from the login's hourly allowance; when refused, reply (450 4.7.1 when spent) and say true. */
static bool
rate_refused(struct smtp_session *s, struct smtp_txn *t, enum hourly_what what, unsigned max)
{
	struct conn *c = s->conn;
	int rc = hourly_take(&t->rate, s->conn->srv->store, s->login, what, max);

	if (rc == ERR_LIMIT) {
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=rate_limit login=\"%s\" limit=%s max=%u ip=%s", c->sid, s->login,
		    what == HOURLY_MESSAGES ? "messages_per_hour" : "recipients_per_hour", max, c->ip);
		smtp_reply(s, what == HOURLY_MESSAGES ? "450 4.7.1 Too many messages this hour, try again later\r\n" :
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
resolve(const struct conn *c, const char *address, void (*local)(void *, const char *),
    void (*remote)(void *, const char *), void *arg)
{
	struct resolve_ctx x = { c->cfg, local, remote, arg };
	struct store_target_fns fns = { ctx_is_local, ctx_local, ctx_remote, &x };

	return store_resolve(c->srv->store, address, &fns);
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
	return resolve(s->conn, address, owner_local, ignore_remote, &oc) == 0 && oc.owned;
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
	spool_init(&t->spool, c->srv->store ? store_path(c->srv->store) : "/tmp");
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
	if (s->authenticated && rate_refused(s, t, HOURLY_MESSAGES, c->cfg->smtp.max_messages_per_hour)) {
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
	if (store_user_get(rt->s->conn->srv->store, login, &a) == 0 && a.quota &&
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

/*
 * RCPT's argument checked against the transaction and made into addr (the
 * address as it will be resolved; <postmaster> names ours). false: refused,
 * the reply is sent.
 */
static bool
rcpt_parse(struct smtp_session *s, struct span arg, struct smtp_rcpt *rcpt, char addr[STORE_ADDRESS_MAX + 1])
{
	struct conn *c = s->conn;
	enum smtp_parse_result r;
	char safe[LOG_SAFE_SIZE];

	r = smtp_parse_rcpt(arg, rcpt);	/* proto_dispatch() took "TO:" off */
	if (r) {
		smtp_bad_command(s, r == SMTP_PARSE_PARAM ? "555 5.5.4 Unsupported or repeated parameter\r\n" :
		    "501 5.5.4 Syntax error in RCPT command\r\n");
		return false;
	}
	if (rcpt->path.has_utf8 && !s->txn->mail.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n");
		return false;
	}
	if (s->txn->nrcpts >= c->cfg->smtp.max_recipients) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=limit limit=recipients ip=%s", c->sid, c->ip);
		smtp_reply(s, "452 4.5.3 Too many recipients\r\n");
		return false;
	}
	if (smtp_path_has_routing(&rcpt->path)) {
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=rcpt_refused reason=routing ip=%s rcpt=\"%s\"", c->sid, c->ip,
		    log_safe(safe, span_cstr(rcpt->path.addr)));
		smtp_reply(s, "550 5.7.1 Source routing is not accepted\r\n");
		return false;
	}
	if (rcpt->path.is_postmaster)	/* RFC 5321 4.5.1: <postmaster> is always accepted */
		snprintf(addr, STORE_ADDRESS_MAX + 1, "postmaster@%s", c->cfg->domains[0]);
	else
		snprintf(addr, STORE_ADDRESS_MAX + 1, "%s", rcpt->path.addr);
	return true;
}

/* NOTIFY=SUCCESS from a session without AUTH: one of its address's success reports this hour, or dropped. */
static void
rcpt_report_limit(struct smtp_session *s, struct smtp_rcpt *rcpt, const char *addr)
{
	struct conn *c = s->conn;
	char safe[LOG_SAFE_SIZE];

	if (s->authenticated || !(rcpt->notify & STORE_NOTIFY_SUCCESS) || !*s->txn->mail.path.addr ||
	    hourly_report_take(c->ip, c->cfg->smtp.max_success_reports_per_hour))
		return;
	/* past the limit: as if SUCCESS had not been asked (what is left, or NEVER) */
	log_msg(LOG_LEVEL_NOTICE, "sid=%s event=dsn_limit ip=%s max=%u rcpt=\"%s\" note=\"NOTIFY=SUCCESS ignored\"",
	    c->sid, c->ip, c->cfg->smtp.max_success_reports_per_hour, log_safe(safe, span_cstr(addr)));
	rcpt->notify &= (uint8_t)~STORE_NOTIFY_SUCCESS;
	if (!(rcpt->notify & (STORE_NOTIFY_FAILURE | STORE_NOTIFY_DELAY)))
		rcpt->notify = STORE_NOTIFY_NEVER;
}

/*
 * A recipient in one of our domains: resolved against the accounts (an
 * alias to its targets) and added to the transaction. false: refused, the
 * reply is sent and nothing of it stays in the transaction.
 */
static bool
rcpt_local(struct smtp_session *s, const struct smtp_rcpt *rcpt, const char *addr, const struct rcpt_mark *mark)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct rcpt_targets rt = { s, rcpt, 0, NULL, 0 };
	char safe[LOG_SAFE_SIZE];
	int rc = resolve(c, addr, add_local, add_remote, &rt);

	/* no room in any mailbox it reaches (a direct one, or every member): the client keeps it */
	if (rc == 0 && rt.nfull && rt.nfull == rt.ntargets) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=rcpt_refused reason=quota ip=%s rcpt=\"%s\"", c->sid, c->ip,
		    log_safe(safe, span_cstr(addr)));
		rcpt_targets_free(&rt);
		smtp_reply(s, "452 4.2.2 Mailbox full\r\n");
		return false;
	}
	if (rc == 0 && rt.ntargets > 1)
		add_stand_in(t, rcpt, addr, &rt, mark->nlogins);
	rcpt_targets_free(&rt);
	if (rc) {
		rcpt_undo(t, mark);	/* an alias that failed part way: none of it */
		log_msg(LOG_LEVEL_INFO, "sid=%s event=rcpt_refused reason=%s ip=%s rcpt=\"%s\"", c->sid,
		    rc == ERR_NOTFOUND ? "unknown" : err_str(rc), c->ip, log_safe(safe, span_cstr(addr)));
		if (rc == ERR_NOTFOUND || rc == ERR_SYNTAX)
			smtp_reply(s, "550 5.1.1 Recipient address rejected: no such mailbox\r\n");
		else if (rc == ERR_LIMIT)
			smtp_reply(s, "550 5.4.6 Alias expands too far\r\n");
		else
			smtp_reply(s, "451 4.3.0 Temporary lookup failure\r\n");
		return false;
	}
	add_report(s, rcpt, addr, t->nlogins - mark->nlogins, mark->nremote);
	return true;
}

void
smtp_cmd_rcpt(struct smtp_session *s, struct span arg)
{
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct smtp_rcpt rcpt;
	char addr[STORE_ADDRESS_MAX + 1], safe[LOG_SAFE_SIZE];
	struct rcpt_mark mark = { t->nlogins, t->nremote, t->nreports, t->nstand_ins };

	if (!rcpt_parse(s, arg, &rcpt, addr))
		return;
	rcpt_report_limit(s, &rcpt, addr);
	if (config_is_local_domain(c->cfg, span_cstr(strrchr(addr, '@') + 1))) {
		if (!rcpt_local(s, &rcpt, addr, &mark))
			return;
	} else if (s->authenticated) {
		struct rcpt_targets rt = { s, &rcpt, 0, NULL, 0 };

		add_remote(&rt, addr);
	} else {
		/* no open relay: other domains only from an authenticated session */
		log_msg(LOG_LEVEL_NOTICE, "sid=%s event=relay_denied ip=%s rcpt=\"%s\"", c->sid, c->ip,
		    log_safe(safe, span_cstr(addr)));
		smtp_reply(s, "554 5.7.1 Relay access denied\r\n");
		return;
	}
	if (s->authenticated && rate_refused(s, t, HOURLY_RECIPIENTS, c->cfg->smtp.max_recipients_per_hour)) {
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
	spool_begin(&t->spool);
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
		spool_begin(&t->spool);
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

/* Reading the message back for the signer: the From: domain is decided when the header ends. */
struct dkim_read {
	struct dkim_signer sg;
	const struct dkim_keyset *ks;
	char domain[DKIM_DOMAIN_MAX + 1];
	int from_rc;		/* 1 until decided */
};

static int
dkim_feed(void *arg, const unsigned char *p, size_t n)
{
	struct dkim_read *r = arg;

	dkim_signer_feed(&r->sg, p, n);
	if (r->sg.err)
		return r->from_rc = r->sg.err;	/* the header section too long: nothing to sign */
	if (r->from_rc == 1 && dkim_signer_in_body(&r->sg)) {
		r->from_rc = dkim_signer_from(&r->sg, r->domain, sizeof(r->domain));
		/* no keys for that domain: the body need not be read at all */
		if (!r->from_rc && !dkim_keyset_find(r->ks, r->domain, TLS_KEY_ED25519) &&
		    !dkim_keyset_find(r->ks, r->domain, TLS_KEY_RSA))
			return ERR_NOTFOUND;
	}
	return r->from_rc == 1 ? 0 : r->from_rc;	/* a From: that cannot be signed: stop too */
}

/* Why a message with keys for no From: domain goes unsigned, for the log. */
static const char *
dkim_unsigned_reason(int rc)
{
	switch (rc) {
	case ERR_NOTFOUND: return "no From: address";
	case ERR_SYNTAX: return "not one From: address with a host name domain";
	case ERR_LIMIT: return "header section too long";
	default: return err_str(rc);
	}
}

/*
 * DKIM (RFC 6376, RFC 8463): a message submitted after AUTH with a remote
 * recipient, whose single From: address has a domain with keys, gets an
 * Ed25519-SHA256 and an RSA-SHA256 signature, once, at acceptance. They go
 * right after our Return-Path line, which the relay drops: what is sent is
 * the signatures, the rest of the prefix and the message, all signed over.
 * The message is read back from the spool in pieces (spool_each), so memory
 * stays bounded by the signer's DKIM_HEAD_MAX. On the worker: hashing the
 * largest message (smtp.max_message_size) from the spool file costs it
 * about as long as writing it there did.
 */
static void
dkim_sign(struct smtp_session *s, struct buf *prefix)
{
	static const enum tls_key_alg algs[] = { TLS_KEY_ED25519, TLS_KEY_RSA };
	struct conn *c = s->conn;
	struct smtp_txn *t = s->txn;
	struct dkim_keyset *ks;
	struct dkim_read r;
	struct buf out;
	char selectors[2 * DKIM_SELECTOR_MAX + 2] = "";
	const unsigned char *rest;
	size_t first, i;
	int rc;

	if (!s->authenticated || !t->nremote || !(ks = dkim_keys_current()))
		return;
	if (!dkim_keyset_count(ks)) {
		dkim_keyset_unref(ks);
		return;
	}
	/* the signed part: the prefix after its Return-Path line, then the message */
	rest = memchr(prefix->data, '\n', prefix->len);
	ASSERT(rest);
	first = (size_t)(rest + 1 - prefix->data);
	buf_init(&out, 0);
	r.ks = ks;
	r.from_rc = 1;
	rc = dkim_signer_init(&r.sg);
	if (!rc)
		rc = dkim_feed(&r, prefix->data + first, prefix->len - first);
	if (!rc)
		rc = spool_each(&t->spool, dkim_feed, &r);
	if (!rc && r.from_rc == 1)	/* a message without a body: the header ends at its end */
		rc = r.from_rc = dkim_signer_from(&r.sg, r.domain, sizeof(r.domain));
	if (rc && rc == r.from_rc)	/* not "no keys for the domain": that is silent */
		log_msg(LOG_LEVEL_INFO, "sid=%s event=dkim_unsigned reason=\"%s\"", c->sid, dkim_unsigned_reason(rc));
	for (i = 0; !rc && i < sizeof(algs) / sizeof(algs[0]); i++) {
		const struct dkim_key *k = dkim_keyset_find(ks, r.domain, algs[i]);

		if (!k)
			continue;
		if ((rc = dkim_signer_sign(&r.sg, k, (uint64_t)time(NULL), &out)))
			log_msg(LOG_LEVEL_ERR, "sid=%s event=dkim_unsigned domain=%s error=\"%s\"", c->sid, r.domain, err_str(rc));
		else
			snprintf(selectors + strlen(selectors), sizeof(selectors) - strlen(selectors), "%s%s",
			    *selectors ? "," : "", k->selector);
	}
	if (!rc && out.len) {
		struct buf next;

		buf_init(&next, 0);
		buf_append(&next, prefix->data, first);
		buf_append(&next, out.data, out.len);
		buf_append(&next, prefix->data + first, prefix->len - first);
		if (!next.err) {
			buf_free(prefix);
			*prefix = next;
			log_msg(LOG_LEVEL_INFO, "sid=%s event=dkim_signed domain=%s selectors=%s", c->sid, r.domain, selectors);
		} else {
			buf_free(&next);
		}
	}
	/* a failure leaves the message unsigned, never refused: receivers treat it as before */
	dkim_signer_free(&r.sg);
	buf_free(&out);
	dkim_keyset_unref(ks);
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
			hourly_keep(&d->txn->rate);	/* delivered: they stay taken */
			log_msg(LOG_LEVEL_INFO, "sid=%s event=accepted from=\"%s\" local=%zu remote=%zu size=%" PRIu64
			    " body=%016" PRIx64, c->sid, log_safe(safe, span_cstr(d->txn->mail.path.addr)),
			    d->txn->nlogins, d->txn->nremote,
			    d->req.u.deliver.prefix_len + d->txn->spool.len, d->req.u.deliver.body_id_out);
			conn_printf(c, "250 2.0.0 Ok: queued as %016" PRIx64 "\r\n", d->req.u.deliver.body_id_out);
			log_deferred(d);
			if ((d->txn->nremote || d->txn->nreports) && c->srv->queued)
				c->srv->queued();	/* outbound: the runner looks now, not at its next tick */
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

/* Why the message just received cannot be taken (the reply), or NULL. */
static const char *
data_refusal(const struct smtp_txn *t)
{
	switch (t->data.error) {
	case SMTP_DATA_OK:
		break;
	case SMTP_DATA_BARE_CR_LF:
		return "550 5.6.0 Message contains a bare CR or LF or a NUL (RFC 5321 2.3.8)\r\n";
	case SMTP_DATA_LINE_TOO_LONG:
		return "550 5.6.0 Message line longer than 1000 octets\r\n";
	case SMTP_DATA_TOO_BIG:
		return "552 5.3.4 Message size exceeds fixed maximum message size\r\n";
	case SMTP_DATA_TOO_MANY_HEADERS:
		return "552 5.3.4 Too many header lines\r\n";
	}
	if (t->spool.err)
		return t->spool.err == ERR_STORE_FULL ? "452 4.3.1 Insufficient system storage\r\n" :
		    "451 4.3.0 Local error in processing\r\n";
	return NULL;
}

/*
 * The queue entry of a delivery: remote recipients, success reports owed,
 * and (written by the store only if one is deferred) alias members' stand-ins.
 */
static void
delivery_queue(struct delivery *d, const struct smtp_session *s)
{
	const struct smtp_txn *t = d->txn;

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

/* The store request for the session's transaction, which it takes over. */
static struct delivery *
delivery_new(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->conn = conn_ref(s->conn);
	d->txn = t;
	buf_init(&d->prefix, 0);
	build_prefix(s, &d->prefix);
	dkim_sign(s, &d->prefix);
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
	if (*t->rate.login) {	/* the login's hourly record, in the same commit (hourly_take) */
		d->req.u.deliver.rate_login = t->rate.login;
		d->req.u.deliver.rate_hour = t->rate.hour;
		d->req.u.deliver.rate_recipients = (uint32_t)t->nrcpts;
	}
	/* an entry is given for alias members too: the store writes it only if one is deferred */
	if (t->nremote || t->nreports || t->nstand_ins)
		delivery_queue(d, s);
	return d;
}

/* The end of data: refuse, or commit and answer after the commit. */
static void
finish(struct smtp_session *s)
{
	struct conn *c = s->conn;
	const char *refusal = data_refusal(s->txn);
	struct delivery *d;

	if (refusal) {
		log_msg(LOG_LEVEL_INFO, "sid=%s event=data_refused ip=%s reason=%d", c->sid, c->ip,
		    (int)s->txn->data.error);
		smtp_reply(s, refusal);
		smtp_txn_reset(s);
		return;
	}
	d = delivery_new(s);
	conn_pause(c);	/* no command is read until the commit answered */
	if (store_submit(c->srv->store, &d->req, delivered, d)) {
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
