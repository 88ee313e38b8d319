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

#define TLS_WANT_READ  (-100)
#define TLS_WANT_WRITE (-101)

#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

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
 * Credentials for the outbound client and tools: the system trust store
 * is loaded, no client certificate. Opportunistic: the handshake does not
 * fail on an unverifiable server certificate.
 */
int tls_creds_client_new(const char *priority, struct tls_creds **out);

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

#endif
