#include "config.h"

#include <pthread.h>
#include <string.h>

#include "fake_conn.h"
#include "server/pop3/session.h"
#include "core/err.h"
#include "core/log.h"
#include "server/server.h"
#include "storage/store.h"
#include "tap.h"
#include "testlib.h"
#include <stdlib.h>
#include <unistd.h>

static struct config cfg;

/* Run a script of input on a fresh POP3 session; return the replies. */
static const char *
run(enum listen_proto proto, const char *input, struct conn *c)
{
	return fake_conn_run(c, &cfg, proto, &pop3_proto_ops, input);
}

static void
test_basics(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_POP3, "CAPA\r\nNOOP\r\nFOO\r\nCAPA x\r\nquit\r\n", &c);
	CHECK(strncmp(out, "+OK mx.example.test POP3 server ready\r\n", 39) == 0);
	CHECK(testlib_has(out, "+OK Capability list follows\r\nSTLS\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
	    "AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nIMPLEMENTATION postie\r\n.\r\n"));
	CHECK(!testlib_has(out, "USER\r\n") && !testlib_has(out, "SASL"));	/* no passwords before STLS */
	CHECK(testlib_has(out, "-ERR Command not valid in this state\r\n"));	/* NOOP before login */
	CHECK(testlib_has(out, "-ERR Unknown command\r\n"));
	CHECK(testlib_has(out, "-ERR Syntax error: no arguments allowed\r\n"));
	CHECK(testlib_has(out, "+OK postie POP3 server signing off\r\n") && c.close_after_flush);
	fake_conn_free(&c);

	out = run(LISTEN_POP3S, "CAPA\r\nSTLS\r\n", &c);	/* implicit TLS: no STLS */
	CHECK(!testlib_has(out, "STLS\r\nRESP") && testlib_has(out, "-ERR STLS not available\r\n"));
	fake_conn_free(&c);
}

static void
test_stls(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_POP3, "STLS\r\nUSER alice\r\n", &c);
	CHECK(testlib_has(out, "+OK Begin TLS negotiation\r\n"));
	CHECK(c.tls_state == CONN_TLS_PENDING && c.in.len == 0);	/* pipelined USER dropped */
	fake_conn_tls_done(&c);
	buf_reset(&c.out);
	fake_conn_feed(&c, "CAPA\r\n", 6);
	CHECK(!testlib_has((const char *)c.out.data, "STLS"));
	fake_conn_free(&c);
}

static void
test_lines(void)
{
	struct conn c;
	char big[300];
	const char *out;

	memset(big, 'A', sizeof(big));
	memcpy(big + sizeof(big) - 8, "\r\nCAPA\r\n", 8);
	fake_conn_init(&c, &cfg, LISTEN_POP3, &pop3_proto_ops);
	fake_conn_feed(&c, big, sizeof(big));
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "-ERR Line too long\r\n") && testlib_has(out, "+OK Capability list follows"));
	fake_conn_free(&c);

	fake_conn_init(&c, &cfg, LISTEN_POP3, &pop3_proto_ops);
	fake_conn_feed(&c, "CA\0PA\r\n", 7);
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "-ERR Bad characters in command line\r\n"));
	fake_conn_free(&c);
	CHECK(testlib_has(pop3_proto_ops.busy_reply(&cfg), "-ERR [SYS/TEMP]"));
}

/* A TLS session logged in as alice, on the real store. */
static void
login(struct conn *c)
{
	fake_conn_init(c, &cfg, LISTEN_POP3S, &pop3_proto_ops);
	c->tls_state = CONN_TLS_ON;
	c->ops->start(c);
	fake_conn_feed_str(c, "USER alice\r\nPASS good\r\n");
}

/* the mailboxes of the store tests: alice only */
static const char *const alice_only[] = { "alice", NULL };

