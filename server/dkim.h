/*
 * dkim.h: the DKIM signer (RFC 6376, RFC 8463), a pure module. It takes a
 * message in pieces (the header section, then the body), canonicalizes
 * both the relaxed way (RFC 6376 3.4.2, 3.4.4), hashes the body as it
 * streams, and writes DKIM-Signature header fields for the keys it is given.
 * Its only outside calls are tls.c's SHA-256 and signing, so it runs in unit
 * tests and fuzz targets without a network or a store.
 *
 * Threads: a struct dkim_signer belongs to the caller's thread (the worker
 * that owns the SMTP session). Keys (struct tls_privkey) are shared
 * read-only.
 *
 * Limits it relies on and keeps:
 * - the header section is kept in memory for the header hash, at most
 *   DKIM_HEAD_MAX octets; the SMTP decoder caps the number of header fields
 *   (SMTP_DATA_HEADERS_MAX, 1000) and line length (SMTP_DATA_LINE_MAX, 1000
 *   octets), not continuation lines, so a longer header section is refused
 *   here (ERR_LIMIT: the message goes unsigned, never half signed);
 * - header fields looked at: DKIM_FIELDS_MAX (the decoder's 1000 and our
 *   own prefix);
 * - the body is never held: it goes through the canonicalizer into the hash
 *   in whatever pieces the caller reads.
 */
#ifndef POSTIE_DKIM_H
#define POSTIE_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/span.h"
#include "server/tls.h"

/* the header section kept for the header hash: 1000 fields of 1000 octets and room to spare */
#define DKIM_HEAD_MAX (1024 * 1024 + 16 * 1024)
/* header fields looked at: SMTP_DATA_HEADERS_MAX plus what postie adds in front */
#define DKIM_FIELDS_MAX 1100
/* RFC 6376 3.5 allows any length; folding at 78 keeps within RFC 5322 2.1.1's SHOULD */
#define DKIM_FOLD_COLUMN 78
/* a domain (RFC 5321 4.5.3.1.2) and a selector (one or more labels, the same bound) */
#define DKIM_DOMAIN_MAX 255
#define DKIM_SELECTOR_MAX 255

/* One signing key: d=, s= and the private key (whose type is a=). Borrowed. */
struct dkim_key {
	const char *domain;		/* lower case */
	const char *selector;
	const struct tls_privkey *key;
};

/*
 * Relaxed body canonicalization (RFC 6376 3.4.4), streaming: whitespace
 * runs become one SP, whitespace at line ends goes, empty lines at the end
 * go, a last line without CRLF gets one, an empty body stays empty. Output
 * goes through out in pieces of up to sizeof(pending).
 */
struct dkim_body {
	void (*out)(void *arg, const unsigned char *p, size_t n);
	void *arg;
	uint64_t empty_lines;	/* line ends held back: emitted only when content follows */
	bool wsp;		/* a whitespace run held back */
	bool cr;		/* a CR held back (CRLF ends a line) */
	bool any;		/* something other than line ends was emitted */
	size_t len;
	unsigned char pending[4096];
};

void dkim_body_init(struct dkim_body *b, void (*out)(void *, const unsigned char *, size_t), void *arg);
void dkim_body_feed(struct dkim_body *b, const unsigned char *p, size_t n);
void dkim_body_finish(struct dkim_body *b);

/*
 * Relaxed header canonicalization (RFC 6376 3.4.2) of one field as it
 * appears (name, colon, value, folding CRLFs, with or without its final
 * CRLF): appended to out as "name:value" and, when with_crlf, CRLF.
 */
void dkim_canon_header(struct span field, bool with_crlf, struct buf *out);

/*
 * The domain of the single address in a From: field's value (RFC 5322
 * 3.6.2), lower case, into out (cap at least DKIM_DOMAIN_MAX + 1).
 * 0, ERR_NOTFOUND (no address), ERR_SYNTAX (several addresses, a group,
 * or a domain that is not a host name).
 */
int dkim_from_domain(struct span value, char *out, size_t cap);

struct dkim_signer {
	struct buf head;	/* the header section, fields only (the empty line dropped) */
	bool in_body;
	struct dkim_body body;
	struct tls_sha256 *bh;
	unsigned char body_hash[TLS_SHA256_LEN];
	bool finished;
	int err;		/* first failure: ERR_LIMIT (header section too long), ERR_TLS */
};

/* Ready for a message. 0 or ERR_TLS. Free with dkim_signer_free() either way. */
int dkim_signer_init(struct dkim_signer *s);

/* The next n octets of the message as it will be sent (CRLF line ends, not dot-stuffed). */
void dkim_signer_feed(struct dkim_signer *s, const unsigned char *p, size_t n);

/* Whether the header section has ended (the first empty line was fed). */
bool dkim_signer_in_body(const struct dkim_signer *s);

/*
 * Once the header section has ended (dkim_signer_in_body), or after the
 * last piece: the From: domain into out (as dkim_from_domain),
 * or ERR_NOTFOUND (no From:), ERR_SYNTAX (several From: fields, or as
 * dkim_from_domain), or the signer's error.
 */
int dkim_signer_from(struct dkim_signer *s, char *out, size_t cap);

/*
 * After the last piece: a DKIM-Signature field for key, signed at time t
 * (t=), appended to out with its CRLF. Can be called once per key.
 * 0, ERR_TLS, or the signer's error.
 */
int dkim_signer_sign(struct dkim_signer *s, const struct dkim_key *key, uint64_t t, struct buf *out);

void dkim_signer_free(struct dkim_signer *s);

/*
 * The header fields a signature names, in h= order (the header hash takes
 * each name's instances from the last one up, RFC 6376 5.4.2): each field
 * of RFC 6376 5.4's list present in head, as often as it occurs; From,
 * To, Cc, Subject and Date once more than they occur (absent ones once),
 * so none can be added after signing. Appended to out as "name:name:...".
 * Exposed for the unit test. 0 or ERR_LIMIT (more than DKIM_FIELDS_MAX fields).
 */
int dkim_header_list(struct span head, struct buf *out);

#endif
