/* auth/sasl.c: PLAIN and LOGIN, strict base64, limits, cancel. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "auth/proto.h"
#include "auth/sasl.h"
#include "core/err.h"
#include "tap.h"
#include "core/compat.h"

#define S(x) span_cstr(x)

/* Standard base64 of n raw bytes into out (NUL-terminated). */
static void
b64(const void *raw, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = raw;
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? abc[v & 63] : '=';
	}
	out[o] = '\0';
}

static void
test_base64(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *out;
	} cases[] = {
		{ "", 0, "" },
		{ "Zg==", 0, "f" },
		{ "Zm8=", 0, "fo" },
		{ "Zm9v", 0, "foo" },
		{ "Zm9vYmFy", 0, "foobar" },
		{ "Zm9vYg==", 0, "foob" },
		{ "Zg", ERR_SYNTAX, NULL },		/* padding required */
		{ "Zg=", ERR_SYNTAX, NULL },
		{ "Zg===", ERR_SYNTAX, NULL },
		{ "Z===", ERR_SYNTAX, NULL },		/* three pads */
		{ "====", ERR_SYNTAX, NULL },
		{ "Zg==Zg==", ERR_SYNTAX, NULL },	/* data after padding */
		{ "Zm=v", ERR_SYNTAX, NULL },		/* pad inside */
		{ "Zh==", ERR_SYNTAX, NULL },		/* non-zero bits dropped by padding */
		{ "Zm9=", ERR_SYNTAX, NULL },
		{ "Zm9v\r\n", ERR_SYNTAX, NULL },	/* no line breaks */
		{ "Zm9 v", ERR_SYNTAX, NULL },		/* no spaces */
		{ " Zm9v", ERR_SYNTAX, NULL },
		{ "Zm9v ", ERR_SYNTAX, NULL },
		{ "Zm9\tv", ERR_SYNTAX, NULL },
		{ "Zm9-", ERR_SYNTAX, NULL },		/* base64url is another alphabet */
		{ "Zm9_", ERR_SYNTAX, NULL },
		{ "Zm9\xc3", ERR_SYNTAX, NULL },	/* 8-bit */
		{ "Zm*v", ERR_SYNTAX, NULL },
	};
	struct buf out;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		buf_init(&out, 64);
		rc = sasl_base64_decode(S(cases[i].in), &out);
		CHECK_MSG(rc == cases[i].rc && (!cases[i].out || span_eq(buf_span(&out), cases[i].out)), cases[i].in);
		buf_free(&out);
	}
	buf_init(&out, 64);
	CHECK(sasl_base64_decode(span_make("Zm9\0", 4), &out) == ERR_SYNTAX);	/* NUL */
	buf_free(&out);
	buf_init(&out, 5);
	CHECK(sasl_base64_decode(S("Zm9vYmFy"), &out) == ERR_LIMIT);	/* 6 bytes into a max of 5 */
	buf_free(&out);
}

/* One exchange: mechanism, optional initial response, then lines; the last status and err. */
static enum sasl_status
run(struct sasl *s, const char *mech, const char *ir, const char *const *lines)
{
	enum sasl_status st = sasl_start(s, S(mech), ir != NULL, S(ir ? ir : ""));

	while (st == SASL_CONTINUE && lines && *lines)
		st = sasl_step(s, S(*lines++));
	return st;
}

