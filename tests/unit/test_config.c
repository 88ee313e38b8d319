#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "tap.h"
#include "testlib.h"

static char dir[TESTLIB_DIR_MAX];
static char reported[8192];

static void
collect(void *arg, const char *file, int line, const char *msg)
{
	size_t n = strlen(reported);

	(void)arg;
	snprintf(reported + n, sizeof(reported) - n, "%s:%d: %s\n", file, line, msg);
}

/* The parts every valid file needs, with a certificate and store that exist. */
static const char *
base(void)
{
	static char text[1024];

	snprintf(text, sizeof(text),
	    "domains = [ \"Example.TEST\" ];\n"
	    "tls = { certificate = \"%s/cert.pem\"; key = \"%s/key.pem\"; };\n"
	    "storage = { path = \"%s/store\"; };\n", dir, dir, dir);
	return text;
}

/* Write text (after base() unless bare) to a file and load it. */
static int
load(const char *text, bool bare, struct config **cfg)
{
	char path[128];
	int rc;

	snprintf(path, sizeof(path), "%s/postie.conf", dir);
	testlib_write_file(path, 0644, "%s%s", bare ? "" : base(), text);
	reported[0] = '\0';
	rc = config_load(path, cfg, collect, NULL);
	return rc;
}

static bool
said(const char *what)
{
	return strstr(reported, what) != NULL;
}

static void
test_defaults(void)
{
	struct config *cfg = NULL;

	CHECK(load("", false, &cfg) == 0 && cfg);
	if (!cfg)
		return;
	CHECK(cfg->ndomains == 1 && strcmp(cfg->domains[0], "example.test") == 0);
	CHECK(strcmp(cfg->user, "postie") == 0 && cfg->threads == 0);
	CHECK(cfg->nlisteners == 5 && cfg->listeners[0].port == 25 && cfg->listeners[4].port == 995);
	CHECK(cfg->smtp.max_message_size == 26214400 && cfg->smtp.max_recipients == 100);
	/* abuse limits on by default: per login per hour, success reports per address per hour */
	CHECK(cfg->smtp.max_messages_per_hour == 500 && cfg->smtp.max_recipients_per_hour == 2000 &&
	    cfg->smtp.max_success_reports_per_hour == 10);
	CHECK(cfg->limits.command_timeout == 300 && cfg->limits.preauth_idle_timeout == 60);
	CHECK(cfg->limits.output_buffer_max == 256 * 1024);
	CHECK(cfg->auth.failure_delay_ms == 2000 && cfg->auth.max_failures == 10 &&
	    cfg->auth.failure_window == 900 && cfg->auth.cache_ttl == 3600);
	CHECK(cfg->relay.queue_lifetime == 5 * 86400 && cfg->relay.nretry == 6 &&
	    cfg->relay.retry_schedule[0] == 300);
	CHECK(cfg->storage.map_size == (uint64_t)1 << 30);
	CHECK(cfg->smtp.sender_must_match && !cfg->auth.allow_plaintext_loopback);
	CHECK(strncmp(cfg->tls.priority, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 29) == 0);
	CHECK(strcmp(cfg->dkim.directory, SYSCONFDIR "/postie/dkim") == 0);
	config_unref(cfg);
	cfg = NULL;
	CHECK(load("dkim = { directory = \"/srv/dkim\"; };\n", false, &cfg) == 0 && cfg &&
	    strcmp(cfg->dkim.directory, "/srv/dkim") == 0);
	CHECK(config_is_local_domain(cfg, span_cstr("EXAMPLE.test")));
	CHECK(!config_is_local_domain(cfg, span_cstr("example.tes")));
	CHECK(config_threads(cfg) >= 1);
	config_unref(cfg);
}

static void
test_values(void)
{
	struct config *cfg = NULL;

	CHECK(load("hostname = \"mx.example.test\";\nthreads = 4;\n"
	    "limits = { command_timeout = \"30s\"; max_connections_per_ip = 256; output_buffer_max = \"1M\"; };\n"
	    "auth = { failure_delay = \"500ms\"; allow_plaintext_loopback = true; };\n"
	    "smtp = { max_message_size = \"10M\"; };\n"
	    "relay = { queue_lifetime = \"2h\"; retry_schedule = ( \"1m\", 120 );\n"
	    "  routes = ( { domain = \"remote.test\"; host = \"127.0.0.1\"; port = 2600; } );\n"
	    "  smarthost = \"relay.example.net:587\"; nameserver = \"127.0.0.1:5353\"; };\n"
	    "listen = ( { protocol = \"smtp\"; address = \"127.0.0.1\"; port = 2525; },\n"
	    "           { protocol = \"pop3s\"; address = \"::1\"; port = 2995; } );\n",
	    false, &cfg) == 0);
	if (!cfg) {
		printf("# %s", reported);
		return;
	}
	CHECK(strcmp(cfg->hostname, "mx.example.test") == 0 && cfg->threads == 4);
	CHECK(cfg->limits.command_timeout == 30 && cfg->limits.max_connections_per_ip == 256);
	CHECK(cfg->limits.output_buffer_max == 1 << 20);
	CHECK(cfg->auth.failure_delay_ms == 500 && cfg->auth.allow_plaintext_loopback);
	CHECK(cfg->smtp.max_message_size == 10 << 20);
	CHECK(cfg->relay.queue_lifetime == 7200 && cfg->relay.nretry == 2 &&
	    cfg->relay.retry_schedule[0] == 60 && cfg->relay.retry_schedule[1] == 120);
	CHECK(cfg->relay.nroutes == 1 && strcmp(cfg->relay.routes[0].host, "127.0.0.1") == 0 &&
	    cfg->relay.routes[0].port == 2600);
	CHECK(cfg->nlisteners == 2 && cfg->listeners[1].proto == LISTEN_POP3S &&
	    strcmp(cfg->listeners[1].address, "::1") == 0 && cfg->listeners[1].line == 13);
	config_unref(cfg);
}

