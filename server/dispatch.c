/*
 * dispatch.c: the command dispatcher of SMTP and POP3 (see dispatch.h for
 * the order of the policy).
 */
#include "config.h"

#include <string.h>

#include "server/dispatch.h"
#include "core/compat.h"

static const struct proto_cmd *
lookup(const struct proto_rules *r, struct span verb)
{
	size_t i;

	for (i = 0; i < r->ncmds; i++)
		if (span_ieq(verb, r->cmds[i].verb))
			return &r->cmds[i];
	return NULL;
}

/* The table's policy for cmd now: NULL to go on, or the refusal. May strip cmd->prefix off *arg. */
static const char *
refusal(const struct proto_rules *r, const struct proto_cmd *cmd, const void *s, struct span *arg)
{
	unsigned f = cmd->flags;

	if (!(cmd->states & r->state(s)))
		return r->bad_state;
	if ((f & PROTO_NOARG) && arg->len)
		return r->no_arg;
	if ((f & (PROTO_ARG | PROTO_SECRET)) && !arg->len)
		return r->need_arg;
	if (cmd->prefix) {
		size_t n = strlen(cmd->prefix);

		if (!span_ieq(span_head(*arg, n), cmd->prefix))
			return cmd->prefix_reply;
		*arg = span_tail(*arg, n);
	}
	if ((f & PROTO_UNAUTH) && r->is_authenticated(s))
		return r->authenticated;
	if ((f & PROTO_LOGIN) && arg->len && !r->may_login(s))
		return r->need_tls;
	if ((f & PROTO_AUTH) && r->must_auth(s))
		return r->need_auth;
	return NULL;
}

void
proto_dispatch(const struct proto_rules *r, void *s, struct span line)
{
	const struct proto_cmd *cmd;
	struct span verb, arg;
	const char *no;

	span_split(line, ' ', &verb, &arg);
	if (!(cmd = lookup(r, verb))) {
		r->refuse(s, r->unknown);
		return;
	}
	/*
	 * RFC 3030 2: a chunk follows its BDAT line whatever the answer, so
	 * its bytes belong to this command, never to the next one. They are
	 * taken over here, before anything below can refuse the command.
	 */
	if ((cmd->flags & PROTO_CHUNK) && !r->take_chunk(s, arg))
		return;
	if ((no = refusal(r, cmd, s, &arg))) {
		r->refuse(s, no);
		return;
	}
	if (cmd->check && !cmd->check(s, arg))
		return;
	cmd->run(s, arg);
}
