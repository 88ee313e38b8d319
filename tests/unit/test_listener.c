/* server/listener.c: per-address connection limits; IPv4 per address, IPv6 per /64. */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "server/listener.h"
#include "tap.h"
#include "core/compat.h"

static struct sockaddr_storage
addr(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	return ss;
}

/* Admit ip n times; returns how many were admitted (each to be released). */
static unsigned
admit_n(const char *ip, unsigned n, const struct config *cfg)
{
	struct sockaddr_storage ss = addr(ip);
	unsigned ok = 0;

	while (n--)
		ok += listener_admit(&ss, cfg);
	return ok;
}

static void
release_n(const char *ip, unsigned n)
{
	struct sockaddr_storage ss = addr(ip);

	while (n--)
		listener_release(&ss);
}

static void
test_per_address(void)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.limits.max_connections = 100;
	cfg.limits.max_connections_per_ip = 3;
	/* IPv4: each address has its own limit */
	CHECK(admit_n("192.0.2.1", 4, &cfg) == 3);
	CHECK(admit_n("192.0.2.2", 1, &cfg) == 1);
	/* IPv6: one /64 shares one limit, whatever the low 64 bits */
	CHECK(admit_n("2001:db8:1:2::1", 2, &cfg) == 2);
	CHECK(admit_n("2001:db8:1:2:ffff:ffff:ffff:fffe", 2, &cfg) == 1);
	CHECK(admit_n("2001:db8:1:2:1234::5", 1, &cfg) == 0);
	CHECK(admit_n("2001:db8:1:3::1", 1, &cfg) == 1);	/* the next /64 is another client */
	/* IPv4-mapped IPv6 is an IPv4 client: per address, not one /64 for all of IPv4 */
	CHECK(admit_n("::ffff:198.51.100.1", 3, &cfg) == 3);
	CHECK(admit_n("::ffff:198.51.100.2", 1, &cfg) == 1);
	CHECK(listener_open_count() == 3 + 1 + 3 + 1 + 3 + 1);
	/* a release frees a slot of the /64, from any of its addresses */
	release_n("2001:db8:1:2::1", 1);
	CHECK(admit_n("2001:db8:1:2:abcd::1", 1, &cfg) == 1);
	release_n("192.0.2.1", 3);
	release_n("192.0.2.2", 1);
	release_n("2001:db8:1:2::1", 3);
	release_n("2001:db8:1:3::1", 1);
	release_n("::ffff:198.51.100.1", 3);
	release_n("::ffff:198.51.100.2", 1);
	CHECK(listener_open_count() == 0);
	/* the whole server's limit still holds across clients */
	cfg.limits.max_connections = 2;
	CHECK(admit_n("192.0.2.7", 1, &cfg) == 1 && admit_n("2001:db8:9::1", 2, &cfg) == 1);
	release_n("192.0.2.7", 1);
	release_n("2001:db8:9::1", 1);
	CHECK(listener_open_count() == 0);
}

int
main(void)
{
	log_open("test", true, LOG_LEVEL_CRIT);
	test_per_address();
	return tap_done();
}
