/* Fuzz the SMTP engine: arbitrary client bytes, fed in data-chosen pieces. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "fake_conn.h"
#include "testlib.h"
#include "server/smtp/session.h"
#include "core/log.h"
#include "server/server.h"
#include "storage/store.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct testlib_store store;

static void
cleanup(void)
{
	testlib_store_close(&store);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	static int ready;
	struct conn c;
	size_t fed = 0;

	if (!ready) {
		/* a real store with mailboxes, so RCPT resolves and DATA delivers */
		static const char *const logins[] = { "alice", NULL };

		log_open("fuzz", true, LOG_LEVEL_CRIT);
		fake_config_init(&cfg);
		if (testlib_store_open(&store, "postie-fuzz-smtp", 0, 0, logins) ||
		    store_user_add(store.st, "bob", 1000))
			abort();
		fake_server.store = store.st;
		atexit(cleanup);
		ready = 1;
	}
	fake_conn_init(&c, &cfg, size && (data[0] & 1) ? LISTEN_SUBMISSION : LISTEN_SMTP, &smtp_proto_ops);
	c.ops->start(&c);
	while (fed < size && !c.closed && !c.close_after_flush) {
		size_t piece = data[fed] % 64 + 1;

		if (piece > size - fed)
			piece = size - fed;
		if (c.tls_state == CONN_TLS_PENDING)
			fake_conn_tls_done(&c);
		fake_conn_feed(&c, data + fed, piece);
		fed += piece;
		if (c.out.len > (1u << 16))
			buf_reset(&c.out);	/* replies are checked by the unit tests; keep memory flat */
	}
	/* a message being committed is answered from the store's writer: wait for it */
	fake_conn_wait_resumed(&c, 500);
	fake_conn_free(&c);
	return 0;
}
