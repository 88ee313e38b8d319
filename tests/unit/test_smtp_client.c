/*
 * test_smtp_client: the outbound SMTP client session and the DSN builder,
 * fed scripted server bytes through a fake transport (no sockets).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "server/delivery/client.h"
#include "server/delivery/dsn.h"
#include "storage/store.h"
#include "tap.h"

/* A server as a list of chunks: each fill() gives the next one. */
struct script {
	const char *chunks[32];
	size_t next;
	struct buf written;	/* everything the client sent */
	unsigned writes;
	bool tls_started;
	const char *after_tls[8];	/* what the server says once TLS is up */
	const char *verify_fails;	/* the handshake's verification fails with this reason */
	const char *verified_as;	/* out: the name the client asked to verify, NULL = none */
};

static int
s_fill(void *io, struct buf *in, uint64_t deadline)
{
	struct script *s = io;
	const char *c;

	(void)deadline;
	if (s->tls_started) {
		size_t i;
		for (i = 0; i < 8 && !s->after_tls[i]; i++)
			;
		if (i == 8)
			return ERR_CLOSED;
		c = s->after_tls[i];
		s->after_tls[i] = NULL;
	} else {
		if (!s->chunks[s->next])
			return ERR_CLOSED;
		c = s->chunks[s->next++];
	}
	return buf_append_str(in, c) ? ERR_LIMIT : 0;
}

static int
s_write(void *io, const void *p, size_t n, uint64_t deadline)
{
	struct script *s = io;

	(void)deadline;
	s->writes++;
	buf_append(&s->written, p, n);
	return 0;
}

static int
s_starttls(void *io, const char *verify_name, uint64_t deadline, char *why, size_t why_cap)
{
	struct script *s = io;

	(void)deadline;
	why[0] = '\0';
	s->verified_as = verify_name;
	if (verify_name && s->verify_fails) {
		snprintf(why, why_cap, "%s", s->verify_fails);
		return ERR_TLS;
	}
	s->tls_started = true;
	return 0;
}

static const char *body_text;

static int
read_text(void *arg, uint64_t off, void *buf, size_t n, size_t *got)
{
	size_t len = strlen(body_text);

	(void)arg;
	*got = off >= len ? 0 : (len - off < n ? len - off : n);
	memcpy(buf, body_text + off, *got);
	return 0;
}

static const struct smtpc_opts opts = { "mx.local.test", "peer.test[192.0.2.1]:25", SMTPC_TLS_MAY, NULL, NULL, NULL,
	1000, 1000 };

static bool
sent(struct script *s, const char *text)
{
	buf_append(&s->written, "", 1);
	s->written.len--;
	return strstr((const char *)s->written.data, text) != NULL;
}

static void
init_msg(struct smtpc_msg *m, struct smtpc_rcpt *r, size_t n)
{
	memset(m, 0, sizeof(*m));
	memset(r, 0, n * sizeof(*r));
	m->sender = "alice@local.test";
	m->envid = "";
	m->read = read_text;
	m->size = strlen(body_text);
	m->rcpts = r;
	m->nrcpts = n;
	r[0].address = "bob@peer.test";
	r[0].orcpt = "";
	if (n > 1) {
		r[1].address = "nobody@peer.test";
		r[1].orcpt = "rfc822;nobody@peer.test";
		r[1].notify = STORE_NOTIFY_FAILURE | STORE_NOTIFY_DELAY;
	}
}

