#include "config.h"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/store.h"
#include "tap.h"
#include "testlib.h"

static char dir[TESTLIB_DIR_MAX];

static struct store *
open_at(const char *sub, uint64_t map, uint64_t map_max)
{
	char path[128];
	struct store_opts o = { path, map, map_max, false };
	struct store *st = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (store_open(&o, &st))
		return NULL;
	return st;
}

/* Deliver text to the given logins through the writer; returns the rc. */
static int
deliver(struct store *st, const char *const *logins, size_t n, const char *text, uint64_t *body)
{
	struct store_req r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.prefix = (const unsigned char *)"Return-Path: <a@b>\r\n";
	r.u.deliver.prefix_len = strlen((const char *)r.u.deliver.prefix);
	r.u.deliver.mem = (const unsigned char *)text;
	r.u.deliver.mem_len = strlen(text);
	r.u.deliver.fd = -1;
	r.u.deliver.logins = logins;
	r.u.deliver.nlogins = n;
	r.u.deliver.now = 1700000000;
	rc = store_submit_wait(st, &r);
	if (body)
		*body = r.u.deliver.body_id_out;
	return rc;
}

/* text (no prefix) to bob's mailbox with queue entry q; r keeps the results */
static int
deliver_queued(struct store *st, struct store_qentry *q, const char *text, struct store_req *r)
{
	static const char *const bob[] = { "bob" };

	memset(r, 0, sizeof(*r));
	r->op = STORE_OP_DELIVER;
	r->u.deliver.mem = (const unsigned char *)text;
	r->u.deliver.mem_len = strlen(text);
	r->u.deliver.fd = -1;
	r->u.deliver.logins = bob;
	r->u.deliver.nlogins = 1;
	r->u.deliver.queue = q;
	return store_submit_wait(st, r);
}

static int
expunge(struct store *st, const char *login, const uint32_t *uids, size_t n)
{
	struct store_req r;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_EXPUNGE;
	r.u.expunge.login = login;
	r.u.expunge.uids = uids;
	r.u.expunge.nuids = n;
	return store_submit_wait(st, &r);
}

static bool
verify_ok(struct store *st)
{
	return store_verify(st, NULL, NULL) == 0;
}

static bool is_local_dom(void *arg, const char *d) { (void)arg; return strcmp(d, "example.test") == 0 || strcmp(d, "other.test") == 0; }
static char got_local[512], got_remote[512];
static void on_local(void *arg, const char *l) { (void)arg; strcat(got_local, l); strcat(got_local, " "); }
static void on_remote(void *arg, const char *a) { (void)arg; strcat(got_remote, a); strcat(got_remote, " "); }

static int
resolve(struct store *st, const char *addr)
{
	struct store_target_fns fns = { is_local_dom, on_local, on_remote, NULL };

	got_local[0] = got_remote[0] = '\0';
	return store_resolve(st, addr, &fns);
}

static void
test_accounts(struct store *st)
{
	struct store_account a;
	const char *t1[] = { "alice", "bob@example.test", "carol@remote.test" };
	const char *loop1[] = { "loop2@example.test" }, *loop2[] = { "loop1@example.test" };

	CHECK(store_user_add(st, "alice", 0) == 0);
	CHECK(store_user_add(st, "bob", 1000000) == 0);
	CHECK(store_user_add(st, "alice", 0) == ERR_EXISTS);
	CHECK(store_user_add(st, "Alice", 0) == ERR_SYNTAX);
	CHECK(store_user_add(st, "", 0) == ERR_SYNTAX);
	CHECK(store_user_add(st, "a b", 0) == ERR_SYNTAX);
	CHECK(store_user_add(st, "-x", 0) == ERR_SYNTAX);
	CHECK(store_user_get(st, "bob", &a) == 0 && a.quota == 1000000 && a.enabled && a.next_uid == 1);
	CHECK(store_user_get(st, "nobody", &a) == ERR_NOTFOUND);
	CHECK(store_user_set_quota(st, "bob", 0) == 0 && store_user_get(st, "bob", &a) == 0 && a.quota == 0);

	CHECK(store_address_add(st, "Alice.Smith@Example.TEST", "alice") == 0);
	CHECK(store_address_add(st, "alice.smith@example.test", "bob") == ERR_EXISTS);
	CHECK(store_address_add(st, "x@example.test", "nobody") == ERR_NOTFOUND);
	CHECK(store_address_add(st, "not an address", "alice") == ERR_SYNTAX);
	/* RFC 6531: a UTF-8 local part is an address; broken UTF-8 and 8-bit domains are not */
	CHECK(store_address_add(st, "j\xc3\xb6rg@example.test", "alice") == 0);
	CHECK(store_address_add(st, "\xe6\x97\xa5\xf0\x9f\x93\xa7@example.test", "alice") == 0);
	CHECK(store_address_add(st, "j\xf6rg@example.test", "alice") == ERR_SYNTAX);		/* Latin-1 */
	CHECK(store_address_add(st, "\xc0\xaf@example.test", "alice") == ERR_SYNTAX);		/* overlong */
	CHECK(store_address_add(st, "\xed\xa0\x80@example.test", "alice") == ERR_SYNTAX);	/* surrogate */
	CHECK(store_address_add(st, "j\xc3@example.test", "alice") == ERR_SYNTAX);		/* cut short */
	CHECK(store_address_add(st, "jorg@ex\xc3\xa4mple.test", "alice") == ERR_SYNTAX);	/* U-label domain */
	CHECK(store_alias_add(st, "team@example.test", t1, 3) == 0);
	CHECK(store_alias_add(st, "team@example.test", t1, 1) == ERR_EXISTS);
	CHECK(store_alias_add(st, "ghost@example.test", (const char *[]){ "nobody" }, 1) == ERR_NOTFOUND);
	CHECK(store_alias_add(st, "loop1@example.test", loop1, 1) == 0);
	CHECK(store_alias_add(st, "loop2@example.test", loop2, 1) == ERR_LIMIT);	/* would loop */
	CHECK(resolve(st, "loop1@example.test") == ERR_NOTFOUND);	/* dangling, not looping */
	CHECK(store_alias_add(st, "self@example.test", (const char *[]){ "self@example.test" }, 1) == ERR_LIMIT);

	CHECK(resolve(st, "alice@example.test") == 0 && strcmp(got_local, "alice ") == 0);
	CHECK(resolve(st, "ALICE@other.test") == 0 && strcmp(got_local, "alice ") == 0);
	CHECK(resolve(st, "alice.smith@example.test") == 0 && strcmp(got_local, "alice ") == 0);
	CHECK(resolve(st, "team@example.test") == 0 && strcmp(got_local, "alice bob ") == 0 &&
	    strcmp(got_remote, "carol@remote.test ") == 0);
	CHECK(resolve(st, "nobody@example.test") == ERR_NOTFOUND);
	CHECK(resolve(st, "someone@remote.test") == 0 && strcmp(got_remote, "someone@remote.test ") == 0);
	CHECK(resolve(st, "bad") == ERR_SYNTAX);
	CHECK(store_alias_del(st, "loop1@example.test") == 0);
	CHECK(store_alias_del(st, "loop1@example.test") == ERR_NOTFOUND);
}

