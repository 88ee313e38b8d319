#include "config.h"

#include <stdio.h>
#include <string.h>

#include "fake_conn.h"
#include "server/smtp/session.h"
#include "tap.h"
#include "testlib.h"

static struct config cfg;

/* Run a script of input on a fresh SMTP session; return the replies. */
static const char *
run(enum listen_proto proto, const char *input, struct conn *c)
{
	return fake_conn_run(c, &cfg, proto, &smtp_proto_ops, input);
}

static void
test_basics(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_SMTP, "EHLO client.test\r\nNOOP\r\nHELP\r\nQUIT\r\n", &c);
	CHECK(strncmp(out, "220 mx.example.test ESMTP", 25) == 0);
	CHECK(testlib_has(out, "250-mx.example.test greets client.test [192.0.2.7]\r\n"));
	CHECK(testlib_has(out, "250-STARTTLS\r\n") && testlib_has(out, "250-PIPELINING\r\n"));
	CHECK(testlib_has(out, "250 ENHANCEDSTATUSCODES\r\n"));
	CHECK(testlib_has(out, "\r\n250 2.0.0 OK\r\n214 2.0.0"));
	CHECK(testlib_has(out, "221 2.0.0 mx.example.test Bye\r\n") && c.close_after_flush);
	fake_conn_free(&c);

	out = run(LISTEN_SMTP, "FOO\r\nSTARTTLS\r\nEHLO\r\nRSET x\r\nnoop\r\n", &c);
	CHECK(testlib_has(out, "500 5.5.2 Command unrecognized\r\n"));
	CHECK(testlib_has(out, "503 5.5.1 Bad sequence of commands\r\n"));	/* STARTTLS before EHLO */
	CHECK(testlib_has(out, "501 5.5.4 Syntax error: parameter required\r\n"));
	CHECK(testlib_has(out, "501 5.5.4 Syntax error: no parameters allowed\r\n"));
	CHECK(testlib_has(out, "250 2.0.0 OK\r\n"));	/* verbs are case-insensitive */
	fake_conn_free(&c);
}

static void
test_strict_lines(void)
{
	struct conn c;
	char longline[600];
	const char *out;

	out = run(LISTEN_SMTP, "NOOP\nNOOP\r\n", &c);	/* bare LF: one error, then a good line */
	CHECK(testlib_has(out, "500 5.5.2 Bare CR, bare LF or NUL") && testlib_has(out, "250 2.0.0 OK"));
	fake_conn_free(&c);

	memset(longline, 'A', sizeof(longline));
	memcpy(longline + sizeof(longline) - 8, "\r\nNOOP\r\n", 8);
	fake_conn_init(&c, &cfg, LISTEN_SMTP, &smtp_proto_ops);
	fake_conn_feed(&c, longline, sizeof(longline));
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "500 5.5.2 Line too long\r\n"));
	/* exactly one error for the long line, and the next command still works */
	CHECK(testlib_count(out, "500 ") == 1);
	CHECK(testlib_has(out, "250 2.0.0 OK\r\n"));
	fake_conn_free(&c);
}

static void
test_starttls_discards_pipelined(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_SUBMISSION, "EHLO a\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n", &c);
	CHECK(testlib_has(out, "220 2.0.0 Ready to start TLS\r\n"));
	CHECK(c.tls_state == CONN_TLS_PENDING && c.in.len == 0);	/* injected line gone */
	CHECK(!testlib_has(out, "Command unrecognized"));
	buf_reset(&c.out);
	fake_conn_tls_done(&c);
	/* after TLS the session starts over: no EHLO known, no STARTTLS offered */
	fake_conn_feed(&c, "STARTTLS\r\n", 10);
	CHECK(testlib_has((const char *)c.out.data, "503 5.5.1"));
	buf_reset(&c.out);
	fake_conn_feed(&c, "EHLO a\r\n", 8);
	CHECK(!testlib_has((const char *)c.out.data, "STARTTLS"));
	fake_conn_free(&c);

	out = run(LISTEN_SUBMISSIONS, "EHLO a\r\n", &c);	/* implicit TLS listener */
	CHECK(!testlib_has(out, "STARTTLS"));
	fake_conn_free(&c);
}

static void
test_bad_command_limit(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_SMTP, "X\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nNOOP\r\n", &c);
	CHECK(testlib_has(out, "421 4.7.0 mx.example.test Too many errors"));
	CHECK(c.close_after_flush && !testlib_has(out, "250 2.0.0 OK"));
	fake_conn_free(&c);
}

static void
test_timeout_shutdown_busy(void)
{
	struct conn c;

	fake_conn_init(&c, &cfg, LISTEN_SMTP, &smtp_proto_ops);
	c.ops->timeout(&c, CONN_TIMEOUT_COMMAND);
	c.ops->shutdown(&c);
	CHECK(testlib_has((const char *)c.out.data, "421 4.4.2 mx.example.test Timeout"));
	CHECK(testlib_has((const char *)c.out.data, "421 4.3.2 mx.example.test Service shutting down"));
	CHECK(testlib_has(c.ops->busy_reply(&cfg), "421 4.7.0 mx.example.test Too many connections"));
	fake_conn_free(&c);
}

