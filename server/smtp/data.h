/*
 * smtp/data.h: the DATA decoder (RFC 5321 4.1.1.4, 4.5.2), a byte-level
 * state machine. The end of data is exactly CRLF "." CRLF (or "." CRLF as
 * the first line); a bare CR or bare LF anywhere is recorded as an error
 * and never ends anything, so one message can never be split into two
 * (the SMTP smuggling class, CVE-2023-51764/5/6). Dot-unstuffing, the line
 * length limit and the size limit are applied while bytes stream through.
 * Pure: the caller's state, output through a callback.
 */
#ifndef POSTIE_SMTP_DATA_H
#define POSTIE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_DATA_LINE_MAX 1000		/* RFC 5321 4.5.3.1.6, CRLF included */
#define SMTP_DATA_HEADERS_MAX 1000	/* header lines kept in one message */

enum smtp_data_error {
	SMTP_DATA_OK = 0,
	SMTP_DATA_BARE_CR_LF,	/* 550 5.6.11: bare CR or LF, or NUL */
	SMTP_DATA_LINE_TOO_LONG,	/* 550 5.6.0 */
	SMTP_DATA_TOO_BIG,	/* 552 5.3.4 */
	SMTP_DATA_TOO_MANY_HEADERS,	/* 552 5.3.4 */
};

struct smtp_data {
	/* state */
	enum { DS_LINE_START, DS_DOT, DS_DOT_CR, DS_MID, DS_CR, DS_END } state;
	size_t line_len;
	uint64_t size, max_size;
	enum smtp_data_error error;	/* the first one; the rest of the data is still read */
	/* facts for the session */
	bool in_headers, saw_8bit, has_message_id, has_date;
	unsigned headers;
	char head[12];			/* the start of the current line, for header names */
	size_t head_len;
	bool bdat;			/* RFC 3030 chunks: no dot-stuffing, no terminator */
	/* output */
	void (*emit)(void *arg, const unsigned char *p, size_t n);
	void *arg;
};

void smtp_data_init(struct smtp_data *d, uint64_t max_size,
    void (*emit)(void *arg, const unsigned char *p, size_t n), void *arg);

/*
 * Feed bytes; returns how many were consumed. When the end of data was
 * reached, d->state is DS_END and the bytes after the terminating CRLF
 * were not consumed (pipelined commands).
 */
size_t smtp_data_feed(struct smtp_data *d, const unsigned char *in, size_t n);

static inline bool smtp_data_done(const struct smtp_data *d) { return d->state == DS_END; }

/*
 * BDAT (RFC 3030): after smtp_data_init(), switch to chunk mode; feed each
 * chunk's bytes (all are consumed), then call smtp_data_bdat_last() after
 * the LAST chunk: a CR left hanging at the very end is a bare CR.
 */
static inline void smtp_data_bdat(struct smtp_data *d) { d->bdat = true; }
void smtp_data_bdat_last(struct smtp_data *d);

#endif
