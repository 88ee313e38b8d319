/*
 * privdrop.h: leave root for good. Main thread, before any other thread
 * exists (setresuid applies to the calling thread's process only because
 * glibc broadcasts it; doing it single-threaded avoids surprises).
 */
#ifndef POSTIE_PRIVDROP_H
#define POSTIE_PRIVDROP_H

#include <sys/types.h>

/* Look up user: uid and primary gid. 0 or ERR_NOTFOUND (logged). */
int privdrop_lookup(const char *user, uid_t *uid_out, gid_t *gid_out);

/*
 * Become user: supplementary groups set to the user's own, gid then uid set
 * (real, effective, saved), PR_SET_NO_NEW_PRIVS, then a check that root
 * cannot be regained. Returns 0 or ERR_PERM (logged); the caller must stop.
 */
int privdrop_to(const char *user);

#endif
