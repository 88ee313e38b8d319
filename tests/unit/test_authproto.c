/* auth/proto.c: the helper wire format, every length check, malformed frames. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/proto.h"
#include "core/err.h"
#include "tap.h"
#include "core/compat.h"

#define S(x) span_cstr(x)

/* A request body built by hand, so the decoder sees what the encoder would refuse. */
struct raw {
	unsigned char b[4 + AUTH_FRAME_MAX + 64];
	size_t len;
};

static void
put(struct raw *r, const void *p, size_t n)
{
	memcpy(r->b + r->len, p, n);
	r->len += n;
}

static void
put8(struct raw *r, unsigned v)
{
	unsigned char c = (unsigned char)v;
	put(r, &c, 1);
}

/* body: version, type, id, then the fields with the lengths given (which may lie). */
static struct span
body(struct raw *r, unsigned version, unsigned type, unsigned service_len, const char *service,
    unsigned rhost_len, const char *rhost, unsigned login_len, const void *login, size_t login_bytes,
    unsigned pw_len, const void *pw, size_t pw_bytes)
{
	r->len = 0;
	put8(r, version);
	put8(r, type);
	put(r, "\0\0\0\x2a", 4);
	put8(r, service_len);
	put(r, service, strlen(service));
	put8(r, rhost_len);
	put(r, rhost, strlen(rhost));
	put8(r, login_len);
	put(r, login, login_bytes);
	put8(r, pw_len >> 8);
	put8(r, pw_len & 255);
	put(r, pw, pw_bytes);
	return span_make(r->b, r->len);
}

static void
test_roundtrip(void)
{
	struct auth_request req;
	struct buf b;
	struct span bd;
	enum auth_result res;
	uint32_t id;
	size_t k;

	buf_init(&b, 0);
	CHECK(auth_proto_encode_request(&b, 7, S("postie"), S("192.0.2.7"), S("bob"), S("pw")) == 0);
	CHECK(auth_proto_frame(buf_span(&b), &bd) == (long)b.len);
	CHECK(auth_proto_decode_request(bd, &req) == 0 && req.id == 7 && span_eq(req.login, "bob") &&
	    span_eq(req.password, "pw") && span_eq(req.service, "postie") && span_eq(req.rhost, "192.0.2.7"));
	/* every prefix of a frame asks for more; two frames back to back split */
	for (k = 0; k < b.len && auth_proto_frame(span_make(b.data, k), &bd) == 0; k++)
		;
	CHECK_MSG(k == b.len, "every prefix of a frame needs more bytes");
	CHECK(auth_proto_encode_request(&b, 8, S("postie"), S(""), S("alice"), S("")) == 0);
	CHECK(auth_proto_frame(buf_span(&b), &bd) == 4 + 6 + 1 + 6 + 1 + 9 + 1 + 3 + 2 + 2);
	buf_consume(&b, 4 + 6 + 1 + 6 + 1 + 9 + 1 + 3 + 2 + 2);
	CHECK(auth_proto_frame(buf_span(&b), &bd) == (long)b.len && auth_proto_decode_request(bd, &req) == 0 &&
	    req.id == 8 && req.rhost.len == 0 && req.password.len == 0 && span_eq(req.login, "alice"));
	/* 8-bit logins (UTF-8) pass */
	buf_reset(&b);
	CHECK(auth_proto_encode_request(&b, 9, S("postie"), S("::1"), S("j\xc3\xb6rg"), S("p\xc3\xa4ss")) == 0);
	CHECK(auth_proto_frame(buf_span(&b), &bd) > 0 && auth_proto_decode_request(bd, &req) == 0);

	buf_reset(&b);
	CHECK(auth_proto_encode_reply(&b, 0xfffffffeu, AUTH_RESULT_TEMPFAIL) == 0);
	CHECK(auth_proto_frame(buf_span(&b), &bd) == 11 && auth_proto_decode_reply(bd, &id, &res) == 0 &&
	    id == 0xfffffffeu && res == AUTH_RESULT_TEMPFAIL);
	buf_free(&b);
}

