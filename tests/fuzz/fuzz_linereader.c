/* Fuzz the line reader: whatever the bytes, results stay inside the buffer and consistent. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/linereader.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct linereader lr;
	struct buf b;
	size_t fed = 0;

	buf_init(&b, 1024);
	linereader_init(&lr, 64);
	/* feed in pieces whose sizes come from the data itself */
	while (fed < size) {
		size_t piece = (data[fed] % 17) + 1, used;
		struct span line;
		enum lr_result r;

		if (piece > size - fed)
			piece = size - fed;
		if (buf_append(&b, data + fed, piece))
			abort();
		fed += piece;
		do {
			r = linereader_next(&lr, &b, &line, &used);
			if (used > b.len)
				abort();
			if (r == LR_LINE && (line.len + 2 != used || line.len + 2 > 64 ||
			    memchr(line.p, '\n', line.len) || memchr(line.p, '\r', line.len)))
				abort();
			buf_consume(&b, used);
		} while (used);
	}
	buf_free(&b);
	return 0;
}
