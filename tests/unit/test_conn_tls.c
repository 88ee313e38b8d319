/*
 * A peer's TLS 1.3 key update with the server's socket full: the real
 * conn.c on a real worker, a GnuTLS client on the other end of a
 * socketpair. The client asks for a key update (update_requested) while
 * the server's socket is full and its output queue empty, then drains the
 * socket: the session must go on under the new keys, both ways.
 *
 * What this found out: GnuTLS (3.7) answers a KeyUpdate request lazily, with
 * its next record send, so the read that receives it never waits to write
 * and the worker has nothing to spin on (the same with conn.c before the
 * fix of its want-write flag, measured: 0.02 s of CPU over the test). The
 * flag is still right for any read that does want to write; this test pins
 * the case the review named.
 */
#include "config.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "server/conn.h"
#include "server/listener.h"
#include "server/server.h"
#include "server/tls.h"
#include "server/worker.h"
#include "tap.h"
#include "testlib.h"

#define WAIT_MS 10000	/* a bound on each awaited event, never a pace */

static char dir[256];
static struct config *cfg;
static int server_fd, client_fd;

/* The test protocol: "ping\r\n" in, "pong\r\n" out. */
static void *
t_create(struct conn *c)
{
	(void)c;
	return (void *)1;
}

static void
t_input(struct conn *c)
{
	struct buf *in = conn_input(c);
	char *nl;

	while (in->len && (nl = memchr(in->data, '\n', in->len))) {
		conn_printf(c, "pong\r\n");
		conn_consume(c, (size_t)(nl - (char *)in->data) + 1);
	}
}

static void t_nothing(struct conn *c) { (void)c; }
static void t_timeout(struct conn *c, enum conn_timeout why) { (void)c; (void)why; }

static const struct proto_ops test_ops = {
	"test", t_create, t_nothing, t_input, t_nothing, t_nothing, t_timeout, t_nothing, t_nothing, NULL
};

/* On the worker: the server end becomes a connection of an implicit-TLS listener. */
static void
accept_here(void *arg)
{
	struct sockaddr_storage peer;

	(void)arg;
	memset(&peer, 0, sizeof(peer));
	peer.ss_family = AF_INET6;	/* :: : any address will do for the per-address count */
	if (!listener_admit(&peer, cfg))	/* as the listener does: the close gives it back */
		abort();
	conn_accept(worker_self(), server_fd, &peer, LISTEN_POP3S, config_ref(cfg));
}

/* Read exactly n raw octets from the client's socket (the junk written past TLS). */
static bool
drain(size_t n)
{
	char junk[4096];

	while (n) {
		struct pollfd p = { client_fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, WAIT_MS) != 1)
			return false;
		r = read(client_fd, junk, n < sizeof(junk) ? n : sizeof(junk));
		if (r <= 0)
			return false;
		n -= (size_t)r;
	}
	return true;
}

static bool
ping(gnutls_session_t s)
{
	char buf[16];
	ssize_t r;

	if (gnutls_record_send(s, "ping\r\n", 6) != 6)
		return false;
	do
		r = gnutls_record_recv(s, buf, sizeof(buf));
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	return r == 6 && memcmp(buf, "pong\r\n", 6) == 0;
}

static bool
setup(void)
{
	char conf[512], cert[512], key[512];

	if (!testlib_tmpdir("postie-test-conn-tls", dir, sizeof(dir)))
		return false;
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(conf, sizeof(conf), "%s/postie.conf", dir);
	if (!testlib_write_file(conf, 0644, "hostname = \"localhost\";\ndomains = [ \"example.test\" ];\n"
	    "storage = { path = \"%s/store\"; };\ntls = { certificate = \"%s\"; key = \"%s\"; };\n", dir, cert, key))
		return false;
	{
		char cmd[4096];

		snprintf(cmd, sizeof(cmd),
		    "printf 'cn = \"localhost\"\\ntls_www_server\\nsigning_key\\nexpiration_days = 2\\n' > %s/t && "
		    "certtool --generate-privkey --key-type=ecdsa --outfile %s >/dev/null 2>&1 && "
		    "certtool --generate-self-signed --load-privkey %s --template %s/t --outfile %s >/dev/null 2>&1",
		    dir, key, key, dir, cert);
		if (system(cmd) != 0)
			return false;
	}
	return config_load(conf, &cfg, config_report_stderr, NULL) == 0;
}

int
main(void)
{
	static struct server srv;
	struct tls_creds *creds = NULL;
	gnutls_certificate_credentials_t cc;
	gnutls_session_t s;
	int sv[2], rc, pending = -1;
	size_t junk = 0;

	log_open("test_conn_tls", true, LOG_LEVEL_WARN);
	if (!setup()) {
		printf("Bail out! set-up (certtool from gnutls-bin, a temporary directory)\n");
		return 1;
	}
	CHECK(tls_global_init() == 0);
	CHECK(tls_creds_server_load(cfg->tls.certificate, cfg->tls.key, NULL, &creds) == 0);
	tls_creds_set_current(creds);
	config_set(config_ref(cfg));
	srv.protos[LISTEN_POP3S] = &test_ops;
	CHECK(worker_pool_start(&srv, 1, NULL, 0) == 0);

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	server_fd = sv[0];
	client_fd = sv[1];
	ioctl(client_fd, FIONBIO, &(int){ 0 });	/* the client blocks on its end; the server's stays non-blocking */
	worker_post(worker_by_index(0), accept_here, NULL);

	/* the client: TLS 1.3, no certificate check (a test), blocking on its own end */
	gnutls_certificate_allocate_credentials(&cc);
	gnutls_init(&s, GNUTLS_CLIENT);
	gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cc);
	gnutls_transport_set_int(s, client_fd);
	gnutls_handshake_set_timeout(s, WAIT_MS);
	do
		rc = gnutls_handshake(s);
	while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
	CHECK_MSG(rc == 0, "TLS 1.3 handshake with the server's conn");
	CHECK_MSG(ping(s), "the session works (and the server's tickets are read)");

	/* the server's socket full, its queue empty: write past TLS from its end until it takes no more */
	for (;;) {
		static const char fill[4096];
		ssize_t w = write(server_fd, fill, sizeof(fill));

		if (w <= 0)
			break;
		junk += (size_t)w;
	}
	CHECK(errno == EAGAIN && junk > 0);
	CHECK_MSG(gnutls_session_key_update(s, GNUTLS_KU_PEER) == 0, "the client asks for a key update");
	/* the server has read it once nothing is left unread on its end */
	for (int waited = 0; waited < WAIT_MS; waited += 5) {
		if (ioctl(server_fd, FIONREAD, &pending) == 0 && pending == 0)
			break;
		usleep(5000);
	}
	CHECK_MSG(pending == 0, "the server read the key update");
	CHECK_MSG(drain(junk), "the client takes the filler off the socket");
	CHECK_MSG(ping(s), "the session goes on under the new keys");

	gnutls_bye(s, GNUTLS_SHUT_WR);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cc);
	close(client_fd);
	worker_pool_stop(2000);
	tls_creds_set_current(NULL);
	config_set(NULL);
	config_unref(cfg);
	tls_global_deinit();
	testlib_rmtree(dir);
	return tap_done();
}
