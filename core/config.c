/*
 * config.c: the libconfig file -> struct config. The table below is the one
 * place where every key, its type, default and range are written down;
 * postie.conf(5) documents the same table.
 */
#include <config.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "core/compat.h"

#ifndef LIBEXECDIR
#define LIBEXECDIR "/usr/libexec/postie"
#endif

enum key_type {
	K_STRING,	/* char * */
	K_BOOL,		/* bool */
	K_UINT,		/* unsigned, plain integer */
	K_SIZE,		/* uint64_t or size_t (by width), integer or "25M" */
	K_SECONDS,	/* unsigned seconds, integer or "5m" */
	K_MSECONDS,	/* unsigned milliseconds, integer seconds or "500ms" / "2s" */
	K_LOGLEVEL,	/* int, "crit" .. "debug" */
	K_DOMAINS,	/* char ** + size_t count (the next field) */
	K_LISTEN,	/* struct config_listener * + count */
	K_ROUTES,	/* struct config_route * + count */
	K_SCHEDULE,	/* unsigned * + count: list of durations */
	K_GROUP		/* a group whose members are keys of their own */
};

struct key {
	const char *path;
	enum key_type type;
	const char *def;	/* default, in the file's own syntax; NULL = none */
	uint64_t min, max;
	size_t off;		/* where the value goes in struct config */
	size_t width;		/* sizeof the destination for K_SIZE */
};

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define U32 UINT32_MAX

