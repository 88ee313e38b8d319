/* Fuzz the outbound client's reply reader with whatever a remote server may send. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "server/delivery/reply.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply_reader r;
	struct buf in;
	size_t fed = 0, used;

	buf_init(&in, 4096);
	smtp_reply_reader_init(&r);
	while (fed < size) {
		size_t piece = data[fed] % 97 + 1;
		enum smtp_reply_result res;

		if (piece > size - fed)
			piece = size - fed;
		if (buf_append(&in, data + fed, piece))
			break;
		fed += piece;
		do {
			struct smtp_reply rep;

			res = smtp_reply_read(&r, &in, &used, &rep);
			if (used > in.len)
				abort();
			buf_consume(&in, used);
			if (res == SMTP_REPLY_DONE) {
				if (rep.code < 200 || rep.code > 559 || rep.nlines > SMTP_REPLY_LINES_MAX ||
				    rep.text.len > SMTP_REPLY_TEXT_MAX)
					abort();
				buf_free(&rep.text);
			}
		} while (used && res != SMTP_REPLY_BAD);
		if (res == SMTP_REPLY_BAD)
			break;
	}
	smtp_reply_reader_free(&r);
	buf_free(&in);
	return 0;
}
