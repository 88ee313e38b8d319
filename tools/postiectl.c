/*
 * postiectl: administration of a postie store, while postied runs.
 * Started as root it becomes the configured user before opening the store,
 * so no store file ever belongs to root.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "auth/sasl.h"
#include "server/dkim_keys.h"
#include "server/tls.h"
#include "storage/store.h"
#include "core/compat.h"

static bool json;
static struct store *open_store;	/* closed by fail() too: the writer finishes cleanly */
static struct config *loaded_config;

static void __attribute__((format(printf, 1, 2), noreturn))
fail(const char *fmt, ...)
{
	va_list ap;

	fputs("postiectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	store_close(open_store);
	config_unref(loaded_config);
	exit(1);
}

static void
usage(FILE *f)
{
	fputs("usage: postiectl [-c FILE] [--json] COMMAND ...\n"
	    "  user add LOGIN [--address ADDR]... [--quota SIZE]\n"
	    "  user del LOGIN [--purge]\n"
	    "  user list\n"
	    "  user show LOGIN\n"
	    "  alias add ADDRESS TARGET...\n"
	    "  alias del ADDRESS\n"
	    "  alias list\n"
	    "  mailbox show LOGIN\n"
	    "  queue list\n"
	    "  queue show ID\n"
	    "  queue flush [ID]\n"
	    "  queue delete ID\n"
	    "  queue bounce ID\n"
	    "  auth flush\n"
	    "  stats\n"
	    "  backup DIR\n"
	    "  verify\n"
	    "  check-config\n"
	    "  dkim generate DOMAIN [--selector S] [--algorithm ed25519|rsa]\n"
	    "  dkim list [--dns]\n"
	    "  dkim retire DOMAIN SELECTOR\n", f);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const char *
what(int rc)
{
	switch (rc) {
	case ERR_NOTFOUND: return "not found";
	case ERR_EXISTS: return "already exists";
	case ERR_SYNTAX: return "malformed";
	case ERR_LIMIT: return "would loop or expand past the limits";
	case ERR_STATE: return "mailbox not empty (use --purge)";
	default: return err_str(rc);
	}
}

/* ------------------------------------------------------------ users */

static int addresses_seen;

static int
print_address(void *arg, const char *address)
{
	(void)arg;
	if (json) {
		printf("%s", addresses_seen++ ? "," : "");
		json_str(address);
	} else {
		printf("  address: %s\n", address);
	}
	return 0;
}

static void
show_account(struct store *st, const struct store_account *a, bool with_addresses)
{
	if (json) {
		printf("{\"login\":");
		json_str(a->login);
		printf(",\"enabled\":%s,\"messages\":%u,\"bytes\":%" PRIu64 ",\"quota\":%" PRIu64
		    ",\"created\":%" PRIu64, a->enabled ? "true" : "false", a->count, a->bytes, a->quota, a->created);
		if (with_addresses) {
			printf(",\"addresses\":[");
			addresses_seen = 0;
			store_address_list(st, a->login, print_address, NULL);
			printf("]");
		}
		printf("}");
		return;
	}
	printf("%s: %u messages, %" PRIu64 " bytes, quota %s%s\n", a->login, a->count, a->bytes,
	    a->quota ? "" : "none", a->enabled ? "" : ", disabled");
	if (a->quota)
		printf("  quota: %" PRIu64 " bytes\n", a->quota);
	if (with_addresses)
		store_address_list(st, a->login, print_address, NULL);
}

static int users_listed;

static int
list_user(void *arg, const struct store_account *a)
{
	if (json && users_listed++)
		putchar(',');
	show_account(arg, a, false);
	return 0;
}

/* user add LOGIN [--address ADDR]... [--quota SIZE]: the account, then its addresses, all or nothing. */
static int
user_add(struct store *st, int argc, char **argv)
{
	const char *login = argv[1];
	uint64_t quota = 0;
	int rc, i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc) {
			if (config_parse_size(argv[++i], &quota))
				fail("--quota: \"%s\" is not a size (digits with an optional K, M, G or T)", argv[i]);
		} else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc) {
			i++;
		} else {
			fail("user add: unexpected \"%s\"", argv[i]);
		}
	}
	if ((rc = store_user_add(st, login, quota)))
		fail("user add %s: %s%s", login, what(rc),
		    rc == ERR_SYNTAX ? " (a login is 1-255 of a-z 0-9 . _ -)" : "");
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--address") != 0) {
			i += strcmp(argv[i], "--quota") == 0;
			continue;
		}
		if ((rc = store_address_add(st, argv[++i], login))) {
			store_user_del(st, login, true);	/* all or nothing */
			fail("user add %s: address %s: %s", login, argv[i], what(rc));
		}
	}
	if (!json)
		printf("added %s\n", login);
	else
		printf("{\"added\":\"%s\"}\n", login);
	return 0;
}