/* Every key postie knows. Defaults are production defaults (SPEC.md). */
static const struct key keys[] = {
	{ "hostname",  K_STRING,  NULL,        0, 0,   F(hostname) },	/* default: gethostname() */
	{ "domains",   K_DOMAINS, NULL,        1, 1000, F(domains) },
	{ "user",      K_STRING,  "postie",    0, 0,   F(user) },
	{ "threads",   K_UINT,    "0",         0, 256, F(threads) },
	{ "pid_file",  K_STRING,  "",          0, 0,   F(pid_file) },
	{ "log_level", K_LOGLEVEL, "info",     0, 0,   F(log_level) },

	{ "storage",          K_GROUP,  NULL, 0, 0, 0, 0 },
	{ "storage.path",     K_STRING, "/var/lib/postie", 0, 0, F(storage.path) },
	{ "storage.map_size", K_SIZE,   "1G", 1 << 20, (uint64_t)1 << 40, F(storage.map_size) },

	{ "tls",             K_GROUP,  NULL, 0, 0, 0, 0 },
	{ "tls.certificate", K_STRING, "/etc/postie/tls/cert.pem", 0, 0, F(tls.certificate) },
	{ "tls.key",         K_STRING, "/etc/postie/tls/key.pem",  0, 0, F(tls.key) },
	{ "tls.priority",    K_STRING, TLS_DEFAULT_PRIORITY,       0, 0, F(tls.priority) },

	/* DIRECTORY/DOMAIN/SELECTOR.key (server/dkim_keys.h); read at start and on SIGHUP */
	{ "dkim",           K_GROUP,  NULL, 0, 0, 0, 0 },
	{ "dkim.directory", K_STRING, SYSCONFDIR "/postie/dkim", 0, 0, F(dkim.directory) },

	{ "auth",                          K_GROUP,    NULL,     0, 0, 0, 0 },
	{ "auth.pam_service",              K_STRING,   "postie", 0, 0, F(auth.pam_service) },
	{ "auth.helper",                   K_STRING,   LIBEXECDIR "/postie-auth", 0, 0, F(auth.helper) },
	{ "auth.allow_plaintext_loopback", K_BOOL,     "false",  0, 0, F(auth.allow_plaintext_loopback) },
	{ "auth.failure_delay",            K_MSECONDS, "2s",     0, 60000, F(auth.failure_delay_ms) },
	{ "auth.max_failures",             K_UINT,     "10",     1, 100000, F(auth.max_failures) },
	{ "auth.failure_window",           K_SECONDS,  "15m",    1, 86400, F(auth.failure_window) },
	{ "auth.cache_ttl",                K_SECONDS,  "1h",     0, 86400, F(auth.cache_ttl) },

	{ "limits",                        K_GROUP,   NULL,    0, 0, 0, 0 },
	{ "limits.max_connections",        K_UINT,    "20000", 1, 1000000, F(limits.max_connections) },
	{ "limits.max_connections_per_ip", K_UINT,    "20",    1, 1000000, F(limits.max_connections_per_ip) },
	{ "limits.command_timeout",        K_SECONDS, "5m",    1, 86400, F(limits.command_timeout) },	/* RFC 5321 4.5.3.2 */
	{ "limits.idle_timeout",           K_SECONDS, "5m",    1, 86400, F(limits.idle_timeout) },
	{ "limits.preauth_idle_timeout",   K_SECONDS, "1m",    1, 86400, F(limits.preauth_idle_timeout) },
	{ "limits.session_timeout",        K_SECONDS, "1h",    1, 7 * 86400, F(limits.session_timeout) },
	{ "limits.tls_handshake_timeout",  K_SECONDS, "30s",   1, 3600, F(limits.tls_handshake_timeout) },
	{ "limits.max_bad_commands",       K_UINT,    "10",    1, 1000, F(limits.max_bad_commands) },
	{ "limits.output_buffer_max",      K_SIZE,    "256K",  64 * 1024, 64 << 20, F(limits.output_buffer_max) },

	{ "smtp",                          K_GROUP, NULL,       0, 0, 0, 0 },
	{ "smtp.max_message_size",         K_SIZE,  "26214400", 1024, (uint64_t)1 << 32, F(smtp.max_message_size) },
	{ "smtp.max_recipients",           K_UINT,  "100",      1, 100000, F(smtp.max_recipients) },	/* RFC 5321 4.5.3.1.8: at least 100 */
	{ "smtp.max_messages_per_session", K_UINT,  "100",      1, 1000000, F(smtp.max_messages_per_session) },
	/* per login per hour: what a stolen password can send before the customer's client says 450 */
	{ "smtp.max_messages_per_hour",    K_UINT,  "500",      0, U32, F(smtp.max_messages_per_hour) },
	{ "smtp.max_recipients_per_hour",  K_UINT,  "2000",     0, U32, F(smtp.max_recipients_per_hour) },
	/* NOTIFY=SUCCESS from unauthenticated clients, per address per hour: reports are a reflection channel */
	{ "smtp.max_success_reports_per_hour", K_UINT, "10",    0, U32, F(smtp.max_success_reports_per_hour) },
	{ "smtp.sender_must_match",        K_BOOL,  "true",     0, 0, F(smtp.sender_must_match) },

	{ "pop3",             K_GROUP,   NULL, 0, 0, 0, 0 },
	{ "pop3.login_delay", K_SECONDS, "0",  0, 86400, F(pop3.login_delay) },

	{ "relay",                     K_GROUP,    NULL,  0, 0, 0, 0 },
	{ "relay.smarthost",           K_STRING,   "",    0, 0, F(relay.smarthost) },
	{ "relay.smarthost_user",      K_STRING,   "",    0, 0, F(relay.smarthost_user) },
	{ "relay.smarthost_password",  K_STRING,   "",    0, 0, F(relay.smarthost_password) },
	{ "relay.smarthost_ca",        K_STRING,   "",    0, 0, F(relay.smarthost_ca) },
	{ "relay.routes",              K_ROUTES,   NULL,  0, 10000, F(relay.routes) },
	{ "relay.nameserver",          K_STRING,   "",    0, 0, F(relay.nameserver) },
	{ "relay.queue_lifetime",      K_SECONDS,  "5d",  1, 60 * 86400, F(relay.queue_lifetime) },
	{ "relay.retry_schedule",      K_SCHEDULE, NULL,  1, 64, F(relay.retry_schedule) },
	{ "relay.delay_warning",       K_SECONDS,  "4h",  0, 60 * 86400, F(relay.delay_warning) },
	{ "relay.tls_fallback_plain",  K_BOOL,     "false", 0, 0, F(relay.tls_fallback_plain) },
	{ "relay.max_per_destination", K_UINT,     "10",  1, 1000, F(relay.max_per_destination) },
	{ "relay.connect_timeout",     K_SECONDS,  "5m",  1, 3600, F(relay.connect_timeout) },	/* RFC 5321 4.5.3.2 */
	{ "relay.command_timeout",     K_SECONDS,  "5m",  1, 3600, F(relay.command_timeout) },	/* RFC 5321 4.5.3.2 */
	{ "relay.data_timeout",        K_SECONDS,  "10m", 1, 3600, F(relay.data_timeout) },	/* RFC 5321 4.5.3.2.6 */
	{ "relay.max_connections",     K_UINT,     "20",  1, 500, F(relay.max_connections) },
	{ "relay.mx_port",             K_UINT,     "25",  1, 65535, F(relay.mx_port) },

	{ "listen", K_LISTEN, NULL, 1, 64, F(listeners) },
};

