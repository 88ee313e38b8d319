/*
 * auth/proto.h: the wire format between postied and postie-auth, shared by
 * both. Length-prefixed binary with a version byte. postie-auth assumes
 * postied may be compromised: the decoder checks every length and
 * character, and anything malformed ends the connection.
 *
 *   frame   = [len u32 BE: bytes after this field] body
 *   request = [version u8 = 1][type u8 = 'Q'][id u32]
 *             [service len u8][service][rhost len u8][rhost]
 *             [login len u8][login][password len u16][password]
 *   reply   = [version u8 = 1][type u8 = 'R'][id u32][result u8]
 *
 * The service in a request must be the one postie-auth was started with
 * (-s SERVICE): postied names it in each request, but cannot choose it, so
 * a compromised postied cannot pick a PAM stack that lets anyone in.
 *
 * Both directions go through core/cursor.h (the codec of the stored
 * records too), so the layout above is written once per message.
 *
 * Pure functions, no I/O; any thread. Used by postie-auth (decode requests,
 * encode replies) and auth/client.c (the other way round).
 */
#ifndef POSTIE_AUTH_PROTO_H
#define POSTIE_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/span.h"

#define AUTH_PROTO_VERSION 1
#define AUTH_LOGIN_MAX 255		/* STYLE 3 */
#define AUTH_PASSWORD_MAX 1024		/* STYLE 3 */
#define AUTH_SERVICE_MAX 64		/* a PAM service file name; ours is "postie" */
#define AUTH_RHOST_MAX 64		/* a numeric IPv4 or IPv6 address (46 at most) */
/* The largest frame body: a request with every field at its maximum. */
#define AUTH_FRAME_MAX (6 + 1 + AUTH_SERVICE_MAX + 1 + AUTH_RHOST_MAX + 1 + AUTH_LOGIN_MAX + 2 + AUTH_PASSWORD_MAX)

enum auth_result {
	AUTH_RESULT_OK = 1,
	AUTH_RESULT_FAIL = 2,		/* bad login or password, or the account is locked/expired */
	AUTH_RESULT_TEMPFAIL = 3	/* PAM or the helper could not answer now */
};

struct auth_request {
	uint32_t id;
	struct span service, rhost, login, password;	/* point into the frame */
};

/*
 * Append a framed request to out (make it a secret buf: it holds the
 * password). Spans are only read during the call. Returns 0, ERR_SYNTAX (a
 * field fails the decoder's checks below; out is unchanged) or ERR_LIMIT
 * (out's max reached).
 */
int auth_proto_encode_request(struct buf *out, uint32_t id, struct span service,
    struct span rhost, struct span login, struct span password);
/* Append a framed reply. Returns 0 or ERR_LIMIT (out's max reached). */
int auth_proto_encode_reply(struct buf *out, uint32_t id, enum auth_result result);

/*
 * Find a whole frame at the start of in: returns its total length (to
 * consume), 0 when more bytes are needed, or ERR_SYNTAX when the length
 * field is impossible (below a reply's 7 bytes or above AUTH_FRAME_MAX):
 * the stream cannot be trusted any more. *body_out (set only on a whole
 * frame) points into in.
 */
long auth_proto_frame(struct span in, struct span *body_out);

/*
 * Decode a request body: version and type; every length within its
 * maximum and the body exactly consumed; service 1..AUTH_SERVICE_MAX of
 * [a-z0-9_.-], not starting with '.' (it names a file in /etc/pam.d);
 * rhost printable ASCII without spaces; login 1..AUTH_LOGIN_MAX bytes with
 * no control character (NUL, CR, LF, DEL included; 8-bit bytes pass) and no
 * '/' (PAM modules run as root and some make the login part of a file name:
 * pam_faillock's tally file, pam_mkhomedir, pam_userdb; no mail login needs
 * one);
 * password up to AUTH_PASSWORD_MAX without NUL (PAM takes C strings). The
 * spans in *out point into body. Returns 0 or ERR_SYNTAX.
 */
int auth_proto_decode_request(struct span body, struct auth_request *out);
/*
 * Is s a PAM service name: 1..AUTH_SERVICE_MAX of [a-z0-9_.-], not starting
 * with '.' (it names a file in /etc/pam.d, so never a path)? postie-auth
 * checks its -s argument with it, auth/client.c the configured service.
 */
bool auth_proto_valid_service(struct span s);

/* Decode a reply body (exactly 7 bytes, a known result). Returns 0 or ERR_SYNTAX. */
int auth_proto_decode_reply(struct span body, uint32_t *id_out, enum auth_result *result_out);

#endif
