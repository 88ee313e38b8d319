/* Fuzz the helper's request decoder with what a compromised postied could send. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/proto.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span in = span_make(data, size), body;
	long n;

	while ((n = auth_proto_frame(in, &body)) > 0) {
		struct auth_request req;

		if (auth_proto_decode_request(body, &req) == 0 &&
		    (req.login.len == 0 || req.login.len > AUTH_LOGIN_MAX || req.password.len > AUTH_PASSWORD_MAX ||
		    memchr(req.login.p, '\0', req.login.len) || req.password.p + req.password.len > body.p + body.len))
			abort();
		in = span_tail(in, (size_t)n);
	}
	return 0;
}