static void
test_delivery(struct store *st)
{
	const char *both[] = { "alice", "bob" };
	struct store_msg *m = NULL, *m2 = NULL;
	struct store_stats s0, s1;
	char buf[256];
	size_t n = 0, n2 = 0, got;
	uint64_t body;
	uint32_t uid;

	store_stats(st, &s0);
	CHECK(deliver(st, both, 2, "Subject: hi\r\n\r\nhello\r\n", &body) == 0);
	CHECK(store_mailbox_snapshot(st, "alice", &m, &n) == 0 && n == 1);
	CHECK(store_mailbox_snapshot(st, "bob", &m2, &n2) == 0 && n2 == 1);
	if (n != 1 || n2 != 1)
		return;
	CHECK(m[0].body_id == body && m2[0].body_id == body);	/* stored once */
	CHECK(m[0].size == 20 + 22 && m[0].uid == 1);
	CHECK(strcmp(m[0].uidl, m2[0].uidl) != 0 && strlen(m[0].uidl) == STORE_UIDL_LEN);
	CHECK(store_body_read(st, body, 0, buf, sizeof(buf), &got) == 0 && got == 42 &&
	    memcmp(buf, "Return-Path: <a@b>\r\nSubject: hi\r\n\r\nhello\r\n", 42) == 0);
	CHECK(store_body_read(st, body, 39, buf, sizeof(buf), &got) == 0 && got == 3);
	CHECK(store_body_read(st, body, 42, buf, sizeof(buf), &got) == 0 && got == 0);
	store_stats(st, &s1);
	CHECK(s1.bodies == s0.bodies + 1 && s1.messages == s0.messages + 2);
	CHECK(verify_ok(st));

	/* expunge: the shared body lives while one reference remains */
	uid = m[0].uid;
	CHECK(expunge(st, "alice", &uid, 1) == 0);
	CHECK(expunge(st, "alice", &uid, 1) == 0);	/* twice deletes once */
	CHECK(store_body_read(st, body, 0, buf, 10, &got) == 0 && got == 10);
	uid = m2[0].uid;
	CHECK(expunge(st, "bob", &uid, 1) == 0);
	CHECK(store_body_read(st, body, 0, buf, 10, &got) == ERR_NOTFOUND);
	CHECK(verify_ok(st));
	free(m2);
	m2 = NULL;

	/* uids and UIDLs are never reused */
	CHECK(deliver(st, both, 1, "x\r\n", NULL) == 0);
	CHECK(store_mailbox_snapshot(st, "alice", &m2, &n2) == 0 && n2 == 1 && m2[0].uid == 2 &&
	    strcmp(m2[0].uidl, m[0].uidl) > 0);
	free(m);
	free(m2);

	/* an unknown login fails its request alone, changing nothing */
	CHECK(deliver(st, (const char *[]){ "alice", "nobody" }, 2, "x\r\n", NULL) == ERR_NOTFOUND);
	CHECK(verify_ok(st));
}

static void
test_quota(struct store *st)
{
	struct store_account before, after;
	struct store_req r;

	store_user_set_quota(st, "bob", 99);	/* one byte short of the message */
	store_user_get(st, "bob", &before);
	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.mem = (const unsigned char *)"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";
	r.u.deliver.mem_len = 100;
	r.u.deliver.fd = -1;
	r.u.deliver.logins = (const char *[]){ "alice", "bob" };
	r.u.deliver.nlogins = 2;
	CHECK(store_submit_wait(st, &r) == ERR_QUOTA && r.u.deliver.failed_login_out &&
	    strcmp(r.u.deliver.failed_login_out, "bob") == 0);
	store_user_get(st, "bob", &after);
	CHECK(after.count == before.count && after.bytes == before.bytes);
	CHECK(verify_ok(st));
	store_user_set_quota(st, "bob", 0);
}

/* An entry's recipient, or NULL. */
static bool
queued_rcpt(struct store *st, uint64_t id, size_t i, struct store_qrcpt *out)
{
	struct store_qentry q;
	bool ok = store_queue_get(st, id, &q) == 0 && i < q.nrcpts;

	if (ok)
		*out = q.rcpts[i];
	store_qentry_free(&q);
	return ok;
}

