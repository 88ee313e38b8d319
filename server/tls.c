/*
 * tls.c: the only file that includes GnuTLS. Non-blocking sessions over
 * caller-owned sockets, reference-counted credentials swapped on reload.
 *
 * A session that failed or saw close_notify is dead: every later call
 * returns the same error without touching GnuTLS again, so nothing is read
 * from it as plaintext and no buffer GnuTLS owned is used after an error
 * (the class of Exim's GnuTLS use-after-free, CVE-2026-45185).
 */
#include "config.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "tls.h"
#include "core/compat.h"

struct tls_creds {
	int refs;
	bool server;
	gnutls_certificate_credentials_t cert;
	gnutls_priority_t priority;
	gnutls_datum_t ticket_key;	/* session tickets (server only) */
};

struct tls_conn {
	gnutls_session_t session;
	struct tls_creds *creds;
	int dead;		/* 0, or the error every later call returns */
	/* tls_conn_verify(): what the peer's certificate must name; GnuTLS keeps
	   a pointer to vdata, so both live as long as the session */
	char verify_name[TLS_VERIFY_NAME_MAX + 1];
	unsigned char verify_ip[16];
	gnutls_typed_vdata_st vdata;
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_creds *current;

int
tls_global_init(void)
{
	int rc = gnutls_global_init();

	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=init error=\"%s\"", gnutls_strerror(rc));
		return ERR_TLS;
	}
	return 0;
}

void
tls_global_deinit(void)
{
	gnutls_global_deinit();
}

static void
creds_free(struct tls_creds *c)
{
	if (c->cert)
		gnutls_certificate_free_credentials(c->cert);
	if (c->priority)
		gnutls_priority_deinit(c->priority);
	if (c->ticket_key.data) {
		gnutls_memset(c->ticket_key.data, 0, c->ticket_key.size);
		gnutls_free(c->ticket_key.data);
	}
	free(c);
}

static int
set_priority(struct tls_creds *c, const char *priority)
{
	const char *where = NULL;
	int rc = gnutls_priority_init(&c->priority, priority ? priority : TLS_DEFAULT_PRIORITY, &where);

	if (rc < 0) {
		c->priority = NULL;
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=priority error=\"%s\" at=\"%.40s\"",
		    gnutls_strerror(rc), where ? where : "");
		return ERR_TLS;
	}
	return 0;
}

int
tls_creds_server_load(const char *cert_file, const char *key_file, const char *priority,
    struct tls_creds **out)
{
	struct tls_creds *c = xcalloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	c->refs = 1;
	c->server = true;
	if (set_priority(c, priority))
		goto fail;
	if ((rc = gnutls_certificate_allocate_credentials(&c->cert)) < 0) {
		c->cert = NULL;
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=credentials error=\"%s\"", gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_certificate_set_x509_key_file2(c->cert, cert_file, key_file,
	    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=load certificate=\"%s\" key=\"%s\" error=\"%s\"",
		    cert_file, key_file, gnutls_strerror(rc));
		goto fail;
	}
	/* one ticket key per load: a reload also rotates it */
	if ((rc = gnutls_session_ticket_key_generate(&c->ticket_key)) < 0) {
		c->ticket_key.data = NULL;
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=ticket_key error=\"%s\"", gnutls_strerror(rc));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	creds_free(c);
	return ERR_TLS;
}

int
tls_creds_client_new(const char *priority, const char *ca_file, struct tls_creds **out)
{
	struct tls_creds *c = xcalloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	c->refs = 1;
	if (set_priority(c, priority))
		goto fail;
	if ((rc = gnutls_certificate_allocate_credentials(&c->cert)) < 0) {
		c->cert = NULL;
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=credentials error=\"%s\"", gnutls_strerror(rc));
		goto fail;
	}
	if (ca_file && *ca_file) {
		/* the named CAs replace the system's: a file that gives none is an error */
		rc = gnutls_certificate_set_x509_trust_file(c->cert, ca_file, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			log_msg(LOG_LEVEL_ERR, "event=tls_error where=trust_file file=\"%s\" error=\"%s\"", ca_file,
			    rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
			goto fail;
		}
	} else if ((rc = gnutls_certificate_set_x509_system_trust(c->cert)) < 0) {
		/* not fatal: opportunistic TLS needs no trust store, and verification then fails closed */
		log_msg(LOG_LEVEL_WARN, "event=tls_error where=system_trust error=\"%s\"", gnutls_strerror(rc));
	}
	*out = c;
	return 0;
fail:
	creds_free(c);
	return ERR_TLS;
}

