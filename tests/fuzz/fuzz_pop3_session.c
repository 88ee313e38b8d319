/* Fuzz the POP3 engine: arbitrary client bytes, fed in data-chosen pieces. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "fake_conn.h"
#include "pop3/session.h"
#include "core/log.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	static int ready;
	struct conn c;
	size_t fed = 0;

	if (!ready) {
		log_open("fuzz", true, LOG_LEVEL_CRIT);
		fake_config_init(&cfg);
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
	fake_conn_free(&c);
	return 0;
}
