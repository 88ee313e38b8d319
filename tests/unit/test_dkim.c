/*
 * test_dkim: the DKIM signer's pure parts. Relaxed canonicalization against
 * RFC 6376 3.4.5's example and awkward bodies, the header fields named in h=
 * (RFC 6376 5.4, over-signing), the From: domain, and the shape of a
 * signature field (folding, tags, the body hash of an empty body). The
 * signatures themselves are verified by an independent implementation in
 * tests/integration/test_dkim.py.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "server/dkim.h"
#include "server/dkim_keys.h"
#include "server/tls.h"
#include "tap.h"
#include "testlib.h"

static void
collect(void *arg, const unsigned char *p, size_t n)
{
	buf_append(arg, p, n);
}

/* The relaxed body of in, fed whole (step 0) or step octets at a time. */
static bool
body_is(const char *in, const char *want, size_t step)
{
	struct dkim_body b;
	struct buf out;
	size_t n = strlen(in), i;
	bool ok;

	buf_init(&out, 0);
	dkim_body_init(&b, collect, &out);
	if (!step)
		dkim_body_feed(&b, (const unsigned char *)in, n);
	for (i = 0; step && i < n; i += step)
		dkim_body_feed(&b, (const unsigned char *)in + i, n - i < step ? n - i : step);
	dkim_body_finish(&b);
	ok = out.len == strlen(want) && (!out.len || memcmp(out.data, want, out.len) == 0);
	if (!ok)
		printf("# body %s: got \"%.*s\"\n", in, (int)out.len, out.data);
	buf_free(&out);
	return ok;
}

