/* Fuzz the SASL exchange: mechanism, initial response and lines from the data. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span rest = span_make(data, size), line;
	struct sasl s;
	enum sasl_status st;
	long nl;

	if (size < 1)
		return 0;
	sasl_init(&s);
	rest = span_tail(rest, 1);
	nl = span_find(rest, '\n');
	line = nl < 0 ? rest : span_head(rest, (size_t)nl);
	rest = nl < 0 ? span_tail(rest, rest.len) : span_tail(rest, (size_t)nl + 1);
	st = sasl_start(&s, span_cstr(data[0] & 1 ? "PLAIN" : "LOGIN"), data[0] & 2, line);
	while (st == SASL_CONTINUE && rest.len) {
		nl = span_find(rest, '\n');
		line = nl < 0 ? rest : span_head(rest, (size_t)nl);
		rest = nl < 0 ? span_tail(rest, rest.len) : span_tail(rest, (size_t)nl + 1);
		st = sasl_step(&s, line);
	}
	if (st == SASL_DONE && (s.login.len == 0 || s.login.len > 255 || s.password.len > 1024 ||
	    memchr(s.login.data, '\0', s.login.len)))
		abort();
	sasl_free(&s);
	return 0;
}