/* Defaults of the list-valued keys. */
static const unsigned default_schedule[] = { 300, 900, 1800, 3600, 7200, 14400 };
static const struct { enum listen_proto proto; unsigned port; } default_listeners[] = {
	{ LISTEN_SMTP, 25 }, { LISTEN_SUBMISSION, 587 }, { LISTEN_SUBMISSIONS, 465 },
	{ LISTEN_POP3, 110 }, { LISTEN_POP3S, 995 },
};

static const char *const proto_names[LISTEN_PROTO_COUNT] = {
	"smtp", "submission", "submissions", "pop3", "pop3s"
};
static const char *const level_names[] = { "crit", "err", "warn", "notice", "info", "debug" };

/* The loading context: where problems go. */
struct loader {
	const char *path;
	config_report_fn report;
	void *arg;
	unsigned problems;
	bool seen[sizeof(keys) / sizeof(keys[0])];
};

static void __attribute__((format(printf, 3, 4)))
problem(struct loader *ld, const config_setting_t *at, const char *fmt, ...)
{
	const char *file = ld->path;
	char msg[512];
	va_list ap;
	int line = 0;

	if (at) {
		line = config_setting_source_line(at);
		if (config_setting_source_file(at))
			file = config_setting_source_file(at);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->problems++;
	ld->report(ld->arg, file, line, msg);
}

void
config_report_stderr(void *arg, const char *file, int line, const char *msg)
{
	(void)arg;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

/* --- value syntax: sizes and durations --- */

/*
 * Numbers in the file go through span_to_u64 (digits only, no sign, no
 * space). A number is at most what 64 bits hold once its unit is applied
 * (bytes for a size, milliseconds for a duration), so the multiplication
 * cannot wrap; each key's own range (the table above) is checked after,
 * with its own message.
 */
#define CONFIG_NUMBER_MAX UINT64_MAX
/* A TCP port is 16 bits (RFC 793 3.1); 0 is refused after. */
#define CONFIG_PORT_MAX 65535

/* "123", "512K", "25M", "1G", "1T": binary multiples. 0 or ERR_SYNTAX. */
static int
parse_size(const char *s, uint64_t *out)
{
	static const struct { char c; unsigned shift; } units[] = {
		{ 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 },
	};
	size_t n = strlen(s), i;
	unsigned shift = 0;
	uint64_t v;

	for (i = 0; n && i < sizeof(units) / sizeof(units[0]); i++) {
		if (toupper((unsigned char)s[n - 1]) == units[i].c) {
			shift = units[i].shift;
			n--;
			break;
		}
	}
	if (!span_to_u64(span_make(s, n), CONFIG_NUMBER_MAX >> shift, &v))
		return ERR_SYNTAX;
	*out = v << shift;
	return 0;
}

/* "30" (seconds), "30s", "500ms", "5m", "2h", "5d" -> milliseconds. 0 or ERR_SYNTAX. */
static int
parse_duration_ms(const char *s, uint64_t *out)
{
	size_t n = strlen(s);
	uint64_t mult = 1000, v;

	if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
		mult = 1;
		n -= 2;
	} else if (n > 1 && strchr("smhd", s[n - 1])) {
		mult = s[n - 1] == 's' ? 1000 : s[n - 1] == 'm' ? 60000 :
		    s[n - 1] == 'h' ? 3600000 : 86400000;
		n--;
	}
	if (!span_to_u64(span_make(s, n), CONFIG_NUMBER_MAX / mult, &v))
		return ERR_SYNTAX;
	*out = v * mult;
	return 0;
}

/* An integer setting, or a string in the size or duration syntax. */
static int
setting_number(struct loader *ld, const config_setting_t *st, const struct key *k, uint64_t *out)
{
	int type = config_setting_type(st);
	const char *str;
	int rc;

	if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		long long v = config_setting_get_int64(st);

		if (v < 0) {
			problem(ld, st, "%s: must not be negative", k->path);
			return ERR_CONFIG;
		}
		*out = (uint64_t)v;
		if (k->type == K_MSECONDS || k->type == K_SCHEDULE) {
			if (*out > UINT64_MAX / 1000) {
				problem(ld, st, "%s: value too large", k->path);
				return ERR_CONFIG;
			}
			*out *= 1000;	/* a bare number of a duration is seconds */
		} else if (k->type == K_SECONDS) {
			*out *= 1000;
		}
		return 0;
	}
	if (type != CONFIG_TYPE_STRING || k->type == K_UINT) {
		problem(ld, st, "%s: expected %s", k->path, k->type == K_UINT ? "an integer" :
		    k->type == K_SIZE ? "an integer or a size like \"25M\"" :
		    "an integer or a duration like \"30s\", \"5m\", \"2h\", \"5d\"");
		return ERR_CONFIG;
	}
	str = config_setting_get_string(st);
	rc = k->type == K_SIZE ? parse_size(str, out) : parse_duration_ms(str, out);
	if (rc) {
		problem(ld, st, "%s: \"%s\" is not a %s", k->path, str,
		    k->type == K_SIZE ? "size (digits with an optional K, M, G or T)"
		    : "duration (digits with ms, s, m, h or d)");
		return ERR_CONFIG;
	}
	return 0;
}

