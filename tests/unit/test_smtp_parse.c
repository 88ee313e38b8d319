#include "config.h"

#include <string.h>

#include "server/smtp/data.h"
#include "server/smtp/parse.h"
#include "storage/store.h"
#include "tap.h"

static void
test_mail(void)
{
	static const struct {
		const char *arg;
		enum smtp_parse_result want;
		const char *addr;
	} cases[] = {
		{ "<alice@Example.TEST>", SMTP_PARSE_OK, "alice@example.test" },
		{ " <alice@example.test>", SMTP_PARSE_OK, "alice@example.test" },
		{ "<>", SMTP_PARSE_OK, "" },
		{ "<\"john doe\"@example.test>", SMTP_PARSE_OK, "\"john doe\"@example.test" },
		{ "<\"a\\\"b\"@example.test>", SMTP_PARSE_OK, "\"a\\\"b\"@example.test" },
		{ "<@relay.test,@other.test:user@example.test>", SMTP_PARSE_OK, "user@example.test" },
		{ "<u@[192.0.2.1]>", SMTP_PARSE_OK, "u@[192.0.2.1]" },
		{ "<u@[IPv6:2001:db8::1]>", SMTP_PARSE_OK, "u@[ipv6:2001:db8::1]" },
		{ "<u@[300.1.1.1]>", SMTP_PARSE_SYNTAX, NULL },
		{ "<u@[IPv6:zz]>", SMTP_PARSE_SYNTAX, NULL },
		{ "alice@example.test", SMTP_PARSE_SYNTAX, NULL },
		{ "<alice@example.test", SMTP_PARSE_SYNTAX, NULL },
		{ "<alice>", SMTP_PARSE_SYNTAX, NULL },
		{ "<postmaster>", SMTP_PARSE_SYNTAX, NULL },	/* not a reverse-path */
		{ "<a..b@example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<.a@example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@-example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example-.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example..test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<a b@example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<a\rb@example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<\"a\rb\"@example.test>", SMTP_PARSE_SYNTAX, NULL },
		{ "<j\xc3\xb6rg@example.test>", SMTP_PARSE_UTF8, NULL },	/* 8-bit without SMTPUTF8 */
		{ "<j\xc3\xb6rg@example.test> SMTPUTF8", SMTP_PARSE_OK, "j\xc3\xb6rg@example.test" },
		{ "<j\xc3rg@example.test> SMTPUTF8", SMTP_PARSE_SYNTAX, NULL },	/* invalid UTF-8 */
		{ "<j\xc0\xafrg@example.test> SMTPUTF8", SMTP_PARSE_SYNTAX, NULL },	/* overlong */
		{ "<a@example.test> SIZE=1000", SMTP_PARSE_OK, "a@example.test" },
		{ "<a@example.test> SIZE=+1", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example.test> SIZE=-0", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example.test> SIZE=18446744073709551616", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example.test> SIZE=1 SIZE=2", SMTP_PARSE_PARAM, NULL },
		{ "<a@example.test> BODY=8BITMIME RET=HDRS ENVID=abc+2B1", SMTP_PARSE_OK, "a@example.test" },
		{ "<a@example.test> BODY=BINARYMIME", SMTP_PARSE_PARAM, NULL },
		{ "<a@example.test> ENVID=bad+zz", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example.test> FOO=bar", SMTP_PARSE_PARAM, NULL },
		{ "<a@example.test>  SIZE=1", SMTP_PARSE_SYNTAX, NULL },
		{ "<a@example.test>SIZE=1", SMTP_PARSE_SYNTAX, NULL },
		{ "", SMTP_PARSE_SYNTAX, NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_mail m;
		enum smtp_parse_result r = smtp_parse_mail(span_cstr(cases[i].arg), &m);

		CHECK_MSG(r == cases[i].want && (!cases[i].addr || strcmp(m.path.addr, cases[i].addr) == 0),
		    cases[i].arg);
	}
	{
		struct smtp_mail m;
		char big[400];

		/* a 64-octet local part is the limit (RFC 5321 4.5.3.1.1); 65 is one past */
		memset(big, 'a', sizeof(big));
		big[0] = '<';
		memcpy(big + 65, "@example.test>", 15);
		CHECK(smtp_parse_mail(span_cstr(big), &m) == SMTP_PARSE_OK && m.path.local_len == 64);
		memset(big, 'a', sizeof(big));
		big[0] = '<';
		memcpy(big + 66, "@example.test>", 15);
		CHECK(smtp_parse_mail(span_cstr(big), &m) == SMTP_PARSE_SYNTAX);
		CHECK(smtp_parse_mail(span_cstr("<a@b.test> SIZE=25"), &m) == 0 && m.size == 25);
		CHECK(smtp_parse_mail(span_make("<a@b\0.test>", 11), &m) == SMTP_PARSE_SYNTAX);
	}
}

static void
test_rcpt(void)
{
	struct smtp_rcpt r;

	CHECK(smtp_parse_rcpt(span_cstr("<postmaster>"), &r) == 0 && r.path.is_postmaster);
	CHECK(smtp_parse_rcpt(span_cstr("<PostMaster>"), &r) == 0 && r.path.is_postmaster);
	CHECK(smtp_parse_rcpt(span_cstr("<>"), &r) == SMTP_PARSE_SYNTAX);
	CHECK(smtp_parse_rcpt(span_cstr("<b@x.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@x.test"), &r) == 0 &&
	    r.notify == (STORE_NOTIFY_SUCCESS | STORE_NOTIFY_DELAY) && strcmp(r.orcpt, "rfc822;b@x.test") == 0);
	CHECK(smtp_parse_rcpt(span_cstr("<b@x.test> NOTIFY=NEVER"), &r) == 0 && r.notify == STORE_NOTIFY_NEVER);
	CHECK(smtp_parse_rcpt(span_cstr("<b@x.test> NOTIFY=NEVER,SUCCESS"), &r) == SMTP_PARSE_SYNTAX);
	CHECK(smtp_parse_rcpt(span_cstr("<b@x.test> NOTIFY=SUCCESS,"), &r) == SMTP_PARSE_SYNTAX);
	CHECK(smtp_parse_rcpt(span_cstr("<b@x.test> ORCPT=nosemicolon"), &r) == SMTP_PARSE_SYNTAX);
	/* the open-relay forms are recognised */
	CHECK(smtp_parse_rcpt(span_cstr("<user%remote.test@example.test>"), &r) == 0 && smtp_path_has_routing(&r.path));
	CHECK(smtp_parse_rcpt(span_cstr("<remote.test!user@example.test>"), &r) == 0 && smtp_path_has_routing(&r.path));
	CHECK(smtp_parse_rcpt(span_cstr("<\"user@remote.test\"@example.test>"), &r) == 0 &&
	    smtp_path_has_routing(&r.path));
	CHECK(smtp_parse_rcpt(span_cstr("<@example.test:user@remote.test>"), &r) == 0 &&
	    strcmp(r.path.addr, "user@remote.test") == 0 && !smtp_path_has_routing(&r.path));
	CHECK(span_eq(smtp_path_domain(&r.path), "remote.test"));
}

/* --- the DATA decoder --- */

static char got[4096];
static size_t ngot;

static void
emit(void *arg, const unsigned char *p, size_t n)
{
	(void)arg;
	if (ngot + n < sizeof(got)) {
		memcpy(got + ngot, p, n);
		ngot += n;
	}
}

/* Feed text whole or byte by byte; returns consumed bytes. */
static size_t
decode(const char *text, size_t len, bool bytewise, struct smtp_data *d, uint64_t max)
{
	size_t used = 0;

	ngot = 0;
	smtp_data_init(d, max, emit, NULL);
	if (!bytewise)
		return smtp_data_feed(d, (const unsigned char *)text, len);
	while (used < len && !smtp_data_done(d))
		used += smtp_data_feed(d, (const unsigned char *)text + used, 1);
	return used;
}

/* BDAT size [LAST] (RFC 3030 2): a refused BDAT's chunk is dropped by this size */
static void
test_bdat(void)
{
	static const struct {
		const char *arg;
		enum smtp_parse_result want;
		uint64_t size;
		bool last;
	} cases[] = {
		{ "0", SMTP_PARSE_OK, 0, false },
		{ "128 LAST", SMTP_PARSE_OK, 128, true },
		{ "7 last", SMTP_PARSE_OK, 7, true },
		{ "18446744073709551615", SMTP_PARSE_OK, UINT64_MAX, false },
		{ "18446744073709551616", SMTP_PARSE_SYNTAX, 0, false },	/* 2^64 */
		{ "", SMTP_PARSE_SYNTAX, 0, false },
		{ "+1", SMTP_PARSE_SYNTAX, 0, false },
		{ "-0", SMTP_PARSE_SYNTAX, 0, false },
		{ "1x", SMTP_PARSE_SYNTAX, 0, false },
		{ "1 ", SMTP_PARSE_SYNTAX, 0, false },
		{ "1  LAST", SMTP_PARSE_SYNTAX, 0, false },
		{ "1 LASTX", SMTP_PARSE_SYNTAX, 0, false },
		{ " 1", SMTP_PARSE_SYNTAX, 0, false },
		{ "LAST", SMTP_PARSE_SYNTAX, 0, false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t size = 0;
		bool last = false;
		enum smtp_parse_result r = smtp_parse_bdat(span_cstr(cases[i].arg), &size, &last);

		CHECK(r == cases[i].want);
		if (r == SMTP_PARSE_OK)
			CHECK(size == cases[i].size && last == cases[i].last);
	}
}

static void
test_data(void)
{
	static const struct {
		const char *in;
		bool ends;
		enum smtp_data_error err;
		const char *out;	/* NULL: not checked */
		size_t used;		/* 0: all */
	} cases[] = {
		{ "a\r\nb\r\n.\r\n", true, SMTP_DATA_OK, "a\r\nb\r\n", 0 },
		{ ".\r\n", true, SMTP_DATA_OK, "", 0 },
		{ "..x\r\n.\r\n", true, SMTP_DATA_OK, ".x\r\n", 0 },
		{ "a\r\n.\r\nQUIT\r\n", true, SMTP_DATA_OK, "a\r\n", 6 },	/* pipelined bytes left */
		/* smuggling: none of these ends the data, each is a bare CR/LF */
		{ "a\n.\nb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\n.\r\nb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\r.\rb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\r\n.\rb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\r\n.\nb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\r\n.\0\r\nb\r\n.\r\n", true, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\n.\n", false, SMTP_DATA_BARE_CR_LF, NULL, 0 },
		{ "a\r\n.\r", false, SMTP_DATA_OK, NULL, 0 },
	};
	struct smtp_data d;
	size_t i;
	int mode;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);

		if (i == 9)
			len = 13;	/* the case with a NUL */
		for (mode = 0; mode < 2; mode++) {
			size_t used = decode(cases[i].in, len, mode, &d, 1 << 20);

			CHECK_MSG(smtp_data_done(&d) == cases[i].ends && d.error == cases[i].err &&
			    used == (cases[i].used ? cases[i].used : len) &&
			    (!cases[i].out || (ngot == strlen(cases[i].out) && memcmp(got, cases[i].out, ngot) == 0)),
			    cases[i].in);
		}
	}
	/* the size limit: exactly at it, and one past */
	decode("abc\r\n.\r\n", 8, false, &d, 5);
	CHECK(smtp_data_done(&d) && d.error == SMTP_DATA_OK);
	decode("abcd\r\n.\r\n", 9, false, &d, 5);
	CHECK(smtp_data_done(&d) && d.error == SMTP_DATA_TOO_BIG);
	/* the line limit: 1000 octets with CRLF, and 1001 */
	{
		static char line[1100];

		memset(line, 'x', sizeof(line));
		memcpy(line + 998, "\r\n.\r\n", 6);
		decode(line, 1003, false, &d, 1 << 20);
		CHECK(smtp_data_done(&d) && d.error == SMTP_DATA_OK);
		memset(line, 'x', sizeof(line));
		memcpy(line + 999, "\r\n.\r\n", 6);
		decode(line, 1004, false, &d, 1 << 20);
		CHECK(smtp_data_done(&d) && d.error == SMTP_DATA_LINE_TOO_LONG);
	}
	/* header facts */
	decode("Subject: x\r\nmessage-ID: <a@b>\r\n\r\nDate: not a header\r\n.\r\n", 55, false, &d, 1 << 20);
	CHECK(d.has_message_id && !d.has_date && d.headers == 2 && !d.in_headers);
	decode("DATE: x\r\n \tfolded\r\n\r\n\xc3\xa9\r\n.\r\n", 30, true, &d, 1 << 20);
	CHECK(d.has_date && !d.has_message_id && d.headers == 1 && d.saw_8bit);
}

int
main(void)
{
	test_mail();
	test_rcpt();
	test_bdat();
	test_data();
	return tap_done();
}
