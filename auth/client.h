/*
 * auth/client.h: postied's side of the PAM helper. Sessions ask "is this
 * login and password good"; the answer comes back on the client's reader
 * thread, which the caller marshals to its own worker (worker_post).
 *
 * Restart: when postie-auth exits, every pending request gets TEMPFAIL
 * (never a success) and the client starts it again with backoff. A helper
 * restarted after postied dropped root runs without root: PAM modules that
 * need it (pam_unix for other users) then refuse, and an error says so.
 * postie-auth itself replaces its PAM worker processes when they die, so
 * the root process that matters rarely goes.
 *
 * Threads: start/stop from the main thread; check from any thread.
 */
#ifndef POSTIE_AUTH_CLIENT_H
#define POSTIE_AUTH_CLIENT_H

#include <stdbool.h>

#include "auth/proto.h"
#include "core/span.h"

/* Requests in flight at once; more get TEMPFAIL at once (bounded memory). */
#define AUTH_CLIENT_PENDING_MAX 1024

struct auth_client;

typedef void (*auth_done_fn)(void *arg, enum auth_result result);

/*
 * Start helper_path (fork + exec, the socket as fd 3, no other descriptor
 * inherited) and the reader thread. foreground: the helper logs to stderr.
 * Returns 0, ERR_IO (logged).
 */
int auth_client_start(const char *helper_path, bool foreground, struct auth_client **out);
/* Stop: the helper sees its socket close and exits; pending requests get TEMPFAIL. */
void auth_client_stop(struct auth_client *c);

/* The helper's process id now (0 while it is down): for logs and tests. */
long auth_client_helper_pid(struct auth_client *c);

/*
 * Ask. done(arg, result) is called exactly once, on the reader thread (or,
 * on an immediate refusal, before this returns: a malformed field gives
 * FAIL, a full table or a broken helper TEMPFAIL). The password is copied
 * into a wiped buffer only for the write.
 */
void auth_client_check(struct auth_client *c, const char *service, struct span login,
    struct span password, const char *rhost, auth_done_fn done, void *arg);

#endif