static void
test_pipelined_transaction(void)
{
	struct script s = { .chunks = { "220 peer ESMTP\r\n", "250-peer\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 DSN\r\n",
		"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n", "250 2.0.0 queued as X\r\n",
		"221 bye\r\n" } };
	struct smtpc_transport t = { s_fill, s_write, NULL, &s };
	struct smtpc_rcpt r[2];
	struct smtpc_msg m;
	struct smtpc c;

	buf_init(&s.written, 0);
	body_text = ".leading dot\r\nmiddle\r\n..two\r\nno newline at the end";
	smtpc_init(&c, &t, &opts);
	CHECK(smtpc_open(&c) == SMTPC_OK);
	CHECK(c.ext & SMTPC_EXT_PIPELINING && c.ext & SMTPC_EXT_DSN && c.max_size == 100000);
	init_msg(&m, r, 2);
	CHECK(smtpc_send(&c, &m) == SMTPC_OK);
	CHECK(r[0].result == SMTPC_OK && strstr(r[0].reply, "250 2.0.0 queued as X") && r[0].peer_dsn);
	CHECK(r[1].result == SMTPC_PERM && strstr(r[1].reply, "peer.test[192.0.2.1]:25 said: 550 5.1.1 no such user"));
	/* one write for the whole group, DSN parameters passed on */
	CHECK(sent(&s, "MAIL FROM:<alice@local.test> SIZE=50\r\nRCPT TO:<bob@peer.test>\r\n"
	    "RCPT TO:<nobody@peer.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;nobody@peer.test\r\nDATA\r\n"));
	CHECK(sent(&s, "\r\n..leading dot\r\nmiddle\r\n...two\r\nno newline at the end\r\n.\r\n"));
	CHECK(!sent(&s, "\n\n") && !sent(&s, "\r\r"));
	smtpc_quit(&c);
	CHECK(sent(&s, "QUIT\r\n"));
	smtpc_free(&c);
	buf_free(&s.written);
}

static void
test_one_at_a_time_and_refusals(void)
{
	struct script s = { .chunks = { "220 old\r\n", "500 what\r\n", "250 old\r\n",
		"451 4.3.0 sender check failed\r\n", "250 reset\r\n" } };
	struct smtpc_transport t = { s_fill, s_write, NULL, &s };
	struct smtpc_rcpt r[2];
	struct smtpc_msg m;
	struct smtpc c;

	buf_init(&s.written, 0);
	body_text = "x\r\n";
	smtpc_init(&c, &t, &opts);
	CHECK(smtpc_open(&c) == SMTPC_OK);	/* EHLO refused: HELO */
	CHECK(sent(&s, "HELO mx.local.test\r\n") && c.ext == 0);
	init_msg(&m, r, 2);
	CHECK(smtpc_send(&c, &m) == SMTPC_OK);
	CHECK(r[0].result == SMTPC_TEMP && r[1].result == SMTPC_TEMP && strstr(r[1].reply, "451 4.3.0"));
	CHECK(!sent(&s, "RCPT") && !sent(&s, "NOTIFY") && sent(&s, "RSET\r\n"));
	CHECK(!r[0].peer_dsn && !r[1].peer_dsn);	/* a success here would be ours to report */
	smtpc_free(&c);
	buf_free(&s.written);
}

static void
test_what_the_peer_cannot_take(void)
{
	struct script s = { .chunks = { "220 small\r\n", "250-small\r\n250 SIZE 10\r\n" } };
	struct smtpc_transport t = { s_fill, s_write, NULL, &s };
	struct smtpc_rcpt r[1];
	struct smtpc_msg m;
	struct smtpc c;

	buf_init(&s.written, 0);
	body_text = "more than ten octets\r\n";
	smtpc_init(&c, &t, &opts);
	CHECK(smtpc_open(&c) == SMTPC_OK);
	init_msg(&m, r, 1);
	CHECK(smtpc_send(&c, &m) == SMTPC_OK && r[0].result == SMTPC_PERM && strstr(r[0].reply, "5.3.4"));
	body_text = "8";
	m.size = 1;
	m.body_8bit = true;
	CHECK(smtpc_send(&c, &m) == SMTPC_OK && r[0].result == SMTPC_PERM && strstr(r[0].reply, "5.6.3"));
	m.body_8bit = false;
	m.smtputf8 = true;
	CHECK(smtpc_send(&c, &m) == SMTPC_OK && r[0].result == SMTPC_PERM && strstr(r[0].reply, "5.6.7"));
	CHECK(!sent(&s, "MAIL"));
	smtpc_free(&c);
	buf_free(&s.written);
}