static void
test_maildrop(void)
{
	struct testlib_store ts;
	struct conn c, other;
	const char *out;
	int rc;

	rc = testlib_store_open(&ts, "postie-test-pop3", 0, 0, alice_only);
	if (rc == ERR_IO)
		return;
	fake_server.store = ts.st;
	CHECK(rc == 0);
	testlib_deliver(fake_server.store, "alice", "Subject: one\r\n\r\nhello\r\n.dot line\r\n..two dots\r\n");
	testlib_deliver(fake_server.store, "alice", "Subject: two\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n");
	testlib_deliver(fake_server.store, "alice", "no final newline");

	/* before TLS: no passwords */
	fake_conn_init(&c, &cfg, LISTEN_POP3, &pop3_proto_ops);
	fake_conn_feed_str(&c, "USER alice\r\nPASS good\r\nAUTH PLAIN AGFsaWNlAGdvb2Q=\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "-ERR [AUTH] Plaintext authentication disallowed"));
	CHECK(!testlib_has(fake_conn_out(&c), "Logged in"));
	fake_conn_free(&c);

	login(&c);
	out = fake_conn_out(&c);
	CHECK(testlib_has(out, "+OK Logged in, 3 messages"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "STAT\r\nLIST\r\nUIDL 2\r\nLIST 4\r\nLIST 0\r\nLIST 4294967297\r\nLIST +1\r\n");
	out = fake_conn_out(&c);
	/* message 1 is 46 octets stored, 48 sent: two lines start with '.'; 3 gets a CRLF */
	CHECK(testlib_has(out, "+OK 3 "));
	CHECK(testlib_has(out, "+OK\r\n1 48\r\n2 34\r\n3 18\r\n.\r\n"));
	CHECK(testlib_has(out, "+OK 2 "));
	CHECK(testlib_has(out, "-ERR No such message\r\n-ERR No such message\r\n-ERR Syntax error"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "RETR 1\r\n");
	CHECK(strcmp(fake_conn_out(&c), "+OK 48 octets\r\nSubject: one\r\n\r\nhello\r\n..dot line\r\n"
	    "...two dots\r\n.\r\n") == 0);
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "TOP 2 1\r\nRETR 3\r\n");
	CHECK(strcmp(fake_conn_out(&c), "+OK\r\nSubject: two\r\nX: y\r\n\r\nl1\r\n.\r\n"
	    "+OK 18 octets\r\nno final newline\r\n.\r\n") == 0);

	/* a second session gets [IN-USE] */
	login(&other);
	CHECK(testlib_has(fake_conn_out(&other), "-ERR [IN-USE]"));
	fake_conn_free(&other);

	/* DELE marks, RSET unmarks; a dropped session deletes nothing */
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "DELE 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\nRSET\r\nSTAT\r\nDELE 2\r\n");
	out = fake_conn_out(&c);
	CHECK(testlib_has(out, "+OK Message 1 deleted\r\n-ERR Message already deleted\r\n-ERR Message already deleted"));
	CHECK(testlib_has(out, "+OK 2 52\r\n+OK 3 messages\r\n+OK 3 100\r\n+OK Message 2 deleted"));
	fake_conn_free(&c);	/* dropped: unlocks, deletes nothing */
	login(&c);
	CHECK(testlib_has(fake_conn_out(&c), "+OK Logged in, 3 messages"));

	/* QUIT commits the deletions in one go */
	fake_conn_feed_str(&c, "DELE 1\r\nDELE 3\r\nQUIT\r\n");
	fake_conn_wait_closing(&c, 5000);	/* the commit is answered from the store's writer */
	CHECK(testlib_has(fake_conn_out(&c), "(2 messages deleted)"));
	fake_conn_free(&c);
	login(&c);
	CHECK(testlib_has(fake_conn_out(&c), "+OK Logged in, 1 messages"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "TOP 1 0\r\nNOOP\r\nQUIT\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "+OK\r\nSubject: two\r\nX: y\r\n\r\n.\r\n+OK\r\n+OK postie"));
	fake_conn_free(&c);
	CHECK(store_verify(fake_server.store, NULL, NULL) == 0);

	/* LOGIN-DELAY: advertised when configured, and a login too soon is refused */
	cfg.pop3.login_delay = 60;
	login(&c);
	CHECK(testlib_has(fake_conn_out(&c), "+OK Logged in"));
	buf_reset(&c.out);
	fake_conn_feed_str(&c, "CAPA\r\nQUIT\r\n");
	CHECK(testlib_has(fake_conn_out(&c), "LOGIN-DELAY 60\r\n"));
	fake_conn_free(&c);
	login(&c);
	CHECK(testlib_has(fake_conn_out(&c), "-ERR [LOGIN-DELAY] Wait 60 seconds") && !testlib_has(fake_conn_out(&c), "Logged in"));
	fake_conn_free(&c);
	cfg.pop3.login_delay = 0;

	testlib_store_close(&ts);
	fake_server.store = NULL;
}

/* n copies of text for alice, sharing group commits. */
static void
deliver_many(const char *text, size_t n)
{
	CHECK(testlib_deliver_copies(fake_server.store, "alice", text, -1, 0, n) == 0);
}

/* Consume want at *p; false (and *p unchanged) when it is not there. */
static bool
next_is(const char **p, const char *want)
{
	size_t n = strlen(want);

	if (strncmp(*p, want, n) != 0)
		return false;
	*p += n;
	return true;
}

/*
 * Whole listings that do not fit the output buffer: 4,000 messages make a
 * UIDL listing of about 90 KB. The test is the client: it reads whatever
 * is queued, then calls the drained callback, as conn.c does when the
 * output is empty. The listing must arrive whole and in order, deleted
 * messages left out, a pipelined command answered only after it, and no
 * more than POP3_STREAM_HIGH (and a line) queued at any moment.
 */
#define LISTING_MSGS 4000
#define LISTING_TEXT "Subject: m\r\n\r\nx\r\n"

static void
test_listing_streams(void)
{
	/* a large output limit (memory must stay bounded anyway), then the smallest allowed */
	static const size_t limits[] = { 1 << 20, POP3_STREAM_HIGH };
	struct testlib_store ts;
	char want[64];
	size_t k, i, steps;
	int rc;

	rc = testlib_store_open(&ts, "postie-test-pop3", 0, 0, alice_only);
	if (rc == ERR_IO)
		return;
	fake_server.store = ts.st;
	CHECK(rc == 0);
	deliver_many(LISTING_TEXT, LISTING_MSGS);
	for (k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		struct buf got;
		struct conn c;
		bool bounded = true, ok;
		const char *base, *p;
		uint64_t prev = 0;

		buf_init(&got, 8 << 20);
		login(&c);
		CHECK(testlib_has(fake_conn_out(&c), "+OK Logged in, 4000 messages"));
		buf_reset(&c.out);
		c.out.max = limits[k];
		fake_conn_feed_str(&c, "DELE 2\r\nUIDL\r\nLIST\r\nNOOP\r\n");
		for (steps = 0; c.out.len && !c.closed && steps < 1000; steps++) {
			if (c.out.len > POP3_STREAM_HIGH + 64)
				bounded = false;
			buf_append(&got, c.out.data, c.out.len);
			buf_reset(&c.out);
			c.ops->drained(&c);
		}
		CHECK(!c.closed && !c.out.len && bounded);
		CHECK(steps >= 2);	/* it did not fit at once: the drained callback went on */

		base = p = got.data ? (const char *)got.data : "";
		ok = next_is(&p, "+OK Message 2 deleted\r\n+OK\r\n");
		for (i = 1; ok && i <= LISTING_MSGS; i++) {
			uint64_t uidl;
			char *end;

			if (i == 2)
				continue;
			snprintf(want, sizeof(want), "%zu ", i);
			ok = next_is(&p, want) && strspn(p, "0123456789abcdef") == 16 && p[16] == '\r' &&
			    p[17] == '\n';
			if (!ok)
				break;
			uidl = strtoull(p, &end, 16);
			ok = uidl > prev;	/* unique: ids only grow */
			prev = uidl;
			p += 18;
		}
		ok = ok && next_is(&p, ".\r\n+OK\r\n");
		for (i = 1; ok && i <= LISTING_MSGS; i++) {
			if (i == 2)
				continue;
			snprintf(want, sizeof(want), "%zu %zu\r\n", i, strlen(LISTING_TEXT));
			ok = next_is(&p, want);
		}
		ok = ok && next_is(&p, ".\r\n+OK\r\n") && *p == '\0';
		CHECK(ok);
		if (!ok)
			printf("# listing differs at offset %zu\n", (size_t)(p - base));
		buf_free(&got);
		fake_conn_free(&c);
	}
	testlib_store_close(&ts);
	fake_server.store = NULL;
}

int
main(void)
{
	log_open("test", true, LOG_LEVEL_CRIT);
	fake_config_init(&cfg);
	test_maildrop();
	test_listing_streams();
	test_basics();
	test_stls();
	test_lines();
	return tap_done();
}