struct tls_creds *
tls_creds_ref(struct tls_creds *c)
{
	if (c)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
tls_creds_unref(struct tls_creds *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		creds_free(c);
}

struct tls_creds *
tls_creds_current(void)
{
	struct tls_creds *c;

	pthread_mutex_lock(&current_lock);
	c = tls_creds_ref(current);
	pthread_mutex_unlock(&current_lock);
	return c;
}

void
tls_creds_set_current(struct tls_creds *c)
{
	struct tls_creds *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = c;
	pthread_mutex_unlock(&current_lock);
	tls_creds_unref(old);
}

static int
conn_new(struct tls_creds *creds, int fd, bool server, const char *server_name,
    struct tls_conn **out)
{
	struct tls_conn *t = xcalloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	rc = gnutls_init(&t->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
	    GNUTLS_NO_SIGNAL);
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=session error=\"%s\"", gnutls_strerror(rc));
		free(t);
		return ERR_TLS;
	}
	if ((rc = gnutls_priority_set(t->session, creds->priority)) < 0 ||
	    (rc = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, creds->cert)) < 0 ||
	    (server && (rc = gnutls_session_ticket_enable_server(t->session, &creds->ticket_key)) < 0) ||
	    (server_name && (rc = gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, server_name,
	    strlen(server_name))) < 0)) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=session error=\"%s\"", gnutls_strerror(rc));
		gnutls_deinit(t->session);
		free(t);
		return ERR_TLS;
	}
	if (server)
		gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(t->session, fd);
	/* a stalled peer is handled by the caller's deadlines, never by blocking here */
	gnutls_handshake_set_timeout(t->session, 0);
	t->creds = tls_creds_ref(creds);
	*out = t;
	return 0;
}

int
tls_conn_new_server(struct tls_creds *creds, int fd, struct tls_conn **out)
{
	return conn_new(creds, fd, true, NULL, out);
}

int
tls_conn_new_client(struct tls_creds *creds, int fd, const char *server_name, struct tls_conn **out)
{
	return conn_new(creds, fd, false, server_name, out);
}

int
tls_conn_verify(struct tls_conn *t, const char *name)
{
	char bare[TLS_VERIFY_NAME_MAX + 1];
	size_t n = strlen(name);
	int k;

	/* an IPv6 literal may come in brackets, as in "[2001:db8::1]:25" */
	if (n >= 2 && name[0] == '[' && name[n - 1] == ']')
		k = snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), name + 1);
	else
		k = snprintf(bare, sizeof(bare), "%s", name);
	if (k <= 0 || (size_t)k >= sizeof(bare))
		return ERR_LIMIT;
	memcpy(t->verify_name, bare, (size_t)k + 1);
	/* an IP literal matches only the certificate's IP addresses (RFC 6125 1.7.2),
	   a host name only its DNS names, never an address written as a name */
	if (inet_pton(AF_INET, bare, t->verify_ip) == 1) {
		t->vdata = (gnutls_typed_vdata_st){ GNUTLS_DT_IP_ADDRESS, t->verify_ip, 4 };
	} else if (inet_pton(AF_INET6, bare, t->verify_ip) == 1) {
		t->vdata = (gnutls_typed_vdata_st){ GNUTLS_DT_IP_ADDRESS, t->verify_ip, 16 };
	} else {
		t->vdata = (gnutls_typed_vdata_st){ GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)t->verify_name, 0 };
	}
	/* the handshake fails (and GnuTLS sends the alert) unless the chain and the name check out */
	gnutls_session_set_verify_cert2(t->session, &t->vdata, 1, GNUTLS_VERIFY_DO_NOT_ALLOW_IP_MATCHES);
	return 0;
}