/* SIZE through the one number parser: digits only, up to SMTPC_PEER_SIZE_MAX; anything else is no limit. */
static void
test_size_values(void)
{
	static const struct {
		const char *ehlo;
		uint64_t max_size;
	} cases[] = {
		{ "250-p\r\n250 SIZE 10\r\n", 10 },
		{ "250-p\r\n250 SIZE\r\n", 0 },
		{ "250-p\r\n250 SIZE 0\r\n", 0 },
		{ "250-p\r\n250 SIZE 18446744073709551615\r\n", UINT64_MAX },
		{ "250-p\r\n250 SIZE 18446744073709551616\r\n", 0 },	/* one past the limit */
		{ "250-p\r\n250 SIZE 99999999999999999999\r\n", 0 },
		{ "250-p\r\n250 SIZE 10x\r\n", 0 },
		{ "250-p\r\n250 SIZE +10\r\n", 0 },
		{ "250-p\r\n250 SIZE -0\r\n", 0 },
		{ "250-p\r\n250 SIZE 1 2\r\n", 0 },
		{ "250-p\r\n250 SIZE \xff\r\n", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script s = { .chunks = { "220 p\r\n", cases[i].ehlo } };
		struct smtpc_transport t = { s_fill, s_write, NULL, &s };
		struct smtpc c;

		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &opts);
		CHECK(smtpc_open(&c) == SMTPC_OK && (c.ext & SMTPC_EXT_SIZE) && c.max_size == cases[i].max_size);
		smtpc_free(&c);
		buf_free(&s.written);
	}
}

static void
test_hostile_replies(void)
{
	/* one octet past SMTP_REPLY_LINE_MAX (with its CRLF), built below */
	static char overlong[SMTP_REPLY_LINE_MAX + 2];
	static const char *bad[] = { "220 ok\n", "220-a\r\n221 b\r\n", "2x0 nope\r\n", overlong };
	char many[101 * 8 + 16];
	size_t i;

	memcpy(overlong, "220 ", 4);
	memset(overlong + 4, 'a', SMTP_REPLY_LINE_MAX - 5);
	memcpy(overlong + SMTP_REPLY_LINE_MAX - 1, "\r\n", 3);	/* 513 octets with CRLF, then the NUL */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct script s = { .chunks = { bad[i] } };
		struct smtpc_transport t = { s_fill, s_write, NULL, &s };
		struct smtpc c;

		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &opts);
		CHECK_MSG(smtpc_open(&c) == SMTPC_TEMP && c.broken && strstr(c.error, "peer.test"), bad[i]);
		smtpc_free(&c);
		buf_free(&s.written);
	}
	/* SMTP_REPLY_LINES_MAX + 1 lines in one reply */
	for (i = 0; i < 101; i++)
		memcpy(many + i * 8, "220-ab\r\n", 8);
	many[101 * 8] = '\0';
	{
		struct script s = { .chunks = { many, "220 end\r\n" } };
		struct smtpc_transport t = { s_fill, s_write, NULL, &s };
		struct smtpc c;

		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &opts);
		CHECK(smtpc_open(&c) == SMTPC_TEMP && c.broken);
		smtpc_free(&c);
		buf_free(&s.written);
	}
	/* the connection closes in the middle of a reply: temporary, with a reason */
	{
		struct script s = { .chunks = { "220 ok\r\n", "250-peer\r\n250-PIPE" } };
		struct smtpc_transport t = { s_fill, s_write, NULL, &s };
		struct smtpc c;

		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &opts);
		CHECK(smtpc_open(&c) == SMTPC_TEMP && strstr(c.error, "closed"));
		smtpc_free(&c);
		buf_free(&s.written);
	}
}

static void
test_starttls_discards_injected_bytes(void)
{
	/* CVE-2021-38371 class: a reply injected with the 220 must not be taken as the EHLO reply after TLS */
	struct script s = { .chunks = { "220 tls\r\n", "250-tls\r\n250 STARTTLS\r\n", "220 go ahead\r\n250 INJECTED\r\n" },
		.after_tls = { "250-tls\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n" } };
	struct smtpc_transport t = { s_fill, s_write, s_starttls, &s };
	struct smtpc_opts o = opts;
	struct smtpc c;

	o.tls = SMTPC_TLS_VERIFY;
	o.tls_name = "peer.test";
	o.auth_user = "relay";
	o.auth_password = "secret";
	buf_init(&s.written, 0);
	smtpc_init(&c, &t, &o);
	s.after_tls[1] = "235 2.7.0 ok\r\n";
	CHECK(smtpc_open(&c) == SMTPC_OK);
	CHECK(s.tls_started && c.tls && c.tls_verified && c.ext & SMTPC_EXT_PIPELINING);
	CHECK(s.verified_as && strcmp(s.verified_as, "peer.test") == 0);
	CHECK(sent(&s, "STARTTLS\r\nEHLO mx.local.test\r\nAUTH PLAIN AHJlbGF5AHNlY3JldA==\r\n"));
	smtpc_free(&c);
	buf_free(&s.written);
}

