/*
 * dkim.c: relaxed/relaxed DKIM signatures (dkim.h). RFC 6376 for the
 * format and canonicalization, RFC 8463 for Ed25519-SHA256.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "server/dkim.h"
#include "core/compat.h"

/* ------------------------------------------------------------ body (RFC 6376 3.4.4) */

void
dkim_body_init(struct dkim_body *b, void (*out)(void *, const unsigned char *, size_t), void *arg)
{
	memset(b, 0, sizeof(*b));
	b->out = out;
	b->arg = arg;
}

static void
body_put(struct dkim_body *b, const void *p, size_t n)
{
	if (b->len + n > sizeof(b->pending)) {
		b->out(b->arg, b->pending, b->len);
		b->len = 0;
	}
	memcpy(b->pending + b->len, p, n);	/* n is at most 2 */
	b->len += n;
}

/* Something other than whitespace or a line end: what was held back goes first. */
static void
body_char(struct dkim_body *b, unsigned char c)
{
	for (; b->empty_lines; b->empty_lines--)
		body_put(b, "\r\n", 2);
	if (b->wsp)
		body_put(b, " ", 1);	/* a run of WSP is one SP */
	b->wsp = false;
	body_put(b, &c, 1);
	b->any = true;
}

void
dkim_body_feed(struct dkim_body *b, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (b->cr && c != '\n') {
			b->cr = false;
			body_char(b, '\r');	/* a CR not before LF is content (SMTP refuses it anyway) */
		}
		switch (c) {
		case '\r':
			b->cr = true;
			break;
		case '\n':
			/* the line ends: its trailing WSP goes; the CRLF waits for content after it */
			b->cr = false;
			b->wsp = false;
			b->empty_lines++;
			break;
		case ' ':
		case '\t':
			b->wsp = true;
			break;
		default:
			body_char(b, c);
			break;
		}
	}
}

void
dkim_body_finish(struct dkim_body *b)
{
	if (b->cr) {
		b->cr = false;
		body_char(b, '\r');
	}
	/* empty lines at the end go; a non-empty body ends in exactly one CRLF; an empty one stays empty */
	if (b->any)
		body_put(b, "\r\n", 2);
	b->empty_lines = 0;
	if (b->len)
		b->out(b->arg, b->pending, b->len);
	b->len = 0;
}

/* ------------------------------------------------------------ header fields (RFC 6376 3.4.2) */

static inline bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

void
dkim_canon_header(struct span f, bool with_crlf, struct buf *out)
{
	size_t i = 0, name_end;
	bool wsp = false, any = false;

	/* the name in lower case, WSP before the colon dropped */
	while (i < f.len && f.p[i] != ':')
		i++;
	name_end = i;
	while (name_end && is_wsp(f.p[name_end - 1]))
		name_end--;
	for (size_t k = 0; k < name_end; k++) {
		unsigned char c = (unsigned char)tolower(f.p[k]);
		buf_append(out, &c, 1);
	}
	buf_append(out, ":", 1);
	/* the value unfolded, WSP runs one SP, WSP at both ends gone */
	for (i++; i < f.len; i++) {
		unsigned char c = f.p[i];

		if (c == '\r' || c == '\n')
			continue;
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (wsp && any)
			buf_append(out, " ", 1);
		wsp = false;
		any = true;
		buf_append(out, &c, 1);
	}
	if (with_crlf)
		buf_append(out, "\r\n", 2);
}

/*
 * The fields of a header section (each ending in CRLF, continuation lines
 * starting with WSP), as spans with their CRLF. At most max; ERR_LIMIT past.
 */
static int
split_fields(struct span head, struct span *fields, size_t max, size_t *n_out)
{
	size_t i = 0, n = 0;

	while (i < head.len) {
		size_t start = i;

		/* a field runs to the CRLF not followed by WSP */
		for (;;) {
			const unsigned char *lf = memchr(head.p + i, '\n', head.len - i);

			i = lf ? (size_t)(lf - head.p) + 1 : head.len;
			if (i >= head.len || !is_wsp(head.p[i]))
				break;
		}
		if (n == max)
			return ERR_LIMIT;
		fields[n++] = span_make(head.p + start, i - start);
	}
	*n_out = n;
	return 0;
}

