#include "config.h"

#include <string.h>

#include "auth/proto.h"
#include "core/cursor.h"
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

/* The request body: [version][type 'Q'][id u32][service str8][rhost str8][login str8][password str16]. */
static void
put_request(struct cursor *c, uint32_t id, struct span service, struct span rhost, struct span login,
    struct span password)
{
	cursor_put_u8(c, AUTH_PROTO_VERSION);
	cursor_put_u8(c, 'Q');
	cursor_put_u32(c, id);
	cursor_put_str8(c, service);
	cursor_put_str8(c, rhost);
	cursor_put_str8(c, login);
	cursor_put_str16(c, password);
}

/* The reply body: [version][type 'R'][id u32][result u8]. */
static void
put_reply(struct cursor *c, uint32_t id, enum auth_result result)
{
	cursor_put_u8(c, AUTH_PROTO_VERSION);
	cursor_put_u8(c, 'R');
	cursor_put_u32(c, id);
	cursor_put_u8(c, (uint8_t)result);
}

int
auth_proto_encode_request(struct buf *out, uint32_t id, struct span service, struct span rhost,
    struct span login, struct span password)
{
	struct cursor c;
	size_t len;

	if (!auth_proto_valid_service(service) || !valid_rhost(rhost) || !valid_login(login) || !valid_password(password))
		return ERR_SYNTAX;
	/* the frame's length first: the same puts, counted only */
	cursor_writer(&c, NULL, AUTH_FRAME_MAX);
	put_request(&c, id, service, rhost, login, password);
	ASSERT(cursor_end(&c) == 0);	/* every field was checked above */
	len = cursor_len(&c);
	cursor_appender(&c, out);
	cursor_put_u32(&c, (uint32_t)len);
	put_request(&c, id, service, rhost, login, password);
	return cursor_end(&c);
}

int
auth_proto_encode_reply(struct buf *out, uint32_t id, enum auth_result result)
{
	struct cursor c;
	size_t len;

	cursor_writer(&c, NULL, AUTH_FRAME_MAX);
	put_reply(&c, id, result);
	len = cursor_len(&c);
	cursor_appender(&c, out);
	cursor_put_u32(&c, (uint32_t)len);
	put_reply(&c, id, result);
	return cursor_end(&c);
}

long
auth_proto_frame(struct span in, struct span *body_out)
{
	struct cursor c;
	uint32_t len;
	struct span body;

	cursor_reader(&c, in);
	len = cursor_get_u32(&c);
	if (c.err)
		return 0;
	if (len < 7 || len > AUTH_FRAME_MAX)
		return ERR_SYNTAX;
	body = cursor_get(&c, len);
	if (c.err)
		return 0;
	*body_out = body;
	return (long)len + 4;
}

int
auth_proto_decode_request(struct span body, struct auth_request *out)
{
	struct cursor c;

	memset(out, 0, sizeof(*out));
	cursor_reader(&c, body);
	if (cursor_get_u8(&c) != AUTH_PROTO_VERSION || cursor_get_u8(&c) != 'Q')
		cursor_fail(&c, ERR_SYNTAX);
	out->id = cursor_get_u32(&c);
	out->service = cursor_get_str8(&c);
	out->rhost = cursor_get_str8(&c);
	out->login = cursor_get_str8(&c);
	out->password = cursor_get_str16(&c);
	/* the body exactly consumed: nothing may trail the password */
	if (cursor_end(&c) || !auth_proto_valid_service(out->service) || !valid_rhost(out->rhost) ||
	    !valid_login(out->login) || !valid_password(out->password))
		return ERR_SYNTAX;
	return 0;
}

int
auth_proto_decode_reply(struct span body, uint32_t *id_out, enum auth_result *result_out)
{
	struct cursor c;
	uint32_t id;
	unsigned result;

	cursor_reader(&c, body);
	if (cursor_get_u8(&c) != AUTH_PROTO_VERSION || cursor_get_u8(&c) != 'R')
		cursor_fail(&c, ERR_SYNTAX);
	id = cursor_get_u32(&c);
	result = cursor_get_u8(&c);
	if (cursor_end(&c) || result < AUTH_RESULT_OK || result > AUTH_RESULT_TEMPFAIL)
		return ERR_SYNTAX;
	*id_out = id;
	*result_out = (enum auth_result)result;
	return 0;
}
