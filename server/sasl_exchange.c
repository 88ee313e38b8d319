/*
 * sasl_exchange.c: the SASL exchange of SMTP and POP3 AUTH (see
 * sasl_exchange.h). auth/sasl.c decodes; this file reads the lines and
 * answers.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "auth/throttle.h"
#include "core/xmalloc.h"
#include "server/sasl_exchange.h"
#include "core/compat.h"

void
sasl_exchange_init(struct sasl_exchange *x, const struct sasl_exchange_ops *ops, struct conn *c)
{
	memset(x, 0, sizeof(*x));
	x->ops = ops;
	x->conn = c;
}

void
sasl_exchange_end(struct sasl_exchange *x)
{
	if (x->sasl) {
		sasl_free(x->sasl);
		free(x->sasl);
		x->sasl = NULL;
	}
	if (x->line) {
		explicit_bzero(x->line, SASL_LINE_MAX + 1);
		free(x->line);
		x->line = NULL;
	}
}

bool
sasl_exchange_reading(const struct sasl_exchange *x)
{
	return x->sasl && x->line;
}

/* The exchange moved on: ask for more, or answer and end it, or hand the credentials to the login path. */
static void
outcome(struct sasl_exchange *x, enum sasl_status st)
{
	const struct sasl_exchange_ops *ops = x->ops;
	struct conn *c = x->conn;

	switch (st) {
	case SASL_CONTINUE:
		conn_printf(c, "%s%s\r\n", ops->continuation, x->sasl->challenge);
		if (!x->line) {
			x->line = xmalloc(SASL_LINE_MAX + 1);
			linereader_init(&x->lr, SASL_LINE_MAX);	/* RFC 4954 section 4 */
		}
		return;
	case SASL_DONE:
		authflow_check(c, ops->proto, buf_span(&x->sasl->login), buf_span(&x->sasl->password), ops->done);
		break;
	case SASL_BAD_MECH:
		ops->bad_command(c, ops->bad_mech);
		break;
	case SASL_BAD_AUTHZ:
		throttle_log_failure(c->sid, ops->proto, c->ip, "", "authzid_refused");
		ops->auth_failed(c, ops->bad_authz);
		break;
	case SASL_CANCELLED:
		conn_write(c, ops->cancelled, strlen(ops->cancelled));
		break;
	default:
		ops->bad_command(c, ops->bad_response);
		break;
	}
	sasl_exchange_end(x);
}

void
sasl_exchange_start(struct sasl_exchange *x, struct span arg)
{
	struct span mech, ir;

	span_split(arg, ' ', &mech, &ir);
	x->sasl = xmalloc(sizeof(*x->sasl));
	sasl_init(x->sasl);
	/* mech shorter than arg: an initial response follows, maybe empty ("=") */
	outcome(x, sasl_start(x->sasl, mech, mech.len < arg.len, ir));
}

enum lr_result
sasl_exchange_input(struct sasl_exchange *x)
{
	struct span line;
	enum lr_result r = conn_next_line(x->conn, &x->lr, x->line, &line);

	if (r == LR_LINE) {
		outcome(x, sasl_step(x->sasl, line));
	} else if (r != LR_MORE) {
		sasl_exchange_end(x);
		x->ops->bad_command(x->conn, x->ops->bad_line);
	}
	return r;
}
