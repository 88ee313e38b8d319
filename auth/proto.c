#include "config.h"

#include <string.h>

#include "auth/proto.h"
#include "core/err.h"
#include "core/compat.h"

bool
auth_proto_valid_service(struct span s)
{
	size_t i;

	if (s.len == 0 || s.len > AUTH_SERVICE_MAX)
		return false;
	for (i = 0; i < s.len; i++) {
		unsigned char c = s.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return s.p[0] != '.';
}

static bool
valid_rhost(struct span s)
{
	size_t i;

	if (s.len > AUTH_RHOST_MAX)
		return false;
	for (i = 0; i < s.len; i++)
		if (s.p[i] <= ' ' || s.p[i] >= 0x7f)
			return false;
	return true;
}

static bool
valid_login(struct span s)
{
	size_t i;

	if (s.len == 0 || s.len > AUTH_LOGIN_MAX)
		return false;
	for (i = 0; i < s.len; i++)
		if (s.p[i] < 0x20 || s.p[i] == 0x7f || s.p[i] == '/')
			return false;	/* control characters, NUL included; '/': see proto.h */
	return true;
}

static bool
valid_password(struct span s)
{
	return s.len <= AUTH_PASSWORD_MAX && (s.len == 0 || !memchr(s.p, '\0', s.len));
}

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
auth_proto_encode_request(struct buf *out, uint32_t id, struct span service, struct span rhost,
    struct span login, struct span password)
{
	unsigned char head[10], len8, len16[2];
	size_t body;

	if (!auth_proto_valid_service(service) || !valid_rhost(rhost) || !valid_login(login) || !valid_password(password))
		return ERR_SYNTAX;
	body = 6 + 1 + service.len + 1 + rhost.len + 1 + login.len + 2 + password.len;
	put_u32(head, (uint32_t)body);
	head[4] = AUTH_PROTO_VERSION;
	head[5] = 'Q';
	put_u32(head + 6, id);
	buf_append(out, head, sizeof(head));
	len8 = (unsigned char)service.len;
	buf_append(out, &len8, 1);
	buf_append_span(out, service);
	len8 = (unsigned char)rhost.len;
	buf_append(out, &len8, 1);
	buf_append_span(out, rhost);
	len8 = (unsigned char)login.len;
	buf_append(out, &len8, 1);
	buf_append_span(out, login);
	len16[0] = (unsigned char)(password.len >> 8);
	len16[1] = (unsigned char)password.len;
	buf_append(out, len16, 2);
	buf_append_span(out, password);
	return out->err;
}

int
auth_proto_encode_reply(struct buf *out, uint32_t id, enum auth_result result)
{
	unsigned char f[11];

	put_u32(f, 7);
	f[4] = AUTH_PROTO_VERSION;
	f[5] = 'R';
	put_u32(f + 6, id);
	f[10] = (unsigned char)result;
	return buf_append(out, f, sizeof(f));
}

long
auth_proto_frame(struct span in, struct span *body_out)
{
	uint32_t len;

	if (in.len < 4)
		return 0;
	len = get_u32(in.p);
	if (len < 7 || len > AUTH_FRAME_MAX)
		return ERR_SYNTAX;
	if (in.len - 4 < len)
		return 0;
	*body_out = span_make(in.p + 4, len);
	return (long)len + 4;
}

/* Take a field of n bytes; false when the body is too short. */
static bool
field(struct span *rest, size_t n, struct span *out)
{
	if (rest->len < n)
		return false;
	*out = span_head(*rest, n);
	*rest = span_tail(*rest, n);
	return true;
}

int
auth_proto_decode_request(struct span body, struct auth_request *out)
{
	struct span rest = body, f;

	memset(out, 0, sizeof(*out));
	if (!field(&rest, 6, &f) || f.p[0] != AUTH_PROTO_VERSION || f.p[1] != 'Q')
		return ERR_SYNTAX;
	out->id = get_u32(f.p + 2);
	if (!field(&rest, 1, &f) || !field(&rest, f.p[0], &out->service) || !auth_proto_valid_service(out->service))
		return ERR_SYNTAX;
	if (!field(&rest, 1, &f) || !field(&rest, f.p[0], &out->rhost) || !valid_rhost(out->rhost))
		return ERR_SYNTAX;
	if (!field(&rest, 1, &f) || !field(&rest, f.p[0], &out->login) || !valid_login(out->login))
		return ERR_SYNTAX;
	if (!field(&rest, 2, &f) || !field(&rest, (size_t)f.p[0] << 8 | f.p[1], &out->password) ||
	    !valid_password(out->password))
		return ERR_SYNTAX;
	return rest.len ? ERR_SYNTAX : 0;	/* nothing may trail the password */
}

int
auth_proto_decode_reply(struct span body, uint32_t *id_out, enum auth_result *result_out)
{
	if (body.len != 7 || body.p[0] != AUTH_PROTO_VERSION || body.p[1] != 'R' ||
	    body.p[6] < AUTH_RESULT_OK || body.p[6] > AUTH_RESULT_TEMPFAIL)
		return ERR_SYNTAX;
	*id_out = get_u32(body.p + 2);
	*result_out = (enum auth_result)body.p[6];
	return 0;
}
