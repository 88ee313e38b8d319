/*
 * Fuzz the outbound client session with whatever a remote server may say:
 * the input is the server's byte stream, cut into reads by its own bytes.
 * The session opens, sends two messages and quits; every result must be a
 * known one and every kept reply text printable on one line.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "server/delivery/client.h"
#include "storage/store.h"
#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
struct feed {
	const uint8_t *p;
	size_t left;
};

static int
f_fill(void *io, struct buf *in, uint64_t deadline)
{
	struct feed *f = io;
	size_t n;

	(void)deadline;
	if (!f->left)
		return ERR_CLOSED;
	n = f->p[0] % 61 + 1;
	if (n > f->left)
		n = f->left;
	if (n > buf_room(in))
		return ERR_LIMIT;
	buf_append(in, f->p, n);
	f->p += n;
	f->left -= n;
	return 0;
}

static int
f_write(void *io, const void *p, size_t n, uint64_t deadline)
{
	(void)io;
	(void)p;
	(void)n;
	(void)deadline;
	return 0;
}

static int
f_starttls(void *io, const char *verify_name, uint64_t deadline, char *why, size_t why_cap)
{
	(void)io;
	(void)verify_name;
	(void)deadline;
	(void)why;
	(void)why_cap;
	return 0;
}

static int
f_read(void *arg, uint64_t off, void *buf, size_t n, size_t *got)
{
	static const char body[] = "Subject: x\r\n\r\n.dot\r\nline";

	(void)arg;
	*got = off >= sizeof(body) - 1 ? 0 : (sizeof(body) - 1 - off < n ? sizeof(body) - 1 - off : n);
	memcpy(buf, body + off, *got);
	return 0;
}

static void
check_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = { data, size };
	struct smtpc_transport t = { f_fill, f_write, f_starttls, &f };
	/* with credentials the destination is verified (the fake handshake says yes), so AUTH is reached */
	struct smtpc_opts o = { "fuzz.test", "peer[192.0.2.1]:25", size & 1 ? SMTPC_TLS_VERIFY : SMTPC_TLS_MAY, "peer",
		size & 1 ? "u" : NULL, "p", 1, 1 };
	struct smtpc_rcpt r[2];
	struct smtpc_msg m;
	struct smtpc c;
	int i, k;

	smtpc_init(&c, &t, &o);
	if (smtpc_open(&c) == SMTPC_OK) {
		for (k = 0; k < 2; k++) {
			memset(&m, 0, sizeof(m));
			memset(r, 0, sizeof(r));
			r[0].address = "a@peer";
			r[0].orcpt = "rfc822;a@peer";
			r[0].notify = STORE_NOTIFY_SUCCESS;
			r[1].address = "b@peer";
			r[1].orcpt = "";
			m.sender = "s@fuzz.test";
			m.envid = "ID";
			m.size = 24;
			m.body_8bit = k == 1;
			m.read = f_read;
			m.rcpts = r;
			m.nrcpts = 2;
			smtpc_send(&c, &m);
			for (i = 0; i < 2; i++) {
				if (r[i].result != SMTPC_OK && r[i].result != SMTPC_TEMP && r[i].result != SMTPC_PERM)
					abort();
				check_text(r[i].reply);
			}
		}
		smtpc_quit(&c);
	}
	check_text(c.error);
	smtpc_free(&c);
	return 0;
}