/* --- syntax of domains, host:port --- */

static bool
valid_domain(const char *d)
{
	size_t n = strlen(d), label = 0, i;

	if (n == 0 || n > 255)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return false;
		if ((c == '-' && label == 0) || ++label > 63)
			return false;
	}
	return label > 0 && d[n - 1] != '-';
}

/* "host:port" or "[v6]:port"; host non-empty without spaces. */
static bool
valid_hostport(const char *s, bool numeric)
{
	const char *colon = strrchr(s, ':');
	char host[256];
	uint64_t port;
	size_t hn;

	if (!colon || !span_to_u64(span_cstr(colon + 1), CONFIG_PORT_MAX, &port) || port == 0)
		return false;
	hn = (size_t)(colon - s);
	if (hn == 0 || hn >= sizeof(host))
		return false;
	if (s[0] == '[') {
		if (hn < 3 || s[hn - 1] != ']')
			return false;
		memcpy(host, s + 1, hn - 2);
		host[hn - 2] = '\0';
		struct in6_addr a6;
		return inet_pton(AF_INET6, host, &a6) == 1;
	}
	memcpy(host, s, hn);
	host[hn] = '\0';
	if (strchr(host, ':'))
		return false;	/* a bare IPv6 address needs brackets */
	if (numeric) {
		struct in_addr a4;
		return inet_pton(AF_INET, host, &a4) == 1;
	}
	return valid_domain(host) || inet_pton(AF_INET, host, &(struct in_addr){ 0 }) == 1;
}