bool
tls_conn_verify_failure(struct tls_conn *t, char *out, size_t cap)
{
	static const struct {
		unsigned bit;
		const char *text;
	} reasons[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, "certificate signer unknown" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, "certificate signer is not a CA" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, "certificate signature invalid" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM, "certificate signed with an insecure algorithm" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "certificate not yet valid" },
		{ GNUTLS_CERT_EXPIRED, "certificate expired" },
		{ GNUTLS_CERT_REVOKED, "certificate revoked" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH, "certificate not for a TLS server" },
	};
	unsigned status;
	size_t i, len = 0;
	int k;

	if (!t->verify_name[0] || !(status = gnutls_session_get_verify_cert_status(t->session)))
		return false;
	out[0] = '\0';
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (status & reasons[i].bit && len < cap) {
			k = snprintf(out + len, cap - len, "%s%s", len ? "; " : "", reasons[i].text);
			len += k > 0 ? (size_t)k : 0;
		}
	if (status & GNUTLS_CERT_UNEXPECTED_OWNER && len < cap) {
		k = snprintf(out + len, cap - len, "%scertificate name mismatch: expected %s", len ? "; " : "",
		    t->verify_name);
		len += k > 0 ? (size_t)k : 0;
	}
	if (!len)
		snprintf(out, cap, "certificate not verified (status 0x%x)", status);
	return true;
}

/* Map a GnuTLS result to ours; fatal ones kill the session. */
static int
outcome(struct tls_conn *t, int rc, const char *where)
{
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
		return gnutls_record_get_direction(t->session) ? TLS_WANT_WRITE : TLS_WANT_READ;
	if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PUSH_ERROR ||
	    rc == GNUTLS_E_PULL_ERROR) {
		t->dead = ERR_CLOSED;
		return ERR_CLOSED;
	}
	if (!gnutls_error_is_fatal(rc))
		return TLS_WANT_READ;	/* a warning alert or refused rehandshake: go on */
	log_msg(LOG_LEVEL_INFO, "event=tls_error where=%s error=\"%s\"", where, gnutls_strerror(rc));
	t->dead = ERR_TLS;
	return ERR_TLS;
}

int
tls_handshake(struct tls_conn *t)
{
	int rc;

	if (t->dead)
		return t->dead == ERR_CLOSED ? ERR_TLS : t->dead;
	for (int tries = 0; tries < 4; tries++) {
		rc = gnutls_handshake(t->session);
		if (rc == GNUTLS_E_SUCCESS)
			return 0;
		/* after a warning alert the handshake goes on at once (bounded) */
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || gnutls_error_is_fatal(rc))
			break;
	}
	rc = outcome(t, rc, "handshake");
	/* a non-fatal alert mid-handshake: the handshake must be called again */
	return rc == ERR_CLOSED ? ERR_TLS : rc;
}

ssize_t
tls_read(struct tls_conn *t, void *p, size_t n)
{
	ssize_t rc;

	ASSERT(n > 0);	/* GnuTLS calls a zero-length read an invalid request */
	if (t->dead)
		return t->dead;
	rc = gnutls_record_recv(t->session, p, n);
	if (rc > 0)
		return rc;
	if (rc == 0) {
		t->dead = ERR_CLOSED;	/* close_notify: nothing more, ever */
		return ERR_CLOSED;
	}
	return outcome(t, (int)rc, "read");
}

size_t
tls_pending(struct tls_conn *t)
{
	return t->dead ? 0 : gnutls_record_check_pending(t->session);
}