/* Whether field is named name (case-insensitive, WSP before the colon allowed). */
static bool
field_is(struct span f, const char *name)
{
	size_t n = strlen(name), i;

	if (f.len < n || strncasecmp((const char *)f.p, name, n) != 0)
		return false;
	for (i = n; i < f.len && is_wsp(f.p[i]); i++)
		;
	return i < f.len && f.p[i] == ':';
}

/* The field's name (up to the colon, WSP trimmed). */
static struct span
field_name(struct span f)
{
	size_t i = 0;

	while (i < f.len && f.p[i] != ':')
		i++;
	while (i && is_wsp(f.p[i - 1]))
		i--;
	return span_make(f.p, i);
}

/* The value after the colon, without the final CRLF. */
static struct span
field_value(struct span f)
{
	const unsigned char *colon = memchr(f.p, ':', f.len);
	size_t end = f.len;

	if (!colon)
		return span_make(f.p + f.len, 0);
	if (end >= 2 && f.p[end - 2] == '\r' && f.p[end - 1] == '\n')
		end -= 2;
	return span_make(colon + 1, end - (size_t)(colon + 1 - f.p));
}

/* RFC 6376 5.4.1's recommended fields; the first five are signed once more than they occur. */
static const char *const sign_names[] = {
	"from", "to", "cc", "subject", "date",
	"message-id", "reply-to", "in-reply-to", "references", "mime-version",
	"content-type", "content-transfer-encoding",
};
#define OVERSIGNED 5

static size_t
count_named(const struct span *fields, size_t n, struct span name)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		struct span fn = field_name(fields[i]);
		if (fn.len == name.len && strncasecmp((const char *)fn.p, (const char *)name.p, name.len) == 0)
			k++;
	}
	return k;
}

/*
 * Walk the names to sign, in h= order: for each, call fn with the name (lower
 * case for the fixed list, as found for List-*) and how many times h= names it.
 */
static void
each_name(const struct span *fields, size_t n,
    void (*fn)(void *, struct span name, size_t times, size_t present), void *arg)
{
	size_t i, j;

	for (i = 0; i < sizeof(sign_names) / sizeof(sign_names[0]); i++) {
		struct span name = span_cstr(sign_names[i]);
		size_t k = count_named(fields, n, name);

		if (k || i < OVERSIGNED)
			fn(arg, name, k + (i < OVERSIGNED), k);
	}
	/* List-* (RFC 2369, 2919): each distinct name once, in the order first seen */
	for (i = 0; i < n; i++) {
		struct span name = field_name(fields[i]);
		bool seen = false;

		if (name.len <= 5 || strncasecmp((const char *)name.p, "list-", 5) != 0)
			continue;
		for (j = 0; j < i && !seen; j++) {
			struct span other = field_name(fields[j]);
			seen = other.len == name.len && strncasecmp((const char *)other.p, (const char *)name.p, name.len) == 0;
		}
		if (!seen)
			fn(arg, name, count_named(fields, n, name), count_named(fields, n, name));
	}
}

struct list_ctx {
	struct buf *out;
	bool first;
};

static void
list_name(void *arg, struct span name, size_t times, size_t present)
{
	struct list_ctx *x = arg;
	size_t i, k;

	(void)present;
	for (i = 0; i < times; i++) {
		if (!x->first)
			buf_append(x->out, ":", 1);
		x->first = false;
		for (k = 0; k < name.len; k++) {
			unsigned char c = (unsigned char)tolower(name.p[k]);
			buf_append(x->out, &c, 1);
		}
	}
}

static struct span *
fields_of(struct span head, size_t *n_out, int *rc_out)
{
	struct span *fields = xcalloc(DKIM_FIELDS_MAX, sizeof(*fields));

	*rc_out = split_fields(head, fields, DKIM_FIELDS_MAX, n_out);
	return fields;
}

int
dkim_header_list(struct span head, struct buf *out)
{
	size_t n;
	int rc;
	struct span *fields = fields_of(head, &n, &rc);
	struct list_ctx x = { out, true };

	if (!rc)
		each_name(fields, n, list_name, &x);
	free(fields);
	return rc;
}

