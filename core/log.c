#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "core/log.h"
#include "core/compat.h"

static bool log_to_stderr = true;
static enum log_level log_max = LOG_LEVEL_INFO;

static const char *const level_names[] = {
	"crit", "err", "warn", "notice", "info", "debug"
};
static const int level_syslog[] = {
	LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG
};

void
log_open(const char *ident, bool to_stderr, enum log_level max_level)
{
	log_to_stderr = to_stderr;
	log_max = max_level;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level max_level)
{
	__atomic_store_n(&log_max, max_level, __ATOMIC_RELAXED);
}

bool
log_enabled(enum log_level level)
{
	return level <= __atomic_load_n(&log_max, __ATOMIC_RELAXED);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	/* a line cut by vsnprintf is still one whole event: keep what fits */
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	if (log_to_stderr) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		/* one fprintf per line: stdio locks the stream, lines never mix */
		fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000,
		    level_names[level], line);
	} else {
		syslog(level_syslog[level], "%s %s", level_names[level], line);
	}
}

const char *
log_safe(char *out, struct span s)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, n = s.len > LOG_SAFE_MAX ? LOG_SAFE_MAX : s.len;

	for (i = 0; i < n; i++) {
		unsigned char c = s.p[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (s.len > LOG_SAFE_MAX) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

bool
log_ratelimit_ok(struct log_ratelimit *rl, unsigned *suppressed_out)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	while (__atomic_exchange_n(&rl->lock, 1, __ATOMIC_ACQUIRE))
		;
	if ((uint64_t)ts.tv_sec >= rl->window_start + rl->interval) {
		rl->window_start = (uint64_t)ts.tv_sec;
		rl->printed = 0;
	}
	ok = rl->printed < rl->burst;
	if (ok) {
		rl->printed++;
		*suppressed_out = rl->suppressed;
		rl->suppressed = 0;
	} else {
		rl->suppressed++;
		*suppressed_out = 0;
	}
	__atomic_store_n(&rl->lock, 0, __ATOMIC_RELEASE);
	return ok;
}
