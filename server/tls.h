/*
 * tls.h: TLS for postied and its outbound client. tls.c is the only file
 * of the project that includes GnuTLS.
 *
 * Everything is non-blocking: a call that would block returns TLS_WANT_READ
 * or TLS_WANT_WRITE and the caller waits for that readiness on its fd.
 *
 * Credentials are reference counted: tls_creds_current() gives the set in
 * use now; tls_creds_reload() swaps in a new one (SIGHUP) and open sessions
 * keep theirs. A struct tls_conn belongs to the thread that owns its
 * connection. After tls_read/tls_write/tls_handshake return ERR_TLS or
 * ERR_CLOSED the session is finished: the caller only calls tls_conn_free().
 */
#ifndef POSTIE_TLS_H
#define POSTIE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"

#define TLS_WANT_READ  (-100)
#define TLS_WANT_WRITE (-101)

struct tls_creds;
struct tls_conn;

/* One-time library set-up; main thread, before other threads start. 0 or ERR_TLS. */
int tls_global_init(void);
void tls_global_deinit(void);

/*
 * Load a PEM certificate chain and key for serving, with a priority string
 * (NULL = TLS_DEFAULT_PRIORITY, TLS 1.2 and 1.3 only). Session tickets are
 * enabled with a key made at load. Returns 0, ERR_TLS (bad files or
 * priority; the GnuTLS message is logged once) or ERR_NOMEM.
 */
int tls_creds_server_load(const char *cert_file, const char *key_file,
    const char *priority, struct tls_creds **out);

/*
 * Credentials for the outbound client and tools, no client certificate.
 * Trust: the CA certificates of the PEM file ca_file, or the system trust
 * store when ca_file is NULL or "" (a missing system store is logged, and
 * every verification then fails). Verification happens only on a session
 * that asks for it (tls_conn_verify); otherwise the handshake does not fail
 * on an unverifiable server certificate (opportunistic TLS). Returns 0,
 * ERR_TLS (bad priority, ca_file unreadable or holding no certificate;
 * logged once) or ERR_NOMEM.
 */
int tls_creds_client_new(const char *priority, const char *ca_file, struct tls_creds **out);

struct tls_creds *tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds *c);

/* The server credentials in use now, with a new reference (NULL before the first set). */
struct tls_creds *tls_creds_current(void);
/* Make c current (takes over the caller's reference). Any thread. */
void tls_creds_set_current(struct tls_creds *c);

/*
 * Start a TLS session over the connected non-blocking socket fd, as server
 * or (server_name != NULL, SNI) as client. The session holds a reference
 * to creds. 0 or ERR_TLS.
 */
int tls_conn_new_server(struct tls_creds *creds, int fd, struct tls_conn **out);
int tls_conn_new_client(struct tls_creds *creds, int fd, const char *server_name,
    struct tls_conn **out);

/* Longest name tls_conn_verify() takes: a DNS name (RFC 1035 2.3.4), brackets around an IPv6 literal. */
#define TLS_VERIFY_NAME_MAX 255

/*
 * Client session, before the handshake: the server's certificate must
 * chain to the trust of the session's credentials and name name, a host
 * name (matched against its DNS names, RFC 6125) or an IPv4/IPv6 literal
 * (matched against its IP addresses only; "[v6]" accepted). Otherwise the
 * handshake fails with ERR_TLS and tls_conn_verify_failure() says why.
 * 0, or ERR_LIMIT (name longer than TLS_VERIFY_NAME_MAX).
 */
int tls_conn_verify(struct tls_conn *t, const char *name);

/*
 * After a failed handshake of a session given tls_conn_verify(): true when
 * the certificate was the cause, with the reason in out ("certificate
 * signer unknown", "certificate name mismatch: expected mx.example.net",
 * several joined with "; "), cut to cap. False otherwise (out untouched).
 */
bool tls_conn_verify_failure(struct tls_conn *t, char *out, size_t cap);

/* Step the handshake: 0 when done, TLS_WANT_READ/WRITE, or ERR_TLS. */
int tls_handshake(struct tls_conn *t);

/*
 * Read up to n bytes: >0 bytes read, ERR_CLOSED (close_notify or EOF),
 * TLS_WANT_READ/WRITE, or ERR_TLS. After a successful read, data GnuTLS
 * already holds is reported by tls_pending(); drain it before waiting.
 */
ssize_t tls_read(struct tls_conn *t, void *p, size_t n);
size_t tls_pending(struct tls_conn *t);

