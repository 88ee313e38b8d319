/* Fuzz the MAIL and RCPT argument parsers (paths and ESMTP parameters). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/smtp/parse.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_mail m;
	struct smtp_rcpt r;
	struct span in = span_make(data, size);

	if (smtp_parse_mail(in, &m) == SMTP_PARSE_OK &&
	    (strlen(m.path.addr) > SMTP_PATH_MAX || memchr(m.path.addr, '\r', strlen(m.path.addr)) ||
	    memchr(m.path.addr, '\n', strlen(m.path.addr))))
		abort();	/* the stored form must be safe to put in a header */
	if (smtp_parse_rcpt(in, &r) == SMTP_PARSE_OK &&
	    (strlen(r.path.addr) > SMTP_PATH_MAX || memchr(r.path.addr, '\r', strlen(r.path.addr)) ||
	    memchr(r.path.addr, '\n', strlen(r.path.addr))))
		abort();
	return 0;
}
