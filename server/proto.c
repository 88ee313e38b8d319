/* proto.c: which protocol engine serves which listener. */
#include "config.h"

#include "conn.h"
#include "server.h"
#include "server/pop3/session.h"
#include "server/smtp/session.h"
#include "core/compat.h"

struct store *server_store;
struct auth_client *server_auth;
void (*server_queued)(void);

const struct proto_ops *
proto_for(enum listen_proto proto)
{
	return proto == LISTEN_POP3 || proto == LISTEN_POP3S ? &pop3_proto_ops : &smtp_proto_ops;
}