static void
test_auth_needs_tls(void)
{
	struct script s = { .chunks = { "220 plain\r\n", "250-plain\r\n250 AUTH PLAIN\r\n" } };
	struct smtpc_transport t = { s_fill, s_write, s_starttls, &s };
	struct smtpc_opts o = opts;
	struct smtpc c;

	o.auth_user = "relay";
	o.auth_password = "secret";
	buf_init(&s.written, 0);
	smtpc_init(&c, &t, &o);
	CHECK(smtpc_open(&c) == SMTPC_TEMP && !sent(&s, "AUTH"));
	smtpc_free(&c);
	buf_free(&s.written);
}

/* Credentials go only over TLS whose certificate was verified for the name we meant. */
static void
test_auth_needs_verified_tls(void)
{
	/* opportunistic TLS: up, but anyone could have shown that certificate */
	{
		struct script s = { .chunks = { "220 tls\r\n", "250-tls\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
			"220 go ahead\r\n" }, .after_tls = { "250-tls\r\n250 AUTH PLAIN\r\n", "235 2.7.0 ok\r\n" } };
		struct smtpc_transport t = { s_fill, s_write, s_starttls, &s };
		struct smtpc_opts o = opts;
		struct smtpc c;

		o.auth_user = "relay";
		o.auth_password = "secret";
		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &o);
		CHECK(smtpc_open(&c) == SMTPC_TEMP && c.tls && !c.tls_verified && !sent(&s, "AUTH"));
		CHECK(s.verified_as == NULL && strstr(c.error, "not verified"));
		smtpc_free(&c);
		buf_free(&s.written);
	}
	/* verification fails: no AUTH, no plaintext retry, the reason in the error */
	{
		struct script s = { .chunks = { "220 tls\r\n", "250-tls\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n",
			"220 go ahead\r\n" }, .verify_fails = "certificate name mismatch: expected relay.test" };
		struct smtpc_transport t = { s_fill, s_write, s_starttls, &s };
		struct smtpc_opts o = opts;
		struct smtpc c;

		o.tls = SMTPC_TLS_VERIFY;
		o.tls_name = "relay.test";
		o.auth_user = "relay";
		o.auth_password = "secret";
		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &o);
		CHECK(smtpc_open(&c) == SMTPC_TEMP && !c.tls && !sent(&s, "AUTH"));
		CHECK(s.verified_as && strcmp(s.verified_as, "relay.test") == 0);
		CHECK(strstr(c.error, "4.7.5") && strstr(c.error, "certificate name mismatch: expected relay.test"));
		CHECK(!c.tls_failed && c.broken);
		smtpc_free(&c);
		buf_free(&s.written);
	}
	/* verification required and no STARTTLS offered: nothing sent after EHLO */
	{
		struct script s = { .chunks = { "220 plain\r\n", "250-plain\r\n250 AUTH PLAIN\r\n" } };
		struct smtpc_transport t = { s_fill, s_write, s_starttls, &s };
		struct smtpc_opts o = opts;
		struct smtpc c;

		o.tls = SMTPC_TLS_VERIFY;
		o.tls_name = "relay.test";
		buf_init(&s.written, 0);
		smtpc_init(&c, &t, &o);
		CHECK(smtpc_open(&c) == SMTPC_TEMP && strstr(c.error, "does not offer STARTTLS"));
		CHECK(!sent(&s, "AUTH") && !sent(&s, "MAIL"));
		smtpc_free(&c);
		buf_free(&s.written);
	}
}

static void
test_clean_text(void)
{
	char out[64];
	struct span t = span_cstr("bad\r\nheader: injected\x01\xff");

	smtpc_clean_text(out, sizeof(out), "h said:", 550, t);
	CHECK(strcmp(out, "h said: 550 bad  header: injected  ") == 0);
}