/* user del LOGIN [--purge] */
static int
user_del(struct store *st, int argc, char **argv)
{
	bool purge = argc == 3 && strcmp(argv[2], "--purge") == 0;
	int rc;

	if (argc > 3 || (argc == 3 && !purge))
		fail("usage: user del LOGIN [--purge]");
	if ((rc = store_user_del(st, argv[1], purge)))
		fail("user del %s: %s", argv[1], what(rc));
	if (!json)
		printf("deleted %s\n", argv[1]);
	return 0;
}

/* user list */
static int
user_list(struct store *st)
{
	int rc;

	if (json)
		putchar('[');
	rc = store_user_list(st, list_user, st);
	if (json)
		puts("]");
	if (rc)
		fail("user list: %s", what(rc));
	return 0;
}

/* user show LOGIN */
static int
user_show(struct store *st, const char *login)
{
	struct store_account a;
	int rc;

	if ((rc = store_user_get(st, login, &a)))
		fail("user show %s: %s", login, what(rc));
	show_account(st, &a, true);
	if (json)
		putchar('\n');
	return 0;
}

static int
cmd_user(struct store *st, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[0], "add") == 0)
		return user_add(st, argc, argv);
	if (argc >= 2 && strcmp(argv[0], "del") == 0)
		return user_del(st, argc, argv);
	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return user_list(st);
	if (argc == 2 && strcmp(argv[0], "show") == 0)
		return user_show(st, argv[1]);
	fail("usage: user add|del|list|show ... (postiectl --help)");
}

/* ------------------------------------------------------------ aliases */

static int aliases_listed;

static int
print_alias(void *arg, const char *alias, const char *target)
{
	(void)arg;
	if (json) {
		printf("%s{\"alias\":", aliases_listed++ ? "," : "");
		json_str(alias);
		printf(",\"target\":");
		json_str(target);
		putchar('}');
	} else {
		printf("%s -> %s\n", alias, target);
	}
	return 0;
}

static int
cmd_alias(struct store *st, int argc, char **argv)
{
	int rc;

	if (argc >= 3 && strcmp(argv[0], "add") == 0) {
		if ((rc = store_alias_add(st, argv[1], (const char *const *)argv + 2, (size_t)argc - 2)))
			fail("alias add %s: %s", argv[1], what(rc));
		if (!json)
			printf("added %s\n", argv[1]);
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "del") == 0) {
		if ((rc = store_alias_del(st, argv[1])))
			fail("alias del %s: %s", argv[1], what(rc));
		if (!json)
			printf("deleted %s\n", argv[1]);
		return 0;
	}
	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		if (json)
			putchar('[');
		rc = store_alias_list(st, print_alias, NULL);
		if (json)
			puts("]");
		if (rc)
			fail("alias list: %s", what(rc));
		return 0;
	}
	fail("usage: alias add ADDRESS TARGET... | alias del ADDRESS | alias list");
}

/* ------------------------------------------------------------ queue */

static int queue_listed;

static const char *
rcpt_state_name(uint8_t state)
{
	switch (state) {
	case STORE_RCPT_DELIVERED: return "delivered";
	case STORE_RCPT_FAILED: return "failed";
	case STORE_RCPT_DELIVERED_REPORT: return "delivered-report-due";
	case STORE_RCPT_EXPANDED_REPORT: return "expanded-report-due";
	default: return "pending";
	}
}