static char *
lower_dup(const char *s)
{
	char *d = xstrdup(s), *p;

	for (p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* --- lists --- */

static void
load_domains(struct loader *ld, struct config *cfg, const config_setting_t *st)
{
	int i, n;

	if (config_setting_type(st) != CONFIG_TYPE_ARRAY && config_setting_type(st) != CONFIG_TYPE_LIST) {
		problem(ld, st, "domains: expected a list of strings, like [ \"example.net\" ]");
		return;
	}
	n = config_setting_length(st);
	cfg->domains = xcalloc((size_t)n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
		const char *d = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;

		if (!d || !valid_domain(d)) {
			problem(ld, e, "domains: \"%s\" is not a domain name", d ? d : "(not a string)");
			continue;
		}
		cfg->domains[cfg->ndomains++] = lower_dup(d);
	}
}

/* Members of a list entry group: each must be one of names[]. */
static bool
check_members(struct loader *ld, const config_setting_t *g, const char *what,
    const char *const *names, size_t nnames)
{
	int i, n = config_setting_length(g);
	bool ok = true;

	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		size_t j;

		for (j = 0; j < nnames && strcmp(name, names[j]) != 0; j++)
			;
		if (j == nnames) {
			problem(ld, m, "%s: unknown key \"%s\"", what, name);
			ok = false;
		}
	}
	return ok;
}

static bool
member_port(struct loader *ld, const config_setting_t *g, const char *what, unsigned *out)
{
	const config_setting_t *p = config_setting_get_member(g, "port");
	long long v;

	if (!p) {
		problem(ld, g, "%s: port is missing", what);
		return false;
	}
	if (config_setting_type(p) != CONFIG_TYPE_INT && config_setting_type(p) != CONFIG_TYPE_INT64) {
		problem(ld, p, "%s: port must be an integer", what);
		return false;
	}
	v = config_setting_get_int64(p);
	if (v < 1 || v > 65535) {
		problem(ld, p, "%s: port %lld is out of range (1-65535)", what, v);
		return false;
	}
	*out = (unsigned)v;
	return true;
}

static const char *
member_string(struct loader *ld, const config_setting_t *g, const char *what, const char *name)
{
	const config_setting_t *m = config_setting_get_member(g, name);

	if (!m) {
		problem(ld, g, "%s: %s is missing", what, name);
		return NULL;
	}
	if (config_setting_type(m) != CONFIG_TYPE_STRING) {
		problem(ld, m, "%s: %s must be a string", what, name);
		return NULL;
	}
	return config_setting_get_string(m);
}

static void
load_listeners(struct loader *ld, struct config *cfg, const config_setting_t *st)
{
	static const char *const names[] = { "protocol", "address", "port" };
	int i, n;

	if (config_setting_type(st) != CONFIG_TYPE_LIST) {
		problem(ld, st, "listen: expected a list of groups, like ( { protocol = \"smtp\"; address = \"0.0.0.0\"; port = 25; } )");
		return;
	}
	n = config_setting_length(st);
	cfg->listeners = xcalloc((size_t)n + 1, sizeof(*cfg->listeners));
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(st, (unsigned)i);
		struct config_listener *l = &cfg->listeners[cfg->nlisteners];
		const char *proto, *addr;
		unsigned port, p;
		unsigned char bin[16];
		size_t j;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			problem(ld, g, "listen: each entry must be a group { protocol; address; port; }");
			continue;
		}
		if (!check_members(ld, g, "listen", names, 3))
			continue;
		proto = member_string(ld, g, "listen", "protocol");
		addr = member_string(ld, g, "listen", "address");
		if (!member_port(ld, g, "listen", &port) || !proto || !addr)
			continue;
		for (p = 0; p < LISTEN_PROTO_COUNT && strcmp(proto, proto_names[p]) != 0; p++)
			;
		if (p == LISTEN_PROTO_COUNT) {
			problem(ld, config_setting_get_member(g, "protocol"),
			    "listen: protocol \"%s\" is not one of smtp, submission, submissions, pop3, pop3s", proto);
			continue;
		}
		if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) {
			problem(ld, config_setting_get_member(g, "address"),
			    "listen: address \"%s\" is not a numeric IPv4 or IPv6 address", addr);
			continue;
		}
		for (j = 0; j < cfg->nlisteners; j++) {
			if (cfg->listeners[j].port == port && strcmp(cfg->listeners[j].address, addr) == 0) {
				problem(ld, g, "listen: %s port %u is already used by the listener at line %d",
				    addr, port, cfg->listeners[j].line);
				break;
			}
		}
		if (j < cfg->nlisteners)
			continue;
		l->proto = (enum listen_proto)p;
		l->address = xstrdup(addr);
		l->port = port;
		l->line = config_setting_source_line(g);
		cfg->nlisteners++;
	}
	if (n == 0)
		problem(ld, st, "listen: at least one listener is needed");
}

static void
load_routes(struct loader *ld, struct config *cfg, const config_setting_t *st)
{
	static const char *const names[] = { "domain", "host", "port" };
	int i, n;

	if (config_setting_type(st) != CONFIG_TYPE_LIST) {
		problem(ld, st, "relay.routes: expected a list of groups, like ( { domain = \"x.test\"; host = \"127.0.0.1\"; port = 2600; } )");
		return;
	}
	n = config_setting_length(st);
	cfg->relay.routes = xcalloc((size_t)n + 1, sizeof(*cfg->relay.routes));
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(st, (unsigned)i);
		const char *domain, *host;
		unsigned port;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			problem(ld, g, "relay.routes: each entry must be a group { domain; host; port; }");
			continue;
		}
		if (!check_members(ld, g, "relay.routes", names, 3))
			continue;
		domain = member_string(ld, g, "relay.routes", "domain");
		host = member_string(ld, g, "relay.routes", "host");
		if (!member_port(ld, g, "relay.routes", &port) || !domain || !host)
			continue;
		if (!valid_domain(domain)) {
			problem(ld, g, "relay.routes: \"%s\" is not a domain name", domain);
			continue;
		}
		if (!*host || strpbrk(host, " \t\r\n:") ||
		    (!valid_domain(host) && inet_pton(AF_INET, host, &(struct in_addr){ 0 }) != 1)) {
			problem(ld, g, "relay.routes: host \"%s\" is not a host name or IPv4 address", host);
			continue;
		}
		cfg->relay.routes[cfg->relay.nroutes].domain = lower_dup(domain);
		cfg->relay.routes[cfg->relay.nroutes].host = xstrdup(host);
		cfg->relay.routes[cfg->relay.nroutes].port = port;
		cfg->relay.nroutes++;
	}
}

