/*
 * delivery/dsn.h: delivery status notifications (RFC 3464): a
 * multipart/report with a readable part, message/delivery-status, and the
 * original headers (text/rfc822-headers) or, for RET=FULL, the whole
 * message (message/rfc822). Pure: the caller gives everything, including a
 * reader for the original; dsn_build() only writes into a buf.
 */
#ifndef POSTIE_DELIVERY_DSN_H
#define POSTIE_DELIVERY_DSN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/*
 * What is reported of a recipient (RFC 3464 2.3.3): given up on; not yet
 * delivered, still retried (a warning); and, for NOTIFY=SUCCESS, accepted
 * by a server that offers no DSN (RFC 3461 5.2.2), delivered to a mailbox
 * here (5.2.3), or expanded by an alias to several targets (5.2.7.3).
 */
enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_RELAYED, DSN_DELIVERED, DSN_EXPANDED };

struct dsn_rcpt {
	const char *address;
	const char *orcpt;	/* as received ("rfc822;a@b"), "" = none */
	enum dsn_action action;
	const char *reply;	/* what happened: "host[ip]:25 said: 550 5.1.1 ..." or our own text */
};

struct dsn_info {
	const char *hostname;	/* the reporting MTA */
	const char *sender;	/* who gets the report */
	const char *envid;	/* "" = none */
	uint64_t arrival, now, retry_until;	/* unix times; retry_until for delays */
	uint64_t queue_id;
	bool ret_full;
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
	/* the original message from offset (our Return-Path line skipped) */
	int (*read)(void *arg, uint64_t off, void *buf, size_t n, size_t *got_out);
	void *read_arg;
	uint64_t offset;
};

/* The enhanced status code in a reply text ("5.1.1"), else the action's default
   (5.0.0, 4.0.0, else 2.0.0). */
void dsn_status(const char *reply, enum dsn_action action, char out[16]);

/* The whole report (starting with "Return-Path: <>") appended to out. 0, ERR_LIMIT, ERR_STORE. */
int dsn_build(const struct dsn_info *d, struct buf *out);

#endif
