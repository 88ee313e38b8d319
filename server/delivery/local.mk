# delivery: the outbound side: runner (the round), destination (FIFOs, connections, delivery
# threads), report (DSNs from results, dsn.c formats), body, SMTP client, DNS. c-ares only here.
noinst_LIBRARIES += server/delivery/libdelivery.a
server_delivery_libdelivery_a_SOURCES = server/delivery/reply.c server/delivery/reply.h \
	server/delivery/client.c server/delivery/client.h server/delivery/dsn.c server/delivery/dsn.h \
	server/delivery/netio.c server/delivery/netio.h server/delivery/dns.c server/delivery/dns.h \
	server/delivery/runner.c server/delivery/runner.h server/delivery/pace.c server/delivery/pace.h \
	server/delivery/destination.c server/delivery/destination.h server/delivery/report.c server/delivery/report.h \
	server/delivery/body.c server/delivery/body.h
server_delivery_libdelivery_a_CFLAGS = $(AM_CFLAGS) $(CARES_CFLAGS)
DELIVERY_LIBS = server/delivery/libdelivery.a $(CARES_LIBS)

check_PROGRAMS += tests/unit/test_smtp_reply
TESTS += tests/unit/test_smtp_reply
tests_unit_test_smtp_reply_SOURCES = tests/unit/test_smtp_reply.c
tests_unit_test_smtp_reply_LDADD = server/delivery/libdelivery.a core/libcore.a

FUZZ_TARGETS += tests/fuzz/fuzz_smtp_reply
tests_fuzz_fuzz_smtp_reply_SOURCES = tests/fuzz/fuzz_smtp_reply.c tests/fuzz/replay.c
tests_fuzz_fuzz_smtp_reply_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_reply_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_reply_LDADD = server/delivery/libdelivery.a core/libcore.a

check_PROGRAMS += tests/unit/test_pace
TESTS += tests/unit/test_pace
tests_unit_test_pace_SOURCES = tests/unit/test_pace.c
tests_unit_test_pace_LDADD = server/delivery/libdelivery.a

# the client session and DSNs, driven from scripted server bytes
check_PROGRAMS += tests/unit/test_smtp_client
TESTS += tests/unit/test_smtp_client
tests_unit_test_smtp_client_SOURCES = tests/unit/test_smtp_client.c
tests_unit_test_smtp_client_LDADD = server/delivery/libdelivery.a auth/libauth.a core/libcore.a

FUZZ_TARGETS += tests/fuzz/fuzz_smtp_client
tests_fuzz_fuzz_smtp_client_SOURCES = tests/fuzz/fuzz_smtp_client.c tests/fuzz/replay.c
tests_fuzz_fuzz_smtp_client_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_client_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_client_LDADD = server/delivery/libdelivery.a auth/libauth.a core/libcore.a
