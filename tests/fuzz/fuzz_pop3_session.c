/* Fuzz the POP3 engine: arbitrary client bytes, fed in data-chosen pieces. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "fake_conn.h"
#include "server/pop3/session.h"
#include "core/log.h"
#include "server/server.h"
#include "storage/store.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char store_dir[] = "/tmp/postie-fuzz-pop3-XXXXXX";

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
		/* a real store with one mailbox, so logins reach TRANSACTION and UPDATE */
		struct store_opts o = { store_dir, 0, 0, false };
		struct store_req r;

		log_open("fuzz", true, LOG_LEVEL_CRIT);
		fake_config_init(&cfg);
		if (!mkdtemp(store_dir) || store_open(&o, &server_store) || store_user_add(server_store, "alice", 0))
			abort();
		atexit(cleanup);
		memset(&r, 0, sizeof(r));
		r.op = STORE_OP_DELIVER;
		r.u.deliver.mem = (const unsigned char *)"Subject: x\r\n\r\n.body\r\n";
		r.u.deliver.mem_len = strlen((const char *)r.u.deliver.mem);
		r.u.deliver.fd = -1;
		r.u.deliver.logins = (const char *[]){ "alice" };
		r.u.deliver.nlogins = 1;
		for (int i = 0; i < 5; i++)
			store_submit_wait(server_store, &r);
		ready = 1;
	}
	fake_conn_init(&c, &cfg, size && (data[0] & 1) ? LISTEN_POP3S : LISTEN_POP3, &pop3_proto_ops);
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
	/* a QUIT with deletions is answered from the store's writer: wait for it */
	for (int i = 0; i < 500 && c.paused && !c.closed; i++)
		usleep(1000);
	fake_conn_free(&c);
	return 0;
}
