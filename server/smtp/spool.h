/*
 * smtp/spool.h: where a message waits between the DATA decoder and its
 * store request. It stays in memory up to SPOOL_MEM_MAX, then moves to an
 * unlinked file (O_TMPFILE) in the store's directory, gone with the
 * process whatever happens. Memory per session is bounded; the disk is
 * bounded by smtp.max_message_size, which the decoder enforces before
 * bytes get here.
 *
 * Threads: a spool belongs to its session's transaction, so to the owning
 * worker only, until the store request that reads it has been answered.
 */
#ifndef POSTIE_SMTP_SPOOL_H
#define POSTIE_SMTP_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* A message kept in memory up to this size; a larger one goes to a file. */
#define SPOOL_MEM_MAX (256 * 1024)

/*
 * Read by the store request at the end of data: the message is mem (while
 * fd is -1) or the first len octets of fd (from offset 0). err is the first
 * failure (ERR_IO, or ERR_STORE_FULL for a full disk); later bytes are
 * then dropped.
 */
struct spool {
	struct buf mem;
	int fd;			/* -1 until the message outgrows memory */
	uint64_t len;		/* octets taken, in memory or in the file */
	int err;
	const char *dir;	/* where the file goes; outlives the spool */
};

/* An empty spool whose file, if one is needed, goes in dir. No error. */
void spool_init(struct spool *sp, const char *dir);

/* Start taking a message (DATA, or the first BDAT): memory up to SPOOL_MEM_MAX. */
void spool_begin(struct spool *sp);

/*
 * The DATA decoder's output callback (arg is the spool): n octets at p
 * appended. Failures are kept in sp->err, logged once each.
 */
void spool_emit(void *arg, const unsigned char *p, size_t n);

/* A message read back in pieces of at most this size (the file case): bounded memory. */
#define SPOOL_READ_PIECE (64 * 1024)

/*
 * The message taken so far, from its first octet, given to fn in order in
 * pieces (one for a message in memory, SPOOL_READ_PIECE at most from the
 * file). The spool is not changed. 0, ERR_IO (a read failed; logged), or
 * fn's first non-zero return.
 */
int spool_each(const struct spool *sp, int (*fn)(void *arg, const unsigned char *p, size_t n), void *arg);

/* Free the memory and close the file. The spool can then only be freed again. */
void spool_free(struct spool *sp);

#endif
