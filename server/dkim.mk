# DKIM: the signer (a pure module over tls.c's hashing and signing) and the keys on disk
noinst_LIBRARIES += server/libdkim.a
server_libdkim_a_SOURCES = server/dkim.c server/dkim.h server/dkim_keys.c server/dkim_keys.h
server_libdkim_a_CFLAGS = $(AM_CFLAGS)
DKIM_LIBS = server/libdkim.a server/libtls.a auth/libauth.a

check_PROGRAMS += tests/unit/test_dkim
TESTS += tests/unit/test_dkim
tests_unit_test_dkim_SOURCES = tests/unit/test_dkim.c
tests_unit_test_dkim_LDADD = tests/unit/libtesthelp.a $(DKIM_LIBS) core/libcore.a $(GNUTLS_LIBS) $(PTHREAD_LIBS)
tests_unit_test_dkim_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

FUZZ_TARGETS += tests/fuzz/fuzz_dkim
tests_fuzz_fuzz_dkim_SOURCES = tests/fuzz/fuzz_dkim.c tests/fuzz/replay.c
tests_fuzz_fuzz_dkim_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_dkim_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_dkim_LDADD = $(DKIM_LIBS) core/libcore.a $(GNUTLS_LIBS)