static void
print_qentry(const struct store_qentry *q, bool full)
{
	size_t i;

	if (json) {
		printf("%s{\"id\":\"%016" PRIx64 "\",\"sender\":", queue_listed++ ? "," : "", q->id);
		json_str(q->sender);
		printf(",\"size\":%" PRIu64 ",\"created\":%" PRIu64 ",\"next_attempt\":%" PRIu64
		    ",\"attempts\":%u,\"recipients\":[", q->size, q->created, q->next_attempt, q->attempts);
		for (i = 0; i < q->nrcpts; i++) {
			printf("%s{\"address\":", i ? "," : "");
			json_str(q->rcpts[i].address);
			printf(",\"state\":\"%s\",\"reply\":", rcpt_state_name(q->rcpts[i].state));
			json_str(q->rcpts[i].reply);
			if (*q->rcpts[i].login) {	/* a mailbox here, waiting for room */
				printf(",\"local\":");
				json_str(q->rcpts[i].login);
			}
			putchar('}');
		}
		printf("]}");
		return;
	}
	printf("%016" PRIx64 " %8" PRIu64 " <%s> attempts=%u next=%" PRIu64 "\n", q->id, q->size,
	    q->sender, q->attempts, q->next_attempt);
	for (i = 0; full && i < q->nrcpts; i++)
		printf("  %s %s%s%s%s %s\n", rcpt_state_name(q->rcpts[i].state), q->rcpts[i].address,
		    *q->rcpts[i].login ? " (local mailbox " : "", q->rcpts[i].login, *q->rcpts[i].login ? ")" : "",
		    q->rcpts[i].reply);
}

static int
list_qentry(void *arg, const struct store_qentry *q)
{
	(void)arg;
	print_qentry(q, false);
	return 0;
}

static int
cmd_queue(struct store *st, int argc, char **argv)
{
	struct store_qentry q;
	char *end;
	uint64_t id = 0;
	int rc;

	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		if (json)
			putchar('[');
		rc = store_queue_list(st, list_qentry, NULL);
		if (json)
			puts("]");
		if (rc)
			fail("queue list: %s", what(rc));
		return 0;
	}
	if (argc == 2 || (argc == 1 && strcmp(argv[0], "flush") == 0)) {
		id = argc == 2 ? strtoull(argv[1], &end, 16) : 0;
		if (argc == 2 && (!*argv[1] || *end || strlen(argv[1]) > 16 || !id))
			fail("queue %s: \"%s\" is not a queue id (16 hex digits)", argv[0], argv[1]);
	}
	if ((argc == 1 || argc == 2) && strcmp(argv[0], "flush") == 0) {
		size_t n;

		/* postied's runner reads the time index every second: due now means tried now */
		if ((rc = store_queue_flush(st, id, (uint64_t)time(NULL), &n)))
			fail("queue flush%s%s: %s", argc == 2 ? " " : "", argc == 2 ? argv[1] : "", what(rc));
		if (json)
			printf("{\"flushed\":%zu}\n", n);
		else
			printf("%zu queued message%s due now\n", n, n == 1 ? "" : "s");
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "delete") == 0) {
		if ((rc = store_queue_delete(st, id)))
			fail("queue delete %s: %s", argv[1], what(rc));
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "bounce") == 0) {
		/* the runner fails every pending recipient and sends the DSN, as for any failure */
		if ((rc = store_queue_bounce(st, id, (uint64_t)time(NULL))))
			fail("queue bounce %s: %s", argv[1], what(rc));
		return 0;
	}
	if (argc == 2 && strcmp(argv[0], "show") == 0) {
		if ((rc = store_queue_get(st, id, &q)))
			fail("queue show %s: %s", argv[1], what(rc));
		print_qentry(&q, true);
		if (json)
			putchar('\n');
		store_qentry_free(&q);
		return 0;
	}
	fail("usage: queue list | queue show ID | queue flush [ID] | queue delete ID | queue bounce ID");
}

/* ------------------------------------------------------------ the rest */

static void
report_problem(void *arg, const char *problem)
{
	(void)arg;
	fprintf(stderr, "postiectl: verify: %s\n", problem);
}

static int
cmd_mailbox(struct store *st, int argc, char **argv)
{
	struct store_account a;
	int rc;

	if (argc != 2 || strcmp(argv[0], "show") != 0)
		fail("usage: mailbox show LOGIN");
	if ((rc = store_user_get(st, argv[1], &a)))
		fail("mailbox show %s: %s", argv[1], what(rc));
	if (json)
		printf("{\"login\":\"%s\",\"messages\":%u,\"bytes\":%" PRIu64 ",\"quota\":%" PRIu64 "}\n",
		    a.login, a.count, a.bytes, a.quota);
	else
		printf("%s: %u messages, %" PRIu64 " bytes, quota %" PRIu64 "%s\n", a.login, a.count,
		    a.bytes, a.quota, a.quota ? "" : " (none)");
	return 0;
}

