#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"

static const char *const err_names[] = {
	[0]                = "success",
	[-ERR_NOMEM]       = "out of memory",
	[-ERR_LIMIT]       = "limit exceeded",
	[-ERR_SYNTAX]      = "syntax error",
	[-ERR_STATE]       = "bad state",
	[-ERR_IO]          = "input/output error",
	[-ERR_TLS]         = "TLS error",
	[-ERR_STORE_FULL]  = "store full",
	[-ERR_STORE]       = "store error",
	[-ERR_TIMEOUT]     = "timed out",
	[-ERR_NOTFOUND]    = "not found",
	[-ERR_EXISTS]      = "already exists",
	[-ERR_AGAIN]       = "try again",
	[-ERR_CLOSED]      = "connection closed",
	[-ERR_CONFIG]      = "configuration error",
	[-ERR_PERM]        = "permission denied",
	[-ERR_QUOTA]       = "quota exceeded",
	[-ERR_CORRUPT]     = "data corrupt",
	[-ERR_AUTH]        = "authentication failed",
	[-ERR_TEMP]        = "temporary failure",
	[-ERR_PROTO]       = "protocol error",
};

const char *
err_str(int code)
{
	if (code > 0 || code <= ERR_MAX_)
		return "unknown error";
	return err_names[-code];
}

int
err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return ERR_OK;
	case ENOMEM:
		return ERR_NOMEM;
	case EAGAIN:
	case EINTR:
		return ERR_AGAIN;
	case ENOSPC:
	case EDQUOT:
		return ERR_STORE_FULL;
	case EACCES:
	case EPERM:
		return ERR_PERM;
	case ENOENT:
		return ERR_NOTFOUND;
	case EEXIST:
		return ERR_EXISTS;
	case ETIMEDOUT:
		return ERR_TIMEOUT;
	case ECONNRESET:
	case EPIPE:
		return ERR_CLOSED;
	default:
		return ERR_IO;
	}
}

void
err_assert_fail(const char *expr, const char *file, int line)
{
	log_msg(LOG_LEVEL_CRIT, "event=assert expr=\"%s\" at=%s:%d", expr, file, line);
	abort();
}
