/* common.c: clock, percentiles and reply reader of the benchmark tools (common.h). */
#include "config.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "common.h"

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void
bench_sort(double *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(*v), cmp_double);
}

double
bench_pct(const double *sorted, size_t n, unsigned pct)
{
	if (!n)
		return 0;
	return pct >= 100 ? sorted[n - 1] : sorted[n * pct / 100];
}

double
bench_median(double *v, size_t n)
{
	if (!n)
		return 0;
	bench_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void
bench_reader_init(struct bench_reader *r, ssize_t (*read)(void *ctx, void *p, size_t n), void *ctx, void *buf,
    size_t cap)
{
	r->read = read;
	r->ctx = ctx;
	r->buf = buf;
	r->cap = cap;
	r->len = r->off = 0;
}

ssize_t
bench_recv(void *ctx, void *p, size_t n)
{
	return recv(*(int *)ctx, p, n, 0);
}

bool
bench_fill(struct bench_reader *r)
{
	ssize_t got;

	if (r->off < r->len)
		return true;
	got = r->read(r->ctx, r->buf, r->cap);
	if (got <= 0)
		return false;
	r->len = (size_t)got;
	r->off = 0;
	return true;
}

bool
bench_line(struct bench_reader *r, char *out, size_t cap, size_t *len_out)
{
	size_t n = 0;

	for (;;) {
		if (!bench_fill(r))
			return false;
		while (r->off < r->len) {
			char ch = (char)r->buf[r->off++];

			if (ch == '\n') {
				if (n && out[n - 1] == '\r')
					n--;
				out[n] = '\0';
				if (len_out)
					*len_out = n;
				return true;
			}
			if (n < cap - 1)
				out[n++] = ch;
		}
	}
}

int
bench_smtp_reply(struct bench_reader *r)
{
	char line[1024];
	size_t n;

	for (;;) {
		if (!bench_line(r, line, sizeof(line), &n))
			return -1;
		if (n < 3 || line[0] < '2' || line[0] > '5')
			return -1;
		if (line[3] != '-')
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	}
}

int
bench_pop3_status(struct bench_reader *r)
{
	char line[512];

	if (!bench_line(r, line, sizeof(line), NULL))
		return -1;
	return line[0] == '+' ? 1 : 0;
}