/* ------------------------------------------------------------ From: (RFC 5322 3.6.2, 3.4) */

static bool
is_domain_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.';
}

int
dkim_from_domain(struct span v, char *out, size_t cap)
{
	char plain[DKIM_DOMAIN_MAX + 1], angle[DKIM_DOMAIN_MAX + 1];
	size_t plain_len = 0, angle_len = 0, i;
	unsigned depth = 0, addresses = 0;
	bool quoted = false, in_angle = false, had_angle = false, plain_at = false, angle_at = false;
	bool content = false, too_long = false;
	const char *dom;
	size_t dom_len;

	for (i = 0; i < v.len; i++) {
		unsigned char c = v.p[i];

		if (quoted) {
			if (c == '\\')
				i++;	/* quoted-pair */
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth) {	/* a comment, nested (RFC 5322 3.2.2) */
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(') {
			depth++;
			continue;
		}
		if (c == '"') {
			quoted = true;
			content = true;
			continue;
		}
		if (is_wsp(c) || c == '\r' || c == '\n')
			continue;
		if (in_angle) {
			if (c == '>')
				in_angle = false;
			else if (c == '@') {
				angle_at = true;
				angle_len = 0;
			} else if (angle_at) {
				if (angle_len == DKIM_DOMAIN_MAX)
					too_long = true;
				else
					angle[angle_len++] = (char)c;
			}
			continue;
		}
		if (c == ',') {		/* the next address */
			addresses += content;
			content = false;
			continue;
		}
		if (c == ':' || c == ';')
			return ERR_SYNTAX;	/* a group: not one author we can sign for */
		content = true;
		if (c == '<') {
			if (had_angle)
				return ERR_SYNTAX;
			in_angle = had_angle = true;
			angle_at = false;
			angle_len = 0;
		} else if (c == '@') {
			plain_at = true;
			plain_len = 0;
		} else if (plain_at) {
			if (plain_len == DKIM_DOMAIN_MAX)
				too_long = true;
			else
				plain[plain_len++] = (char)c;
		}
	}
	addresses += content;
	if (addresses == 0)
		return ERR_NOTFOUND;
	if (addresses > 1 || quoted || depth || in_angle || too_long)
		return ERR_SYNTAX;
	dom = had_angle ? angle : plain;
	dom_len = had_angle ? angle_len : plain_len;
	if (!(had_angle ? angle_at : plain_at) || dom_len == 0 || dom_len + 1 > cap ||
	    dom[0] == '.' || dom[dom_len - 1] == '.' || dom[0] == '-')
		return ERR_SYNTAX;
	for (i = 0; i < dom_len; i++) {
		if (!is_domain_char((unsigned char)dom[i]) || (dom[i] == '.' && i + 1 < dom_len && dom[i + 1] == '.'))
			return ERR_SYNTAX;
		out[i] = (char)tolower((unsigned char)dom[i]);
	}
	out[dom_len] = '\0';
	return 0;
}

/* ------------------------------------------------------------ the signer */

static void
hash_out(void *arg, const unsigned char *p, size_t n)
{
	tls_sha256_update(arg, p, n);
}

int
dkim_signer_init(struct dkim_signer *s)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->head, DKIM_HEAD_MAX);
	if (tls_sha256_new(&s->bh))
		s->err = ERR_TLS;
	dkim_body_init(&s->body, hash_out, s->bh);
	return s->err;
}

void
dkim_signer_feed(struct dkim_signer *s, const unsigned char *p, size_t n)
{
	if (s->err || s->finished)
		return;
	while (!s->in_body && n) {
		/* the header section ends with the first empty line */
		const unsigned char *lf = memchr(p, '\n', n);
		size_t take = lf ? (size_t)(lf - p) + 1 : n;

		buf_append(&s->head, p, take);
		p += take;
		n -= take;
		if (s->head.err) {
			s->err = ERR_LIMIT;
			return;
		}
		if (lf && ((s->head.len == 2 && s->head.data[0] == '\r') ||
		    (s->head.len >= 3 && memcmp(s->head.data + s->head.len - 3, "\n\r\n", 3) == 0))) {
			s->head.len -= 2;	/* the empty line is not a field */
			s->in_body = true;
		}
	}
	if (n)
		dkim_body_feed(&s->body, p, n);
}

