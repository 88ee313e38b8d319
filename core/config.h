/*
 * config.h: the configuration as plain C types, immutable after load.
 *
 * config.c turns the libconfig file into a struct config using one table
 * that describes every key (path, type, default, minimum, maximum, where the
 * value goes). Unknown keys, wrong types and out-of-range values are errors
 * with file:line. The same code serves `postied --check-config` and
 * `postiectl check-config`.
 *
 * Lifetime: a struct config is reference counted. The current one is
 * swapped on SIGHUP with config_set(); sessions keep the one they started
 * with (config_get() returns a new reference). Any thread may call
 * config_get()/config_unref(); config_set() is for the main thread.
 */
#ifndef POSTIE_CONFIG_H
#define POSTIE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

/* tls.priority's default: TLS 1.2 and 1.3 only, our order (server/tls.c uses it too) */
#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/postie/postie.conf"

enum listen_proto {
	LISTEN_SMTP = 0,	/* MX: local recipients; relay only after AUTH */
	LISTEN_SUBMISSION,	/* STARTTLS; AUTH required to send */
	LISTEN_SUBMISSIONS,	/* implicit TLS (RFC 8314) */
	LISTEN_POP3,		/* STLS; no plaintext login before TLS */
	LISTEN_POP3S,		/* implicit TLS */
	LISTEN_PROTO_COUNT
};

struct config_listener {
	enum listen_proto proto;
	char *address;		/* numeric IPv4 or IPv6 address */
	unsigned port;		/* 1..65535 */
	int line;		/* where it was declared, for messages */
};

struct config_route {
	char *domain;		/* lower case */
	char *host;
	unsigned port;
};

struct config {
	char *path;			/* file it was loaded from */

	char *hostname;			/* greeting, Received:, bounces */
	char **domains;			/* local domains, lower case */
	size_t ndomains;
	char *user;			/* unprivileged user after start as root */
	unsigned threads;		/* I/O threads; 0 = one per core */
	char *pid_file;			/* "" = none */
	int log_level;			/* enum log_level; key "log_level" = "info" ... */

	struct {
		char *path;
		uint64_t map_size;	/* bytes */
	} storage;

	struct {
		char *certificate;
		char *key;
		char *priority;		/* GnuTLS priority string */
	} tls;

	struct {
		char *directory;	/* DKIM keys: DIRECTORY/DOMAIN/SELECTOR.key */
	} dkim;

	struct {
		char *pam_service;
		char *helper;			/* path of postie-auth */
		bool allow_plaintext_loopback;	/* logins without TLS from 127/8 and ::1 */
		unsigned failure_delay_ms;	/* answer to a failed login is delayed */
		unsigned max_failures;		/* per address within failure_window */
		unsigned failure_window;	/* seconds */
		unsigned cache_ttl;		/* seconds; 0 = no login cache */
	} auth;

	struct config_listener *listeners;
	size_t nlisteners;

	struct {
		unsigned max_connections;	/* whole server */
		unsigned max_connections_per_ip;
		unsigned command_timeout;	/* seconds for one command line to arrive */
		unsigned idle_timeout;		/* seconds without input, after login */
		unsigned preauth_idle_timeout;	/* seconds without input, before login */
		unsigned session_timeout;	/* seconds for a whole session */
		unsigned tls_handshake_timeout;	/* seconds */
		unsigned max_bad_commands;	/* then the connection is closed */
		size_t output_buffer_max;	/* bytes queued to a client that does not read */
	} limits;

	struct {
		uint64_t max_message_size;	/* octets, SIZE and DATA */
		unsigned max_recipients;	/* per message */
		unsigned max_messages_per_session;
		unsigned max_messages_per_hour;	/* per authenticated login; 0 = no limit */
		unsigned max_recipients_per_hour;	/* per authenticated login; 0 = no limit */
		unsigned max_success_reports_per_hour;	/* per unauthenticated client address; 0 = no limit */
		bool sender_must_match;		/* MAIL FROM must map to the login */
	} smtp;

	struct {
		unsigned login_delay;		/* seconds advertised as LOGIN-DELAY; 0 = none */
	} pop3;

	struct {
		char *smarthost;		/* "host:port" or "" */
		char *smarthost_user;		/* AUTH to the smarthost, "" = none */
		char *smarthost_password;
		char *smarthost_ca;		/* PEM CA file that verifies the smarthost, "" = system store */
		struct config_route *routes;
		size_t nroutes;
		char *nameserver;		/* "addr:port" or "" for the system's */
		unsigned queue_lifetime;	/* seconds, then bounce */
		unsigned *retry_schedule;	/* seconds between attempts; last repeats */
		size_t nretry;
		unsigned delay_warning;		/* seconds, 0 = no delay DSN */
		bool tls_fallback_plain;	/* retry without TLS after a failed handshake */
		unsigned max_per_destination;	/* concurrent connections to one host */
		unsigned connect_timeout;	/* seconds */
		unsigned command_timeout;	/* seconds for a reply (RFC 5321 4.5.3.2) */
		unsigned data_timeout;		/* seconds for the reply to the final dot */
		unsigned max_connections;	/* delivery threads: outbound connections at once */
		unsigned mx_port;		/* port of MX hosts (25) */
	} relay;

	int refs_;	/* private: reference count */
};

/*
 * Report one problem: file and line (0 when not tied to a line) and a
 * message. Called once per problem, in file order where possible.
 */
typedef void (*config_report_fn)(void *arg, const char *file, int line, const char *msg);

/*
 * Load and validate path. Every problem found is passed to report (unknown
 * key, wrong type, out of range, missing or unreadable certificate or key,
 * unusable store path, duplicate listener, malformed route...). On success
 * *out holds a new config with one reference.
 * Returns 0, ERR_CONFIG (at least one problem reported) or ERR_IO (file
 * unreadable, also reported).
 */
int config_load(const char *path, struct config **out, config_report_fn report, void *arg);

/* A report function that prints "file:line: msg" to stderr. */
void config_report_stderr(void *arg, const char *file, int line, const char *msg);

struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);

/* The current configuration, with a new reference (NULL before the first set). */
struct config *config_get(void);
/* Make cfg current; takes over the caller's reference. Main thread. */
void config_set(struct config *cfg);

/* Is domain (any case) one of the local domains? */
bool config_is_local_domain(const struct config *cfg, struct span domain);

/* "smtp", "submission", "submissions", "pop3", "pop3s". */
const char *config_proto_name(enum listen_proto proto);

/* A size as the file writes it: digits with an optional K, M, G, T, at most
   2^64 - 1 bytes. 0 or ERR_SYNTAX (anything else, a number too large included). */
int config_parse_size(const char *s, uint64_t *out);

/* Effective number of I/O threads (threads, or one per online core). */
unsigned config_threads(const struct config *cfg);

#endif