/* Another attempt at entry id's local recipient i; *res gets its result. */
static int
retry_local(struct store *st, uint64_t id, uint32_t i, int *res)
{
	struct store_req r;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_QUEUE_LOCAL;
	r.u.local.id = id;
	r.u.local.idx = &i;
	r.u.local.n = 1;
	r.u.local.now = 1700000100;
	r.u.local.results_out = res;
	return store_submit_wait(st, &r);
}

/*
 * An alias member over its quota: queued as a local recipient in the same
 * commit as the others' copies, never dropped; delivered by a later
 * attempt once there is room, in one transaction with its queue record.
 */
static void
test_member_over_quota(struct store *st)
{
	static const char text[] = "Subject: to the team\r\n\r\nhello\r\n";
	const char *const logins[] = { "dora", "erin" };
	struct store_qrcpt stand_in, r;
	const struct store_qrcpt *defer[] = { &stand_in, &stand_in };
	struct store_qentry env;
	struct store_account a;
	struct store_req req;
	struct store_msg *m = NULL;
	bool deferred[2] = { false, false };
	uint64_t size = strlen(text), qid;
	size_t n = 0;
	int res = 1;

	CHECK(store_user_add(st, "dora", size - 1) == 0 && store_user_add(st, "erin", 0) == 0);
	memset(&stand_in, 0, sizeof(stand_in));
	snprintf(stand_in.address, sizeof(stand_in.address), "team@example.test");
	stand_in.notify = STORE_NOTIFY_FAILURE;
	memset(&env, 0, sizeof(env));
	snprintf(env.sender, sizeof(env.sender), "sender@remote.test");
	env.created = env.next_attempt = 1700000000;

	/* without a stand-in the whole delivery fails, as before */
	memset(&req, 0, sizeof(req));
	req.op = STORE_OP_DELIVER;
	req.u.deliver.mem = (const unsigned char *)text;
	req.u.deliver.mem_len = size;
	req.u.deliver.fd = -1;
	req.u.deliver.logins = logins;
	req.u.deliver.nlogins = 2;
	req.u.deliver.queue = &env;
	CHECK(store_submit_wait(st, &req) == ERR_QUOTA && strcmp(req.u.deliver.failed_login_out, "dora") == 0);
	/* with one: erin gets it, dora's copy is a pending local recipient of the same commit */
	req.u.deliver.defer = defer;
	req.u.deliver.deferred_out = deferred;
	CHECK(store_submit_wait(st, &req) == 0 && deferred[0] && !deferred[1]);
	qid = req.u.deliver.queue_id_out;
	CHECK(qid && store_user_get(st, "erin", &a) == 0 && a.count == 1);
	CHECK(store_user_get(st, "dora", &a) == 0 && a.count == 0);
	CHECK(queued_rcpt(st, qid, 0, &r) && strcmp(r.login, "dora") == 0 && strcmp(r.address, "team@example.test") == 0 &&
	    r.state == STORE_RCPT_PENDING && strstr(r.reply, "452 4.2.2") && r.notify == STORE_NOTIFY_FAILURE);
	CHECK(verify_ok(st));

	/* nobody could take it now: refused whole, nothing queued */
	req.u.deliver.logins = logins;
	req.u.deliver.nlogins = 1;
	deferred[0] = false;
	CHECK(store_submit_wait(st, &req) == ERR_QUOTA && !deferred[0]);

	/* still full: stays pending, nothing changes */
	CHECK(retry_local(st, qid, 0, &res) == 0 && res == ERR_QUOTA);
	CHECK(queued_rcpt(st, qid, 0, &r) && r.state == STORE_RCPT_PENDING);
	/* room now: delivered to the mailbox and recorded so, at once */
	CHECK(store_user_set_quota(st, "dora", 0) == 0);
	CHECK(retry_local(st, qid, 0, &res) == 0 && res == 0);
	CHECK(queued_rcpt(st, qid, 0, &r) && r.state == STORE_RCPT_DELIVERED);
	CHECK(store_mailbox_snapshot(st, "dora", &m, &n) == 0 && n == 1 && m[0].size == size &&
	    m[0].pop3_size == size && m[0].arrival == 1700000100);
	free(m);
	CHECK(verify_ok(st));
	/* never twice */
	CHECK(retry_local(st, qid, 0, &res) == 0 && res == ERR_STATE);
	CHECK(store_user_get(st, "dora", &a) == 0 && a.count == 1);
	/* the entry goes; the body stays for the two mailboxes */
	CHECK(store_queue_delete(st, qid) == 0 && verify_ok(st));
	CHECK(store_user_del(st, "dora", true) == 0 && store_user_del(st, "erin", true) == 0 && verify_ok(st));
}

static void
test_big_body_from_file(struct store *st)
{
	static unsigned char data[3 * STORE_CHUNK_MAX + 123], back[sizeof(data) + 16];
	char path[128];
	struct store_req r;
	uint64_t off = 0;
	size_t i, got;
	int fd;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 31 + 7);
	snprintf(path, sizeof(path), "%s/spool", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(write(fd, data, sizeof(data)) == (ssize_t)sizeof(data));
	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.prefix = (const unsigned char *)"H: v\r\n";
	r.u.deliver.prefix_len = 6;
	r.u.deliver.fd = fd;
	r.u.deliver.fd_len = sizeof(data);
	r.u.deliver.logins = (const char *[]){ "bob" };
	r.u.deliver.nlogins = 1;
	CHECK(store_submit_wait(st, &r) == 0);
	close(fd);
	/* stream it back in small pieces, as RETR does */
	for (;;) {
		CHECK_MSG(store_body_read(st, r.u.deliver.body_id_out, off, back + off, 1000, &got) == 0, "read piece");
		if (!got)
			break;
		off += got;
	}
	CHECK(off == sizeof(data) + 6 && memcmp(back, "H: v\r\n", 6) == 0 && memcmp(back + 6, data, sizeof(data)) == 0);
	CHECK(verify_ok(st));
}