static int
cmd_stats(struct store *st)
{
	struct store_stats s;
	int rc = store_stats(st, &s);

	if (rc)
		fail("stats: %s", what(rc));
	if (json)
		printf("{\"users\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"message_bytes\":%" PRIu64
		    ",\"bodies\":%" PRIu64 ",\"body_bytes\":%" PRIu64 ",\"queued\":%" PRIu64
		    ",\"map_size\":%" PRIu64 ",\"map_used\":%" PRIu64 "}\n", s.users, s.messages,
		    s.message_bytes, s.bodies, s.body_bytes, s.queued, s.map_size, s.map_used);
	else
		printf("users %" PRIu64 "\nmessages %" PRIu64 " (%" PRIu64 " bytes)\nbodies %" PRIu64
		    " (%" PRIu64 " bytes)\nqueued %" PRIu64 "\nmap %" PRIu64 " of %" PRIu64 " bytes used\n",
		    s.users, s.messages, s.message_bytes, s.bodies, s.body_bytes, s.queued, s.map_used, s.map_size);
	return 0;
}

/* ------------------------------------------------------------ dkim */

static const char *
alg_name(enum tls_key_alg alg)
{
	return alg == TLS_KEY_ED25519 ? "ed25519" : "rsa";
}

/*
 * A directory of the key tree: 0750, and as root owned by root with the
 * group of the daemon's user, so postied reads it after its drop and no one
 * else can.
 */
static void
key_dir(const char *path, bool as_root, gid_t gid)
{
	if (mkdir(path, 0750) && errno != EEXIST)
		fail("dkim: cannot make %s: %s", path, strerror(errno));
	if ((as_root && chown(path, 0, gid)) || chmod(path, 0750))
		fail("dkim: cannot set the owner and mode of %s: %s", path, strerror(errno));
}

/* The TXT record a receiver looks up (RFC 6376 3.6.2.2), as a zone-file line. */
static void
print_dns(const char *domain, const char *selector, const struct tls_privkey *k)
{
	unsigned char pub[TLS_PUBKEY_MAX];
	struct buf b64, txt;
	size_t n, i;

	if (tls_privkey_public(k, pub, sizeof(pub), &n))
		fail("dkim: cannot export the public key of %s/%s", domain, selector);
	buf_init(&b64, 0);
	buf_init(&txt, 0);
	sasl_base64_encode(pub, n, &b64);
	buf_printf(&txt, "v=DKIM1; k=%s; p=%.*s", alg_name(tls_privkey_alg(k)), (int)b64.len, (const char *)b64.data);
	/* TXT character-strings are at most 255 octets (RFC 1035 3.3.14): cut into several */
	printf("%s._domainkey.%s. IN TXT (", selector, domain);
	for (i = 0; i < txt.len; i += 250)
		printf(" \"%.*s\"", (int)(txt.len - i < 250 ? txt.len - i : 250), (const char *)txt.data + i);
	printf(" )\n");
	buf_free(&b64);
	buf_free(&txt);
}

struct list_state {
	bool dns;
	int seen;
};

static int
list_key(void *arg, const char *domain, const char *selector, const char *path)
{
	struct list_state *ls = arg;
	struct tls_privkey *k;

	if (tls_privkey_load(path, &k)) {
		fprintf(stderr, "postiectl: dkim: %s is not a usable key (postied skips it)\n", path);
		return 0;
	}
	if (ls->dns) {
		print_dns(domain, selector, k);
	} else if (json) {
		printf("%s{\"domain\":", ls->seen ? "," : "");
		json_str(domain);
		printf(",\"selector\":");
		json_str(selector);
		printf(",\"algorithm\":\"%s\",\"file\":", alg_name(tls_privkey_alg(k)));
		json_str(path);
		putchar('}');
	} else {
		printf("%s %s %s %s\n", domain, selector, alg_name(tls_privkey_alg(k)), path);
	}
	ls->seen++;
	tls_privkey_free(k);
	return 0;
}

