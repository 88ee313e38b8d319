#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "server/tls.h"
#include "tap.h"
#include "testlib.h"

static char dir[TESTLIB_DIR_MAX];

/* A self-signed certificate made with certtool, as tools/dev does. */
static bool
make_cert(const char *name, const char *cn)
{
	char cmd[1024], tmpl[128];

	snprintf(tmpl, sizeof(tmpl), "%s/%s.tmpl", dir, name);
	if (!testlib_write_file(tmpl, 0600, "cn = \"%s\"\nexpiration_days = 2\ntls_www_server\nsigning_key\n"
	    "encryption_key\n", cn))
		return false;
	snprintf(cmd, sizeof(cmd),
	    "certtool --generate-privkey --key-type=ecdsa --outfile %s/%s.key >/dev/null 2>&1 && "
	    "certtool --generate-self-signed --load-privkey %s/%s.key --template %s "
	    "--outfile %s/%s.pem >/dev/null 2>&1", dir, name, dir, name, tmpl, dir, name);
	return system(cmd) == 0;
}

/* A test CA ("ca") and a server certificate it issued for smarthost.test and 127.0.0.1 ("leaf"). */
static bool
make_ca_and_leaf(void)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "%s/ca.tmpl", dir);
	if (!testlib_write_file(cmd, 0600, "cn = \"Test CA\"\nca\ncert_signing_key\nexpiration_days = 2\n"))
		return false;
	snprintf(cmd, sizeof(cmd), "%s/leaf.tmpl", dir);
	if (!testlib_write_file(cmd, 0600, "cn = \"smarthost.test\"\ndns_name = \"smarthost.test\"\n"
	    "ip_address = \"127.0.0.1\"\n"
	    "expiration_days = 2\ntls_www_server\nsigning_key\nencryption_key\n"))
		return false;
	snprintf(cmd, sizeof(cmd),
	    "cd %s && certtool --generate-privkey --key-type=ecdsa --outfile ca.key >/dev/null 2>&1 && "
	    "certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem >/dev/null 2>&1 && "
	    "certtool --generate-privkey --key-type=ecdsa --outfile leaf.key >/dev/null 2>&1 && "
	    "certtool --generate-certificate --load-privkey leaf.key --load-ca-certificate ca.pem "
	    "--load-ca-privkey ca.key --template leaf.tmpl --outfile leaf.pem >/dev/null 2>&1 && "
	    "printf 'no certificate here\\n' > empty.pem", dir);
	return system(cmd) == 0;
}

static void
path(char *out, size_t n, const char *name, const char *ext)
{
	snprintf(out, n, "%s/%s.%s", dir, name, ext);
}

/* A connected pair of non-blocking sockets. */
static void
pair(int sv[2])
{
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
}

/* Step both handshakes until both finish or one fails; returns server's result. */
static int
handshake(struct tls_conn *srv, struct tls_conn *cli, int *cli_rc)
{
	int s = TLS_WANT_READ, c = TLS_WANT_READ, i;

	for (i = 0; i < 200 && (s < 0 && s != ERR_TLS) ; i++) {
		if (c == TLS_WANT_READ || c == TLS_WANT_WRITE)
			c = tls_handshake(cli);
		s = tls_handshake(srv);
	}
	for (i = 0; i < 50 && (c == TLS_WANT_READ || c == TLS_WANT_WRITE); i++)
		c = tls_handshake(cli);
	*cli_rc = c;
	return s;
}