static void
test_auth(void)
{
	struct conn c;
	const char *out;

	/* no AUTH before TLS (not loopback-allowed here) */
	out = run(LISTEN_SUBMISSION, "EHLO a\r\nAUTH PLAIN AGFsaWNlAGdvb2Q=\r\n", &c);
	CHECK(!testlib_has(out, "AUTH PLAIN LOGIN") && testlib_has(out, "538 5.7.11"));
	fake_conn_free(&c);

	fake_conn_init(&c, &cfg, LISTEN_SUBMISSION, &smtp_proto_ops);
	fake_conn_tls_done(&c);
	fake_conn_feed_str(&c, "EHLO a\r\n");
	CHECK(testlib_has((const char *)c.out.data, "250-AUTH PLAIN LOGIN\r\n"));
	fake_conn_feed_str(&c, "AUTH PLAIN AGFsaWNlAGJhZA==\r\n");	/* \0alice\0bad */
	CHECK(testlib_has((const char *)c.out.data, "535 5.7.8"));
	fake_conn_feed_str(&c, "AUTH LOGIN\r\n");
	CHECK(testlib_has((const char *)c.out.data, "334 VXNlcm5hbWU6\r\n"));
	fake_conn_feed_str(&c, "YWxpY2U=\r\n");
	CHECK(testlib_has((const char *)c.out.data, "334 UGFzc3dvcmQ6\r\n"));
	fake_conn_feed_str(&c, "Z29vZA==\r\n");		/* good */
	CHECK(testlib_has((const char *)c.out.data, "235 2.7.0"));
	fake_conn_feed_str(&c, "AUTH PLAIN AGFsaWNlAGdvb2Q=\r\n");
	CHECK(testlib_has((const char *)c.out.data, "503 5.5.1 Already authenticated"));
	fake_conn_free(&c);

	/* cancel, bad base64, unknown mechanism, authzid of someone else, temp failure */
	fake_conn_init(&c, &cfg, LISTEN_SUBMISSIONS, &smtp_proto_ops);
	c.tls_state = CONN_TLS_ON;
	fake_conn_feed_str(&c, "EHLO a\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\n"
	    "AUTH PLAIN Ym9iAGFsaWNlAGdvb2Q=\r\n");
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "334 \r\n") && testlib_has(out, "501 5.0.0 Authentication cancelled"));
	CHECK(testlib_has(out, "501 5.5.2 Cannot decode"));
	CHECK(testlib_has(out, "504 5.5.4"));
	CHECK(testlib_has(out, "535 5.7.8"));
	fake_conn_feed_str(&c, "AUTH PLAIN AGFsaWNlAHRlbXA=\r\n");	/* temp */
	CHECK(testlib_has((const char *)c.out.data, "454 4.7.0 Temporary authentication failure"));
	fake_conn_free(&c);

	/* three failures end the session */
	fake_conn_init(&c, &cfg, LISTEN_SUBMISSIONS, &smtp_proto_ops);
	c.tls_state = CONN_TLS_ON;
	fake_conn_feed_str(&c, "EHLO a\r\nAUTH PLAIN AGEAYg==\r\nAUTH PLAIN AGEAYg==\r\nAUTH PLAIN AGEAYg==\r\n");
	CHECK(testlib_has((const char *)c.out.data, "421 4.7.0 mx.example.test Too many authentication failures") &&
	    c.close_after_flush);
	fake_conn_free(&c);
}

/*
 * A BDAT refused before its chunk is read (wrong state, after a refused
 * RCPT, after a 530 MAIL) still owns its chunk: the chunk is dropped,
 * never run as commands (the smuggling of the review: RSET, MAIL, RCPT,
 * DATA hidden in the chunk of a refused BDAT).
 */