bool
dkim_signer_in_body(const struct dkim_signer *s)
{
	return s->in_body;
}

static int
finish(struct dkim_signer *s)
{
	if (s->err)
		return s->err;
	if (!s->finished) {
		dkim_body_finish(&s->body);
		tls_sha256_final(s->bh, s->body_hash);
		s->bh = NULL;
		s->finished = true;
	}
	return 0;
}

int
dkim_signer_from(struct dkim_signer *s, char *out, size_t cap)
{
	struct span *fields;
	size_t n, i, found = 0, at = 0;
	int rc;

	/* only the header section is needed: in the body, the rest need not be read */
	if (s->err || (!s->in_body && (rc = finish(s))))
		return s->err;
	fields = fields_of(buf_span(&s->head), &n, &rc);
	for (i = 0; !rc && i < n; i++)
		if (field_is(fields[i], "from")) {
			found++;
			at = i;
		}
	if (!rc)
		rc = found == 0 ? ERR_NOTFOUND : found > 1 ? ERR_SYNTAX :
		    dkim_from_domain(field_value(fields[at]), out, cap);
	free(fields);
	return rc;
}

/* The header hash input: each named field, last instance first (RFC 6376 5.4.2). */
struct hash_ctx {
	const struct span *fields;
	size_t n;
	struct buf *out;
};

static void
hash_name(void *arg, struct span name, size_t times, size_t present)
{
	struct hash_ctx *x = arg;
	size_t i;

	(void)times;	/* the over-signed extra names no field: nothing is hashed for it */
	for (i = x->n; present && i-- > 0;) {
		struct span fn = field_name(x->fields[i]);

		if (fn.len == name.len && strncasecmp((const char *)fn.p, (const char *)name.p, name.len) == 0) {
			dkim_canon_header(x->fields[i], true, x->out);
			present--;
		}
	}
}

/* Folding at DKIM_FOLD_COLUMN: a tag goes on the line if it fits, else on a new one. */
struct fold {
	struct buf *b;
	size_t col;
};

#define FOLD_INDENT 8	/* a tab */

static void
fold_break(struct fold *f)
{
	buf_append(f->b, "\r\n\t", 3);
	f->col = FOLD_INDENT;
}

/* text after a space, or on a new line when it does not fit; sep: a space before it */
static void
fold_put(struct fold *f, const char *text, size_t n, bool sep)
{
	if (f->col > FOLD_INDENT && f->col + n + sep > DKIM_FOLD_COLUMN)
		fold_break(f);
	else if (sep && f->col > FOLD_INDENT) {
		buf_append(f->b, " ", 1);
		f->col++;
	}
	buf_append(f->b, text, n);
	f->col += n;
}

/* base64 cut anywhere (RFC 6376 3.5: FWS inside b= and bh= is ignored) */
static void
fold_base64(struct fold *f, struct span text)
{
	while (text.len) {
		size_t room = f->col < DKIM_FOLD_COLUMN ? DKIM_FOLD_COLUMN - f->col : 0, k;

		if (room == 0) {
			fold_break(f);
			continue;
		}
		k = text.len < room ? text.len : room;
		buf_append(f->b, text.p, k);
		f->col += k;
		text.p += k;
		text.len -= k;
	}
}

