/*
 * dkim_keys.h: the DKIM signing keys under dkim.directory.
 *
 * Layout: DIRECTORY/DOMAIN/SELECTOR.key, a PEM private key whose type
 * (Ed25519, or RSA of 2048 to 4096 bits) is the algorithm. Retired keys sit
 * in DIRECTORY/DOMAIN/retired/ and are never loaded. Files are 0640 and
 * directories 0750, owned by root with the group of the daemon's user, so
 * postied reads them after its privilege drop (and again on SIGHUP).
 *
 * A keyset is immutable once loaded and reference counted: the main thread
 * loads one at start and on SIGHUP and makes it current; a worker takes a
 * reference (dkim_keys_current) for the message it signs. postiectl uses
 * the same scan to list keys.
 */
#ifndef POSTIE_DKIM_KEYS_H
#define POSTIE_DKIM_KEYS_H

#include <stdbool.h>

#include "server/dkim.h"
#include "server/tls.h"

/* keys loaded from one directory: domains times selectors; more are skipped with a log line */
#define DKIM_KEYS_MAX 10000

struct dkim_keyset;

/* Whether s is a host name label sequence fit for d= or s= (letters, digits, '-', '.'). */
bool dkim_name_ok(const char *s, size_t max);

/*
 * Every active key file under dir, sorted by domain then selector: fn is
 * called with the domain, the selector and the file's path; a non-zero
 * return stops the walk and is returned. A missing dir is no key (0);
 * other failures ERR_IO. Names that are not valid domains or selectors, and
 * files not ending in ".key", are skipped.
 */
int dkim_keys_scan(const char *dir,
    int (*fn)(void *arg, const char *domain, const char *selector, const char *path), void *arg);

/*
 * Load every active key under dir (a bad file is logged, event=dkim_key,
 * and skipped). Always gives a set (possibly empty); 0 or ERR_IO (the
 * directory could not be read; the set holds what was read).
 */
int dkim_keyset_load(const char *dir, struct dkim_keyset **out);
struct dkim_keyset *dkim_keyset_ref(struct dkim_keyset *ks);
void dkim_keyset_unref(struct dkim_keyset *ks);

/* How many keys ks holds (0: nothing is signed, no message is read for it). */
size_t dkim_keyset_count(const struct dkim_keyset *ks);

/*
 * The key to sign for domain (lower case) with alg: of several, the
 * greatest selector (date-based names: the newest). NULL when none.
 * Valid as long as the caller holds its reference to ks.
 */
const struct dkim_key *dkim_keyset_find(const struct dkim_keyset *ks, const char *domain, enum tls_key_alg alg);

/* The set in use now, with a new reference (NULL before the first). Any thread. */
struct dkim_keyset *dkim_keys_current(void);
/* Make ks current (takes over the caller's reference; NULL clears). Main thread. */
void dkim_keys_set_current(struct dkim_keyset *ks);

#endif