static void
load_schedule(struct loader *ld, struct config *cfg, const config_setting_t *st, const struct key *k)
{
	int i, n;

	if (config_setting_type(st) != CONFIG_TYPE_ARRAY && config_setting_type(st) != CONFIG_TYPE_LIST) {
		problem(ld, st, "%s: expected a list of durations, like [ \"5m\", \"1h\" ]", k->path);
		return;
	}
	n = config_setting_length(st);
	if (n < (int)k->min || n > (int)k->max) {
		problem(ld, st, "%s: needs between %llu and %llu entries", k->path,
		    (unsigned long long)k->min, (unsigned long long)k->max);
		return;
	}
	cfg->relay.retry_schedule = xcalloc((size_t)n, sizeof(unsigned));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
		uint64_t ms;

		if (setting_number(ld, e, k, &ms))
			continue;
		if (ms < 1000 || ms / 1000 > 30 * 86400) {
			problem(ld, e, "%s: each retry interval must be between 1s and 30d", k->path);
			continue;
		}
		cfg->relay.retry_schedule[cfg->relay.nretry++] = (unsigned)(ms / 1000);
	}
}

/* --- scalar keys --- */

/* A string key: the setting's text, or the default, replacing what was there. */
static void
store_string(struct loader *ld, const struct key *k, const config_setting_t *st, const char *def, char *base)
{
	if (st && config_setting_type(st) != CONFIG_TYPE_STRING) {
		problem(ld, st, "%s: expected a string", k->path);
		return;
	}
	free(*(char **)base);
	*(char **)base = xstrdup(st ? config_setting_get_string(st) : def);
}

/* A boolean key: true or false, or the default ("true" or not). */
static void
store_bool(struct loader *ld, const struct key *k, const config_setting_t *st, const char *def, char *base)
{
	if (st && config_setting_type(st) != CONFIG_TYPE_BOOL) {
		problem(ld, st, "%s: expected true or false", k->path);
		return;
	}
	*(bool *)base = st ? config_setting_get_bool(st) : strcmp(def, "true") == 0;
}

/* A log level key: one of level_names, stored as its index. */
static void
store_loglevel(struct loader *ld, const struct key *k, const config_setting_t *st, const char *def, char *base)
{
	const char *name = def;
	size_t i;

	if (st && config_setting_type(st) != CONFIG_TYPE_STRING) {
		problem(ld, st, "%s: expected a string", k->path);
		return;
	}
	if (st)
		name = config_setting_get_string(st);
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*(int *)base = (int)i;
			return;
		}
	}
	problem(ld, st, "%s: \"%s\" is not one of crit, err, warn, notice, info, debug", k->path, name);
}

/* A number key (count, size or duration): parsed, checked against min and max, stored at its width. */
static void
store_number(struct loader *ld, const struct key *k, const config_setting_t *st, const char *def, char *base)
{
	uint64_t v = 0;
	int rc = 0;

	if (st) {
		rc = setting_number(ld, st, k, &v);
	} else {
		rc = k->type == K_UINT ? (span_to_u64(span_cstr(def), CONFIG_NUMBER_MAX, &v) ? 0 : ERR_SYNTAX)
		    : k->type == K_SIZE ? parse_size(def, &v) : parse_duration_ms(def, &v);
		ASSERT(rc == 0);	/* the table's defaults are ours */
	}
	if (rc)
		return;
	if (k->type == K_SECONDS)
		v /= 1000;
	if (v < k->min || v > k->max) {
		problem(ld, st, "%s: %llu is out of range (%llu-%llu)", k->path,
		    (unsigned long long)v, (unsigned long long)k->min, (unsigned long long)k->max);
		return;
	}
	if (k->type == K_SIZE && k->width == sizeof(uint64_t))
		*(uint64_t *)base = v;
	else if (k->type == K_SIZE)
		*(size_t *)base = (size_t)v;
	else
		*(unsigned *)base = (unsigned)v;
}

/* Set one scalar key in cfg from its setting st, or from def when st is NULL (the key is absent). */
static void
store_scalar(struct loader *ld, struct config *cfg, const struct key *k,
    const config_setting_t *st, const char *def)
{
	char *base = (char *)cfg + k->off;

	switch (k->type) {
	case K_STRING:
		store_string(ld, k, st, def, base);
		return;
	case K_BOOL:
		store_bool(ld, k, st, def, base);
		return;
	case K_LOGLEVEL:
		store_loglevel(ld, k, st, def, base);
		return;
	default:
		store_number(ld, k, st, def, base);
		return;
	}
}