ssize_t
tls_write(struct tls_conn *t, const void *p, size_t n)
{
	ssize_t rc;

	ASSERT(n > 0);
	if (t->dead)
		return t->dead == ERR_CLOSED ? ERR_TLS : t->dead;
	rc = gnutls_record_send(t->session, p, n);
	if (rc >= 0)
		return rc;
	rc = outcome(t, (int)rc, "write");
	return rc == ERR_CLOSED ? ERR_TLS : rc;
}

void
tls_bye(struct tls_conn *t)
{
	if (!t->dead)
		gnutls_bye(t->session, GNUTLS_SHUT_WR);	/* one try; the socket is non-blocking */
	t->dead = t->dead ? t->dead : ERR_CLOSED;
}

void
tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	gnutls_deinit(t->session);
	tls_creds_unref(t->creds);
	free(t);
}

const char *
tls_conn_version(struct tls_conn *t)
{
	switch (gnutls_protocol_get_version(t->session)) {
	case GNUTLS_TLS1_3: return "TLSv1.3";
	case GNUTLS_TLS1_2: return "TLSv1.2";
	case GNUTLS_TLS1_1: return "TLSv1.1";
	case GNUTLS_TLS1_0: return "TLSv1.0";
	default: return "unknown";
	}
}

const char *
tls_conn_cipher(struct tls_conn *t)
{
	const char *name = gnutls_cipher_get_name(gnutls_cipher_get(t->session));

	return name ? name : "unknown";
}

bool
tls_conn_resumed(struct tls_conn *t)
{
	return gnutls_session_is_resumed(t->session) != 0;
}

int
tls_random(void *p, size_t n)
{
	return gnutls_rnd(GNUTLS_RND_KEY, p, n) < 0 ? ERR_TLS : 0;
}

int
tls_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n,
    unsigned char out[TLS_HMAC_LEN])
{
	return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, data, n, out) < 0 ? ERR_TLS : 0;
}

/* ------------------------------------------------------------ signing keys (DKIM) */

struct tls_privkey {
	gnutls_privkey_t key;
	enum tls_key_alg alg;
};

struct tls_sha256 {
	gnutls_hash_hd_t h;
};

int
tls_privkey_load(const char *file, struct tls_privkey **out)
{
	gnutls_datum_t pem = { NULL, 0 };
	struct tls_privkey *k;
	unsigned bits = 0;
	int rc, pk;

	*out = NULL;
	if ((rc = gnutls_load_file(file, &pem)) < 0)
		return ERR_IO;
	k = xcalloc(1, sizeof(*k));
	if ((rc = gnutls_privkey_init(&k->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(k->key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		log_msg(LOG_LEVEL_DEBUG, "event=key_load file=\"%s\" error=\"%s\"", file, gnutls_strerror(rc));
		rc = ERR_SYNTAX;
		goto out;
	}
	pk = gnutls_privkey_get_pk_algorithm(k->key, &bits);
	if (pk == GNUTLS_PK_EDDSA_ED25519)
		k->alg = TLS_KEY_ED25519;
	else if (pk == GNUTLS_PK_RSA && bits >= TLS_RSA_BITS_MIN && bits <= TLS_RSA_BITS_MAX)
		k->alg = TLS_KEY_RSA;
	else {
		rc = ERR_PERM;
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	if (pem.data) {
		gnutls_memset(pem.data, 0, pem.size);
		gnutls_free(pem.data);
	}
	tls_privkey_free(k);
	return rc;
}

void
tls_privkey_free(struct tls_privkey *k)
{
	if (!k)
		return;
	if (k->key)
		gnutls_privkey_deinit(k->key);
	free(k);
}

enum tls_key_alg
tls_privkey_alg(const struct tls_privkey *k)
{
	return k->alg;
}

int
tls_privkey_sign(const struct tls_privkey *k, const void *data, size_t n,
    unsigned char *out, size_t cap, size_t *len_out)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)data, (unsigned)n }, sig = { NULL, 0 };
	gnutls_sign_algorithm_t algo = k->alg == TLS_KEY_ED25519 ? GNUTLS_SIGN_EDDSA_ED25519 :
	    GNUTLS_SIGN_RSA_SHA256;
	int rc;

	if (n > UINT32_MAX)
		return ERR_TLS;
	rc = gnutls_privkey_sign_data2(k->key, algo, 0, &in, &sig);
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=sign error=\"%s\"", gnutls_strerror(rc));
		return ERR_TLS;
	}
	if (sig.size > cap) {
		gnutls_free(sig.data);
		return ERR_TLS;
	}
	memcpy(out, sig.data, sig.size);
	*len_out = sig.size;
	gnutls_free(sig.data);
	return 0;
}

