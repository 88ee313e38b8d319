/*
 * privdrop.h: leave root for good. Main thread, before any other thread
 * exists (setresuid applies to the calling thread's process only because
 * glibc broadcasts it; doing it single-threaded avoids surprises).
 */
#ifndef POSTIE_PRIVDROP_H
#define POSTIE_PRIVDROP_H

#include <sys/types.h>

#include <stdbool.h>

/* Look up user: uid and primary gid. 0 or ERR_NOTFOUND (logged). */
int privdrop_lookup(const char *user, uid_t *uid_out, gid_t *gid_out);

/*
 * Become user: supplementary groups set to the user's own, gid then uid set
 * (real, effective, saved), PR_SET_NO_NEW_PRIVS, then a check that root
 * cannot be regained. Returns 0 or ERR_PERM (logged); the caller must stop.
 */
int privdrop_to(const char *user);

/*
 * Before the drop: the directory path exists (made mode 0750 when missing)
 * and, when as_root, belongs to user, so the dropped process can create its
 * files there. postied and postiectl both call it before privdrop_to, so
 * whichever runs first on a fresh machine finds the store directory usable.
 * 0, ERR_IO or ERR_CONFIG (logged).
 */
int privdrop_own_dir(const char *path, const char *user, bool as_root);

#endif