struct worker_arg {
	struct store *st;
	int failures;
};

static void *
writer_thread(void *p)
{
	struct worker_arg *w = p;
	int i;

	for (i = 0; i < 40; i++)
		if (deliver(w->st, (const char *[]){ "alice" }, 1, "concurrent\r\n", NULL))
			w->failures++;
	return NULL;
}

static void
test_group_commit(struct store *st)
{
	struct worker_arg w[16];
	pthread_t t[16];
	struct store_stats s0, s1;
	int i, failures = 0;

	store_stats(st, &s0);
	for (i = 0; i < 16; i++) {
		w[i].st = st;
		w[i].failures = 0;
		pthread_create(&t[i], NULL, writer_thread, &w[i]);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		failures += w[i].failures;
	}
	store_stats(st, &s1);
	CHECK(failures == 0);
	CHECK(s1.requests - s0.requests == 640);
	CHECK_MSG(s1.commits - s0.commits < 640, "several deliveries share one commit");
	printf("# 640 deliveries in %llu commits\n", (unsigned long long)(s1.commits - s0.commits));
	CHECK(verify_ok(st));
}

/* A recipient whose success report is due keeps its entry until the report is recorded. */
static void
test_queue_report_due(struct store *st)
{
	struct store_qrcpt rc[2];
	struct store_qresult res = { 1, STORE_RCPT_DELIVERED, "" };
	struct store_qentry q, got;
	struct store_req r, u;
	uint64_t id;

	memset(&q, 0, sizeof(q));
	memset(rc, 0, sizeof(rc));
	snprintf(q.sender, sizeof(q.sender), "alice@example.test");
	snprintf(rc[0].address, sizeof(rc[0].address), "gone@remote.test");
	rc[0].state = STORE_RCPT_FAILED;
	snprintf(rc[1].address, sizeof(rc[1].address), "bob@example.test");
	rc[1].state = STORE_RCPT_DELIVERED_REPORT;
	rc[1].notify = STORE_NOTIFY_SUCCESS;
	q.rcpts = rc;
	q.nrcpts = 2;
	CHECK(deliver_queued(st, &q, "Subject: r\r\n\r\nbody\r\n", &r) == 0 && (id = r.u.deliver.queue_id_out) != 0);
	CHECK(STORE_RCPT_OPEN(STORE_RCPT_EXPANDED_REPORT) && !STORE_RCPT_OPEN(STORE_RCPT_FAILED));
	/* an update that leaves the report due keeps the entry */
	memset(&u, 0, sizeof(u));
	u.op = STORE_OP_QUEUE_UPDATE;
	u.u.update.id = id;
	u.u.update.next_attempt = 300;
	CHECK(store_submit_wait(st, &u) == 0 && !u.u.update.removed_out);
	CHECK(store_queue_get(st, id, &got) == 0 && got.rcpts[1].state == STORE_RCPT_DELIVERED_REPORT);
	store_qentry_free(&got);
	/* the report made: delivered, and nothing is open any more */
	u.u.update.results = &res;
	u.u.update.nresults = 1;
	CHECK(store_submit_wait(st, &u) == 0 && u.u.update.removed_out);
	CHECK(store_queue_get(st, id, &got) == ERR_NOTFOUND);
	CHECK(verify_ok(st));
}

static void
test_queue(struct store *st)
{
	struct store_qrcpt rc[2];
	struct store_qentry q, got;
	struct store_req r;
	uint64_t ids[4];
	size_t n;

	memset(&q, 0, sizeof(q));
	memset(rc, 0, sizeof(rc));
	snprintf(q.sender, sizeof(q.sender), "alice@example.test");
	snprintf(q.envid, sizeof(q.envid), "ENV1");
	q.created = 100;
	q.next_attempt = 200;
	snprintf(rc[0].address, sizeof(rc[0].address), "x@remote.test");
	snprintf(rc[1].address, sizeof(rc[1].address), "y@remote.test");
	rc[1].notify = STORE_NOTIFY_SUCCESS | STORE_NOTIFY_FAILURE;
	snprintf(rc[1].orcpt, sizeof(rc[1].orcpt), "rfc822;y@remote.test");
	q.rcpts = rc;
	q.nrcpts = 2;
	q.ret_full = q.success_hdrs = true;
	CHECK(deliver_queued(st, &q, "Subject: out\r\n\r\nbody\r\n", &r) == 0 && r.u.deliver.queue_id_out);
	CHECK(store_queue_get(st, r.u.deliver.queue_id_out, &got) == 0 && got.nrcpts == 2 &&
	    got.ret_full && got.success_hdrs && !got.ret_hdrs &&
	    strcmp(got.sender, "alice@example.test") == 0 && strcmp(got.envid, "ENV1") == 0 &&
	    got.body_id == r.u.deliver.body_id_out && got.size == 22 &&
	    strcmp(got.rcpts[1].orcpt, "rfc822;y@remote.test") == 0 &&
	    got.rcpts[1].notify == (STORE_NOTIFY_SUCCESS | STORE_NOTIFY_FAILURE));
	store_qentry_free(&got);
	CHECK(store_queue_due(st, 199, ids, 4, &n) == 0 && n == 0);
	CHECK(store_queue_due(st, 200, ids, 4, &n) == 0 && n == 1 && ids[0] == r.u.deliver.queue_id_out);
	CHECK(store_queue_get(st, 12345678, &got) == ERR_NOTFOUND);
	CHECK(verify_ok(st));
	test_queue_report_due(st);
}