static void
dkim_generate(const struct config *cfg, const char *domain_arg, const char *selector, int algs,
    bool as_root, gid_t gid)
{
	char domain[DKIM_DOMAIN_MAX + 1], dir[4096], path[4096], sel[DKIM_SELECTOR_MAX + 1], date[16];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;
	int a, len;

	if (strlen(domain_arg) > DKIM_DOMAIN_MAX || !dkim_name_ok(domain_arg, DKIM_DOMAIN_MAX))
		fail("dkim generate: %s is not a domain name", domain_arg);
	for (i = 0; domain_arg[i]; i++)
		domain[i] = (char)tolower((unsigned char)domain_arg[i]);
	domain[i] = '\0';
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	key_dir(cfg->dkim.directory, as_root, gid);
	len = snprintf(dir, sizeof(dir), "%s/%s", cfg->dkim.directory, domain);
	if (len < 0 || (size_t)len >= sizeof(dir))
		fail("dkim generate: path too long");
	key_dir(dir, as_root, gid);
	for (a = TLS_KEY_ED25519; a <= TLS_KEY_RSA; a++) {
		struct tls_privkey *k;
		struct buf pem;
		int fd;

		if (!(algs & (1 << a)))
			continue;
		/* one selector per key: a name given for both algorithms gets each one's suffix */
		if (selector && algs != ((1 << TLS_KEY_ED25519) | (1 << TLS_KEY_RSA)))
			len = snprintf(sel, sizeof(sel), "%s", selector);
		else
			len = snprintf(sel, sizeof(sel), "%s-%s", selector ? selector : date, alg_name((enum tls_key_alg)a));
		if (len < 0 || (size_t)len >= sizeof(sel) || !dkim_name_ok(sel, DKIM_SELECTOR_MAX))
			fail("dkim generate: %s is not a selector (letters, digits, '-', '.')", sel);
		len = snprintf(path, sizeof(path), "%s/%s.key", dir, sel);
		if (len < 0 || (size_t)len >= sizeof(path))
			fail("dkim generate: path too long");
		buf_init(&pem, 0);
		pem.secret = true;
		if (tls_privkey_generate((enum tls_key_alg)a, &pem))
			fail("dkim generate: cannot make a key");
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			fail("dkim generate: %s: %s", path, errno == EEXIST ? "already exists" : strerror(errno));
		if ((as_root && fchown(fd, 0, gid)) || fchmod(fd, 0640) ||
		    write(fd, pem.data, pem.len) != (ssize_t)pem.len || fsync(fd) || close(fd)) {
			unlink(path);
			fail("dkim generate: cannot write %s: %s", path, strerror(errno));
		}
		buf_free(&pem);
		if (tls_privkey_load(path, &k))
			fail("dkim generate: %s cannot be read back", path);
		if (!json)
			printf("%s %s %s %s\n", domain, sel, alg_name((enum tls_key_alg)a), path);
		print_dns(domain, sel, k);
		tls_privkey_free(k);
	}
	if (!json)
		printf("publish the TXT records above, then reload postied (SIGHUP) to sign with the keys\n");
}

static void
dkim_retire(const struct config *cfg, const char *domain, const char *selector, bool as_root, gid_t gid)
{
	char from[4096], dir[4096], to[4096];
	int l1, l2, l3;

	if (!dkim_name_ok(domain, DKIM_DOMAIN_MAX) || !dkim_name_ok(selector, DKIM_SELECTOR_MAX))
		fail("dkim retire: no such key %s %s", domain, selector);
	l1 = snprintf(from, sizeof(from), "%s/%s/%s.key", cfg->dkim.directory, domain, selector);
	l2 = snprintf(dir, sizeof(dir), "%s/%s/retired", cfg->dkim.directory, domain);
	l3 = snprintf(to, sizeof(to), "%s/%s.key", dir, selector);
	if (l1 < 0 || l2 < 0 || l3 < 0 || (size_t)l1 >= sizeof(from) || (size_t)l2 >= sizeof(dir) ||
	    (size_t)l3 >= sizeof(to))
		fail("dkim retire: path too long");
	if (access(from, F_OK))
		fail("dkim retire: no such key %s", from);
	key_dir(dir, as_root, gid);
	if (access(to, F_OK) == 0)
		fail("dkim retire: %s already exists", to);
	if (rename(from, to))
		fail("dkim retire: cannot move %s: %s", from, strerror(errno));
	if (!json)
		printf("retired %s %s: postied stops signing with it at its next reload (SIGHUP); "
		    "keep its TXT record published a few days for mail already sent\n", domain, selector);
}

