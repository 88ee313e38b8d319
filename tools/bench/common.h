/*
 * common.h: what every benchmark tool shares: one clock, one sort and
 * percentile rule for the JSON figures, and one buffered reader for SMTP
 * replies and POP3 status lines. The reader takes the tool's own read
 * function (recv, or TLS through server/tls.h) and buffer, so this file
 * needs neither GnuTLS nor the tools' sizes. Each reader belongs to one
 * thread.
 */
#ifndef POSTIE_BENCH_COMMON_H
#define POSTIE_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Sort ascending; then the pct-th percentile (v[n * pct / 100], the largest at 100), 0 when n is 0. */
void bench_sort(double *v, size_t n);
double bench_pct(const double *sorted, size_t n, unsigned pct);
/* Sort, then the middle value (the mean of the two middle ones for an even n), 0 when n is 0. */
double bench_median(double *v, size_t n);

struct bench_reader {
	ssize_t (*read)(void *ctx, void *p, size_t n);	/* > 0 bytes read; <= 0 EOF or error */
	void *ctx;
	unsigned char *buf;	/* the caller's, cap bytes; buf[off..len) not read yet */
	size_t cap, len, off;
};

void bench_reader_init(struct bench_reader *r, ssize_t (*read)(void *ctx, void *p, size_t n), void *ctx,
    void *buf, size_t cap);
/* read for a plain socket: ctx points at the int fd */
ssize_t bench_recv(void *ctx, void *p, size_t n);
/* When everything buffered was taken, read more; false at EOF or error. */
bool bench_fill(struct bench_reader *r);
/* One line into out without CR LF (cut to cap - 1), its length in *len_out (may be NULL); false at EOF. */
bool bench_line(struct bench_reader *r, char *out, size_t cap, size_t *len_out);
/* One SMTP reply, all its lines: the code, or -1 at EOF or on a line that is not a reply. */
int bench_smtp_reply(struct bench_reader *r);
/* One POP3 status line: 1 for +OK, 0 for anything else, -1 at EOF. */
int bench_pop3_status(struct bench_reader *r);

#endif