/* One delivery to alice, counted for login in hour; returns the rc. */
static int
deliver_counted(struct store *st, const char *login, uint64_t hour, uint32_t recipients, const char *to)
{
	struct store_req r;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.mem = (const unsigned char *)"Subject: n\r\n\r\nx\r\n";
	r.u.deliver.mem_len = 18;
	r.u.deliver.fd = -1;
	r.u.deliver.logins = (const char *[]){ to };
	r.u.deliver.nlogins = 1;
	r.u.deliver.rate_login = login;
	r.u.deliver.rate_hour = hour;
	r.u.deliver.rate_recipients = recipients;
	return store_submit_wait(st, &r);
}

static bool
rate_is(struct store *st, const char *login, uint64_t hour, uint32_t messages, uint32_t recipients)
{
	struct store_rate r;

	return store_rate_get(st, login, &r) == 0 && r.hour == hour && r.messages == messages &&
	    r.recipients == recipients;
}

/* The hourly record of a sending login: added to by its deliveries, in their transaction. */
static void
test_rates(struct store *st)
{
	struct store_rate r;

	CHECK(store_rate_get(st, "carol", &r) == ERR_NOTFOUND && r.hour == 0 && r.messages == 0);
	CHECK(store_rate_get(st, "", &r) == ERR_SYNTAX);
	CHECK(deliver_counted(st, "carol", 480000, 3, "alice") == 0 && rate_is(st, "carol", 480000, 1, 3));
	CHECK(deliver_counted(st, "carol", 480000, 2, "alice") == 0 && rate_is(st, "carol", 480000, 2, 5));
	/* a delivery that fails counts nothing: the record is in its rolled-back transaction */
	CHECK(deliver_counted(st, "carol", 480000, 7, "nobody") == ERR_NOTFOUND && rate_is(st, "carol", 480000, 2, 5));
	/* accepted at the end of an hour already over: nothing left to limit there */
	CHECK(deliver_counted(st, "carol", 479999, 1, "alice") == 0 && rate_is(st, "carol", 480000, 2, 5));
	/* a new hour starts from zero; other logins are their own records */
	CHECK(deliver_counted(st, "carol", 480001, 4, "alice") == 0 && rate_is(st, "carol", 480001, 1, 4));
	CHECK(deliver_counted(st, "dave@example.test", 480001, 1, "alice") == 0 &&
	    rate_is(st, "dave@example.test", 480001, 1, 1) && rate_is(st, "carol", 480001, 1, 4));
	CHECK(verify_ok(st));
}

static void
test_user_del_and_backup(struct store *st)
{
	char bdir[128];
	struct store_opts o = { bdir, 0, 0, true };
	struct store *b = NULL;
	struct store_account a;

	CHECK(store_user_add(st, "carol", 0) == 0);
	CHECK(deliver(st, (const char *[]){ "carol" }, 1, "x\r\n", NULL) == 0);
	CHECK(store_user_del(st, "carol", false) == ERR_STATE);
	CHECK(store_user_del(st, "carol", true) == 0 && store_user_get(st, "carol", &a) == ERR_NOTFOUND);
	CHECK(store_user_del(st, "carol", true) == ERR_NOTFOUND);
	CHECK(verify_ok(st));

	snprintf(bdir, sizeof(bdir), "%s/backup", dir);
	CHECK(store_backup(st, bdir) == 0);
	CHECK(store_open(&o, &b) == 0 && b);
	if (b) {
		CHECK(store_user_get(b, "alice", &a) == 0 && a.count > 0);
		CHECK(verify_ok(b));
		store_close(b);
	}
}

static void
test_locks(struct store *st)
{
	CHECK(store_mailbox_lock(st, "alice") == 0);
	CHECK(store_mailbox_lock(st, "alice") == ERR_EXISTS);
	CHECK(store_mailbox_lock(st, "bob") == 0);
	store_mailbox_unlock(st, "alice");
	CHECK(store_mailbox_lock(st, "alice") == 0);
	store_mailbox_unlock(st, "alice");
	store_mailbox_unlock(st, "bob");
}

static off_t
file_size(const char *sub)
{
	char path[128];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, sub);
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* The writer keeps data.mdb written ahead of LMDB's last page (env.c). */
static void
test_written_ahead(void)
{
	struct store *st = open_at("ahead", 0, 0);
	struct store_stats s;

	int waited;

	/* the writer fills while it is idle: give it up to 5 s */
	CHECK(st && store_user_add(st, "u", 0) == 0 && deliver(st, (const char *[]){ "u" }, 1, "x\r\n", NULL) == 0);
	for (waited = 0; st && waited < 500; waited++) {
		if (store_stats(st, &s) == 0 && file_size("ahead") >= (off_t)(s.map_used + (1 << 20)))
			break;
		usleep(10000);
	}
	CHECK_MSG(waited < 500, "data.mdb written 1 MiB past the pages in use");
	CHECK(st && deliver(st, (const char *[]){ "u" }, 1, "y\r\n", NULL) == 0 && verify_ok(st));
	store_close(st);
	st = open_at("ahead", 0, 0);	/* a longer file than LMDB's pages is still the same store */
	CHECK(st && verify_ok(st) && store_stats(st, &s) == 0 && s.messages == 2);
	store_close(st);
}

