/*
 * smtp/session.h: the SMTP server session (RFC 5321) for the smtp,
 * submission and submissions listeners. The engine takes command lines in
 * and gives replies out through conn.h; it never touches a socket.
 * Owning worker only.
 */
#ifndef POSTIE_SMTP_SESSION_H
#define POSTIE_SMTP_SESSION_H

#include "server/conn.h"

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
#define SMTP_CMDLINE_MAX 512

extern const struct proto_ops smtp_proto_ops;

#endif