/*
 * Write up to n bytes: >0 bytes taken, TLS_WANT_READ/WRITE, or ERR_TLS.
 * After TLS_WANT_*, call again with the same bytes (at least as many as
 * before): GnuTLS has taken a record it will finish sending first.
 */
ssize_t tls_write(struct tls_conn *t, const void *p, size_t n);

/* Send close_notify if possible, without blocking. */
void tls_bye(struct tls_conn *t);

/* Free the session (never touches the socket's fd). NULL is fine. */
void tls_conn_free(struct tls_conn *t);

/* "TLSv1.3", "TLSv1.2"... and the cipher suite name, for Received: and logs. */
const char *tls_conn_version(struct tls_conn *t);
const char *tls_conn_cipher(struct tls_conn *t);
/* Whether the session was resumed from a ticket. */
bool tls_conn_resumed(struct tls_conn *t);

/* Cryptographic randomness (GnuTLS's generator). 0 or ERR_TLS. Any thread. */
int tls_random(void *p, size_t n);

/* HMAC-SHA256 of data under key into out (32 bytes). 0 or ERR_TLS. Any thread. */
#define TLS_HMAC_LEN 32
int tls_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n,
    unsigned char out[TLS_HMAC_LEN]);


/*
 * Private keys for signing (DKIM, RFC 6376 and RFC 8463): Ed25519, or RSA
 * of TLS_RSA_BITS_MIN to TLS_RSA_BITS_MAX bits. A key is immutable once
 * loaded and may be used by any thread at once (GnuTLS signs without
 * changing the key).
 */
struct tls_privkey;

enum tls_key_alg {
	TLS_KEY_ED25519 = 1,
	TLS_KEY_RSA = 2,
};

/* RFC 8301 3.2: at least 1024 bits; we make 2048 and refuse the short ones */
#define TLS_RSA_BITS_MIN 2048
#define TLS_RSA_BITS_GEN 2048
/* a signature fits TLS_SIG_MAX octets: RSA 4096 bits is 512, Ed25519 64 */
#define TLS_RSA_BITS_MAX 4096
#define TLS_SIG_MAX 512
/* a public key as DKIM's p= carries it: RSA SubjectPublicKeyInfo (DER), Ed25519 32 octets */
#define TLS_PUBKEY_MAX 1024
#define TLS_SHA256_LEN 32

/*
 * Load a PEM private key (PKCS#8 or PKCS#1, unencrypted) from file.
 * 0, ERR_IO (unreadable), ERR_SYNTAX (not a key; GnuTLS's message logged
 * at debug), ERR_PERM (another algorithm, or an RSA size out of range).
 */
int tls_privkey_load(const char *file, struct tls_privkey **out);
void tls_privkey_free(struct tls_privkey *k);
enum tls_key_alg tls_privkey_alg(const struct tls_privkey *k);

/*
 * Sign n octets at data: RSA with PKCS#1 v1.5 over their SHA-256
 * (GNUTLS_SIGN_RSA_SHA256), Ed25519 over the octets themselves (PureEdDSA;
 * DKIM gives it a SHA-256 digest, RFC 8463 3). The signature goes to out
 * (cap at least TLS_SIG_MAX), its length to len_out. 0 or ERR_TLS.
 */
int tls_privkey_sign(const struct tls_privkey *k, const void *data, size_t n,
    unsigned char *out, size_t cap, size_t *len_out);

/*
 * The public half as DKIM's p= wants it (RFC 6376 3.6.1, RFC 8463 4):
 * DER SubjectPublicKeyInfo for RSA, the 32 raw octets for Ed25519.
 * 0, ERR_TLS or ERR_LIMIT (longer than cap).
 */
int tls_privkey_public(const struct tls_privkey *k, unsigned char *out, size_t cap, size_t *len_out);

/*
 * A new key of alg (RSA: TLS_RSA_BITS_GEN bits) as unencrypted PKCS#8 PEM,
 * appended to pem_out (flag it secret). 0 or ERR_TLS.
 */
int tls_privkey_generate(enum tls_key_alg alg, struct buf *pem_out);

/* SHA-256, all at once or in pieces. A context belongs to one thread. */
struct tls_sha256;
int tls_sha256(const void *data, size_t n, unsigned char out[TLS_SHA256_LEN]);
/* 0 or ERR_TLS */
int tls_sha256_new(struct tls_sha256 **out);
void tls_sha256_update(struct tls_sha256 *h, const void *data, size_t n);
/* The digest; the context is freed. */
void tls_sha256_final(struct tls_sha256 *h, unsigned char out[TLS_SHA256_LEN]);
/* Free without a digest. NULL is fine. */
void tls_sha256_free(struct tls_sha256 *h);

#endif