static void
test_body(void)
{
	static const struct { const char *in, *want; } cases[] = {
		/* RFC 6376 3.4.5 */
		{ " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		{ "", "" },				/* an empty body stays empty (3.4.4) */
		{ "\r\n", "" },
		{ "\r\n\r\n\r\n", "" },
		{ " \t \r\n  \r\n", "" },		/* whitespace-only lines are empty lines */
		{ "abc", "abc\r\n" },			/* a CRLF is added */
		{ "abc\r\n", "abc\r\n" },
		{ "\r\n\r\nabc\r\n", "\r\n\r\nabc\r\n" },	/* leading empty lines stay */
		{ "a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n" },
		{ "a  \t  b\t\r\n", "a b\r\n" },
		{ ".dot\r\n..two\r\n", ".dot\r\n..two\r\n" },
		{ "x\ry\r\n", "x\ry\r\n" },		/* a CR not before LF is content */
		{ "\xc3\xa9t\xc3\xa9 \r\n", "\xc3\xa9t\xc3\xa9\r\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_MSG(body_is(cases[i].in, cases[i].want, 0), cases[i].in);
		CHECK_MSG(body_is(cases[i].in, cases[i].want, 1), cases[i].in);	/* the same in single octets */
	}
	/* longer than the canonicalizer's own buffer, with a run of empty lines in the middle */
	{
		size_t n = 3 * 4096;
		char *in = malloc(n + 64), *want = malloc(n + 64);
		memset(in, 'x', n);
		memcpy(in + n, "\r\n\r\n\r\ny  \r\n\r\n", 14);
		memset(want, 'x', n);
		memcpy(want + n, "\r\n\r\n\r\ny\r\n", 10);
		CHECK(body_is(in, want, 0));
		CHECK(body_is(in, want, 1000));
		free(in);
		free(want);
	}
}

static bool
header_is(const char *in, const char *want)
{
	struct buf out;
	bool ok;

	buf_init(&out, 0);
	dkim_canon_header(span_cstr(in), true, &out);
	ok = out.len == strlen(want) && (!out.len || memcmp(out.data, want, out.len) == 0);
	if (!ok)
		printf("# header %s: got \"%.*s\"\n", in, (int)out.len, out.data);
	buf_free(&out);
	return ok;
}

static void
test_header(void)
{
	/* RFC 6376 3.4.5 */
	CHECK(header_is("A: X\r\n", "a:X\r\n"));
	CHECK(header_is("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n"));
	CHECK(header_is("Subject:no space\r\n", "subject:no space\r\n"));
	CHECK(header_is("SUBJECT:   \r\n", "subject:\r\n"));
	CHECK(header_is("To: a,\r\n b,\r\n\t c\r\n", "to:a, b, c\r\n"));
	CHECK(header_is("X:\t\t lead and trail \t\r\n", "x:lead and trail\r\n"));
}

static bool
list_is(const char *head, const char *want)
{
	struct buf out;
	bool ok;

	buf_init(&out, 0);
	ok = dkim_header_list(span_cstr(head), &out) == 0 && out.len == strlen(want) &&
	    memcmp(out.data, want, out.len) == 0;
	if (!ok)
		printf("# list: got \"%.*s\"\n", (int)out.len, out.data);
	buf_free(&out);
	return ok;
}

static void
test_header_list(void)
{
	/* absent over-signed names once, present ones once more; others as often as they occur */
	CHECK(list_is("From: a@x.test\r\n", "from:from:to:cc:subject:date"));
	CHECK(list_is("From: a@x.test\r\nTo: b\r\nto: c\r\nSubject: s\r\nX-Other: x\r\nReceived: r\r\n"
	    "List-Id: l\r\nlist-id: m\r\nList-Unsubscribe: u\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain;\r\n charset=utf-8\r\nMessage-ID: <1@x>\r\nDate: now\r\n",
	    "from:from:to:to:to:cc:subject:subject:date:date:message-id:mime-version:content-type:"
	    "list-id:list-id:list-unsubscribe"));
	CHECK(list_is("Reply-To: r\r\nIn-Reply-To: i\r\nReferences: f\r\nContent-Transfer-Encoding: 8bit\r\n"
	    "Cc: c\r\nCc: d\r\n",
	    "from:to:cc:cc:cc:subject:date:reply-to:in-reply-to:references:content-transfer-encoding"));
	/* "List-" alone is no list field; "Listen:" neither */
	CHECK(list_is("List-: x\r\nListen: y\r\n", "from:to:cc:subject:date"));
}

static void
test_from(void)
{
	static const struct { const char *in; int rc; const char *want; } cases[] = {
		{ "alice@Example.TEST", 0, "example.test" },
		{ " Alice <alice@example.test>", 0, "example.test" },
		{ "\"a@b.test, x\" <alice@example.test>", 0, "example.test" },
		{ "(c@d.test) alice@example.test (comment, with comma)", 0, "example.test" },
		{ "Alice\r\n <alice@sub.example.test>", 0, "sub.example.test" },
		{ "alice@example.test, bob@other.test", ERR_SYNTAX, NULL },
		{ "A <a@x.test>, B <b@y.test>", ERR_SYNTAX, NULL },
		{ "undisclosed:;", ERR_SYNTAX, NULL },
		{ "Team: a@x.test, b@x.test;", ERR_SYNTAX, NULL },
		{ "", ERR_NOTFOUND, NULL },
		{ "  (only a comment) ", ERR_NOTFOUND, NULL },
		{ "alice", ERR_SYNTAX, NULL },
		{ "alice@[192.0.2.1]", ERR_SYNTAX, NULL },
		{ "alice@bad..test", ERR_SYNTAX, NULL },
		{ "alice@.test", ERR_SYNTAX, NULL },
		{ "<alice@example.test", ERR_SYNTAX, NULL },
		{ "\"unterminated <a@x.test>", ERR_SYNTAX, NULL },
	};
	char out[DKIM_DOMAIN_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = dkim_from_domain(span_cstr(cases[i].in), out, sizeof(out));
		CHECK_MSG(rc == cases[i].rc && (rc || strcmp(out, cases[i].want) == 0), cases[i].in);
	}
	/* a domain one octet past the limit */
	{
		char in[DKIM_DOMAIN_MAX + 16];
		memcpy(in, "a@", 2);
		memset(in + 2, 'd', DKIM_DOMAIN_MAX + 1);
		in[DKIM_DOMAIN_MAX + 3] = '\0';
		CHECK(dkim_from_domain(span_cstr(in), out, sizeof(out)) == ERR_SYNTAX);
		in[DKIM_DOMAIN_MAX + 2] = '\0';
		CHECK(dkim_from_domain(span_cstr(in), out, sizeof(out)) == 0);
	}
}

static bool
lines_fit(const struct buf *b)
{
	size_t i, col = 0;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] == '\n') {
			col = 0;
			continue;
		}
		col += b->data[i] == '\t' ? 8 : 1;
		if (col > DKIM_FOLD_COLUMN + 1)	/* + the CR */
			return false;
	}
	return true;
}