static const struct key *
find_key(const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

/* Walk a group: every member must be a known key of the right kind. */
static void
walk(struct loader *ld, struct config *cfg, const config_setting_t *group, const char *prefix)
{
	int i, n = config_setting_length(group);

	for (i = 0; i < n; i++) {
		const config_setting_t *st = config_setting_get_elem(group, (unsigned)i);
		char path[128];
		const struct key *k;

		if (snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
		    config_setting_name(st)) >= (int)sizeof(path) || !(k = find_key(path))) {
			problem(ld, st, "unknown key \"%s\"", path);
			continue;
		}
		ld->seen[k - keys] = true;
		switch (k->type) {
		case K_GROUP:
			if (config_setting_type(st) != CONFIG_TYPE_GROUP)
				problem(ld, st, "%s: expected a group { ... }", path);
			else
				walk(ld, cfg, st, path);
			break;
		case K_DOMAINS:
			load_domains(ld, cfg, st);
			break;
		case K_LISTEN:
			load_listeners(ld, cfg, st);
			break;
		case K_ROUTES:
			load_routes(ld, cfg, st);
			break;
		case K_SCHEDULE:
			load_schedule(ld, cfg, st, k);
			break;
		default:
			store_scalar(ld, cfg, k, st, k->def);
			break;
		}
	}
}

/* Defaults of everything the file did not set. */
static void
fill_defaults(struct loader *ld, struct config *cfg)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct key *k = &keys[i];

		if (ld->seen[i] || !k->def)
			continue;
		store_scalar(ld, cfg, k, NULL, k->def);
	}
	if (!ld->seen[find_key("relay.retry_schedule") - keys]) {
		cfg->relay.nretry = sizeof(default_schedule) / sizeof(default_schedule[0]);
		cfg->relay.retry_schedule = xmalloc(sizeof(default_schedule));
		memcpy(cfg->relay.retry_schedule, default_schedule, sizeof(default_schedule));
	}
	if (!ld->seen[find_key("listen") - keys]) {
		cfg->nlisteners = sizeof(default_listeners) / sizeof(default_listeners[0]);
		cfg->listeners = xcalloc(cfg->nlisteners, sizeof(*cfg->listeners));
		for (i = 0; i < cfg->nlisteners; i++) {
			cfg->listeners[i].proto = default_listeners[i].proto;
			cfg->listeners[i].address = xstrdup("0.0.0.0");
			cfg->listeners[i].port = default_listeners[i].port;
		}
	}
	if (!cfg->hostname) {
		char host[256];

		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		cfg->hostname = xstrdup(host);
	}
	if (!cfg->relay.routes)
		cfg->relay.routes = xcalloc(1, sizeof(*cfg->relay.routes));
	if (!cfg->domains)
		cfg->domains = xcalloc(1, sizeof(char *));
}

/* Checks that need the whole configuration or the file system. */
static void
check_whole(struct loader *ld, struct config *cfg, const config_t *lc)
{
	const config_setting_t *root = config_root_setting(lc);
	const config_setting_t *at;
	struct stat sb;

	if (!cfg->ndomains)
		problem(ld, config_setting_get_member(root, "domains"),
		    "domains: at least one local domain is required, like domains = [ \"example.net\" ];");
	if (!valid_domain(cfg->hostname))
		problem(ld, config_setting_get_member(root, "hostname"),
		    "hostname: \"%s\" is not a host name", cfg->hostname);
	if (!*cfg->user)
		problem(ld, config_lookup(lc, "user"), "user: must not be empty");
	if (*cfg->relay.smarthost && !valid_hostport(cfg->relay.smarthost, false))
		problem(ld, config_lookup(lc, "relay.smarthost"),
		    "relay.smarthost: \"%s\" is not host:port", cfg->relay.smarthost);
	if (*cfg->relay.smarthost_ca && access(cfg->relay.smarthost_ca, R_OK) < 0)
		problem(ld, config_lookup(lc, "relay.smarthost_ca"), "relay.smarthost_ca: cannot read \"%s\": %s",
		    cfg->relay.smarthost_ca, strerror(errno));
	if (*cfg->relay.nameserver && !valid_hostport(cfg->relay.nameserver, true))
		problem(ld, config_lookup(lc, "relay.nameserver"),
		    "relay.nameserver: \"%s\" is not address:port", cfg->relay.nameserver);
	/* every listener needs TLS: STARTTLS and STLS, or implicit */
	if (cfg->nlisteners) {
		if (access(cfg->tls.certificate, R_OK) < 0)
			problem(ld, config_lookup(lc, "tls.certificate"), "tls.certificate: cannot read \"%s\": %s",
			    cfg->tls.certificate, strerror(errno));
		if (access(cfg->tls.key, R_OK) < 0)
			problem(ld, config_lookup(lc, "tls.key"), "tls.key: cannot read \"%s\": %s",
			    cfg->tls.key, strerror(errno));
	}
	at = config_lookup(lc, "storage.path");
	if (stat(cfg->storage.path, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode))
			problem(ld, at, "storage.path: \"%s\" is not a directory", cfg->storage.path);
		else if (access(cfg->storage.path, W_OK | X_OK) < 0 && geteuid() != 0)
			problem(ld, at, "storage.path: cannot write to \"%s\": %s", cfg->storage.path, strerror(errno));
	} else {
		char parent[4096];
		char *slash;

		snprintf(parent, sizeof(parent), "%s", cfg->storage.path);
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), ".");
		if (stat(parent, &sb) < 0 || !S_ISDIR(sb.st_mode))
			problem(ld, at, "storage.path: \"%s\" does not exist and neither does its parent directory",
			    cfg->storage.path);
	}
	if (cfg->auth.failure_delay_ms > 60000)
		problem(ld, config_lookup(lc, "auth.failure_delay"), "auth.failure_delay: at most 60s");
}

