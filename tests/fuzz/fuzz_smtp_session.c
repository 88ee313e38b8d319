/* Fuzz the SMTP engine: arbitrary client bytes, fed in data-chosen pieces. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "fake_conn.h"
#include "server/smtp/session.h"
#include "core/log.h"
#include "server/server.h"
#include "storage/store.h"
#include <stdio.h>
#include <unistd.h>
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char store_dir[] = "/tmp/postie-fuzz-smtp-XXXXXX";

static void
cleanup(void)
{
	char cmd[64];

	store_close(server_store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store_dir);
	if (system(cmd) != 0)
		(void)0;	/* a temporary directory left behind is harmless */
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
		struct store_opts o = { store_dir, 0, 0, false };

		log_open("fuzz", true, LOG_LEVEL_CRIT);
		fake_config_init(&cfg);
		if (!mkdtemp(store_dir) || store_open(&o, &server_store) || store_user_add(server_store, "alice", 0) ||
		    store_user_add(server_store, "bob", 1000))
			abort();
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
	for (int i = 0; i < 500 && c.paused && !c.closed; i++)
		usleep(1000);
	fake_conn_free(&c);
	return 0;
}
