/*
 * log.h: one log format for the whole project.
 *
 * A line is one event, as key=value pairs after the session id, e.g.
 *   sid=4e1f02a7 proto=pop3 event=auth result=fail login="bob" ip=192.0.2.7
 * Strings from clients go through log_safe() first. Passwords, AUTH
 * payloads and message bodies are never logged. Any thread may log; the
 * destination is chosen once at start-up with log_open().
 */
#ifndef POSTIE_LOG_H
#define POSTIE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

enum log_level {
	LOG_LEVEL_CRIT = 0,
	LOG_LEVEL_ERR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/*
 * Choose the destination: to_stderr (foreground, tests) or syslog with
 * ident (mail facility). Lines above max_level are dropped. Call before
 * threads start; until then lines go to stderr.
 */
void log_open(const char *ident, bool to_stderr, enum log_level max_level);
void log_set_level(enum log_level max_level);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define LOG_SAFE_MAX 100	/* bytes of client text kept in a log line */
/* Room log_safe() needs: every kept byte may become \xNN, plus "..." and NUL. */
#define LOG_SAFE_SIZE (LOG_SAFE_MAX * 4 + 4)

/*
 * Copy client text into out (at least LOG_SAFE_SIZE bytes) for a log line:
 * non-printing bytes, quotes and backslashes escaped, cut at LOG_SAFE_MAX
 * bytes with "..." appended. Returns out.
 */
const char *log_safe(char *out, struct span s);

/*
 * A rate limiter for warnings that repeat (limit hits per address): allows
 * at most burst lines per interval seconds and counts what it suppressed.
 * Shared between threads; the limiter locks internally.
 */
struct log_ratelimit {
	unsigned interval, burst;
	uint64_t window_start;
	unsigned printed;
	unsigned suppressed;
	int lock;	/* a spinlock word, see log.c */
};
#define LOG_RATELIMIT_INIT(interval_s, burst_n) { (interval_s), (burst_n), 0, 0, 0, 0 }
/* True if a line may be logged now; *suppressed_out gets the count skipped before it. */
bool log_ratelimit_ok(struct log_ratelimit *rl, unsigned *suppressed_out);

#endif