/* Runs before the store is opened and before any privilege drop: keys belong to root. */
static int
cmd_dkim(const struct config *cfg, int argc, char **argv)
{
	bool as_root = geteuid() == 0;
	uid_t uid;
	gid_t gid = getegid();

	if (as_root && privdrop_lookup(cfg->user, &uid, &gid))
		fail("dkim: no user %s", cfg->user);
	if (tls_global_init())
		fail("dkim: cannot start GnuTLS");
	if (argc >= 2 && strcmp(argv[0], "generate") == 0) {
		const char *selector = NULL;
		int i, algs = 0;

		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
				selector = argv[++i];
			else if (strcmp(argv[i], "--algorithm") == 0 && i + 1 < argc) {
				i++;
				if (strcmp(argv[i], "ed25519") == 0)
					algs |= 1 << TLS_KEY_ED25519;
				else if (strcmp(argv[i], "rsa") == 0)
					algs |= 1 << TLS_KEY_RSA;
				else
					fail("dkim generate: algorithm %s: ed25519 or rsa", argv[i]);
			} else
				fail("usage: dkim generate DOMAIN [--selector S] [--algorithm ed25519|rsa]");
		}
		dkim_generate(cfg, argv[1], selector, algs ? algs : (1 << TLS_KEY_ED25519) | (1 << TLS_KEY_RSA),
		    as_root, gid);
	} else if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		struct list_state ls = { false, 0 };
		int i, rc;

		for (i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--dns") == 0)
				ls.dns = true;
			else if (strcmp(argv[i], "--json") == 0)
				json = true;
			else
				fail("usage: dkim list [--dns] [--json]");
		}
		if (json && !ls.dns)
			putchar('[');
		rc = dkim_keys_scan(cfg->dkim.directory, list_key, &ls);
		if (json && !ls.dns)
			puts("]");
		if (rc)
			fail("dkim list: cannot read %s", cfg->dkim.directory);
	} else if (argc == 3 && strcmp(argv[0], "retire") == 0) {
		dkim_retire(cfg, argv[1], argv[2], as_root, gid);
	} else {
		fail("usage: dkim generate DOMAIN [--selector S] [--algorithm ed25519|rsa] | dkim list [--dns] | "
		    "dkim retire DOMAIN SELECTOR");
	}
	tls_global_deinit();
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = CONFIG_DEFAULT_PATH;
	struct store_opts so;
	struct config *cfg;
	struct store *st;
	const char *cmd;
	int opt, rc;

	/* "+": options end at the command, so "user add x --quota 1G" is the command's */
	while ((opt = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	log_open("postiectl", true, LOG_LEVEL_WARN);
	if (config_load(path, &cfg, config_report_stderr, NULL))
		return 1;
	if (strcmp(cmd, "check-config") == 0) {
		if (!json)
			printf("%s: configuration OK\n", path);
		config_unref(cfg);
		return 0;
	}
	loaded_config = cfg;
	if (strcmp(cmd, "dkim") == 0) {
		rc = cmd_dkim(cfg, argc - optind, argv + optind);
		config_unref(cfg);
		return rc;
	}
	/* on a fresh machine postiectl may run before postied ever did */
	if (geteuid() == 0 && (privdrop_own_dir(cfg->storage.path, cfg->user, true) ||
	    privdrop_to(cfg->user)))
		fail("cannot become user %s with the store at %s", cfg->user, cfg->storage.path);
	memset(&so, 0, sizeof(so));
	so.path = cfg->storage.path;
	so.map_size = cfg->storage.map_size;
	loaded_config = cfg;
	if ((rc = store_open(&so, &st)))
		fail("cannot open the store at %s: %s", cfg->storage.path, err_str(rc));
	open_store = st;

	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "user") == 0)
		rc = cmd_user(st, argc, argv);
	else if (strcmp(cmd, "alias") == 0)
		rc = cmd_alias(st, argc, argv);
	else if (strcmp(cmd, "mailbox") == 0)
		rc = cmd_mailbox(st, argc, argv);
	else if (strcmp(cmd, "queue") == 0)
		rc = cmd_queue(st, argc, argv);
	else if (strcmp(cmd, "auth") == 0 && argc == 1 && strcmp(argv[0], "flush") == 0) {
		if ((rc = store_auth_flush(st)))
			fail("auth flush: %s", what(rc));
		if (!json)
			printf("login cache flushed\n");
	} else if (strcmp(cmd, "stats") == 0 && argc == 0)
		rc = cmd_stats(st);
	else if (strcmp(cmd, "backup") == 0 && argc == 1) {
		if ((rc = store_backup(st, argv[0])))
			fail("backup %s: %s", argv[0], what(rc));
		if (!json)
			printf("backup written to %s\n", argv[0]);
	} else if (strcmp(cmd, "verify") == 0 && argc == 0) {
		rc = store_verify(st, report_problem, NULL);
		if (rc)
			fail("verify: the store is damaged (problems above)");
		if (!json)
			printf("store OK\n");
		else
			puts("{\"ok\":true}");
	} else {
		store_close(st);
		config_unref(cfg);
		usage(stderr);
		return 2;
	}
	store_close(st);
	config_unref(cfg);
	return rc ? 1 : 0;
}
