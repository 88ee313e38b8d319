/* Fuzz the DATA decoder: feeding in any pieces must give what feeding at once gives. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/smtp/data.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	unsigned char out[1 << 16];
	size_t n;
};

static void
emit(void *arg, const unsigned char *p, size_t n)
{
	struct sink *s = arg;

	if (s->n + n <= sizeof(s->out)) {
		memcpy(s->out + s->n, p, n);
		s->n += n;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sink whole, pieces;
	struct smtp_data a, b;
	size_t used_a, used_b = 0;

	if (size < 1)
		return 0;
	whole.n = pieces.n = 0;
	smtp_data_init(&a, 4096, emit, &whole);
	used_a = smtp_data_feed(&a, data + 1, size - 1);
	smtp_data_init(&b, 4096, emit, &pieces);
	while (used_b < size - 1 && !smtp_data_done(&b)) {
		size_t piece = (size_t)(data[0] % 7) + 1;

		if (piece > size - 1 - used_b)
			piece = size - 1 - used_b;
		used_b += smtp_data_feed(&b, data + 1 + used_b, piece);
	}
	if (used_a != used_b || a.error != b.error || smtp_data_done(&a) != smtp_data_done(&b) ||
	    whole.n != pieces.n || memcmp(whole.out, pieces.out, whole.n) != 0)
		abort();
	/* the data never ends without CRLF "." CRLF right before the end of what was consumed */
	if (smtp_data_done(&a) && (used_a < 3 || memcmp(data + 1 + used_a - 3, ".\r\n", 3) != 0))
		abort();
	return 0;
}
