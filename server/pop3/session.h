/*
 * pop3/session.h: the POP3 server session (RFC 1939, RFC 2449 CAPA,
 * RFC 2595 STLS) for the pop3 and pop3s listeners. Owning worker only.
 */
#ifndef POSTIE_POP3_SESSION_H
#define POSTIE_POP3_SESSION_H

#include "conn.h"

/* RFC 2449 section 4: a command line is at most 255 octets with its CRLF. */
#define POP3_CMDLINE_MAX 255

extern const struct proto_ops pop3_proto_ops;

#endif
