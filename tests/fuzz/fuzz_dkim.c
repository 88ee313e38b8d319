/*
 * Fuzz the DKIM signer's parsing: a message fed in two pieces (the first
 * octet says where to cut), its From: domain, the header list, and the
 * relaxed body, whose output must hold the invariants of RFC 6376 3.4.4
 * (no WSP before a CRLF, no WSP run, no empty line at the end).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "server/dkim.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
collect(void *arg, const unsigned char *p, size_t n)
{
	buf_append(arg, p, n);
}

static void
check_body(const struct buf *b)
{
	size_t i;

	for (i = 0; i + 1 < b->len; i++) {
		if ((b->data[i] == ' ' || b->data[i] == '\t') && (b->data[i + 1] == ' ' || b->data[i + 1] == '\t'))
			abort();	/* a WSP run left */
		if (b->data[i] == '\t' || (b->data[i] == ' ' && b->data[i + 1] == '\r' && i + 2 < b->len && b->data[i + 2] == '\n'))
			abort();	/* a tab, or WSP before a line end */
	}
	if (b->len && (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0))
		abort();	/* a non-empty body ends in CRLF */
	if (b->len >= 4 && memcmp(b->data + b->len - 4, "\r\n\r\n", 4) == 0)
		abort();	/* no empty line at the end */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_signer s;
	struct dkim_body body;
	struct buf out;
	char domain[DKIM_DOMAIN_MAX + 1];
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (dkim_signer_init(&s) == 0) {
		dkim_signer_feed(&s, data, cut);
		dkim_signer_feed(&s, data + cut, size - cut);
		if (dkim_signer_from(&s, domain, sizeof(domain)) == 0 && (strlen(domain) == 0 || strlen(domain) > DKIM_DOMAIN_MAX))
			abort();
	}
	dkim_signer_free(&s);
	buf_init(&out, 0);
	dkim_header_list(span_make(data, size), &out);
	buf_free(&out);
	buf_init(&out, 0);
	dkim_body_init(&body, collect, &out);
	dkim_body_feed(&body, data, cut);
	dkim_body_feed(&body, data + cut, size - cut);
	dkim_body_finish(&body);
	check_body(&out);
	buf_free(&out);
	if (dkim_from_domain(span_make(data, size), domain, sizeof(domain)) == 0 && strchr(domain, '\r'))
		abort();
	return 0;
}
