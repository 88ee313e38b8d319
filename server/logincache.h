/*
 * logincache.h: successful logins remembered for auth.cache_ttl, so a POP3
 * client polling every few minutes does not cost a yescrypt hash each time.
 * Only an HMAC of the password is kept, under a key made at start-up and
 * never stored; a password that does not match goes to PAM again; an
 * expired entry goes to PAM again, which re-checks the account
 * (pam_acct_mgmt). SIGHUP and `postiectl auth flush` empty it.
 *
 * Threads: any; one small mutex inside, never held across I/O.
 */
#ifndef POSTIE_LOGINCACHE_H
#define POSTIE_LOGINCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/span.h"

#define LOGINCACHE_SLOTS 4096	/* bounded memory (core/htable): a full neighbourhood forgets its oldest */

/* Make the key. 0 or ERR_TLS. Main thread, once. */
int logincache_init(void);
/* The keyed hash of (login, password) the cache keeps. false when it cannot be made. */
bool logincache_mac(struct span login, struct span password, unsigned char out[32]);
/* Is this a remembered success younger than ttl seconds, of this flush generation? */
bool logincache_hit(struct span login, const unsigned char mac[32], unsigned ttl, uint64_t generation,
    uint64_t now);
/* Remember a success (the caller computed mac before asking PAM: no password is kept). */
void logincache_store(struct span login, const unsigned char mac[32], uint64_t generation, uint64_t now);
void logincache_flush(void);

#endif
