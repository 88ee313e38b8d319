/*
 * smtp/spool.c: a message in memory, then in an unlinked file (spool.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/smtp/spool.h"
#include "core/compat.h"

void
spool_init(struct spool *sp, const char *dir)
{
	memset(sp, 0, sizeof(*sp));
	sp->fd = -1;
	sp->dir = dir;
}

void
spool_begin(struct spool *sp)
{
	buf_init(&sp->mem, SPOOL_MEM_MAX);
}

void
spool_emit(void *arg, const unsigned char *p, size_t n)
{
	struct spool *sp = arg;

	if (sp->err)
		return;
	sp->len += n;
	if (sp->fd < 0 && sp->mem.len + n <= SPOOL_MEM_MAX) {
		buf_append(&sp->mem, p, n);
		return;
	}
	if (sp->fd < 0) {
		/* an unlinked file in the store's directory: gone with the process */
		sp->fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (sp->fd < 0 || write(sp->fd, sp->mem.data, sp->mem.len) != (ssize_t)sp->mem.len) {
			log_msg(LOG_LEVEL_ERR, "event=spool error=\"%s\"", strerror(errno));
			sp->err = ERR_IO;
			return;
		}
		buf_free(&sp->mem);
	}
	while (n) {
		ssize_t w = write(sp->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_msg(LOG_LEVEL_ERR, "event=spool error=\"%s\"", strerror(errno));
			sp->err = errno == ENOSPC ? ERR_STORE_FULL : ERR_IO;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

int
spool_each(const struct spool *sp, int (*fn)(void *arg, const unsigned char *p, size_t n), void *arg)
{
	unsigned char *piece;
	uint64_t off = 0;
	int rc = 0;

	if (sp->fd < 0)
		return sp->mem.len ? fn(arg, sp->mem.data, sp->mem.len) : 0;
	piece = xmalloc(SPOOL_READ_PIECE);
	while (!rc && off < sp->len) {
		size_t want = sp->len - off < SPOOL_READ_PIECE ? (size_t)(sp->len - off) : SPOOL_READ_PIECE;
		ssize_t got = pread(sp->fd, piece, want, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			log_msg(LOG_LEVEL_ERR, "event=spool error=\"%s\"", got < 0 ? strerror(errno) : "short file");
			rc = ERR_IO;
			break;
		}
		rc = fn(arg, piece, (size_t)got);
		off += (uint64_t)got;
	}
	free(piece);
	return rc;
}

void
spool_free(struct spool *sp)
{
	buf_free(&sp->mem);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}