static void
test_dsn(void)
{
	char st[16];
	struct dsn_rcpt r[3] = {
		{ "bob@peer.test", "rfc822;bob@peer.test", DSN_FAILED, "peer.test[192.0.2.1]:25 said: 550 5.1.1 no such user" },
		{ "eve@peer.test", "", DSN_DELAYED, "connect to peer.test[192.0.2.1:25]: Connection refused" },
		{ "ann@old.test", "", DSN_RELAYED, "old.test[192.0.2.2]:25 said: 250 Ok" },
	};
	struct dsn_info d;
	struct buf out;

	dsn_status("x said: 550 5.1.1 no", DSN_FAILED, st);
	CHECK(strcmp(st, "5.1.1") == 0);
	dsn_status("x said: 451 4.7.1234 no", DSN_DELAYED, st);
	CHECK(strcmp(st, "4.0.0") == 0);
	dsn_status("10.1.2.3 refused", DSN_FAILED, st);
	CHECK(strcmp(st, "5.0.0") == 0);
	dsn_status("x said: 250 2.6.0 queued", DSN_RELAYED, st);
	CHECK(strcmp(st, "2.6.0") == 0);
	dsn_status("x said: 250 Ok", DSN_RELAYED, st);
	CHECK(strcmp(st, "2.0.0") == 0);
	memset(&d, 0, sizeof(d));
	d.hostname = "mx.local.test";
	d.sender = "alice@local.test";
	d.envid = "E1";
	d.arrival = 1700000000;
	d.now = 1700000100;
	d.retry_until = 1700400000;
	d.queue_id = 42;
	d.rcpts = r;
	d.nrcpts = 3;
	d.read = read_text;
	body_text = "Return-Path: <alice@local.test>\r\nSubject: s\r\n\r\nsecret body\r\n";
	d.offset = strlen("Return-Path: <alice@local.test>\r\n");
	buf_init(&out, 0);
	CHECK(dsn_build(&d, &out) == 0);
	buf_append(&out, "", 1);
	CHECK(strncmp((char *)out.data, "Return-Path: <>\r\n", 17) == 0);
	CHECK(strstr((char *)out.data, "Subject: Undelivered Mail Returned to Sender\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Original-Envelope-Id: E1\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Final-Recipient: rfc822; bob@peer.test\r\nOriginal-Recipient: rfc822;bob@peer.test\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; peer.test[192.0.2.1]:25\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Action: delayed\r\nStatus: 4.0.0\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Final-Recipient: rfc822; ann@old.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
	    "Remote-MTA: dns; old.test[192.0.2.2]:25\r\nDiagnostic-Code: smtp; 250 Ok\r\n"
	    "Last-Attempt-Date: ") != NULL);
	/* each outcome has its paragraph, its recipients below it */
	CHECK(strstr((char *)out.data, "could not be delivered to these recipients; it is attached below.\r\n\r\n"
	    "<bob@peer.test>: ") != NULL);
	CHECK(strstr((char *)out.data, "a failure further on\r\nmay still come back as a bounce.\r\n\r\n"
	    "<ann@old.test>: old.test") != NULL);
	CHECK(strstr((char *)out.data, "Content-Type: text/rfc822-headers\r\n\r\nSubject: s\r\n\r\n") != NULL);
	CHECK(strstr((char *)out.data, "secret body") == NULL);
	CHECK(strstr((char *)out.data, "Return-Path: <alice") == NULL);
	buf_free(&out);
	d.ret_full = true;
	buf_init(&out, 0);
	CHECK(dsn_build(&d, &out) == 0);
	buf_append(&out, "", 1);
	CHECK(strstr((char *)out.data, "Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nsecret body\r\n") != NULL);
	buf_free(&out);
	/* only relayed recipients: a success report, nothing said of retries */
	d.rcpts = r + 2;
	d.nrcpts = 1;
	d.ret_full = false;
	buf_init(&out, 0);
	CHECK(dsn_build(&d, &out) == 0);
	buf_append(&out, "", 1);
	CHECK(strstr((char *)out.data, "Subject: Successful Mail Delivery Report\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Content-Description: Message Headers\r\n") != NULL);
	CHECK(strstr((char *)out.data, "Will-Retry-Until") == NULL && strstr((char *)out.data, "retried") == NULL);
	buf_free(&out);
}

int
main(void)
{
	test_pipelined_transaction();
	test_one_at_a_time_and_refusals();
	test_what_the_peer_cannot_take();
	test_size_values();
	test_hostile_replies();
	test_starttls_discards_injected_bytes();
	test_auth_needs_tls();
	test_auth_needs_verified_tls();
	test_clean_text();
	test_dsn();
	return tap_done();
}