/* Move n bytes from a to b through TLS, with partial writes and reads. */
static bool
transfer(struct tls_conn *a, struct tls_conn *b, size_t n)
{
	unsigned char *src = malloc(n), *dst = malloc(n);
	size_t sent = 0, got = 0;
	int spins = 0;
	bool ok;

	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)(i * 7 + 3);
	while (got < n && spins++ < 100000) {
		if (sent < n) {
			ssize_t w = tls_write(a, src + sent, n - sent > 20000 ? 20000 : n - sent);
			if (w > 0)
				sent += (size_t)w;
			else if (w != TLS_WANT_WRITE && w != TLS_WANT_READ) {
				printf("# tls_write: %zd\n", w);
				break;
			}
		}
		while (got < n) {
			ssize_t r = tls_read(b, dst + got, n - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
	}
	ok = got == n && memcmp(src, dst, n) == 0;
	if (!ok)
		printf("# transfer: sent %zu got %zu of %zu after %d spins\n", sent, got, n, spins);
	free(src);
	free(dst);
	return ok;
}

static void
test_roundtrip(struct tls_creds *server_creds, struct tls_creds *client_creds)
{
	struct tls_conn *srv, *cli;
	char buf[64];
	int sv[2], crc;
	ssize_t r;

	pair(sv);
	CHECK(tls_conn_new_server(server_creds, sv[0], &srv) == 0);
	CHECK(tls_conn_new_client(client_creds, sv[1], "localhost", &cli) == 0);
	CHECK(handshake(srv, cli, &crc) == 0 && crc == 0);
	CHECK(strcmp(tls_conn_version(srv), "TLSv1.3") == 0);
	CHECK(strcmp(tls_conn_cipher(srv), "unknown") != 0);
	CHECK(transfer(cli, srv, 100));
	CHECK(transfer(srv, cli, 1 << 20));

	/* close_notify: the reader sees ERR_CLOSED, and keeps seeing it */
	tls_bye(cli);
	r = tls_read(srv, buf, sizeof(buf));
	CHECK(r == ERR_CLOSED);
	CHECK(tls_read(srv, buf, sizeof(buf)) == ERR_CLOSED && tls_pending(srv) == 0);
	CHECK(tls_write(srv, "x", 1) == ERR_TLS);
	tls_conn_free(srv);
	tls_conn_free(cli);
	close(sv[0]);
	close(sv[1]);
}

static void
test_tls12_and_old_versions(const char *cert, const char *key, struct tls_creds *client_creds)
{
	struct tls_creds *c12, *old_client;
	struct tls_conn *srv, *cli;
	int sv[2], crc;

	CHECK(tls_creds_server_load(cert, key, "NORMAL:-VERS-ALL:+VERS-TLS1.2", &c12) == 0);
	pair(sv);
	tls_conn_new_server(c12, sv[0], &srv);
	tls_conn_new_client(client_creds, sv[1], NULL, &cli);
	CHECK(handshake(srv, cli, &crc) == 0 && strcmp(tls_conn_version(cli), "TLSv1.2") == 0);
	tls_conn_free(srv);
	tls_conn_free(cli);
	close(sv[0]);
	close(sv[1]);
	tls_creds_unref(c12);

	/* a client that speaks only TLS 1.0/1.1 is refused by the default priority */
	CHECK(tls_creds_client_new("NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0", NULL, &old_client) == 0);
	{
		struct tls_creds *def;
		CHECK(tls_creds_server_load(cert, key, NULL, &def) == 0);
		pair(sv);
		tls_conn_new_server(def, sv[0], &srv);
		tls_conn_new_client(old_client, sv[1], NULL, &cli);
		CHECK(handshake(srv, cli, &crc) == ERR_TLS);
		tls_conn_free(srv);
		tls_conn_free(cli);
		close(sv[0]);
		close(sv[1]);
		tls_creds_unref(def);
	}
	tls_creds_unref(old_client);
}

static void
test_garbage_and_eof(struct tls_creds *creds)
{
	struct tls_conn *srv;
	int sv[2], i, rc = TLS_WANT_READ;
	char buf[16];

	pair(sv);
	tls_conn_new_server(creds, sv[0], &srv);
	CHECK(write(sv[1], "EHLO plaintext\r\n", 16) == 16);
	for (i = 0; i < 10 && (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE); i++)
		rc = tls_handshake(srv);
	CHECK(rc == ERR_TLS);
	CHECK(tls_handshake(srv) == ERR_TLS && tls_read(srv, buf, sizeof(buf)) == ERR_TLS);
	tls_conn_free(srv);
	close(sv[0]);
	close(sv[1]);

	pair(sv);
	tls_conn_new_server(creds, sv[0], &srv);
	close(sv[1]);	/* EOF before any byte */
	rc = TLS_WANT_READ;
	for (i = 0; i < 10 && (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE); i++)
		rc = tls_handshake(srv);
	CHECK(rc == ERR_TLS);
	tls_conn_free(srv);
	close(sv[0]);
}

static void
test_bad_files(const char *cert, const char *key)
{
	struct tls_creds *c = NULL;

	CHECK(tls_creds_server_load("/nonexistent.pem", key, NULL, &c) == ERR_TLS && !c);
	CHECK(tls_creds_server_load(cert, cert, NULL, &c) == ERR_TLS && !c);	/* cert as key */
	CHECK(tls_creds_server_load(cert, key, "NORMAL:+NOT-A-THING", &c) == ERR_TLS && !c);
}

/* One handshake with verification of name; true when it succeeded, else the reason in why. */
static bool
verified(struct tls_creds *server_creds, struct tls_creds *client_creds, const char *name, char *why, size_t cap)
{
	struct tls_conn *srv, *cli;
	int sv[2], crc, src;
	bool failed_on_cert;

	why[0] = '\0';
	pair(sv);
	tls_conn_new_server(server_creds, sv[0], &srv);
	tls_conn_new_client(client_creds, sv[1], NULL, &cli);
	if (name)
		CHECK(tls_conn_verify(cli, name) == 0);
	src = handshake(srv, cli, &crc);
	failed_on_cert = tls_conn_verify_failure(cli, why, cap);
	CHECK(failed_on_cert == (crc != 0));	/* the certificate is the only thing that can fail here */
	if (crc == 0)
		CHECK(src == 0);
	tls_conn_free(srv);
	tls_conn_free(cli);
	close(sv[0]);
	close(sv[1]);
	return crc == 0;
}

static void
test_verify(struct tls_creds *client_system)
{
	char ca[128], leaf[128], leaf_key[128], empty[128], why[200], long_name[300];
	struct tls_creds *server_creds, *client_ca, *c = NULL;
	struct tls_conn *cli;
	int sv[2];

	path(ca, sizeof(ca), "ca", "pem");
	path(leaf, sizeof(leaf), "leaf", "pem");
	path(leaf_key, sizeof(leaf_key), "leaf", "key");
	path(empty, sizeof(empty), "empty", "pem");
	CHECK(tls_creds_server_load(leaf, leaf_key, NULL, &server_creds) == 0);
	CHECK(tls_creds_client_new(NULL, ca, &client_ca) == 0);
	/* the CA file's trust, the host name or the IP address the certificate names */
	CHECK(verified(server_creds, client_ca, "smarthost.test", why, sizeof(why)));
	CHECK(verified(server_creds, client_ca, "SmartHost.Test", why, sizeof(why)));
	CHECK(verified(server_creds, client_ca, "127.0.0.1", why, sizeof(why)));
	/* names it does not carry */
	CHECK(!verified(server_creds, client_ca, "other.test", why, sizeof(why)));
	CHECK(strcmp(why, "certificate name mismatch: expected other.test") == 0);
	CHECK(!verified(server_creds, client_ca, "127.0.0.2", why, sizeof(why)));
	CHECK(strcmp(why, "certificate name mismatch: expected 127.0.0.2") == 0);
	CHECK(!verified(server_creds, client_ca, "[::1]", why, sizeof(why)));
	CHECK(strcmp(why, "certificate name mismatch: expected ::1") == 0);
	/* the system store does not know the test CA; without verification anything goes */
	CHECK(!verified(server_creds, client_system, "smarthost.test", why, sizeof(why)));
	CHECK(strcmp(why, "certificate signer unknown") == 0);
	CHECK(verified(server_creds, client_system, NULL, why, sizeof(why)) && why[0] == '\0');
	/* a reason is cut, never overflows */
	CHECK(!verified(server_creds, client_system, "other.test", why, 20) && strlen(why) == 19);
	/* a name longer than any DNS name is refused before the handshake */
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	pair(sv);
	tls_conn_new_client(client_ca, sv[1], NULL, &cli);
	CHECK(tls_conn_verify(cli, long_name) == ERR_LIMIT);
	tls_conn_free(cli);
	close(sv[0]);
	close(sv[1]);
	/* a CA file that cannot be read or holds no certificate is an error, not an empty trust */
	CHECK(tls_creds_client_new(NULL, "/nonexistent.pem", &c) == ERR_TLS && !c);
	CHECK(tls_creds_client_new(NULL, empty, &c) == ERR_TLS && !c);
	tls_creds_unref(client_ca);
	tls_creds_unref(server_creds);
}

static void
test_reload(const char *cert2, const char *key2, struct tls_creds *client_creds)
{
	struct tls_creds *first = tls_creds_current(), *second, *now;
	struct tls_conn *srv_old, *cli_old, *srv_new, *cli_new;
	int a[2], b[2], crc;

	pair(a);
	tls_conn_new_server(first, a[0], &srv_old);
	tls_conn_new_client(client_creds, a[1], NULL, &cli_old);
	CHECK(handshake(srv_old, cli_old, &crc) == 0);

	CHECK(tls_creds_server_load(cert2, key2, NULL, &second) == 0);
	tls_creds_set_current(second);
	now = tls_creds_current();
	CHECK(now == second);
	pair(b);
	tls_conn_new_server(now, b[0], &srv_new);
	tls_conn_new_client(client_creds, b[1], NULL, &cli_new);
	CHECK(handshake(srv_new, cli_new, &crc) == 0);
	/* the session from before the reload still works with its own credentials */
	tls_creds_unref(first);
	CHECK(transfer(cli_old, srv_old, 5000) && transfer(cli_new, srv_new, 5000));
	tls_conn_free(srv_old);
	tls_conn_free(cli_old);
	tls_conn_free(srv_new);
	tls_conn_free(cli_new);
	tls_creds_unref(now);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

int
main(void)
{
	char cert[128], key[128], cert2[128], key2[128];
	struct tls_creds *server_creds, *client_creds;

	log_open("test", true, LOG_LEVEL_CRIT);
	if (!testlib_tmpdir("postie-test-tls", dir, sizeof(dir)) || !make_cert("one", "localhost") || !make_cert("two", "other.test") || !make_ca_and_leaf()) {
		printf("Bail out! certtool (gnutls-bin) is needed\n");
		return 1;
	}
	path(cert, sizeof(cert), "one", "pem");
	path(key, sizeof(key), "one", "key");
	path(cert2, sizeof(cert2), "two", "pem");
	path(key2, sizeof(key2), "two", "key");
	CHECK(tls_global_init() == 0);
	CHECK(tls_creds_server_load(cert, key, NULL, &server_creds) == 0);
	CHECK(tls_creds_client_new(NULL, NULL, &client_creds) == 0);
	tls_creds_set_current(tls_creds_ref(server_creds));

	test_roundtrip(server_creds, client_creds);
	test_tls12_and_old_versions(cert, key, client_creds);
	test_garbage_and_eof(server_creds);
	test_bad_files(cert, key);
	test_reload(cert2, key2, client_creds);
	test_verify(client_creds);

	tls_creds_set_current(NULL);
	tls_creds_unref(server_creds);
	tls_creds_unref(client_creds);
	tls_global_deinit();
	testlib_rmtree(dir);
	return tap_done();
}
