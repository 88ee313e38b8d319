#include "config.h"

#include <string.h>

#include "auth/proto.h"
#include "auth/sasl.h"
#include "core/err.h"
#include "core/compat.h"

/* "Username:" and "Password:" in base64 (the LOGIN mechanism's prompts). */
#define LOGIN_PROMPT_USER "VXNlcm5hbWU6"
#define LOGIN_PROMPT_PASS "UGFzc3dvcmQ6"

static const signed char b64[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
	['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
	['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
	['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};	/* value + 1; 0 = not in the alphabet */

int
sasl_base64_encode(const void *p, size_t n, struct buf *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *in = p;
	size_t i;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		    (i + 2 < n ? in[i + 2] : 0);
		char q[4] = { alphabet[v >> 18], alphabet[(v >> 12) & 63],
			i + 1 < n ? alphabet[(v >> 6) & 63] : '=', i + 2 < n ? alphabet[v & 63] : '=' };

		buf_append(out, q, 4);
	}
	return out->err;
}

int
sasl_base64_decode(struct span in, struct buf *out)
{
	size_t i;

	if (in.len % 4)
		return ERR_SYNTAX;
	for (i = 0; i < in.len; i += 4) {
		unsigned v[4], k, pad = 0;
		unsigned char bytes[3];

		for (k = 0; k < 4; k++) {
			unsigned char c = in.p[i + k];

			if (c == '=' && i + 4 == in.len && k >= 2) {
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad || !b64[c])
				return ERR_SYNTAX;	/* outside the alphabet, or data after '=' */
			v[k] = (unsigned)b64[c] - 1;
		}
		/* canonical encoding only: the bits dropped by padding must be zero */
		if ((pad == 2 && (v[1] & 15)) || (pad == 1 && (v[2] & 3)))
			return ERR_SYNTAX;
		bytes[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		bytes[1] = (unsigned char)(v[1] << 4 | v[2] >> 2);
		bytes[2] = (unsigned char)(v[2] << 6 | v[3]);
		if (buf_append(out, bytes, 3 - pad))
			return ERR_LIMIT;
	}
	return 0;
}

void
sasl_init(struct sasl *s)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->login, AUTH_LOGIN_MAX);
	buf_init(&s->password, AUTH_PASSWORD_MAX);
	s->login.secret = s->password.secret = true;
}

void
sasl_free(struct sasl *s)
{
	buf_free(&s->login);
	buf_free(&s->password);
	s->step = 0;
}

/* Empty a secret buf (buf_reset wipes what it held) and clear its error. */
static void
clear(struct buf *b)
{
	buf_reset(b);
	b->err = 0;
}

/* A login: non-empty, no NUL, no control characters (the helper checks it again). */
static int
check_login(const struct buf *b)
{
	size_t i;

	if (!b->len)
		return ERR_SYNTAX;
	for (i = 0; i < b->len; i++)
		if (b->data[i] < 0x20 || b->data[i] == 0x7f)
			return ERR_SYNTAX;
	return 0;
}

/* One response: "=" is empty (RFC 4954 section 4), otherwise strict base64. */
static int
decode_into(struct span line, struct buf *out)
{
	clear(out);
	if (line.len > SASL_LINE_MAX)
		return ERR_LIMIT;	/* RFC 4954 section 4 */
	if (line.len == 1 && line.p[0] == '=')
		return 0;
	return sasl_base64_decode(line, out);
}

/* PLAIN (RFC 4616 section 2): [authzid] NUL authcid NUL passwd */
static int
plain(struct sasl *s, struct span resp)
{
	struct buf raw;
	struct span all, authz, authc, pass;
	long nul1, nul2;
	int rc;

	/* authzid and authcid up to a login each, the password, two NULs */
	buf_init(&raw, AUTH_LOGIN_MAX * 2 + AUTH_PASSWORD_MAX + 2);
	raw.secret = true;
	if ((rc = decode_into(resp, &raw)))
		goto out;
	all = buf_span(&raw);
	rc = ERR_SYNTAX;
	if ((nul1 = span_find(all, '\0')) < 0)
		goto out;
	authz = span_head(all, (size_t)nul1);
	all = span_tail(all, (size_t)nul1 + 1);
	if ((nul2 = span_find(all, '\0')) < 0)
		goto out;
	authc = span_head(all, (size_t)nul2);
	pass = span_tail(all, (size_t)nul2 + 1);
	if (span_find(pass, '\0') >= 0)
		goto out;	/* a third NUL: not PLAIN's shape */
	rc = ERR_LIMIT;
	if (authz.len > AUTH_LOGIN_MAX || buf_append_span(&s->login, authc) || buf_append_span(&s->password, pass))
		goto out;
	if ((rc = check_login(&s->login)))
		goto out;
	/* RFC 4616 section 2: acting as someone else is not offered */
	rc = authz.len && (authz.len != authc.len || memcmp(authz.p, authc.p, authc.len) != 0) ? ERR_AUTH : 0;
out:
	buf_free(&raw);
	return rc;
}

static bool
is_cancel(struct span line)
{
	return line.len == 1 && line.p[0] == '*';
}

/* Turn an internal result into a status, remembering the code; the exchange ends unless CONTINUE. */
static enum sasl_status
finish(struct sasl *s, int rc, enum sasl_status ok)
{
	s->err = rc;
	if (rc == 0 && ok == SASL_CONTINUE)
		return SASL_CONTINUE;
	s->step = 0;
	if (rc) {
		clear(&s->login);
		clear(&s->password);
	}
	if (rc == ERR_AUTH)
		return SASL_BAD_AUTHZ;
	return rc ? SASL_BAD_SYNTAX : ok;
}

enum sasl_status
sasl_start(struct sasl *s, struct span mech, bool has_ir, struct span ir)
{
	clear(&s->login);
	clear(&s->password);
	s->step = 0;
	s->err = 0;
	s->challenge = "";
	if (span_ieq(mech, "PLAIN")) {
		s->mech = SASL_MECH_PLAIN;
		if (has_ir)
			return is_cancel(ir) ? SASL_CANCELLED : finish(s, plain(s, ir), SASL_DONE);
		s->step = 1;	/* RFC 4616: the server's first challenge is empty */
		return SASL_CONTINUE;
	}
	if (span_ieq(mech, "LOGIN")) {
		int rc;

		s->mech = SASL_MECH_LOGIN;
		if (has_ir) {	/* RFC 4954 section 4 lets the username come as initial response */
			if (is_cancel(ir))
				return SASL_CANCELLED;
			if (!(rc = decode_into(ir, &s->login)))
				rc = check_login(&s->login);
			s->challenge = LOGIN_PROMPT_PASS;
			s->step = 2;
			return finish(s, rc, SASL_CONTINUE);
		}
		s->challenge = LOGIN_PROMPT_USER;
		s->step = 1;
		return SASL_CONTINUE;
	}
	return SASL_BAD_MECH;
}

enum sasl_status
sasl_step(struct sasl *s, struct span line)
{
	int rc;

	if (s->step == 0)
		return finish(s, ERR_STATE, SASL_DONE);
	if (is_cancel(line)) {
		s->step = 0;
		clear(&s->login);
		clear(&s->password);
		return SASL_CANCELLED;
	}
	if (s->mech == SASL_MECH_PLAIN)
		return finish(s, plain(s, line), SASL_DONE);
	if (s->step == 1) {
		if (!(rc = decode_into(line, &s->login)))
			rc = check_login(&s->login);
		s->challenge = LOGIN_PROMPT_PASS;
		s->step = 2;
		return finish(s, rc, SASL_CONTINUE);
	}
	if (!(rc = decode_into(line, &s->password)) && s->password.len &&
	    memchr(s->password.data, '\0', s->password.len))
		rc = ERR_SYNTAX;
	return finish(s, rc, SASL_DONE);
}
