/*
 * smtp/spool.c: a message in memory, then in an unlinked file (spool.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
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

void
spool_free(struct spool *sp)
{
	buf_free(&sp->mem);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}