/* Each bad file: an error, and a message naming the right line. */
static void
test_errors(void)
{
	static const struct {
		const char *text;
		const char *want;	/* substring of the report, with the line */
	} cases[] = {
		{ "colour = 1;\n", ":4: unknown key \"colour\"" },
		{ "smtp = { max_size = 1; };\n", ":4: unknown key \"smtp.max_size\"" },
		{ "threads = \"four\";\n", ":4: threads: expected an integer" },
		{ "threads = 1000;\n", ":4: threads: 1000 is out of range" },
		{ "threads = -1;\n", ":4: threads: must not be negative" },
		{ "listen = ( { protocol = \"smtp\"; address = \"127.0.0.1\"; port = 0; } );\n", ":4: listen: port 0 is out of range" },
		{ "listen = ( { protocol = \"smtp\"; address = \"127.0.0.1\"; port = 65536; } );\n", "port 65536 is out of range" },
		{ "listen = ( { protocol = \"imap\"; address = \"127.0.0.1\"; port = 143; } );\n", "protocol \"imap\" is not one of" },
		{ "listen = ( { protocol = \"smtp\"; address = \"localhost\"; port = 25; } );\n", "is not a numeric IPv4 or IPv6 address" },
		{ "listen = ( { protocol = \"smtp\"; address = \"127.0.0.1\"; port = 25; tls = true; } );\n", ":4: listen: unknown key \"tls\"" },
		{ "listen = ( { protocol = \"smtp\"; address = \"127.0.0.1\"; port = 25; },\n"
		  "  { protocol = \"pop3\"; address = \"127.0.0.1\"; port = 25; } );\n", ":5: listen: 127.0.0.1 port 25 is already used by the listener at line 4" },
		{ "smtp = { max_message_size = \"25X\"; };\n", "\"25X\" is not a size" },
		{ "smtp = { max_message_size = \"+5\"; };\n", "\"+5\" is not a size" },
		{ "smtp = { max_message_size = \"99999999999999999999\"; };\n", "is not a size" },
		{ "smtp = { max_message_size = \"18014398509481984K\"; };\n", "is not a size" },
		{ "limits = { command_timeout = \"5 m\"; };\n", "\"5 m\" is not a duration" },
		/* every number is at most what fits 64 bits once its unit is applied: the largest
		   one parses (and then fails the key's range), one more does not parse */
		{ "smtp = { max_message_size = \"18446744073709551615\"; };\n", "18446744073709551615 is out of range" },
		{ "smtp = { max_message_size = \"18446744073709551616\"; };\n", "\"18446744073709551616\" is not a size" },
		{ "smtp = { max_message_size = \"18014398509481983K\"; };\n", "is out of range" },
		{ "smtp = { max_message_size = \"17592186044415M\"; };\n", "is out of range" },
		{ "smtp = { max_message_size = \"17592186044416M\"; };\n", "\"17592186044416M\" is not a size" },
		{ "smtp = { max_message_size = \"17179869183g\"; };\n", "is out of range" },
		{ "smtp = { max_message_size = \"17179869184g\"; };\n", "\"17179869184g\" is not a size" },
		{ "smtp = { max_message_size = \"16777215T\"; };\n", "is out of range" },
		{ "smtp = { max_message_size = \"16777216T\"; };\n", "\"16777216T\" is not a size" },
		{ "smtp = { max_message_size = \"-0\"; };\n", "\"-0\" is not a size" },
		{ "smtp = { max_message_size = \"K\"; };\n", "\"K\" is not a size" },
		{ "auth = { failure_delay = \"18446744073709551615ms\"; };\n", "18446744073709551615 is out of range" },
		{ "auth = { failure_delay = \"18446744073709551616ms\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"18446744073709551s\"; };\n", "18446744073709551 is out of range" },
		{ "limits = { command_timeout = \"18446744073709552s\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"307445734561825m\"; };\n", "is out of range" },
		{ "limits = { command_timeout = \"307445734561826m\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"5124095576030h\"; };\n", "is out of range" },
		{ "limits = { command_timeout = \"5124095576031h\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"213503982334d\"; };\n", "is out of range" },
		{ "limits = { command_timeout = \"213503982335d\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"99999999999999999999999\"; };\n", "is not a duration" },
		{ "limits = { command_timeout = \"+5s\"; };\n", "is not a duration" },
		{ "relay = { smarthost = \"relay.example.net:65536\"; };\n", "is not host:port" },
		{ "relay = { smarthost = \"relay.example.net:0\"; };\n", "is not host:port" },
		{ "relay = { smarthost = \"relay.example.net:18446744073709551617\"; };\n", "is not host:port" },
		{ "relay = { smarthost = \"relay.example.net:+25\"; };\n", "is not host:port" },
		{ "limits = { command_timeout = \"\"; };\n", "\"\" is not a duration" },
		{ "limits = { command_timeout = \"1.5h\"; };\n", "is not a duration" },
		{ "relay = { routes = ( { domain = \"x.test\"; host = \"127.0.0.1\"; } ); };\n", ":4: relay.routes: port is missing" },
		{ "relay = { routes = ( { domain = \"-x\"; host = \"h\"; port = 1; } ); };\n", "\"-x\" is not a domain name" },
		{ "relay = { smarthost = \"relay.example.net\"; };\n", ":4: relay.smarthost: \"relay.example.net\" is not host:port" },
		{ "relay = { nameserver = \"dns.example:53\"; };\n", "is not address:port" },
		{ "relay = { smarthost_ca = \"/nonexistent/ca.pem\"; };\n",
		  ":4: relay.smarthost_ca: cannot read \"/nonexistent/ca.pem\": No such file or directory" },
		{ "log_level = \"loud\";\n", "\"loud\" is not one of" },
		{ "auth = { allow_plaintext_loopback = 1; };\n", "expected true or false" },
		{ "pop3 = 5;\n", ":4: pop3: expected a group" },
		{ "hostname = \"bad host\";\n", "is not a host name" },
		{ "user = \"\";\n", "user: must not be empty" },
		{ "threads = = 1;\n", ":4: syntax error" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = NULL;
		int rc = load(cases[i].text, false, &cfg);

		if (!CHECK_MSG(rc == ERR_CONFIG && !cfg && said(cases[i].want), cases[i].want))
			printf("# got: %s", reported);
		config_unref(cfg);
	}
}

static void
test_file_problems(void)
{
	struct config *cfg = NULL;
	char text[512];

	/* no domains at all, a missing certificate and an unusable store: all reported */
	snprintf(text, sizeof(text), "tls = { certificate = \"%s/nope.pem\"; key = \"%s/key.pem\"; };\n"
	    "storage = { path = \"%s/no/such/dir\"; };\nbogus = 1;\n", dir, dir, dir);
	CHECK(load(text, true, &cfg) == ERR_CONFIG);
	CHECK(said("domains: at least one local domain is required"));
	CHECK(said(":1: tls.certificate: cannot read"));
	CHECK(said(":2: storage.path:") && said("neither does its parent"));
	CHECK(said(":3: unknown key \"bogus\""));
	snprintf(text, sizeof(text), "domains = [ \"a.test\" ];\ntls = { certificate = \"%s/cert.pem\"; "
	    "key = \"%s/key.pem\"; };\nstorage = { path = \"%s/cert.pem\"; };\n", dir, dir, dir);
	CHECK(load(text, true, &cfg) == ERR_CONFIG && said(":3: storage.path:") && said("is not a directory"));
	reported[0] = '\0';
	CHECK(config_load("/nonexistent/postie.conf", &cfg, collect, NULL) == ERR_IO &&
	    said("cannot read the configuration"));
}

static void
test_refcount(void)
{
	struct config *a = NULL, *b;

	CHECK(load("", false, &a) == 0);
	config_set(config_ref(a));
	b = config_get();
	CHECK(b == a);
	config_unref(b);
	config_set(NULL);
	CHECK(config_get() == NULL);
	config_unref(a);
	CHECK(strcmp(config_proto_name(LISTEN_SUBMISSIONS), "submissions") == 0);
}

int
main(void)
{
	char path[128];

	if (!testlib_tmpdir("postie-test-config", dir, sizeof(dir)))
		return 1;
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	testlib_write_file(path, 0644, "not checked by the config loader\n");
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	testlib_write_file(path, 0644, "not checked by the config loader\n");

	test_defaults();
	test_values();
	test_errors();
	test_file_problems();
	test_refcount();

	testlib_rmtree(dir);
	return tap_done();
}