static void
test_refused_bdat_drops_its_chunk(void)
{
	static const char chunk[] = "RSET\r\nMAIL FROM:<ceo@bank.example>\r\nHELP\r\n";
	char line[64];
	struct conn c;
	const char *out;

	snprintf(line, sizeof(line), "BDAT %zu LAST\r\n", strlen(chunk));
	/* port 25: the only recipient refused (relay denied), then BDAT: 503 */
	out = run(LISTEN_SMTP, "EHLO a\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<x@remote.test>\r\n", &c);
	CHECK(testlib_has(out, "554 5.7.1 Relay access denied"));
	fake_conn_feed_str(&c, line);
	fake_conn_feed_str(&c, chunk);
	fake_conn_feed_str(&c, "NOOP\r\n");
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "503 5.5.1 Bad sequence of commands\r\n"));
	CHECK(testlib_count(out, "250 2.1.0") == 1);	/* the MAIL in the chunk never ran */
	CHECK(!testlib_has(out, "214 ") && testlib_count(out, "250 2.0.0 OK") == 1);	/* nor RSET, HELP; NOOP did */
	CHECK(c.in.len == 0);
	fake_conn_free(&c);

	/* the same with the chunk trickling in, pipelined after the line */
	out = run(LISTEN_SMTP, "EHLO a\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<x@remote.test>\r\n", &c);
	fake_conn_feed_str(&c, line);
	fake_conn_feed(&c, chunk, 3);
	fake_conn_feed(&c, chunk + 3, 20);
	fake_conn_feed_str(&c, chunk + 23);
	fake_conn_feed_str(&c, "NOOP\r\n");
	out = (const char *)c.out.data;
	CHECK(testlib_count(out, "250 2.1.0") == 1 && !testlib_has(out, "214 ") && testlib_count(out, "250 2.0.0 OK") == 1);
	fake_conn_free(&c);

	/* before EHLO, and in one write with its chunk */
	out = run(LISTEN_SMTP, "BDAT 6\r\nHELP\r\nNOOP\r\n", &c);
	CHECK(testlib_has(out, "503 5.5.1") && !testlib_has(out, "214 ") && testlib_has(out, "250 2.0.0 OK\r\n"));
	fake_conn_free(&c);

	/* submission without AUTH: MAIL 530, then BDAT 503; its chunk is dropped too */
	out = run(LISTEN_SUBMISSION, "EHLO a\r\nMAIL FROM:<a@example.test>\r\n", &c);
	CHECK(testlib_has(out, "530 5.7.0 Authentication required"));
	fake_conn_feed_str(&c, line);
	fake_conn_feed_str(&c, chunk);
	fake_conn_feed_str(&c, "NOOP\r\n");
	out = (const char *)c.out.data;
	CHECK(testlib_has(out, "503 5.5.1") && !testlib_has(out, "250 2.1.0") && !testlib_has(out, "214 "));
	CHECK(testlib_count(out, "250 2.0.0 OK") == 1);
	fake_conn_free(&c);

	/* a size that does not parse: nobody knows where the chunk ends, so the session ends */
	out = run(LISTEN_SMTP, "EHLO a\r\nBDAT 1x\r\nNOOP\r\n", &c);
	CHECK(testlib_has(out, "501 5.5.4 Syntax: BDAT size [LAST]; closing") && c.close_after_flush);
	CHECK(!testlib_has(out, "250 2.0.0 OK"));
	fake_conn_free(&c);
	out = run(LISTEN_SMTP, "BDAT\r\nNOOP\r\n", &c);
	CHECK(testlib_has(out, "501 5.5.4 Syntax: BDAT") && c.close_after_flush && !testlib_has(out, "250 2.0.0 OK"));
	fake_conn_free(&c);
	out = run(LISTEN_SMTP, "BDAT 99999999999999999999 LAST\r\n", &c);	/* over 2^64 */
	CHECK(testlib_has(out, "501 5.5.4 Syntax: BDAT") && c.close_after_flush);
	fake_conn_free(&c);
}

/* smtp.sender_must_match covers the null sender: nobody owns <> (postie.conf(5)) */
static void
test_null_sender_must_match(void)
{
	struct conn c;

	fake_conn_init(&c, &cfg, LISTEN_SUBMISSIONS, &smtp_proto_ops);
	c.tls_state = CONN_TLS_ON;
	c.ops->start(&c);
	fake_conn_feed_str(&c, "EHLO a\r\nAUTH PLAIN AGFsaWNlAGdvb2Q=\r\nMAIL FROM:<>\r\n");
	CHECK(testlib_has((const char *)c.out.data, "235 2.7.0"));
	CHECK(testlib_has((const char *)c.out.data, "553 5.7.1 Sender address not owned"));
	CHECK(!testlib_has((const char *)c.out.data, "250 2.1.0"));
	fake_conn_free(&c);

	/* with the check off the null sender is accepted, as any sender is */
	cfg.smtp.sender_must_match = false;
	fake_conn_init(&c, &cfg, LISTEN_SUBMISSIONS, &smtp_proto_ops);
	c.tls_state = CONN_TLS_ON;
	fake_conn_feed_str(&c, "EHLO a\r\nAUTH PLAIN AGFsaWNlAGdvb2Q=\r\nMAIL FROM:<>\r\n");
	CHECK(testlib_has((const char *)c.out.data, "250 2.1.0 Ok"));
	fake_conn_free(&c);
	cfg.smtp.sender_must_match = true;

	/* mail from other servers (no AUTH) keeps its null sender: bounces */
	CHECK(testlib_has(run(LISTEN_SMTP, "EHLO a\r\nMAIL FROM:<>\r\n", &c), "250 2.1.0 Ok"));
	fake_conn_free(&c);
}

int
main(void)
{
	fake_config_init(&cfg);
	test_basics();
	test_strict_lines();
	test_starttls_discards_pipelined();
	test_bad_command_limit();
	test_timeout_shutdown_busy();
	test_auth();
	test_refused_bdat_drops_its_chunk();
	test_null_sender_must_match();
	return tap_done();
}
