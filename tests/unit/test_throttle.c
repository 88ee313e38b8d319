/* auth/throttle.c: thresholds, windows, per login, IPv6 /64, attempts in flight, bounded table, the log line. */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/throttle.h"
#include "core/log.h"
#include "tap.h"
#include "core/compat.h"

static const struct throttle_limits lim = { 3, 60 };

static void
fail_n(const char *ip, const char *login, int n, uint64_t now)
{
	while (n-- > 0)
		throttle_record_failure(ip, login, &lim, now);
}

static void
test_address(void)
{
	throttle_reset();
	fail_n("192.0.2.1", "bob", 2, 1000);
	CHECK(!throttle_is_blocked("192.0.2.1", "bob", &lim, 1000));	/* 2 < 3 */
	fail_n("192.0.2.1", "bob", 1, 1010);
	CHECK(throttle_is_blocked("192.0.2.1", "bob", &lim, 1010));	/* 3: at the threshold */
	CHECK(throttle_is_blocked("192.0.2.1", "alice", &lim, 1011));	/* the address, whatever the login */
	CHECK(throttle_is_blocked("192.0.2.1", NULL, &lim, 1011));
	CHECK(throttle_is_blocked("192.0.2.1", "", &lim, 1011));
	CHECK(!throttle_is_blocked("192.0.2.2", "alice", &lim, 1011));	/* another address */
	CHECK(!throttle_is_blocked("192.0.2.2", "bob", &lim, 1011));	/* bob: 3 < 9 per login */
	/* the window starts at the first failure and ends window seconds later */
	CHECK(throttle_is_blocked("192.0.2.1", "bob", &lim, 1059));
	CHECK(!throttle_is_blocked("192.0.2.1", "bob", &lim, 1060));
	/* and the count starts again */
	fail_n("192.0.2.1", "bob", 2, 1061);
	CHECK(!throttle_is_blocked("192.0.2.1", "bob", &lim, 1062));
	fail_n("192.0.2.1", "bob", 1, 1063);
	CHECK(throttle_is_blocked("192.0.2.1", "bob", &lim, 1063));
}

static void
test_login(void)
{
	char ip[32];
	int i;

	throttle_reset();
	/* a login attacked from many addresses, each below its own limit */
	for (i = 0; i < 3 * THROTTLE_LOGIN_FACTOR - 1; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		fail_n(ip, "carol", 1, 2000);
	}
	CHECK(!throttle_is_blocked("203.0.113.9", "carol", &lim, 2001));	/* 8 < 9 */
	fail_n("198.51.100.200", "carol", 1, 2001);
	CHECK(throttle_is_blocked("203.0.113.9", "carol", &lim, 2001));	/* 9: carol is blocked everywhere */
	CHECK(!throttle_is_blocked("203.0.113.9", "dave", &lim, 2001));	/* others are not */
	CHECK(!throttle_is_blocked("203.0.113.9", NULL, &lim, 2001));
	CHECK(!throttle_is_blocked("203.0.113.9", "carol", &lim, 2060));	/* window over */
	/* a failure without a login counts only for the address */
	throttle_reset();
	fail_n("192.0.2.5", NULL, 3, 100);
	fail_n("192.0.2.6", "", 3, 100);
	CHECK(throttle_is_blocked("192.0.2.5", "erin", &lim, 100) && throttle_is_blocked("192.0.2.6", NULL, &lim, 100));
	CHECK(!throttle_is_blocked("192.0.2.7", "", &lim, 100));
}

static void
test_ipv6(void)
{
	throttle_reset();
	fail_n("2001:db8:1:2::1", NULL, 1, 10);
	fail_n("2001:db8:1:2:ffff::7", NULL, 1, 10);
	fail_n("2001:db8:1:2:aaaa:bbbb:cccc:dddd", NULL, 1, 10);
	CHECK(throttle_is_blocked("2001:db8:1:2::99", NULL, &lim, 10));	/* one /64 */
	CHECK(!throttle_is_blocked("2001:db8:1:3::1", NULL, &lim, 10));	/* the next /64 */
	fail_n("::ffff:192.0.2.9", NULL, 3, 10);
	CHECK(throttle_is_blocked("192.0.2.9", NULL, &lim, 10));	/* mapped = IPv4 */
	CHECK(!throttle_is_blocked("192.0.2.10", NULL, &lim, 10));
}

#define BURST 60	/* concurrent attempts for one login, 3 from each of 20 addresses */

static pthread_barrier_t burst_start;

static void *
burst_one(void *arg)
{
	char ip[32];
	int i = (int)(intptr_t)arg;

	snprintf(ip, sizeof(ip), "198.51.100.%d", i / 3);
	pthread_barrier_wait(&burst_start);
	return (void *)(intptr_t)throttle_begin(ip, "carol", &lim, 3000);
}