int
tls_privkey_public(const struct tls_privkey *k, unsigned char *out, size_t cap, size_t *len_out)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t der = { NULL, 0 }, x = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	const gnutls_datum_t *d;
	int rc;

	if (gnutls_pubkey_init(&pub) < 0)
		return ERR_TLS;
	if ((rc = gnutls_pubkey_import_privkey(pub, k->key, 0, 0)) < 0)
		goto fail;
	if (k->alg == TLS_KEY_RSA)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der);	/* SubjectPublicKeyInfo */
	else
		rc = gnutls_pubkey_export_ecc_raw(pub, &curve, &x, NULL);	/* RFC 8463 4: the raw key */
	if (rc < 0)
		goto fail;
	d = k->alg == TLS_KEY_RSA ? &der : &x;
	rc = d->size > cap ? ERR_LIMIT : 0;
	if (!rc) {
		memcpy(out, d->data, d->size);
		*len_out = d->size;
	}
	gnutls_free(der.data);
	gnutls_free(x.data);
	gnutls_pubkey_deinit(pub);
	return rc;
fail:
	log_msg(LOG_LEVEL_ERR, "event=tls_error where=public_key error=\"%s\"", gnutls_strerror(rc));
	gnutls_pubkey_deinit(pub);
	return ERR_TLS;
}

int
tls_privkey_generate(enum tls_key_alg alg, struct buf *pem_out)
{
	gnutls_x509_privkey_t k;
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	if (gnutls_x509_privkey_init(&k) < 0)
		return ERR_TLS;
	if (alg == TLS_KEY_ED25519)
		rc = gnutls_x509_privkey_generate(k, GNUTLS_PK_EDDSA_ED25519,
		    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0);
	else
		rc = gnutls_x509_privkey_generate(k, GNUTLS_PK_RSA, TLS_RSA_BITS_GEN, 0);
	if (rc >= 0)
		rc = gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &pem);
	gnutls_x509_privkey_deinit(k);
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "event=tls_error where=generate error=\"%s\"", gnutls_strerror(rc));
		return ERR_TLS;
	}
	buf_append(pem_out, pem.data, pem.size);
	gnutls_memset(pem.data, 0, pem.size);
	gnutls_free(pem.data);
	return pem_out->err ? pem_out->err : 0;
}

int
tls_sha256(const void *data, size_t n, unsigned char out[TLS_SHA256_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, out) < 0 ? ERR_TLS : 0;
}

int
tls_sha256_new(struct tls_sha256 **out)
{
	struct tls_sha256 *h = xcalloc(1, sizeof(*h));

	if (gnutls_hash_init(&h->h, GNUTLS_DIG_SHA256) < 0) {
		free(h);
		*out = NULL;
		return ERR_TLS;
	}
	*out = h;
	return 0;
}

void
tls_sha256_update(struct tls_sha256 *h, const void *data, size_t n)
{
	if (n)
		gnutls_hash(h->h, data, n);
}

void
tls_sha256_final(struct tls_sha256 *h, unsigned char out[TLS_SHA256_LEN])
{
	gnutls_hash_deinit(h->h, out);
	free(h);
}

void
tls_sha256_free(struct tls_sha256 *h)
{
	if (!h)
		return;
	gnutls_hash_deinit(h->h, NULL);
	free(h);
}
