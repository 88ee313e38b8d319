#include "config.h"

#include <string.h>

#include "server/delivery/reply.h"
#include "tap.h"

/* Read every reply in text; returns the last result, fills *rep with the last reply. */
static enum smtp_reply_result
read_all(const char *text, size_t len, struct smtp_reply *rep, int *nreplies)
{
	struct smtp_reply_reader r;
	enum smtp_reply_result res = SMTP_REPLY_MORE;
	struct buf in;
	size_t used;

	*nreplies = 0;
	memset(rep, 0, sizeof(*rep));
	buf_init(&in, 0);
	buf_append(&in, text, len);
	smtp_reply_reader_init(&r);
	/* the result of the last call that consumed input */
	while (in.len && res != SMTP_REPLY_BAD) {
		struct smtp_reply got;
		enum smtp_reply_result r1 = smtp_reply_read(&r, &in, &used, &got);

		if (!used)
			break;
		res = r1;
		buf_consume(&in, used);
		if (res == SMTP_REPLY_DONE) {
			buf_free(&rep->text);
			*rep = got;
			++*nreplies;
		}
	}
	smtp_reply_reader_free(&r);
	buf_free(&in);
	return res;
}

#define T(s) s, sizeof(s) - 1

int
main(void)
{
	struct smtp_reply rep;
	char many[SMTP_REPLY_LINES_MAX * 10 + 16], longline[600];
	int n, i;

	CHECK(read_all(T("220 mx.test ESMTP\r\n"), &rep, &n) == SMTP_REPLY_DONE && n == 1 &&
	    rep.code == 220 && span_eq(buf_span(&rep.text), "mx.test ESMTP"));
	buf_free(&rep.text);
	CHECK(read_all(T("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n"), &rep, &n) ==
	    SMTP_REPLY_DONE && n == 1 && rep.nlines == 3 &&
	    span_eq(buf_span(&rep.text), "mx.test\nPIPELINING\nSIZE 100"));
	buf_free(&rep.text);
	CHECK(read_all(T("250\r\n"), &rep, &n) == SMTP_REPLY_DONE && rep.code == 250);
	buf_free(&rep.text);
	CHECK(read_all(T("250 ok\r\n354 go\r\n"), &rep, &n) == SMTP_REPLY_DONE && n == 2 &&
	    rep.code == 354);	/* pipelined replies come one at a time */
	buf_free(&rep.text);
	CHECK(read_all(T("250-a\r\n251 b\r\n"), &rep, &n) == SMTP_REPLY_BAD);	/* mixed codes */
	CHECK(read_all(T("250 a\n"), &rep, &n) == SMTP_REPLY_BAD);		/* bare LF */
	CHECK(read_all(T("25 a\r\n"), &rep, &n) == SMTP_REPLY_BAD);
	CHECK(read_all(T("650 a\r\n"), &rep, &n) == SMTP_REPLY_BAD);
	CHECK(read_all(T("250xa\r\n"), &rep, &n) == SMTP_REPLY_BAD);
	CHECK(read_all(T("2\0000 a\r\n"), &rep, &n) == SMTP_REPLY_BAD);
	CHECK(read_all(T("250-a\r\n250-b"), &rep, &n) == SMTP_REPLY_MORE && n == 0);

	/* the line-count bound: exactly at it is fine, one more is refused */
	many[0] = '\0';
	for (i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		memcpy(many + strlen(many), "250-x\r\n", 8);
	memcpy(many + strlen(many), "250 x\r\n", 8);
	CHECK(read_all(many, strlen(many), &rep, &n) == SMTP_REPLY_DONE && rep.nlines == SMTP_REPLY_LINES_MAX);
	buf_free(&rep.text);
	memmove(many + 7, many, strlen(many) + 1);
	memcpy(many, "250-x\r\n", 7);
	CHECK(read_all(many, strlen(many), &rep, &n) == SMTP_REPLY_BAD);

	/* the line-length bound: 512 with CRLF is fine, 513 is not */
	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "250 ", 4);
	memcpy(longline + 510, "\r\n", 2);
	CHECK(read_all(longline, 512, &rep, &n) == SMTP_REPLY_DONE);
	buf_free(&rep.text);
	memcpy(longline + 510, "a\r\n", 3);
	CHECK(read_all(longline, 513, &rep, &n) == SMTP_REPLY_BAD);
	return tap_done();
}