static void
test_store_full(void)
{
	static char big[200 * 1024];
	struct store *st = open_at("tiny", 1 << 20, 2 << 20);
	struct store_msg *m = NULL;
	size_t n = 0, i;
	int rc = 0, delivered = 0;

	CHECK(st != NULL);
	if (!st)
		return;
	memset(big, 'x', sizeof(big) - 3);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	store_user_add(st, "u", 0);
	for (i = 0; i < 40 && rc == 0; i++)
		if ((rc = deliver(st, (const char *[]){ "u" }, 1, big, NULL)) == 0)
			delivered++;
	CHECK(rc == ERR_STORE_FULL && delivered > 0);
	CHECK(verify_ok(st));
	/* space comes back: deliveries succeed again */
	CHECK(store_mailbox_snapshot(st, "u", &m, &n) == 0 && n == (size_t)delivered);
	for (i = 0; i < n; i++)
		expunge(st, "u", &m[i].uid, 1);
	free(m);
	CHECK(deliver(st, (const char *[]){ "u" }, 1, big, NULL) == 0);
	CHECK(verify_ok(st));
	store_close(st);
	/* the zeros written ahead of LMDB's pages never pass the map */
	CHECK(file_size("tiny") <= 2 << 20);
}

/* Open the store's LMDB file directly, as mdb_load or an old postie would. */
static int
raw_meta(const char *path, const char *key, const unsigned char *val, size_t len, MDB_stat *bodies)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, b;
	MDB_val k = { key ? strlen(key) : 0, (void *)(uintptr_t)key }, v = { len, (void *)(uintptr_t)val };
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, path, 0, 0600)) || (rc = mdb_txn_begin(env, NULL, 0, &txn)))
		return rc;
	if (!(rc = mdb_dbi_open(txn, "meta", 0, &meta)) && !(rc = mdb_dbi_open(txn, "bodies", 0, &b))) {
		if (bodies)
			mdb_stat(txn, b, bodies);
		if (key)
			rc = val ? mdb_put(txn, meta, &k, &v, 0) : mdb_del(txn, meta, &k, NULL);
	}
	rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	mdb_env_close(env);
	return rc;
}

static void
test_body_chunks(void)
{
	static unsigned char data[3 * STORE_CHUNK_MAX + 123], back[sizeof(data) + 64];
	const unsigned char bad_size[4] = { 0, 0, 0, 7 };
	static const char tail[] = "\r\n.b\r\n..c\r\nend\r\n";
	char path[128], four_k[4097], dotted[4200];
	struct store_msg *m = NULL;
	struct store *st;
	size_t n = 0;
	MDB_stat bs;
	uint64_t body, off = 0;
	size_t i, got;

	/* a new store fits a chunk to one overflow page: a 4 KiB body is one page, not two */
	st = open_at("chunks", 0, 0);
	CHECK(st && store_user_add(st, "u", 0) == 0);
	memset(four_k, 'x', 4096);
	four_k[4096] = '\0';
	CHECK(st && deliver(st, (const char *[]){ "u" }, 1, four_k, NULL) == 0);
	/* dot-stuffing counted across a chunk boundary: a '.' opening the body's
	   first line, one opening the first byte of chunk 1 (after 20 octets of
	   Return-Path), one in the middle of chunk 1 */
	memset(dotted, 'x', sizeof(dotted));
	memcpy(dotted, ".a\r\n", 4);
	memcpy(dotted + 4080 - 20 - 2, tail, sizeof(tail));
	CHECK(st && deliver(st, (const char *[]){ "u" }, 1, dotted, NULL) == 0);
	CHECK(st && store_mailbox_snapshot(st, "u", &m, &n) == 0 && n == 2 &&
	    m[1].size == 20 + strlen(dotted) && m[1].pop3_size == m[1].size + 3);
	free(m);
	store_close(st);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	CHECK(raw_meta(path, NULL, NULL, 0, &bs) == 0 && bs.ms_overflow_pages == 2);

	/* a store made before the chunk record keeps 64 KiB chunks and reads back whole */
	st = open_at("legacy", 0, 0);
	CHECK(st && store_user_add(st, "u", 0) == 0);
	store_close(st);
	snprintf(path, sizeof(path), "%s/legacy", dir);
	CHECK(raw_meta(path, "chunk", NULL, 0, NULL) == 0);
	st = open_at("legacy", 0, 0);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)("abcdefghijklmnopqrstuvwxyz"[i * 7 % 26]);
	memcpy(data + sizeof(data) - 3, "\r\n", 3);
	CHECK(st && deliver(st, (const char *[]){ "u" }, 1, (const char *)data, &body) == 0);
	while (st && store_body_read(st, body, off, back + off, 999, &got) == 0 && got)
		off += got;
	CHECK(off == strlen("Return-Path: <a@b>\r\n") + sizeof(data) - 1 &&
	    memcmp(back + off - (sizeof(data) - 1), data, sizeof(data) - 1) == 0);
	CHECK(st && verify_ok(st));	/* every chunk but the last is 64 KiB */
	store_close(st);
	CHECK(raw_meta(path, NULL, NULL, 0, &bs) == 0 && bs.ms_entries == 4);

	/* a chunk size that cannot be: refused, not guessed */
	CHECK(raw_meta(path, "chunk", bad_size, sizeof(bad_size), NULL) == 0);
	CHECK(open_at("legacy", 0, 0) == NULL);
}

/* One database of a closed store, opened as an older postie would: put n records, or get one. */
struct raw_rec {
	const char *db;
	const void *k;
	size_t kn;
	const void *v;
	size_t vn;
};

static int
raw_put(const char *path, const struct raw_rec *r, size_t n)
{
	MDB_env *env;
	MDB_txn *txn;
	size_t i;
	int rc;

	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_open(env, path, 0, 0600)) || (rc = mdb_txn_begin(env, NULL, 0, &txn)))
		return rc;
	for (i = 0; i < n && !rc; i++) {
		MDB_dbi dbi;
		MDB_val k = { r[i].kn, (void *)(uintptr_t)r[i].k }, v = { r[i].vn, (void *)(uintptr_t)r[i].v };

		if (!(rc = mdb_dbi_open(txn, r[i].db, 0, &dbi)))
			rc = mdb_put(txn, dbi, &k, &v, 0);
	}
	rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	mdb_env_close(env);
	return rc;
}