static void
test_in_flight(void)
{
	pthread_t t[BURST];
	int i, passed = 0, started = 0;

	/* a burst that starts before any answer: at most the limit reaches PAM */
	throttle_reset();
	pthread_barrier_init(&burst_start, NULL, BURST);
	for (i = 0; i < BURST; i++)
		started += pthread_create(&t[i], NULL, burst_one, (void *)(intptr_t)i) == 0;
	if (started != BURST)
		abort();	/* the others would wait at the barrier for ever */
	for (i = 0; i < BURST; i++) {
		void *r;

		pthread_join(t[i], &r);
		passed += r != NULL;
	}
	pthread_barrier_destroy(&burst_start);
	CHECK_MSG(passed == 3 * THROTTLE_LOGIN_FACTOR, "per login: 9 of the burst get through");
	CHECK(throttle_is_blocked("203.0.113.1", "carol", &lim, 3000));	/* before any answer */
	/* one address: its limit, whatever the logins */
	throttle_reset();
	CHECK(throttle_begin("192.0.2.1", "a", &lim, 10) && throttle_begin("192.0.2.1", "b", &lim, 10) &&
	    throttle_begin("192.0.2.1", "c", &lim, 10));
	CHECK(!throttle_begin("192.0.2.1", "d", &lim, 10));
	CHECK(!throttle_is_blocked("192.0.2.2", "d", &lim, 10));	/* a refused attempt counts nowhere */
	/* a success (or TEMPFAIL) gives its attempt back; a failure keeps it */
	throttle_release("192.0.2.1", "a", &lim, 10, 11);
	CHECK(!throttle_is_blocked("192.0.2.1", "z", &lim, 11));
	CHECK(throttle_begin("192.0.2.1", "e", &lim, 11));
	CHECK(throttle_is_blocked("192.0.2.1", "z", &lim, 11));
	/* a release never takes back more than was counted, nor from a later window */
	throttle_reset();
	CHECK(throttle_begin("192.0.2.3", "f", &lim, 100));
	fail_n("192.0.2.3", "f", 2, 170);	/* the window of 100 is over: a new one from 170 */
	throttle_release("192.0.2.3", "f", &lim, 100, 171);
	CHECK(!throttle_is_blocked("192.0.2.3", NULL, &lim, 171));
	fail_n("192.0.2.3", NULL, 1, 172);
	CHECK(throttle_is_blocked("192.0.2.3", NULL, &lim, 172));	/* still 3: the old attempt took nothing */
	throttle_release("192.0.2.9", "g", &lim, 100, 172);	/* never counted: no effect, no underflow */
	CHECK(!throttle_is_blocked("192.0.2.9", "g", &lim, 172));
	CHECK(throttle_begin("192.0.2.9", "g", &lim, 172));
}

static void
test_eviction(void)
{
	char ip[32];
	int i, blocked = 0;

	throttle_reset();
	/* a blocked address survives a flood of new addresses with one failure each */
	fail_n("192.0.2.66", "mallory", 3, 5000);
	for (i = 0; i < 4 * THROTTLE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		fail_n(ip, NULL, 1, 5001);
	}
	CHECK(throttle_is_blocked("192.0.2.66", NULL, &lim, 5002));
	/* the table is bounded: most of the flood was forgotten again */
	for (i = 0; i < 4 * THROTTLE_SLOTS; i += 97) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		fail_n(ip, NULL, 2, 5003);	/* 3 for those still known */
		blocked += throttle_is_blocked(ip, NULL, &lim, 5003);
	}
	CHECK_MSG(blocked > 0 && blocked < 4 * THROTTLE_SLOTS / 97 / 2, "evicted: fewer than half still counted");
	/* expired entries are reused first, even those with more failures than live ones */
	throttle_reset();
	for (i = 0; i < 4 * THROTTLE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "172.16.%d.%d", (i >> 8) & 255, i & 255);
		fail_n(ip, NULL, 5, 1);	/* over by 100 */
	}
	fail_n("192.0.2.70", NULL, 2, 100);
	for (i = 0; i < THROTTLE_SLOTS / 4; i++) {
		snprintf(ip, sizeof(ip), "10.9.%d.%d", (i >> 8) & 255, i & 255);
		fail_n(ip, NULL, 3, 100);
	}
	fail_n("192.0.2.70", NULL, 1, 100);
	CHECK_MSG(throttle_is_blocked("192.0.2.70", NULL, &lim, 100), "a live entry outlives expired ones");
	/* an overlong key is cut, not overflowing */
	{
		char big[600];

		memset(big, 'z', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		fail_n(big, big, 3, 10);
		CHECK(throttle_is_blocked(big, NULL, &lim, 10));
	}
	throttle_reset();
}

static void
test_log_line(void)
{
	char path[] = "/tmp/postie-test-throttle-XXXXXX", line[1024];
	int fd = mkstemp(path), saved = dup(2);
	FILE *f;
	const char *want1 = " notice sid=4e1f02a7 event=auth result=fail proto=pop3 ip=192.0.2.7 login=\"bob\" "
	    "reason=bad_credentials\n";
	const char *want2 = " notice sid=1 event=auth result=fail proto=smtp ip=198.51.100.9 "
	    "login=\"x\\x22 ip=203.0.113.66 \\x5c\\x0a\" reason=bad_credentials\n";

	if (fd < 0 || saved < 0)
		return;
	log_open("test", true, LOG_LEVEL_INFO);
	fflush(stderr);
	dup2(fd, 2);
	throttle_log_failure("4e1f02a7", "pop3", "192.0.2.7", "bob", "bad_credentials");
	throttle_log_failure("1", "smtp", "198.51.100.9", "x\" ip=203.0.113.66 \\\n", "bad_credentials");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_open("test", true, LOG_LEVEL_CRIT);
	f = fdopen(fd, "r");
	rewind(f);
	/* each line: a timestamp, then exactly the fail2ban filter's format */
	CHECK(fgets(line, sizeof(line), f) && strchr(line, ' ') && strcmp(strchr(line, ' '), want1) == 0);
	CHECK(fgets(line, sizeof(line), f) && strchr(line, ' ') && strcmp(strchr(line, ' '), want2) == 0);
	CHECK(!fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
}

int
main(void)
{
	log_open("test", true, LOG_LEVEL_CRIT);
	test_address();
	test_login();
	test_ipv6();
	test_in_flight();
	test_eviction();
	test_log_line();
	return tap_done();
}
