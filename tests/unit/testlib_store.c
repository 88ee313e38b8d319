/* testlib_store.c: a store in a temporary directory, for tests and fuzz targets (testlib.h). */
#include "config.h"

#include <string.h>

#include "testlib.h"
#include "core/err.h"
#include "storage/store.h"
#include "core/compat.h"

int
testlib_store_open(struct testlib_store *ts, const char *name, uint64_t map, uint64_t map_max,
    const char *const *logins)
{
	struct store_opts o = { ts->dir, map, map_max, false };
	int rc;

	ts->st = NULL;
	if (!testlib_tmpdir(name, ts->dir, sizeof(ts->dir))) {
		ts->dir[0] = '\0';
		return ERR_IO;
	}
	rc = store_open(&o, &ts->st);
	for (; rc == 0 && logins && *logins; logins++)
		rc = store_user_add(ts->st, *logins, 0);
	if (rc)
		testlib_store_close(ts);
	return rc;
}

void
testlib_store_close(struct testlib_store *ts)
{
	if (ts->st)
		store_close(ts->st);
	ts->st = NULL;
	if (ts->dir[0])
		testlib_rmtree(ts->dir);
	ts->dir[0] = '\0';
}

int
testlib_deliver(struct store *st, const char *login, const char *text)
{
	const char *logins[] = { login };
	struct store_req r;

	memset(&r, 0, sizeof(r));
	r.op = STORE_OP_DELIVER;
	r.u.deliver.mem = (const unsigned char *)text;
	r.u.deliver.mem_len = strlen(text);
	r.u.deliver.fd = -1;
	r.u.deliver.logins = logins;
	r.u.deliver.nlogins = 1;
	return store_submit_wait(st, &r);
}
