/*
 * test_smtp_txn: the SMTP mail transaction against a real store, fed
 * scripted bytes (fake_conn) as test_pop3_session does: MAIL, RCPT (local,
 * unknown, an alias to two mailboxes, a remote recipient without AUTH),
 * DATA (dot-stuffing, the 250 after the commit, the message in the mailbox),
 * BDAT (chunks, LAST), quota at RCPT with SIZE, and an alias whose one
 * member is full (the other gets it, the full one's copy is queued).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_conn.h"
#include "server/smtp/session.h"
#include "core/log.h"
#include "server/server.h"
#include "storage/store.h"
#include "tap.h"
#include "testlib.h"
#include "core/compat.h"

#define COMMIT_WAIT_MS 5000	/* the writer answers in milliseconds; a loaded machine gets time */

static struct config cfg;

/* A port 25 session (no AUTH) that has said EHLO and MAIL FROM with the given parameters. */
static void
start_mail(struct conn *c, const char *mail_params)
{
	char line[128];

	fake_conn_run(c, &cfg, LISTEN_SMTP, &smtp_proto_ops, "EHLO client.test\r\n");
	snprintf(line, sizeof(line), "MAIL FROM:<sender@remote.test>%s\r\n", mail_params);
	fake_conn_feed_str(c, line);
	buf_reset(&c->out);
}

/* The newest message of login, malloc'd and NUL-terminated (NULL when none); *n_out counts them. */
static char *
newest(const char *login, size_t *n_out)
{
	struct store_msg *msgs = NULL;
	char *text = NULL;
	size_t n = 0, got, at = 0;

	*n_out = 0;
	if (store_mailbox_snapshot(fake_server.store, login, &msgs, &n) || n == 0) {
		free(msgs);
		return NULL;
	}
	*n_out = n;
	text = calloc(1, msgs[n - 1].size + 1);
	while (text && at < msgs[n - 1].size &&
	    store_body_read(fake_server.store, msgs[n - 1].body_id, at, text + at, msgs[n - 1].size - at, &got) == 0 && got)
		at += got;
	free(msgs);
	return text;
}

/* The queue, flattened for the checks: "address login|" per recipient of every entry. */
struct queue_seen {
	char text[1024];
	size_t entries;
};

static int
queue_add(void *arg, const struct store_qentry *q)
{
	struct queue_seen *qs = arg;
	size_t i, len;

	qs->entries++;
	for (i = 0; i < q->nrcpts; i++) {
		len = strlen(qs->text);
		snprintf(qs->text + len, sizeof(qs->text) - len, "%s %s|", q->rcpts[i].address, q->rcpts[i].login);
	}
	return 0;
}

static void
test_rcpt(void)
{
	struct conn c;
	const char *out;

	start_mail(&c, "");
	fake_conn_feed_str(&c, "RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
	    "RCPT TO:<friend@remote.test>\r\nRCPT TO:<team@example.test>\r\n");
	out = fake_conn_out(&c);
	CHECK(strncmp(out, "250 2.1.5 Ok\r\n", 14) == 0);	/* a local mailbox */
	CHECK(testlib_has(out, "550 5.1.1 Recipient address rejected: no such mailbox\r\n"));
	CHECK(testlib_has(out, "554 5.7.1 Relay access denied\r\n"));	/* no AUTH: no relay */
	CHECK(testlib_count(out, "250 2.1.5 Ok\r\n") == 2);	/* the alias too */
	fake_conn_free(&c);
}

