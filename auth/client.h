/*
 * auth/client.h: postied's side of the PAM helper (auth/helper/postie-auth).
 * Sessions ask "is this login and password good"; the answer comes back on
 * the client's reader thread, which the caller marshals to its own worker
 * (worker_post). No caller ever blocks on PAM.
 *
 * The helper: auth_client_start() makes a socketpair, forks, and execs
 * postie-auth with the socket as fd 3 and no other descriptor but 0-2
 * (which it points at /dev/null, keeping stderr for -f), and the PAM
 * service as its -s argument: the helper uses that one service for its
 * whole life and refuses requests naming another, so a change of
 * auth.pam_service takes a restart of postied. It inherits
 * postied's environment: that is how the tests (and `tools/dev run`) give
 * it pam_wrapper (PAM_WRAPPER=1, PAM_WRAPPER_SERVICE_DIR, LD_PRELOAD set
 * before the call; postied itself is not affected by a later LD_PRELOAD).
 * postie-auth's main process never calls PAM: it checks each request,
 * rate-limits, and hands it to one of its PAM worker processes; a worker
 * that dies or takes longer than its timeout (30 s) answers TEMPFAIL and
 * is replaced. So every request is answered, or the helper is gone.
 *
 * Restart: when the socket reaches EOF (postie-auth exited or was killed),
 * every pending request gets TEMPFAIL, never a success, an error is
 * logged, and the reader thread starts postie-auth again after a backoff
 * (1 s, doubling up to 30 s; reset by the next answer). Requests made while
 * it is down get TEMPFAIL at once. The root process is the tiny supervisor,
 * which in practice only ends when postied closes the socket.
 *
 * Except after a privilege drop: a helper started as root whose process
 * has dropped root since cannot be started again with root, and one without
 * it makes PAM modules that need root (pam_unix for other users) refuse
 * every login, for as long as postied runs. So then, when a callback is set
 * (auth_client_set_on_lost), the reader logs why (event=auth_helper
 * action=exit), restarts nothing, and calls it: postied stops and its
 * service manager starts it again as root. Without a callback, or with the
 * same privileges as at start (started as an ordinary user), it restarts
 * as above.
 *
 * Memory: at most AUTH_CLIENT_PENDING_MAX requests in flight. The password
 * is copied only into a secret buffer for the write, wiped before
 * auth_client_check returns.
 *
 * Threads: start/stop from the main thread (stop after the workers that
 * call check have ended); check and helper_pid from any thread.
 */
#ifndef POSTIE_AUTH_CLIENT_H
#define POSTIE_AUTH_CLIENT_H

#include <stdbool.h>

#include "auth/proto.h"
#include "core/span.h"

/* Requests in flight at once; more get TEMPFAIL at once (bounded memory). */
#define AUTH_CLIENT_PENDING_MAX 1024

struct auth_client;

/* The answer to one request: AUTH_RESULT_OK, _FAIL or _TEMPFAIL. */
typedef void (*auth_done_fn)(void *arg, enum auth_result result);

/*
 * Start helper_path (fork + exec as above) for PAM service `service` and
 * the reader thread. foreground: pass -f, the helper logs to stderr rather
 * than syslog. helper_path and service are copied. On success *out is the
 * client; on failure NULL. Returns 0, ERR_CONFIG (service fails
 * auth_proto_valid_service(); logged) or ERR_IO (not executable,
 * socketpair/fork/thread failed; logged).
 */
int auth_client_start(const char *helper_path, const char *service, bool foreground, struct auth_client **out);

/*
 * Stop: close the socket (postie-auth sees EOF, kills its PAM workers and
 * exits), join the reader thread, answer every pending request TEMPFAIL,
 * free c. c may be NULL. No error.
 */
void auth_client_stop(struct auth_client *c);

/*
 * Call on_lost (on the reader thread, once, no lock held) when the helper
 * dies and auth_client_may_restart() says no; it must only tell the main
 * thread (a signal, a pipe), not stop the client itself. Set it before the
 * privilege drop. No error.
 */
void auth_client_set_on_lost(struct auth_client *c, void (*on_lost)(void));

/*
 * May a dead helper be started again by this process: not when the first
 * one ran as root and this process no longer is root (the new one would run
 * PAM without root). Pure; any thread.
 */
bool auth_client_may_restart(bool started_as_root, bool is_root_now);

/* The helper's process id now (0 while it is down): for logs and tests. */
long auth_client_helper_pid(struct auth_client *c);

/*
 * Ask whether login/password is good for the client's PAM service from
 * client address rhost (given to PAM as PAM_RHOST; "" for none).
 *
 * done(arg, result) is called exactly once: normally on the reader thread;
 * with TEMPFAIL on the thread calling auth_client_stop() for requests still
 * pending then; and before this returns when the request is refused at once:
 *   AUTH_RESULT_FAIL      a field no PAM stack can accept (login empty, over
 *                         AUTH_LOGIN_MAX, with control characters or '/',
 *                         password over AUTH_PASSWORD_MAX or with a NUL,
 *                         an rhost that fails proto.h's checks);
 *   AUTH_RESULT_TEMPFAIL  helper down, AUTH_CLIENT_PENDING_MAX requests in
 *                         flight, or the helper not reading.
 * So done must not take a lock the caller holds around this call.
 * rhost is NUL-terminated; login and password are only read
 * during the call (the caller may wipe them right after it returns).
 */
void auth_client_check(struct auth_client *c, struct span login, struct span password, const char *rhost,
    auth_done_fn done, void *arg);

#endif
