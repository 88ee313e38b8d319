# integration tests: the real postied on loopback, real clients (TAP via harness.py)
INTEGRATION_TESTS = tests/integration/test_core.py tests/integration/test_postiectl.py tests/integration/test_auth.py tests/integration/test_pop3.py tests/integration/test_smtp.py tests/integration/test_delivery.py tests/integration/test_dkim.py
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += tests/integration/harness.py tests/integration/clients.py tests/integration/sinks.py $(INTEGRATION_TESTS) tools/dev .ci/run \
	tests/dev/lib.sh tests/dev/test_first_run.sh tests/dev/test_tsan.sh tests/dev/test_fuzz.sh

# a fixture: puts messages into a mailbox without SMTP
check_PROGRAMS += tests/integration/postie-seed
tests_integration_postie_seed_SOURCES = tests/integration/seed.c
tests_integration_postie_seed_LDADD = tests/unit/libtesthelp.a $(STORE_LIBS)
tests_integration_postie_seed_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) -I$(top_srcdir)/tests/unit
