/*
 * dsn.c: building RFC 3464 reports. Every text that came from a remote
 * server was cleaned to printable ASCII on one line (client.c) before it
 * was stored, so nothing here can inject a header.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "server/delivery/dsn.h"
#include "core/compat.h"

#define PIECE (64 * 1024)

static void
date(char *out, size_t n, uint64_t when)
{
	struct tm tm;
	time_t t = (time_t)when;

	gmtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

void
dsn_status(const char *reply, enum dsn_action action, char out[16])
{
	const char *p;

	/* RFC 3463: class "." subject "." detail, after the reply code */
	for (p = reply; *p; p++) {
		const char *q = p;
		size_t a = 0, b = 0;

		if ((*q != '2' && *q != '4' && *q != '5') || q[1] != '.' || (p > reply && p[-1] != ' '))
			continue;
		q += 2;
		while (is_digit(q[a]) && a < 4)
			a++;
		if (!a || a > 3 || q[a] != '.')
			continue;
		q += a + 1;
		while (is_digit(q[b]) && b < 4)
			b++;
		if (!b || b > 3 || (q[b] && q[b] != ' '))
			continue;
		snprintf(out, 16, "%.*s", (int)(q + b - p), p);
		return;
	}
	snprintf(out, 16, "%s", action == DSN_FAILED ? "5.0.0" : action == DSN_DELAYED ? "4.0.0" : "2.0.0");
}

/* The readable part: a paragraph for each kind of outcome, its recipients below it. */
static void
readable(const struct dsn_info *d, const char *until, struct buf *out)
{
	static const char *const intro[] = {
		[DSN_FAILED] = "Your message could not be delivered to these recipients; it is attached below.\r\n",
		[DSN_DELAYED] = "Your message has not been delivered yet to these recipients. It is still being\r\n"
		    "retried until ",
		[DSN_RELAYED] = "Your message was passed on to these recipients' servers. They send no delivery\r\n"
		    "notifications, so no report of its delivery will follow; a failure further on\r\n"
		    "may still come back as a bounce.\r\n",
		[DSN_DELIVERED] = "Your message was delivered to the mailboxes of these recipients.\r\n",
		[DSN_EXPANDED] = "Your message was delivered to these addresses, which forward it to several\r\n"
		    "recipients; no further report is made for them.\r\n",
	};
	enum dsn_action a;
	size_t i;

	buf_printf(out, "This is the mail system at %s.\r\n", d->hostname);
	for (a = DSN_FAILED; a <= DSN_EXPANDED; a++) {
		bool any = false;

		for (i = 0; i < d->nrcpts; i++)
			any |= d->rcpts[i].action == a;
		if (!any)
			continue;
		buf_append_str(out, "\r\n");
		buf_append_str(out, intro[a]);
		if (a == DSN_DELAYED)
			buf_printf(out, "%s; you need not send it again.\r\n", until);
		buf_append_str(out, "\r\n");
		for (i = 0; i < d->nrcpts; i++)
			if (d->rcpts[i].action == a)
				buf_printf(out, "<%s>: %s\r\n", d->rcpts[i].address, d->rcpts[i].reply);
	}
}

/* The part of a reply after "... said: ", and the server before it. */
static void
split_reply(const char *reply, char *mta, size_t cap, const char **diag)
{
	const char *said = strstr(reply, " said: ");

	mta[0] = '\0';
	*diag = NULL;
	if (!said)
		return;
	snprintf(mta, cap, "%.*s", (int)(said - reply), reply);
	*diag = said + 7;
}

/* Copy the original: its header section only, or all of it. */
static int
original(const struct dsn_info *d, struct buf *out)
{
	static __thread unsigned char piece[PIECE];
	uint64_t off = d->offset;
	unsigned char last[4] = { 0, 0, 0, 0 };

	for (;;) {
		size_t got = 0, i, take;

		if (d->read(d->read_arg, off, piece, sizeof(piece), &got))
			return ERR_STORE;
		if (!got)
			break;
		take = got;
		if (!d->ret_full) {
			for (i = 0; i < got; i++) {
				memmove(last, last + 1, 3);
				last[3] = piece[i];
				if (!memcmp(last, "\r\n\r\n", 4)) {
					take = i + 1;
					break;
				}
			}
		}
		buf_append(out, piece, take);
		off += got;
		if (take < got)
			break;
	}
	if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2))
		buf_append_str(out, "\r\n");
	return out->err;
}

int
dsn_build(const struct dsn_info *d, struct buf *out)
{
	static const char *const action_name[] = { "failed", "delayed", "relayed", "delivered", "expanded" };
	char now[64], arrival[64], until[64], boundary[64], status[16], mta[400];
	bool any_failed = false, any_delayed = false;
	const char *subject;
	size_t i;
	int rc;

	for (i = 0; i < d->nrcpts; i++) {
		any_failed |= d->rcpts[i].action == DSN_FAILED;
		any_delayed |= d->rcpts[i].action == DSN_DELAYED;
	}
	subject = any_failed ? "Undelivered Mail Returned to Sender" :
	    any_delayed ? "Delayed Mail (still being retried)" : "Successful Mail Delivery Report";
	date(now, sizeof(now), d->now);
	date(arrival, sizeof(arrival), d->arrival);
	date(until, sizeof(until), d->retry_until);
	snprintf(boundary, sizeof(boundary), "%016" PRIx64 ".%" PRIu64 "/%s", d->queue_id, d->now, d->hostname);
	buf_printf(out, "Return-Path: <>\r\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%016" PRIx64 ".%" PRIu64 ".dsn@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n--%s\r\n"
	    "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
	    d->hostname, d->sender, subject, now, d->queue_id, d->now, d->hostname, boundary, boundary);
	readable(d, until, out);
	buf_printf(out, "\r\n--%s\r\n"
	    "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\n", boundary, d->hostname);
	if (*d->envid)
		buf_printf(out, "Original-Envelope-Id: %s\r\n", d->envid);
	buf_printf(out, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < d->nrcpts; i++) {
		const struct dsn_rcpt *r = &d->rcpts[i];
		const char *diag;

		dsn_status(r->reply, r->action, status);
		split_reply(r->reply, mta, sizeof(mta), &diag);
		buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", r->address);
		if (*r->orcpt)
			buf_printf(out, "Original-Recipient: %s\r\n", r->orcpt);
		buf_printf(out, "Action: %s\r\nStatus: %s\r\n", action_name[r->action], status);
		if (*mta)
			buf_printf(out, "Remote-MTA: dns; %s\r\n", mta);
		if (diag)
			buf_printf(out, "Diagnostic-Code: smtp; %s\r\n", diag);
		buf_printf(out, "Last-Attempt-Date: %s\r\n", now);
		if (r->action == DSN_DELAYED)
			buf_printf(out, "Will-Retry-Until: %s\r\n", until);
	}
	buf_printf(out, "\r\n--%s\r\n"
	    "Content-Description: %s\r\n"
	    "Content-Type: %s\r\n\r\n", boundary,
	    any_failed || any_delayed ? (d->ret_full ? "Undelivered Message" : "Undelivered Message Headers") :
	    d->ret_full ? "Message" : "Message Headers",
	    d->ret_full ? "message/rfc822" : "text/rfc822-headers");
	if ((rc = original(d, out)))
		return rc;
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	return out->err;
}
