# TLS: GnuTLS is included only in server/tls.c
noinst_LIBRARIES += server/libtls.a
server_libtls_a_SOURCES = server/tls.c server/tls.h
server_libtls_a_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS)

check_PROGRAMS += tests/unit/test_tls
TESTS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c
tests_unit_test_tls_LDADD = tests/unit/libtesthelp.a server/libtls.a core/libcore.a $(GNUTLS_LIBS) $(PTHREAD_LIBS)
