/*
 * Fuzz the SASL exchange. Input: one flag byte (bit 0: PLAIN, else LOGIN;
 * bit 1: the first line is an initial response), then lines separated by
 * LF, fed to sasl_start() and sasl_step() until the exchange ends (and one
 * more, which must be refused). Whatever comes out must hold to sasl.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/proto.h"
#include "auth/sasl.h"
#include "core/err.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct span
next_line(struct span *rest)
{
	long nl = span_find(*rest, '\n');
	struct span line = nl < 0 ? *rest : span_head(*rest, (size_t)nl);

	*rest = nl < 0 ? span_tail(*rest, rest->len) : span_tail(*rest, (size_t)nl + 1);
	return line;
}

static void
check(const struct sasl *s, enum sasl_status st)
{
	size_t i;

	switch (st) {
	case SASL_DONE:
		if (s->err || s->login.len == 0 || s->login.len > AUTH_LOGIN_MAX || s->password.len > AUTH_PASSWORD_MAX ||
		    (s->password.len && memchr(s->password.data, '\0', s->password.len)))
			abort();
		for (i = 0; i < s->login.len; i++)
			if (s->login.data[i] < 0x20 || s->login.data[i] == 0x7f)
				abort();
		break;
	case SASL_CONTINUE:
		if (s->err || !s->challenge)
			abort();
		break;
	case SASL_BAD_SYNTAX:
		if (s->err != ERR_SYNTAX && s->err != ERR_LIMIT && s->err != ERR_STATE)
			abort();
		break;
	case SASL_BAD_AUTHZ:
		if (s->err != ERR_AUTH)
			abort();
		break;
	default:
		break;
	}
	/* a refused exchange keeps no credentials */
	if (st != SASL_DONE && st != SASL_CONTINUE && (s->login.len || s->password.len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span rest = span_make(data, size), line;
	struct sasl s;
	enum sasl_status st;

	if (size < 1)
		return 0;
	sasl_init(&s);
	rest = span_tail(rest, 1);
	line = next_line(&rest);
	st = sasl_start(&s, span_cstr(data[0] & 1 ? "PLAIN" : "LOGIN"), data[0] & 2, line);
	check(&s, st);
	while (st == SASL_CONTINUE && rest.len) {
		st = sasl_step(&s, next_line(&rest));
		check(&s, st);
	}
	if (st != SASL_CONTINUE && sasl_step(&s, span_cstr("AA==")) != SASL_BAD_SYNTAX)
		abort();	/* the exchange is over */
	sasl_free(&s);
	return 0;
}