static void
config_free(struct config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].type == K_STRING)
			free(*(char **)((char *)cfg + keys[i].off));
	for (i = 0; i < cfg->ndomains; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	for (i = 0; i < cfg->nlisteners; i++)
		free(cfg->listeners[i].address);
	free(cfg->listeners);
	for (i = 0; i < cfg->relay.nroutes; i++) {
		free(cfg->relay.routes[i].domain);
		free(cfg->relay.routes[i].host);
	}
	free(cfg->relay.routes);
	free(cfg->relay.retry_schedule);
	free(cfg->path);
	free(cfg);
}

int
config_load(const char *path, struct config **out, config_report_fn report, void *arg)
{
	struct loader ld = { .path = path, .report = report, .arg = arg };
	struct config *cfg;
	config_t lc;

	*out = NULL;
	config_init(&lc);
	/* config_read_file records the file name, so settings know their file */
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		bool io = config_error_type(&lc) == CONFIG_ERR_FILE_IO;
		char msg[256];

		if (io)
			snprintf(msg, sizeof(msg), "cannot read the configuration: %s", strerror(errno));
		else
			snprintf(msg, sizeof(msg), "%s", config_error_text(&lc));
		report(arg, config_error_file(&lc) ? config_error_file(&lc) : path,
		    io ? 0 : config_error_line(&lc), msg);
		config_destroy(&lc);
		return io ? ERR_IO : ERR_CONFIG;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	cfg->refs_ = 1;
	walk(&ld, cfg, config_root_setting(&lc), "");
	fill_defaults(&ld, cfg);
	check_whole(&ld, cfg, &lc);
	config_destroy(&lc);
	if (ld.problems) {
		config_free(cfg);
		return ERR_CONFIG;
	}
	*out = cfg;
	return 0;
}

struct config *
config_ref(struct config *cfg)
{
	if (cfg)
		__atomic_add_fetch(&cfg->refs_, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
config_unref(struct config *cfg)
{
	if (cfg && __atomic_sub_fetch(&cfg->refs_, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *current;

struct config *
config_get(void)
{
	struct config *cfg;

	pthread_mutex_lock(&current_lock);
	cfg = config_ref(current);
	pthread_mutex_unlock(&current_lock);
	return cfg;
}

void
config_set(struct config *cfg)
{
	struct config *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = cfg;
	pthread_mutex_unlock(&current_lock);
	config_unref(old);
}

bool
config_is_local_domain(const struct config *cfg, struct span domain)
{
	size_t i;

	for (i = 0; i < cfg->ndomains; i++)
		if (span_ieq(domain, cfg->domains[i]))
			return true;
	return false;
}

const char *
config_proto_name(enum listen_proto proto)
{
	return proto < LISTEN_PROTO_COUNT ? proto_names[proto] : "?";
}

unsigned
config_threads(const struct config *cfg)
{
	long n;

	if (cfg->threads)
		return cfg->threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n <= 256 ? (unsigned)n : 1;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	return parse_size(s, out);
}