int
dkim_signer_sign(struct dkim_signer *s, const struct dkim_key *key, uint64_t t, struct buf *out)
{
	struct span *fields = NULL;
	struct buf sig, hdata, names, b64;
	struct fold f;
	char tag[DKIM_SELECTOR_MAX + 32];
	unsigned char raw[TLS_SIG_MAX], digest[TLS_SHA256_LEN];
	size_t n, raw_len, i, start;
	bool ed = tls_privkey_alg(key->key) == TLS_KEY_ED25519;
	struct list_ctx lx;
	struct hash_ctx hx;
	int rc, len;

	if ((rc = finish(s)))
		return rc;
	buf_init(&sig, 0);
	buf_init(&hdata, 0);
	buf_init(&names, 0);
	buf_init(&b64, 0);
	fields = fields_of(buf_span(&s->head), &n, &rc);
	if (rc)
		goto out;
	lx.out = &names;
	lx.first = true;
	each_name(fields, n, list_name, &lx);

	/* the field with b= empty (RFC 6376 3.7) */
	f.b = &sig;
	f.col = 0;
	buf_append_str(&sig, "DKIM-Signature:");
	f.col = sig.len;
	fold_put(&f, "v=1;", 4, true);
	len = snprintf(tag, sizeof(tag), "a=%s;", ed ? "ed25519-sha256" : "rsa-sha256");
	fold_put(&f, tag, (size_t)len, true);
	fold_put(&f, "c=relaxed/relaxed;", 18, true);
	len = snprintf(tag, sizeof(tag), "d=%s;", key->domain);
	if (len < 0 || (size_t)len >= sizeof(tag)) {
		rc = ERR_LIMIT;
		goto out;
	}
	fold_put(&f, tag, (size_t)len, true);
	len = snprintf(tag, sizeof(tag), "s=%s;", key->selector);
	if (len < 0 || (size_t)len >= sizeof(tag)) {
		rc = ERR_LIMIT;
		goto out;
	}
	fold_put(&f, tag, (size_t)len, true);
	len = snprintf(tag, sizeof(tag), "t=%llu;", (unsigned long long)t);
	fold_put(&f, tag, (size_t)len, true);
	/* h=, cut after a colon when a line is full (FWS may surround each colon) */
	start = 0;
	for (i = 0; i <= names.len; i++) {
		if (i < names.len && names.data[i] != ':')
			continue;
		if (start == 0) {
			buf_reset(&b64);
			buf_append_str(&b64, "h=");
			buf_append(&b64, names.data, i < names.len ? i + 1 : i);
			if (i == names.len)
				buf_append(&b64, ";", 1);
			fold_put(&f, (const char *)b64.data, b64.len, true);
		} else {
			buf_reset(&b64);
			buf_append(&b64, names.data + start, i - start + (i < names.len));
			if (i == names.len)
				buf_append(&b64, ";", 1);
			fold_put(&f, (const char *)b64.data, b64.len, false);
		}
		start = i + 1;
	}
	buf_reset(&b64);
	buf_append_str(&b64, "bh=");
	sasl_base64_encode(s->body_hash, sizeof(s->body_hash), &b64);
	buf_append(&b64, ";", 1);
	fold_put(&f, (const char *)b64.data, b64.len, true);
	fold_put(&f, "b=", 2, true);

	/* what is signed: the named fields, then this one with b= empty and no CRLF */
	hx.fields = fields;
	hx.n = n;
	hx.out = &hdata;
	each_name(fields, n, hash_name, &hx);
	dkim_canon_header(buf_span(&sig), false, &hdata);
	if (hdata.err || sig.err || names.err) {
		rc = ERR_LIMIT;
		goto out;
	}
	if (ed) {	/* RFC 8463 3: Ed25519 signs the SHA-256 of the data (PureEdDSA) */
		if ((rc = tls_sha256(hdata.data, hdata.len, digest)))
			goto out;
		rc = tls_privkey_sign(key->key, digest, sizeof(digest), raw, sizeof(raw), &raw_len);
	} else {
		rc = tls_privkey_sign(key->key, hdata.data, hdata.len, raw, sizeof(raw), &raw_len);
	}
	if (rc)
		goto out;
	buf_reset(&b64);
	sasl_base64_encode(raw, raw_len, &b64);
	fold_base64(&f, buf_span(&b64));
	buf_append(&sig, "\r\n", 2);
	if (sig.err || b64.err) {
		rc = ERR_LIMIT;
		goto out;
	}
	buf_append(out, sig.data, sig.len);
	rc = out->err ? out->err : 0;
out:
	free(fields);
	buf_free(&sig);
	buf_free(&hdata);
	buf_free(&names);
	buf_free(&b64);
	return rc;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	buf_free(&s->head);
	tls_sha256_free(s->bh);
	s->bh = NULL;
}