/* Is the record under k in db exactly the n bytes want? */
static bool
raw_is(const char *path, const char *db, const void *k, size_t kn, const void *want, size_t n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { kn, (void *)(uintptr_t)k }, v;
	bool same = false;

	if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16))
		return false;
	if (!mdb_env_open(env, path, MDB_RDONLY, 0600) && !mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) {
		same = !mdb_dbi_open(txn, db, 0, &dbi) && !mdb_get(txn, dbi, &key, &v) && v.mv_size == n &&
		    memcmp(v.mv_data, want, n) == 0;
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return same;
}

/*
 * The record layouts, byte for byte: records as the store has written them
 * since schema 1 (accounts, mail, bodyref, queue with a local recipient,
 * rates) read back through store.h, and written again identically.
 */
static void
test_record_bytes(void)
{
#define LIT(s) s, sizeof(s) - 1
	static const char account[] =
	    "\x00\x00\x00\x00\x00\x0f\x42\x40"	/* quota 1000000 */
	    "\x00\x00\x00\x00\x65\x53\xf1\x00"	/* created 1700000000 */
	    "\x01"				/* enabled */
	    "\x00\x00\x00\x01"			/* count 1 */
	    "\x00\x00\x00\x00\x00\x00\x00\x1a"	/* bytes 26 */
	    "\x00\x00\x00\x02";			/* next uid 2 */
	static const char mail_key[] = "\x03" "lit" "\x00\x00\x00\x01";
	static const char mail[] =
	    "\x00\x00\x00\x00\x00\x00\x00\x64"	/* body 100 */
	    "\x00\x00\x00\x00\x00\x00\x00\x1a"	/* size 26 */
	    "\x00\x00\x00\x00\x65\x53\xf1\x00"	/* arrival */
	    "\x00\x00\x00\x00\x00\x00\x00\x65"	/* msgid 101: UIDL 0000000000000065 */
	    "\x00\x00\x00\x00\x00\x00\x00\x1a";	/* pop3 size 26 */
	static const char body_key[] = "\x00\x00\x00\x00\x00\x00\x00\x64";
	static const char chunk_key[] = "\x00\x00\x00\x00\x00\x00\x00\x64" "\x00\x00\x00\x00";
	static const char text[] = "Subject: g\r\n\r\nhello gold\r\n";
	static const char bodyref[] =
	    "\x00\x00\x00\x02"			/* refs: the mailbox and the queue */
	    "\x00\x00\x00\x00\x00\x00\x00\x1a"	/* size */
	    "\x00\x00\x00\x01";			/* chunks */
	static const char queue_key[] = "\x00\x00\x00\x00\x00\x00\x00\x66";	/* 102 */
	static const char qtime_key[] = "\x00\x00\x00\x00\x65\x53\xf2\x2c" "\x00\x00\x00\x00\x00\x00\x00\x66";
	static const char queue[] =
	    "\x00\x00\x00\x00\x65\x53\xf1\x00"	/* created */
	    "\x00\x00\x00\x00\x65\x53\xf2\x2c"	/* next attempt 1700000300 */
	    "\x00\x00\x00\x02"			/* attempts */
	    "\x00\x00\x00\x00\x00\x00\x00\x64"	/* body */
	    "\x00\x00\x00\x00\x00\x00\x00\x1a"	/* size */
	    "\x21"				/* RET=FULL, success reports with headers only */
	    "\x00\x08" "a@b.test" "\x00\x02" "E1"
	    "\x00\x00\x00\x02"			/* recipients */
	    "\x00\x06" "\x00\x08" "r@x.test" "\x00\x0f" "rfc822;r@x.test" "\x00\x09" "451 later"
	    "\x00\x84" "\x00\x0b" "team@g.test" "\x00\x00" "\x00\x16" "452 4.2.2 Mailbox full" "\x00\x03" "lit";
	static const char rate[] =
	    "\x00\x00\x00\x00\x00\x07\x34\xde"	/* hour 472286 */
	    "\x00\x00\x00\x03" "\x00\x00\x00\x09";
	static const char rate_after[] =
	    "\x00\x00\x00\x00\x00\x07\x34\xde" "\x00\x00\x00\x04" "\x00\x00\x00\x0b";
	static const char next_id[] = "\x00\x00\x00\x00\x00\x00\x00\xc8";	/* 200 */
	static const char new_mail_key[] = "\x03" "lit" "\x00\x00\x00\x02";
	static const char new_mail[] =
	    "\x00\x00\x00\x00\x00\x00\x00\xc8"	/* body 200 */
	    "\x00\x00\x00\x00\x00\x00\x00\x1b"	/* size 27: Return-Path and "hello" */
	    "\x00\x00\x00\x00\x65\x53\xf1\x00"
	    "\x00\x00\x00\x00\x00\x00\x00\xc9"	/* msgid 201 */
	    "\x00\x00\x00\x00\x00\x00\x00\x1b";
	static const char new_body_key[] = "\x00\x00\x00\x00\x00\x00\x00\xc8";
	static const char new_bodyref[] = "\x00\x00\x00\x01" "\x00\x00\x00\x00\x00\x00\x00\x1b" "\x00\x00\x00\x01";
	static const char account_after[] =
	    "\x00\x00\x00\x00\x00\x0f\x42\x40" "\x00\x00\x00\x00\x65\x53\xf1\x00" "\x01"
	    "\x00\x00\x00\x02" "\x00\x00\x00\x00\x00\x00\x00\x35" "\x00\x00\x00\x03";
	const struct raw_rec recs[] = {
		{ "accounts", LIT("lit"), LIT(account) },
		{ "mail", LIT(mail_key), LIT(mail) },
		{ "bodies", LIT(chunk_key), LIT(text) },
		{ "bodyref", LIT(body_key), LIT(bodyref) },
		{ "queue", LIT(queue_key), LIT(queue) },
		{ "qtime", LIT(qtime_key), "", 0 },
		{ "rates", LIT("lit"), LIT(rate) },
		{ "meta", LIT("next_id"), LIT(next_id) },
	};
	char path[128], back[64];
	struct store_account a;
	struct store_qentry q;
	struct store_msg *m = NULL;
	struct store *st;
	size_t n = 0, got = 0;

	st = open_at("golden", 0, 0);
	CHECK(st && store_user_add(st, "gold", 0) == 0);
	if (st)
		store_close(st);
	snprintf(path, sizeof(path), "%s/golden", dir);
	CHECK(raw_put(path, recs, sizeof(recs) / sizeof(recs[0])) == 0);

	/* read: every field as it was written */
	st = open_at("golden", 0, 0);
	CHECK(st && verify_ok(st));
	CHECK(st && store_user_get(st, "lit", &a) == 0 && a.quota == 1000000 && a.created == 1700000000 &&
	    a.enabled && a.count == 1 && a.bytes == 26 && a.next_uid == 2 && strcmp(a.login, "lit") == 0);
	CHECK(st && store_mailbox_snapshot(st, "lit", &m, &n) == 0 && n == 1 && m[0].uid == 1 &&
	    m[0].body_id == 100 && m[0].size == 26 && m[0].arrival == 1700000000 && m[0].pop3_size == 26 &&
	    strcmp(m[0].uidl, "0000000000000065") == 0);
	free(m);
	CHECK(st && store_body_read(st, 100, 0, back, sizeof(back), &got) == 0 && got == 26 &&
	    memcmp(back, text, 26) == 0);
	CHECK(st && store_queue_get(st, 102, &q) == 0 && q.created == 1700000000 &&
	    q.next_attempt == 1700000300 && q.attempts == 2 && q.body_id == 100 && q.size == 26 &&
	    q.ret_full && q.success_hdrs && !q.ret_hdrs && !q.leased && !q.delay_warned &&
	    !q.bounce_requested && strcmp(q.sender, "a@b.test") == 0 && strcmp(q.envid, "E1") == 0 &&
	    q.nrcpts == 2 && q.rcpts[0].state == 0 && q.rcpts[0].notify == 6 &&
	    strcmp(q.rcpts[0].address, "r@x.test") == 0 && strcmp(q.rcpts[0].orcpt, "rfc822;r@x.test") == 0 &&
	    strcmp(q.rcpts[0].reply, "451 later") == 0 && !*q.rcpts[0].login &&
	    q.rcpts[1].notify == 4 && strcmp(q.rcpts[1].address, "team@g.test") == 0 &&
	    !*q.rcpts[1].orcpt && strcmp(q.rcpts[1].reply, "452 4.2.2 Mailbox full") == 0 &&
	    strcmp(q.rcpts[1].login, "lit") == 0);
	store_qentry_free(&q);
	CHECK(st && rate_is(st, "lit", 472286, 3, 9));

	/* write: the same values give the same bytes */
	CHECK(st && store_user_set_quota(st, "lit", 1000000) == 0);
	CHECK(st && store_queue_flush(st, 102, 1700000300, &n) == 0 && n == 1);
	CHECK(st && deliver(st, (const char *[]){ "lit" }, 1, "hello\r\n", NULL) == 0);	/* ids 200, 201 */
	CHECK(st && deliver_counted(st, "lit", 472286, 2, "gold") == 0);
	if (st)
		store_close(st);
	CHECK(raw_is(path, "queue", LIT(queue_key), LIT(queue)));
	CHECK(raw_is(path, "rates", LIT("lit"), LIT(rate_after)));
	CHECK(raw_is(path, "mail", LIT(new_mail_key), LIT(new_mail)));
	CHECK(raw_is(path, "bodyref", LIT(new_body_key), LIT(new_bodyref)));
	CHECK(raw_is(path, "accounts", LIT("lit"), LIT(account_after)));
#undef LIT
}