/* The wire format byte for byte: what both sides have sent since version 1. */
static void
test_wire_bytes(void)
{
	static const unsigned char request[] =
	    "\x00\x00\x00\x21"		/* body length 33 */
	    "\x01" "Q" "\x00\x01\x02\x03"	/* version, type, id 0x00010203 */
	    "\x06" "postie" "\x09" "192.0.2.7" "\x03" "bob" "\x00\x04" "p\xc3\xa4w";
	static const unsigned char reply[] = "\x00\x00\x00\x07" "\x01" "R" "\xfe\xdc\xba\x98" "\x02";
	struct auth_request req;
	struct buf b;
	struct span bd;
	enum auth_result res;
	uint32_t id;

	buf_init(&b, 0);
	CHECK(auth_proto_encode_request(&b, 0x00010203u, S("postie"), S("192.0.2.7"), S("bob"), S("p\xc3\xa4w")) == 0 &&
	    b.len == sizeof(request) - 1 && memcmp(b.data, request, b.len) == 0);
	buf_reset(&b);
	CHECK(auth_proto_encode_reply(&b, 0xfedcba98u, AUTH_RESULT_FAIL) == 0 && b.len == sizeof(reply) - 1 &&
	    memcmp(b.data, reply, b.len) == 0);
	buf_free(&b);
	CHECK(auth_proto_frame(span_make(request, sizeof(request) - 1), &bd) == (long)sizeof(request) - 1 &&
	    auth_proto_decode_request(bd, &req) == 0 && req.id == 0x00010203u && span_eq(req.service, "postie") &&
	    span_eq(req.rhost, "192.0.2.7") && span_eq(req.login, "bob") && span_eq(req.password, "p\xc3\xa4w"));
	CHECK(auth_proto_frame(span_make(reply, sizeof(reply) - 1), &bd) == 11 &&
	    auth_proto_decode_reply(bd, &id, &res) == 0 && id == 0xfedcba98u && res == AUTH_RESULT_FAIL);
}

static void
test_encode_limits(void)
{
	static char login[AUTH_LOGIN_MAX + 2], pw[AUTH_PASSWORD_MAX + 2], svc[AUTH_SERVICE_MAX + 2],
	    rhost[AUTH_RHOST_MAX + 2];
	static const struct {
		const char *service, *rhost, *login;
		struct span pw;
		const char *what;
	} bad[] = {
		{ "postie", "", "", { (const unsigned char *)"x", 1 }, "empty login" },
		{ "postie", "", "b\nb", { (const unsigned char *)"x", 1 }, "LF in login" },
		{ "postie", "", "b\rb", { (const unsigned char *)"x", 1 }, "CR in login" },
		{ "postie", "", "b\x7f", { (const unsigned char *)"x", 1 }, "DEL in login" },
		{ "postie", "", "b\tb", { (const unsigned char *)"x", 1 }, "TAB in login" },
		{ "postie", "", "../../etc/x", { (const unsigned char *)"x", 1 }, "slash in login" },
		{ "postie", "", "/", { (const unsigned char *)"x", 1 }, "login of a slash" },
		{ "postie", "", "bob", { (const unsigned char *)"p\0w", 3 }, "NUL in password" },
		{ "", "", "bob", { (const unsigned char *)"x", 1 }, "empty service" },
		{ "../etc", "", "bob", { (const unsigned char *)"x", 1 }, "slash in service" },
		{ ".postie", "", "bob", { (const unsigned char *)"x", 1 }, "service starting with a dot" },
		{ "Postie", "", "bob", { (const unsigned char *)"x", 1 }, "upper case service" },
		{ "postie", "a b", "bob", { (const unsigned char *)"x", 1 }, "space in rhost" },
		{ "postie", "a\x80", "bob", { (const unsigned char *)"x", 1 }, "8-bit rhost" },
	};
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_MSG(auth_proto_encode_request(&b, 1, S(bad[i].service), S(bad[i].rhost), S(bad[i].login),
		    bad[i].pw) == ERR_SYNTAX && b.len == 0, bad[i].what);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), span_make("b\0b", 3), S("x")) == ERR_SYNTAX);

	memset(login, 'a', AUTH_LOGIN_MAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S(login), S("")) == 0);	/* at the limit */
	login[AUTH_LOGIN_MAX] = 'a';
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S(login), S("")) == ERR_SYNTAX);
	memset(pw, 'p', AUTH_PASSWORD_MAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S("bob"), S(pw)) == 0);
	pw[AUTH_PASSWORD_MAX] = 'p';
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S("bob"), S(pw)) == ERR_SYNTAX);
	memset(svc, 's', AUTH_SERVICE_MAX);
	CHECK(auth_proto_encode_request(&b, 1, S(svc), S(""), S("bob"), S("")) == 0);
	svc[AUTH_SERVICE_MAX] = 's';
	CHECK(auth_proto_encode_request(&b, 1, S(svc), S(""), S("bob"), S("")) == ERR_SYNTAX);
	memset(rhost, '1', AUTH_RHOST_MAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(rhost), S("bob"), S("")) == 0);
	rhost[AUTH_RHOST_MAX] = '1';
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(rhost), S("bob"), S("")) == ERR_SYNTAX);
	/* a frame with every field at its maximum is the largest one allowed */
	buf_reset(&b);
	login[AUTH_LOGIN_MAX] = pw[AUTH_PASSWORD_MAX] = svc[AUTH_SERVICE_MAX] = rhost[AUTH_RHOST_MAX] = '\0';
	CHECK(auth_proto_encode_request(&b, 1, S(svc), S(rhost), S(login), S(pw)) == 0 &&
	    b.len == 4 + AUTH_FRAME_MAX);
	buf_free(&b);
}

