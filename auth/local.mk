# auth: PAM only in auth/helper/; the rest runs inside postied
noinst_LIBRARIES += auth/libauth.a
auth_libauth_a_SOURCES = auth/proto.c auth/proto.h auth/client.c auth/client.h \
	auth/sasl.c auth/sasl.h auth/throttle.c auth/throttle.h

# The helper is built without sanitizers, from its own copies of the few
# sources it needs: pam_wrapper (the test suite's PAM) dlopens libpam with
# RTLD_DEEPBIND, which the sanitizer runtime cannot run under
# (google/sanitizers#611). Its decoder is fuzzed and tested sanitized.
libexec_PROGRAMS += auth/helper/postie-auth
auth_helper_postie_auth_SOURCES = auth/helper/postie-auth.c auth/proto.c
auth_helper_postie_auth_CFLAGS = -std=gnu11 $(WARN_CFLAGS) $(HARDEN_CFLAGS)
auth_helper_postie_auth_LDFLAGS = $(HARDEN_LDFLAGS)
auth_helper_postie_auth_LDADD = core/libcore-plain.a $(PAM_LIBS)

EXTRA_DIST += packaging/fail2ban/filter.d/postie.conf packaging/fail2ban/jail.d/postie.conf

check_PROGRAMS += tests/unit/test_authproto tests/unit/test_sasl tests/unit/test_throttle tests/unit/test_auth
TESTS += tests/unit/test_authproto tests/unit/test_sasl tests/unit/test_throttle tests/unit/test_auth \
	tests/unit/test_auth_fail2ban.sh
dist_check_SCRIPTS += tests/unit/test_auth_fail2ban.sh
tests_unit_test_authproto_SOURCES = tests/unit/test_authproto.c
tests_unit_test_authproto_LDADD = auth/libauth.a core/libcore.a
tests_unit_test_sasl_SOURCES = tests/unit/test_sasl.c
tests_unit_test_sasl_LDADD = auth/libauth.a core/libcore.a
tests_unit_test_throttle_SOURCES = tests/unit/test_throttle.c
tests_unit_test_throttle_LDADD = auth/libauth.a core/libcore.a $(PTHREAD_LIBS)
# test_auth runs the real postie-auth (under pam_wrapper) through auth/client.c
tests_unit_test_auth_SOURCES = tests/unit/test_auth.c
tests_unit_test_auth_LDADD = tests/unit/libtesthelp.a auth/libauth.a core/libcore.a $(PTHREAD_LIBS)
tests_unit_test_auth_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
EXTRA_tests_unit_test_auth_DEPENDENCIES = auth/helper/postie-auth

FUZZ_TARGETS += tests/fuzz/fuzz_sasl tests/fuzz/fuzz_authproto
tests_fuzz_fuzz_sasl_SOURCES = tests/fuzz/fuzz_sasl.c tests/fuzz/replay.c
tests_fuzz_fuzz_sasl_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sasl_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sasl_LDADD = auth/libauth.a core/libcore.a $(PTHREAD_LIBS)
tests_fuzz_fuzz_authproto_SOURCES = tests/fuzz/fuzz_authproto.c tests/fuzz/replay.c
tests_fuzz_fuzz_authproto_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_authproto_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_authproto_LDADD = auth/libauth.a core/libcore.a $(PTHREAD_LIBS)

man_MANS += packaging/postie-auth.8
EXTRA_DIST += packaging/postie-auth.8
