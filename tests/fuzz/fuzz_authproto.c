/*
 * Fuzz the helper's request decoder with what a compromised postied could
 * send: a stream of frames, decoded as postie-auth does. Every request it
 * accepts must hold to proto.h's rules and encode back to the same bytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/proto.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(struct span frame, struct span body, const struct auth_request *req)
{
	struct buf again;
	size_t i;

	if (req->login.len == 0 || req->login.len > AUTH_LOGIN_MAX || req->password.len > AUTH_PASSWORD_MAX ||
	    req->service.len == 0 || req->service.len > AUTH_SERVICE_MAX || req->rhost.len > AUTH_RHOST_MAX ||
	    req->password.p + req->password.len != body.p + body.len)
		abort();
	for (i = 0; i < req->login.len; i++)
		if (req->login.p[i] < 0x20 || req->login.p[i] == 0x7f || req->login.p[i] == '/')
			abort();
	if (!auth_proto_valid_service(req->service))
		abort();
	if (req->password.len && memchr(req->password.p, '\0', req->password.len))
		abort();
	buf_init(&again, AUTH_FRAME_MAX + 4);
	again.secret = true;
	if (auth_proto_encode_request(&again, req->id, req->service, req->rhost, req->login, req->password) ||
	    again.len != frame.len || memcmp(again.data, frame.p, frame.len) != 0)
		abort();
	buf_free(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span in = span_make(data, size), body;
	long n;

	while ((n = auth_proto_frame(in, &body)) > 0) {
		struct auth_request req;
		uint32_t id;
		enum auth_result res;

		if (auth_proto_decode_request(body, &req) == 0)
			check(span_head(in, (size_t)n), body, &req);
		if (auth_proto_decode_reply(body, &id, &res) == 0 &&
		    (body.len != 7 || res < AUTH_RESULT_OK || res > AUTH_RESULT_TEMPFAIL))
			abort();
		in = span_tail(in, (size_t)n);
	}
	return 0;
}