static void
test_service_name(void)
{
	CHECK(auth_proto_valid_service(S("postie")) && auth_proto_valid_service(S("mail-2.x_y")));
	CHECK(!auth_proto_valid_service(S("")) && !auth_proto_valid_service(S("../postie")));
	CHECK(!auth_proto_valid_service(S("pam.d/other")) && !auth_proto_valid_service(S("/etc/pam.d/other")));
	CHECK(!auth_proto_valid_service(S(".")) && !auth_proto_valid_service(S("..")));
	CHECK(!auth_proto_valid_service(S("post ie")) && !auth_proto_valid_service(S("postie\n")));
}

static void
test_decode_malformed(void)
{
	static unsigned char login[AUTH_LOGIN_MAX + 1], pw[AUTH_PASSWORD_MAX + 1];
	struct auth_request req;
	struct raw r;
	struct span bd;
	enum auth_result res;
	uint32_t id;

	memset(login, 'l', sizeof(login));
	memset(pw, 'p', sizeof(pw));
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == 0 && req.id == 42);
	CHECK(auth_proto_decode_request(span_head(bd, bd.len - 1), &req) == ERR_SYNTAX);	/* short */
	put8(&r, 'x');
	CHECK(auth_proto_decode_request(span_make(r.b, r.len), &req) == ERR_SYNTAX);	/* trailing byte */
	bd = body(&r, 2, 'Q', 6, "postie", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* version */
	bd = body(&r, 1, 'R', 6, "postie", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* a reply, not a request */
	bd = body(&r, 1, 'Q', 7, "postie", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* service length lies */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 4, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* login length lies */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "bob", 3, 3, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* password length too long */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "bob", 3, 1, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* too short: a byte trails */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 0, "", 0, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* empty login */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "b\0b", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* NUL in login */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "b\x1b" "b", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* ESC in login */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "b/b", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* '/' in login */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 4, "b\\.b", 4, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == 0);	/* a backslash or a dot is no path */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "bob", 3, 2, "p\0", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* NUL in password */
	bd = body(&r, 1, 'Q', 6, "pos/ie", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* path in service */
	bd = body(&r, 1, 'Q', 0, "", 0, "", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* empty service */
	bd = body(&r, 1, 'Q', 6, "postie", 3, "a\nb", 3, "bob", 3, 2, "pw", 2);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* LF in rhost */
	/* at the limits, and one past */
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", AUTH_LOGIN_MAX, login, AUTH_LOGIN_MAX, AUTH_PASSWORD_MAX, pw,
	    AUTH_PASSWORD_MAX);
	CHECK(auth_proto_decode_request(bd, &req) == 0 && req.login.len == AUTH_LOGIN_MAX &&
	    req.password.len == AUTH_PASSWORD_MAX);
	bd = body(&r, 1, 'Q', 6, "postie", 0, "", 3, "bob", 3, AUTH_PASSWORD_MAX + 1, pw, AUTH_PASSWORD_MAX + 1);
	CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* password 1025 */
	{
		char svc[AUTH_SERVICE_MAX + 2], rh[AUTH_RHOST_MAX + 2];

		memset(svc, 's', sizeof(svc) - 1);
		svc[sizeof(svc) - 1] = '\0';
		memset(rh, '1', sizeof(rh) - 1);
		rh[sizeof(rh) - 1] = '\0';
		bd = body(&r, 1, 'Q', AUTH_SERVICE_MAX + 1, svc, 0, "", 3, "bob", 3, 0, "", 0);
		CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* service 65 */
		bd = body(&r, 1, 'Q', 6, "postie", AUTH_RHOST_MAX + 1, rh, 3, "bob", 3, 0, "", 0);
		CHECK(auth_proto_decode_request(bd, &req) == ERR_SYNTAX);	/* rhost 65 */
	}
	/* login 256 cannot even be stated in one length byte; a frame past the maximum is refused */
	CHECK(auth_proto_frame(span_make("\0\0\0", 3), &bd) == 0);
	CHECK(auth_proto_frame(span_make("\xff\xff\xff\xff", 4), &bd) == ERR_SYNTAX);
	CHECK(auth_proto_frame(span_make("\0\0\0\6xxxxxx", 10), &bd) == ERR_SYNTAX);	/* below a reply's size */
	{
		unsigned char hdr[4] = { 0, 0, (AUTH_FRAME_MAX + 1) >> 8, (AUTH_FRAME_MAX + 1) & 255 };
		unsigned char ok[4] = { 0, 0, AUTH_FRAME_MAX >> 8, AUTH_FRAME_MAX & 255 };

		CHECK(auth_proto_frame(span_make(hdr, 4), &bd) == ERR_SYNTAX);
		CHECK(auth_proto_frame(span_make(ok, 4), &bd) == 0);	/* allowed: wait for the body */
	}
	/* replies */
	CHECK(auth_proto_decode_reply(span_make("\1R\0\0\0\1\1", 7), &id, &res) == 0 && id == 1 &&
	    res == AUTH_RESULT_OK);
	CHECK(auth_proto_decode_reply(span_make("\1R\0\0\0\1\0", 7), &id, &res) == ERR_SYNTAX);	/* result 0 */
	CHECK(auth_proto_decode_reply(span_make("\1R\0\0\0\1\4", 7), &id, &res) == ERR_SYNTAX);	/* result 4 */
	CHECK(auth_proto_decode_reply(span_make("\1Q\0\0\0\1\1", 7), &id, &res) == ERR_SYNTAX);
	CHECK(auth_proto_decode_reply(span_make("\2R\0\0\0\1\1", 7), &id, &res) == ERR_SYNTAX);
	CHECK(auth_proto_decode_reply(span_make("\1R\0\0\0\1\1x", 8), &id, &res) == ERR_SYNTAX);
	CHECK(auth_proto_decode_reply(span_make("\1R\0\0\0\1", 6), &id, &res) == ERR_SYNTAX);
}

int
main(void)
{
	test_roundtrip();
	test_wire_bytes();
	test_encode_limits();
	test_service_name();
	test_decode_malformed();
	return tap_done();
}