static void
test_sign(const char *dir)
{
	static const char *const algs[] = { "ed25519", "rsa" };
	char path[256], from[DKIM_DOMAIN_MAX + 1];
	struct dkim_signer s;
	struct buf pem, out;
	struct tls_privkey *key[2];
	const char *msg = "From: Alice <alice@Example.test>\r\nSubject: hi\r\n\r\n";
	int i;

	for (i = 0; i < 2; i++) {
		buf_init(&pem, 0);
		CHECK(tls_privkey_generate(i ? TLS_KEY_RSA : TLS_KEY_ED25519, &pem) == 0);
		snprintf(path, sizeof(path), "%s/%s.key", dir, algs[i]);
		CHECK(testlib_write_file(path, 0600, "%.*s", (int)pem.len, pem.data));
		buf_free(&pem);
		CHECK(tls_privkey_load(path, &key[i]) == 0);
		CHECK(tls_privkey_alg(key[i]) == (i ? TLS_KEY_RSA : TLS_KEY_ED25519));
	}
	{	/* p=: 32 raw octets for Ed25519, a DER SubjectPublicKeyInfo (SEQUENCE) for RSA */
		unsigned char pub[TLS_PUBKEY_MAX];
		size_t n = 0;
		CHECK(tls_privkey_public(key[0], pub, sizeof(pub), &n) == 0 && n == 32);
		CHECK(tls_privkey_public(key[1], pub, sizeof(pub), &n) == 0 && n > 256 && pub[0] == 0x30);
	}
	snprintf(path, sizeof(path), "%s/not-a-key", dir);
	CHECK(testlib_write_file(path, 0600, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
	{
		struct tls_privkey *bad = NULL;
		CHECK(tls_privkey_load(path, &bad) == ERR_SYNTAX && !bad);
	}

	CHECK(dkim_signer_init(&s) == 0);
	dkim_signer_feed(&s, (const unsigned char *)msg, strlen(msg));
	CHECK(dkim_signer_from(&s, from, sizeof(from)) == 0 && strcmp(from, "example.test") == 0);
	buf_init(&out, 0);
	for (i = 0; i < 2; i++) {
		struct dkim_key k = { "example.test", i ? "sel-rsa" : "sel-ed", key[i] };
		CHECK(dkim_signer_sign(&s, &k, 1765152000, &out) == 0);
	}
	CHECK(out.len > 0 && lines_fit(&out));
	CHECK(strstr((const char *)out.data, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;") != NULL);
	CHECK(strstr((const char *)out.data, "a=rsa-sha256;") != NULL);
	CHECK(strstr((const char *)out.data, "s=sel-ed;") && strstr((const char *)out.data, "t=1765152000;"));
	/* SHA-256 of the empty body (RFC 6376 3.4.4: it stays empty) */
	CHECK(strstr((const char *)out.data, "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;") != NULL);
	printf("# %.*s", (int)out.len, out.data);
	buf_free(&out);
	dkim_signer_free(&s);

	/* no From:, several From: fields, and a header section past the limit */
	CHECK(dkim_signer_init(&s) == 0);
	dkim_signer_feed(&s, (const unsigned char *)"Subject: x\r\n\r\nbody\r\n", 20);
	CHECK(dkim_signer_from(&s, from, sizeof(from)) == ERR_NOTFOUND);
	dkim_signer_free(&s);
	CHECK(dkim_signer_init(&s) == 0);
	dkim_signer_feed(&s, (const unsigned char *)"From: a@x.test\r\nfrom: b@x.test\r\n\r\n", 34);
	CHECK(dkim_signer_from(&s, from, sizeof(from)) == ERR_SYNTAX);
	dkim_signer_free(&s);
	{
		static char line[1001];
		size_t k;
		CHECK(dkim_signer_init(&s) == 0);
		memset(line, 'a', sizeof(line) - 3);
		memcpy(line + sizeof(line) - 3, "\r\n", 2);
		dkim_signer_feed(&s, (const unsigned char *)"X: y\r\n", 6);
		for (k = 0; k <= DKIM_HEAD_MAX / 998; k++)	/* one long folded field, continuation lines */
			dkim_signer_feed(&s, (const unsigned char *)line, sizeof(line) - 1);
		CHECK(dkim_signer_from(&s, from, sizeof(from)) == ERR_LIMIT);
		dkim_signer_free(&s);
	}
	{	/* the limit exactly: fields of DKIM_HEAD_MAX - 2 octets and the empty line fit, one more does not */
		size_t fields = DKIM_HEAD_MAX - 2, k;
		for (k = 0; k < 2; k++) {
			size_t n = fields + k;
			char *m = malloc(n + 2);
			memcpy(m, "From: a@x.test\r\nX: ", 19);
			memset(m + 19, 'a', n - 21);
			memcpy(m + n - 2, "\r\n\r\n", 4);
			CHECK(dkim_signer_init(&s) == 0);
			dkim_signer_feed(&s, (const unsigned char *)m, n + 2);
			CHECK_MSG(dkim_signer_from(&s, from, sizeof(from)) == (k ? ERR_LIMIT : 0),
			    k ? "header section one octet past DKIM_HEAD_MAX" : "header section at DKIM_HEAD_MAX");
			dkim_signer_free(&s);
			free(m);
		}
	}
	tls_privkey_free(key[0]);
	tls_privkey_free(key[1]);
}

static int
count_key(void *arg, const char *domain, const char *selector, const char *path)
{
	(void)domain;
	(void)selector;
	(void)path;
	(*(int *)arg)++;
	return 0;
}

static void
test_keyset(const char *dir)
{
	char sub[256], path[300];
	struct buf pem;
	struct dkim_keyset *ks;
	int n = 0;

	snprintf(sub, sizeof(sub), "%s/keys", dir);
	CHECK(dkim_keyset_load(sub, &ks) == 0);	/* a missing directory: no keys, no error */
	CHECK(dkim_keyset_find(ks, "example.test", TLS_KEY_ED25519) == NULL);
	dkim_keyset_unref(ks);
	snprintf(sub, sizeof(sub), "%s/keys/example.test/retired", dir);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "mkdir -p %s", sub);
		CHECK(system(cmd) == 0);
	}
	buf_init(&pem, 0);
	CHECK(tls_privkey_generate(TLS_KEY_ED25519, &pem) == 0);
	snprintf(path, sizeof(path), "%s/keys/example.test/20260101-ed25519.key", dir);
	CHECK(testlib_write_file(path, 0600, "%.*s", (int)pem.len, pem.data));
	snprintf(path, sizeof(path), "%s/keys/example.test/20261208-ed25519.key", dir);
	CHECK(testlib_write_file(path, 0600, "%.*s", (int)pem.len, pem.data));
	snprintf(path, sizeof(path), "%s/keys/example.test/retired/20990101-ed25519.key", dir);
	CHECK(testlib_write_file(path, 0600, "%.*s", (int)pem.len, pem.data));
	snprintf(path, sizeof(path), "%s/keys/example.test/broken.key", dir);
	CHECK(testlib_write_file(path, 0600, "not a key\n"));
	snprintf(path, sizeof(path), "%s/keys/example.test/notes.txt", dir);
	CHECK(testlib_write_file(path, 0600, "ignored\n"));
	buf_free(&pem);
	snprintf(sub, sizeof(sub), "%s/keys", dir);
	CHECK(dkim_keys_scan(sub, count_key, &n) == 0 && n == 3);	/* retired/ and notes.txt not listed */
	CHECK(dkim_keyset_load(sub, &ks) == 0);	/* broken.key skipped, the rest loaded */
	{
		const struct dkim_key *k = dkim_keyset_find(ks, "example.test", TLS_KEY_ED25519);
		CHECK(k && strcmp(k->selector, "20261208-ed25519") == 0);	/* the newest */
		CHECK(dkim_keyset_find(ks, "example.test", TLS_KEY_RSA) == NULL);
		CHECK(dkim_keyset_find(ks, "other.test", TLS_KEY_ED25519) == NULL);
	}
	dkim_keys_set_current(ks);
	ks = dkim_keys_current();
	CHECK(ks != NULL);
	dkim_keyset_unref(ks);
	dkim_keys_set_current(NULL);
	CHECK(dkim_name_ok("20261208-rsa", DKIM_SELECTOR_MAX) && !dkim_name_ok("a..b", 255) &&
	    !dkim_name_ok("../x", 255) && !dkim_name_ok("", 255) && !dkim_name_ok("a/b", 255));
}

int
main(void)
{
	char dir[TESTLIB_DIR_MAX];

	log_open("test", true, LOG_LEVEL_CRIT);
	CHECK(tls_global_init() == 0);
	test_body();
	test_header();
	test_header_list();
	test_from();
	if (!testlib_tmpdir("postie-test-dkim", dir, sizeof(dir))) {
		printf("Bail out! no temporary directory\n");
		return 1;
	}
	test_sign(dir);
	test_keyset(dir);
	testlib_rmtree(dir);
	tls_global_deinit();
	return tap_done();
}
