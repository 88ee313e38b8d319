/*
 * pop3/session.h: the POP3 server session (RFC 1939, RFC 2449 CAPA,
 * RFC 2595 STLS) for the pop3 and pop3s listeners. Owning worker only.
 */
#ifndef POSTIE_POP3_SESSION_H
#define POSTIE_POP3_SESSION_H

#include "server/conn.h"

/* RFC 2449 section 4: a command line is at most 255 octets with its CRLF. */
#define POP3_CMDLINE_MAX 255

/*
 * Output queued before a multi-line reply (RETR, TOP, LIST, UIDL) waits
 * for the client to drain it (back-pressure): a session holds about this
 * much for its client, however large the message or the maildrop.
 */
#define POP3_STREAM_HIGH (64 * 1024)

extern const struct proto_ops pop3_proto_ops;

#endif