static void
test_foreign_file(void)
{
	char path[128], back[32];
	struct store_opts o = { path, 0, 0, false };
	struct store *st = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/foreign", dir);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/foreign/data.mdb", dir);
	f = fopen(path, "w");
	fputs("this is not an LMDB file, leave it alone\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/foreign", dir);
	CHECK(store_open(&o, &st) == ERR_CORRUPT && !st);
	snprintf(path, sizeof(path), "%s/foreign/data.mdb", dir);
	f = fopen(path, "r");
	CHECK(f && fgets(back, sizeof(back), f) && strncmp(back, "this is not", 11) == 0);
	if (f)
		fclose(f);
}

int
main(void)
{
	struct store *st;

	log_open("test", true, LOG_LEVEL_CRIT);
	if (!testlib_tmpdir("postie-test-store", dir, sizeof(dir)))
		return 1;
	st = open_at("store", 0, 0);
	CHECK(st != NULL);
	if (st) {
		test_accounts(st);
		test_delivery(st);
		test_quota(st);
		test_big_body_from_file(st);
		test_group_commit(st);
		test_queue(st);
		test_rates(st);
		test_user_del_and_backup(st);
		test_locks(st);
		test_member_over_quota(st);
		store_close(st);
		st = open_at("store", 0, 0);	/* reopen: schema accepted, data there */
		CHECK(st && verify_ok(st));
		CHECK(st && rate_is(st, "carol", 480001, 1, 4));	/* a restart keeps the hour's count */
		store_close(st);
	}
	test_store_full();
	test_written_ahead();
	test_body_chunks();
	test_foreign_file();
	test_record_bytes();
	testlib_rmtree(dir);
	return tap_done();
}