static void
test_exchanges(void)
{
	static const struct {
		const char *mech, *ir;	/* ir NULL: none */
		const char *lines[3];
		enum sasl_status want;
		int err;
		const char *login, *password;
		const char *what;
	} cases[] = {
		{ "PLAIN", "AGJvYgBwdw==", { NULL }, SASL_DONE, 0, "bob", "pw", "PLAIN initial response" },
		{ "plain", "Ym9iAGJvYgBwdw==", { NULL }, SASL_DONE, 0, "bob", "pw", "authzid equal to the login" },
		{ "PLAIN", NULL, { "AGJvYgBwdw==" }, SASL_DONE, 0, "bob", "pw", "PLAIN after an empty challenge" },
		{ "PLAIN", "AGJvYgA=", { NULL }, SASL_DONE, 0, "bob", "", "empty password (PAM decides)" },
		{ "PLAIN", "YWxpY2UAYm9iAHB3", { NULL }, SASL_BAD_AUTHZ, ERR_AUTH, NULL, NULL, "authzid alice for bob" },
		{ "PLAIN", "Qk9CAGJvYgBwdw==", { NULL }, SASL_BAD_AUTHZ, ERR_AUTH, NULL, NULL, "authzid differs in case" },
		{ "PLAIN", "AGJvYnB3", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "one NUL" },
		{ "PLAIN", "Ym9icHc=", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "no NUL" },
		{ "PLAIN", "AGIAYgBwdw==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "three NULs" },
		{ "PLAIN", "AABwdw==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "empty login" },
		{ "PLAIN", "AGIKYgBwdw==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "LF in login" },
		{ "PLAIN", "AGJvYgBwdw=", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "bad padding" },
		{ "PLAIN", "AGJvYgBwdw==\r", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "CR" },
		{ "PLAIN", "AGJv YgBwdw==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "space" },
		{ "PLAIN", "AGJvYgBwdx==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "non-canonical" },
		{ "PLAIN", "AGJvYgBwd!==", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "invalid character" },
		{ "PLAIN", "*", { NULL }, SASL_CANCELLED, 0, NULL, NULL, "PLAIN cancelled at once" },
		{ "PLAIN", NULL, { "*" }, SASL_CANCELLED, 0, NULL, NULL, "PLAIN cancelled" },
		{ "PLAIN", "=", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "PLAIN empty response" },
		{ "PLAIN", NULL, { "" }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "PLAIN empty line" },
		{ "LOGIN", NULL, { "Ym9i", "cHc=" }, SASL_DONE, 0, "bob", "pw", "LOGIN in two steps" },
		{ "LOGIN", "Ym9i", { "cHc=" }, SASL_DONE, 0, "bob", "pw", "LOGIN with the user as initial response" },
		{ "login", NULL, { "Ym9i", "=" }, SASL_DONE, 0, "bob", "", "LOGIN empty password" },
		{ "LOGIN", NULL, { "*" }, SASL_CANCELLED, 0, NULL, NULL, "LOGIN cancelled at the user" },
		{ "LOGIN", NULL, { "Ym9i", "*" }, SASL_CANCELLED, 0, NULL, NULL, "LOGIN cancelled at the password" },
		{ "LOGIN", "*", { NULL }, SASL_CANCELLED, 0, NULL, NULL, "LOGIN cancelled at once" },
		{ "LOGIN", NULL, { "AGJvYg==" }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "NUL in the LOGIN user" },
		{ "LOGIN", NULL, { "=" }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "empty LOGIN user" },
		{ "LOGIN", NULL, { "Ym9i", "cAB3" }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "NUL in the LOGIN password" },
		{ "LOGIN", NULL, { "Ym9i", "cHc" }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "LOGIN password bad base64" },
		{ "LOGIN", "Ym9", { NULL }, SASL_BAD_SYNTAX, ERR_SYNTAX, NULL, NULL, "LOGIN initial response bad" },
		{ "CRAM-MD5", NULL, { NULL }, SASL_BAD_MECH, 0, NULL, NULL, "unknown mechanism" },
		{ "PLAINX", NULL, { NULL }, SASL_BAD_MECH, 0, NULL, NULL, "mechanism prefix" },
		{ "", NULL, { NULL }, SASL_BAD_MECH, 0, NULL, NULL, "no mechanism" },
	};
	struct sasl s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sasl_status st;

		sasl_init(&s);
		st = run(&s, cases[i].mech, cases[i].ir, cases[i].lines);
		CHECK_MSG(st == cases[i].want && s.err == cases[i].err &&
		    (!cases[i].login || (span_eq(buf_span(&s.login), cases[i].login) &&
		    span_eq(buf_span(&s.password), cases[i].password))) &&
		    (st == SASL_DONE || (s.login.len == 0 && s.password.len == 0)), cases[i].what);
		sasl_free(&s);
	}

	/* challenges: PLAIN's is empty, LOGIN's are "Username:" and "Password:" */
	sasl_init(&s);
	CHECK(sasl_start(&s, S("PLAIN"), false, S("")) == SASL_CONTINUE && strcmp(s.challenge, "") == 0);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && strcmp(s.challenge, "VXNlcm5hbWU6") == 0);
	CHECK(sasl_step(&s, S("Ym9i")) == SASL_CONTINUE && strcmp(s.challenge, "UGFzc3dvcmQ6") == 0);
	CHECK(sasl_step(&s, S("cHc=")) == SASL_DONE);
	/* the exchange is over: more lines are refused; a new start wipes the old credentials */
	CHECK(sasl_step(&s, S("cHc=")) == SASL_BAD_SYNTAX && s.err == ERR_STATE);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && s.login.len == 0 && s.password.len == 0);
	sasl_free(&s);
}

static void
test_limits(void)
{
	static unsigned char raw[3 * SASL_LINE_MAX];
	static char enc[2 * SASL_LINE_MAX];
	struct sasl s;
	size_t n;

	/* PLAIN: login at 255 and 256, password at 1024 and 1025, authzid at 255 and 256 */
	memset(raw, 'l', sizeof(raw));
	raw[0] = '\0';
	raw[1 + AUTH_LOGIN_MAX] = '\0';
	memcpy(raw + 2 + AUTH_LOGIN_MAX, "pw", 2);
	b64(raw, AUTH_LOGIN_MAX + 4, enc);
	sasl_init(&s);
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_DONE && s.login.len == AUTH_LOGIN_MAX);
	memset(raw, 'l', sizeof(raw));
	raw[0] = '\0';
	raw[2 + AUTH_LOGIN_MAX] = '\0';
	b64(raw, AUTH_LOGIN_MAX + 5, enc);
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);

	memset(raw, 'p', sizeof(raw));
	memcpy(raw, "\0bob\0", 5);
	b64(raw, 5 + AUTH_PASSWORD_MAX, enc);
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_DONE && s.password.len == AUTH_PASSWORD_MAX);
	b64(raw, 5 + AUTH_PASSWORD_MAX + 1, enc);
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);

	memset(raw, 'b', sizeof(raw));
	raw[AUTH_LOGIN_MAX] = '\0';
	raw[2 * AUTH_LOGIN_MAX + 1] = '\0';
	b64(raw, 2 * AUTH_LOGIN_MAX + 4, enc);	/* authzid == login, both 255 */
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_DONE);
	memset(raw, 'b', sizeof(raw));
	raw[AUTH_LOGIN_MAX + 1] = '\0';
	memcpy(raw + AUTH_LOGIN_MAX + 2, "bob\0pw", 6);
	b64(raw, AUTH_LOGIN_MAX + 8, enc);	/* authzid 256 */
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);

	/* LOGIN: user 256, password 1025 */
	memset(raw, 'u', sizeof(raw));
	b64(raw, AUTH_LOGIN_MAX, enc);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && sasl_step(&s, S(enc)) == SASL_CONTINUE);
	b64(raw, AUTH_PASSWORD_MAX, enc);
	CHECK(sasl_step(&s, S(enc)) == SASL_DONE && s.password.len == AUTH_PASSWORD_MAX);
	b64(raw, AUTH_LOGIN_MAX + 1, enc);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && sasl_step(&s, S(enc)) == SASL_BAD_SYNTAX &&
	    s.err == ERR_LIMIT);
	CHECK(sasl_start(&s, S("LOGIN"), true, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);
	CHECK(sasl_start(&s, S("LOGIN"), true, S("Ym9i")) == SASL_CONTINUE);
	b64(raw, AUTH_PASSWORD_MAX + 1, enc);
	CHECK(sasl_step(&s, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);

	/* a line of SASL_LINE_MAX octets is read (and then too long once decoded); one more is refused as is */
	n = SASL_LINE_MAX / 4 * 3;
	memset(raw, 'x', n);
	b64(raw, n, enc);
	CHECK(strlen(enc) == SASL_LINE_MAX);
	CHECK(sasl_start(&s, S("LOGIN"), true, S("Ym9i")) == SASL_CONTINUE &&
	    sasl_step(&s, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);
	enc[SASL_LINE_MAX] = 'A';
	enc[SASL_LINE_MAX + 1] = '\0';
	CHECK(sasl_start(&s, S("PLAIN"), false, S("")) == SASL_CONTINUE &&
	    sasl_step(&s, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);
	CHECK(sasl_start(&s, S("PLAIN"), true, S(enc)) == SASL_BAD_SYNTAX && s.err == ERR_LIMIT);
	sasl_free(&s);
}

int
main(void)
{
	test_base64();
	test_exchanges();
	test_limits();
	return tap_done();
}
