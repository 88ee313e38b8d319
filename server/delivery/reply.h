/*
 * delivery/reply.h: reading SMTP replies from remote servers (the outbound
 * client). Remote replies are hostile input: every line and the number of
 * lines in one multi-line reply are bounded (the class of OpenSMTPD
 * CVE-2020-8794), line endings are strict CRLF, and all lines of a reply
 * must carry the same code. Pure: no I/O, no logging; the caller's state.
 */
#ifndef POSTIE_DELIVERY_REPLY_H
#define POSTIE_DELIVERY_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/linereader.h"

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its CRLF. */
#define SMTP_REPLY_LINE_MAX 512
/* Lines in one reply: EHLO lists a few dozen; more is an attack or a bug. */
#define SMTP_REPLY_LINES_MAX 100
/* Text kept of one reply (for logs and DSNs); the rest is counted, not kept. */
#define SMTP_REPLY_TEXT_MAX 4096

struct smtp_reply {
	int code;		/* 200..599 */
	struct buf text;	/* the lines' texts without codes, joined by "\n" */
	unsigned nlines;
};

struct smtp_reply_reader {
	struct linereader lr;
	struct smtp_reply cur;	/* the reply being read */
};

void smtp_reply_reader_init(struct smtp_reply_reader *r);
void smtp_reply_reader_free(struct smtp_reply_reader *r);

enum smtp_reply_result {
	SMTP_REPLY_MORE,	/* need more input */
	SMTP_REPLY_DONE,	/* *out holds a whole reply (the caller frees out->text) */
	SMTP_REPLY_BAD		/* protocol violation: the session must end */
};

/*
 * Read from in; *used_out bytes must be consumed by the caller whatever the
 * result. On SMTP_REPLY_DONE the reply moves into *out (buf ownership too).
 */
enum smtp_reply_result smtp_reply_read(struct smtp_reply_reader *r, const struct buf *in,
    size_t *used_out, struct smtp_reply *out);

/* 2xx, 3xx, 4xx, 5xx: the reply's class. */
static inline int smtp_reply_class(const struct smtp_reply *rep) { return rep->code / 100; }

#endif