static void
test_data(void)
{
	struct conn c;
	size_t n_alice, n_bob;
	char *alice, *bob;
	const char *out;

	/* alice directly and through the alias: one copy; bob through the alias */
	start_mail(&c, "");
	fake_conn_feed_str(&c, "RCPT TO:<alice@example.test>\r\nRCPT TO:<team@example.test>\r\nDATA\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "354 "));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "Subject: dots\r\n\r\nfirst\r\n..dot line\r\n...two\r\n.\r\n");
	CHECK(fake_conn_wait_resumed(&c, COMMIT_WAIT_MS));
	out = fake_conn_out(&c);
	CHECK(strncmp(out, "250 2.0.0 Ok: queued as ", 24) == 0);	/* sent after the commit */
	fake_conn_free(&c);

	alice = newest("alice", &n_alice);
	bob = newest("bob", &n_bob);
	CHECK(n_alice == 1 && n_bob == 1);
	CHECK(alice && strncmp(alice, "Return-Path: <sender@remote.test>\r\nReceived: from client.test", 61) == 0);
	CHECK(testlib_has(alice, "\r\nSubject: dots\r\n\r\nfirst\r\n.dot line\r\n..two\r\n"));	/* unstuffed */
	CHECK(alice && bob && strcmp(alice, bob) == 0);	/* one body for both */
	CHECK(!testlib_has(alice, "\r\n.\r\n"));	/* the end mark is not stored */
	free(alice);
	free(bob);
}

static void
test_bdat(void)
{
	struct conn c;
	size_t n;
	char *bob;
	const char *out;

	start_mail(&c, "");
	fake_conn_feed_str(&c, "RCPT TO:<bob@example.test>\r\nBDAT 19\r\nSubject: chunks\r\n\r\n");
	out = fake_conn_out(&c);
	CHECK(testlib_has(out, "250 2.1.5 Ok\r\n250 2.0.0 19 octets received\r\n"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "BDAT 11\r\n.one\r\n");	/* no stuffing in BDAT: the dot stays */
	fake_conn_feed(&c, "t", 1);	/* a chunk may come in pieces */
	fake_conn_feed_str(&c, "wo\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "250 2.0.0 30 octets received\r\n"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "BDAT 7 LAST\r\nthree\r\n");
	CHECK(fake_conn_wait_resumed(&c, COMMIT_WAIT_MS));
	CHECK(strncmp(fake_conn_out(&c), "250 2.0.0 Ok: queued as ", 24) == 0);
	fake_conn_free(&c);

	bob = newest("bob", &n);
	CHECK(n == 2);
	CHECK(testlib_has(bob, "\r\nSubject: chunks\r\n\r\n.one\r\ntwo\r\nthree\r\n") &&
	    strcmp(bob + strlen(bob) - 7, "three\r\n") == 0);
	free(bob);
}

static void
test_quota_at_rcpt(void)
{
	struct conn c;
	const char *out;

	/* carol has 1000 octets: SIZE=5000 is refused at RCPT, SIZE=500 is not */
	start_mail(&c, " SIZE=5000");
	fake_conn_feed_str(&c, "RCPT TO:<carol@example.test>\r\nRCPT TO:<alice@example.test>\r\n");
	out = fake_conn_out(&c);
	CHECK(strncmp(out, "452 4.2.2 Mailbox full\r\n250 2.1.5 Ok\r\n", 38) == 0);
	fake_conn_free(&c);
	start_mail(&c, " SIZE=500");
	fake_conn_feed_str(&c, "RCPT TO:<carol@example.test>\r\n");
	CHECK(strcmp(fake_conn_out(&c), "250 2.1.5 Ok\r\n") == 0);
	fake_conn_free(&c);
}

static void
test_alias_member_full(void)
{
	struct queue_seen before = { "", 0 }, after = { "", 0 };
	struct store_account dave;
	struct conn c;
	size_t n_alice, n_dave;
	char *alice, *dave_msg;

	/* dave's mailbox holds more than his quota: full for any message */
	CHECK(testlib_deliver(fake_server.store, "dave", "Subject: filler\r\n\r\n0123456789012345678901234567890123456789\r\n") == 0);
	CHECK(store_user_set_quota(fake_server.store, "dave", 40) == 0);
	CHECK(store_user_get(fake_server.store, "dave", &dave) == 0 && dave.bytes > dave.quota);
	CHECK(store_queue_list(fake_server.store, queue_add, &before) == 0);

	start_mail(&c, "");
	fake_conn_feed_str(&c, "RCPT TO:<pair@example.test>\r\nDATA\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "250 2.1.5 Ok\r\n354 "));	/* one member has room */
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "Subject: pair\r\n\r\nfor both\r\n.\r\n");
	CHECK(fake_conn_wait_resumed(&c, COMMIT_WAIT_MS));
	CHECK(strncmp(fake_conn_out(&c), "250 2.0.0 Ok: queued as ", 24) == 0);
	fake_conn_free(&c);

	alice = newest("alice", &n_alice);
	CHECK(n_alice == 2 && testlib_has(alice, "\r\nSubject: pair\r\n\r\nfor both\r\n"));
	dave_msg = newest("dave", &n_dave);
	CHECK(n_dave == 1 && !testlib_has(dave_msg, "Subject: pair"));	/* only the filler */
	free(alice);
	free(dave_msg);

	/* dave's copy waits in the queue: the alias address, with his login */
	CHECK(store_queue_list(fake_server.store, queue_add, &after) == 0);
	CHECK(after.entries == before.entries + 1);
	CHECK(testlib_has(after.text, "pair@example.test dave|"));
	CHECK(!testlib_has(after.text, " alice|"));	/* alice's copy is in her mailbox */
	CHECK(store_verify(fake_server.store, NULL, NULL) == 0);
}

int
main(void)
{
	static const char *const logins[] = { "alice", "bob", "carol", "dave", NULL };
	static const char *const team[] = { "alice", "bob" }, *const pair[] = { "alice", "dave" };
	struct testlib_store ts;
	int rc;

	log_open("test", true, LOG_LEVEL_CRIT);
	fake_config_init(&cfg);
	rc = testlib_store_open(&ts, "postie-test-smtp-txn", 0, 0, logins);
	CHECK(rc == 0);
	if (rc)
		return tap_done();
	fake_server.store = ts.st;
	CHECK(store_alias_add(fake_server.store, "team@example.test", team, 2) == 0);
	CHECK(store_alias_add(fake_server.store, "pair@example.test", pair, 2) == 0);
	CHECK(store_user_set_quota(fake_server.store, "carol", 1000) == 0);

	test_rcpt();
	test_data();
	test_bdat();
	test_quota_at_rcpt();
	test_alias_member_full();

	fake_server.store = NULL;
	testlib_store_close(&ts);
	return tap_done();
}
