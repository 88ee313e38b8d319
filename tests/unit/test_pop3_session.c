#include "config.h"

#include <string.h>

#include "fake_conn.h"
#include "pop3/session.h"
#include "tap.h"

static struct config cfg;

static const char *
run(enum listen_proto proto, const char *input, struct conn *c)
{
	fake_conn_init(c, &cfg, proto, &pop3_proto_ops);
	c->ops->start(c);
	fake_conn_feed(c, input, strlen(input));
	return (const char *)c->out.data;
}

static bool
has(const char *out, const char *want)
{
	return out && strstr(out, want) != NULL;
}

static void
test_basics(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_POP3, "CAPA\r\nNOOP\r\nFOO\r\nCAPA x\r\nquit\r\n", &c);
	CHECK(strncmp(out, "+OK mx.example.test POP3 server ready\r\n", 39) == 0);
	CHECK(has(out, "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\nPIPELINING\r\n"
	    "IMPLEMENTATION postie\r\n.\r\n"));
	CHECK(has(out, "-ERR Command not valid in this state\r\n"));	/* NOOP before login */
	CHECK(has(out, "-ERR Unknown command\r\n"));
	CHECK(has(out, "-ERR Syntax error: no arguments allowed\r\n"));
	CHECK(has(out, "+OK postie POP3 server signing off\r\n") && c.close_after_flush);
	fake_conn_free(&c);

	out = run(LISTEN_POP3S, "CAPA\r\nSTLS\r\n", &c);	/* implicit TLS: no STLS */
	CHECK(!has(out, "STLS\r\nRESP") && has(out, "-ERR STLS not available\r\n"));
	fake_conn_free(&c);
}

static void
test_stls(void)
{
	struct conn c;
	const char *out;

	out = run(LISTEN_POP3, "STLS\r\nUSER alice\r\n", &c);
	CHECK(has(out, "+OK Begin TLS negotiation\r\n"));
	CHECK(c.tls_state == CONN_TLS_PENDING && c.in.len == 0);	/* pipelined USER dropped */
	fake_conn_tls_done(&c);
	buf_reset(&c.out);
	fake_conn_feed(&c, "CAPA\r\n", 6);
	CHECK(!has((const char *)c.out.data, "STLS"));
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
	CHECK(has(out, "-ERR Line too long\r\n") && has(out, "+OK Capability list follows"));
	fake_conn_free(&c);

	fake_conn_init(&c, &cfg, LISTEN_POP3, &pop3_proto_ops);
	fake_conn_feed(&c, "CA\0PA\r\n", 7);
	out = (const char *)c.out.data;
	CHECK(has(out, "-ERR Bad characters in command line\r\n"));
	fake_conn_free(&c);
	CHECK(has(pop3_proto_ops.busy_reply(&cfg), "-ERR [SYS/TEMP]"));
}

int
main(void)
{
	fake_config_init(&cfg);
	test_basics();
	test_stls();
	test_lines();
	return tap_done();
}
