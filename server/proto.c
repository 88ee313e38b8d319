/* proto.c: the protocol registry: which engine serves which kind of listener. */
#include "config.h"

#include <string.h>

#include "conn.h"
#include "server.h"
#include "server/pop3/session.h"
#include "server/smtp/session.h"
#include "core/compat.h"

void
server_init(struct server *srv)
{
	memset(srv, 0, sizeof(*srv));
	srv->protos[LISTEN_SMTP] = srv->protos[LISTEN_SUBMISSION] = srv->protos[LISTEN_SUBMISSIONS] =
	    &smtp_proto_ops;
	srv->protos[LISTEN_POP3] = srv->protos[LISTEN_POP3S] = &pop3_proto_ops;
}
