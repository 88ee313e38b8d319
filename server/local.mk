# postied: the network process
noinst_LIBRARIES += server/libserver.a
server_libserver_a_SOURCES = \
	server/worker.c server/worker.h \
	server/conn.c server/conn.h server/conn_lines.c \
	server/listener.c server/listener.h \
	server/proto.c server/server.h \
	server/authflow.c server/authflow.h \
	server/dispatch.c server/dispatch.h \
	server/sasl_exchange.c server/sasl_exchange.h \
	server/logincache.c server/logincache.h \
	server/notify.c server/notify.h \
	server/smtp/session.c server/smtp/session.h server/smtp/internal.h \
	server/smtp/mail.c server/smtp/spool.c server/smtp/spool.h server/smtp/hourly.c server/smtp/hourly.h \
	server/smtp/parse.c server/smtp/parse.h server/smtp/data.c server/smtp/data.h \
	server/pop3/session.c server/pop3/session.h server/pop3/internal.h \
	server/pop3/commands.c server/pop3/retr.c
server_libserver_a_CFLAGS = $(AM_CFLAGS)

sbin_PROGRAMS += server/postied
server_postied_SOURCES = server/main.c
server_postied_LDADD = server/libserver.a $(DELIVERY_LIBS) auth/libauth.a server/libdkim.a server/libtls.a storage/libstore.a auth/libauth.a core/libconf.a \
	core/libcore.a $(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
server_postied_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

# Protocol engines under test link libserver.a itself, fed scripted bytes
# through tests/unit/fake_conn.c. fake_conn.o comes before the library and
# defines what conn.c, authflow.c, worker.c and proto.c would (the conn_*
# calls, authflow_*, worker_post, server_store), so the archive gives the
# engines (smtp/, pop3/, conn_lines.c) and never those four objects: a new
# call from an engine into one of them shows up as a duplicate symbol here,
# and fake_conn.c needs the fake of it. Sources added to libserver.a reach
# the tests and fuzz targets without another list to keep in step.
ENGINE_TEST_LIBS = tests/unit/libtesthelp.a server/libserver.a $(DKIM_LIBS) storage/libstore.a \
	core/libconf.a core/libcore.a $(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
# With --enable-fuzzers the engines are instrumented for coverage: a copy of
# libserver.a (same source list) built with -fsanitize=fuzzer-no-link, only then.
if FUZZERS
noinst_LIBRARIES += tests/fuzz/libserver-fuzz.a
tests_fuzz_libserver_fuzz_a_SOURCES = $(server_libserver_a_SOURCES)
tests_fuzz_libserver_fuzz_a_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer-no-link -DFUZZING_BUILD
FUZZ_SERVER_LIB = tests/fuzz/libserver-fuzz.a
else
FUZZ_SERVER_LIB = server/libserver.a
endif
FUZZ_ENGINE_LIBS = tests/unit/libtesthelp.a $(FUZZ_SERVER_LIB) $(DKIM_LIBS) storage/libstore.a \
	core/libconf.a core/libcore.a $(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/unit/test_smtp_session tests/unit/test_pop3_session
TESTS += tests/unit/test_smtp_session tests/unit/test_pop3_session
tests_unit_test_smtp_session_SOURCES = tests/unit/test_smtp_session.c
tests_unit_test_smtp_session_LDADD = $(ENGINE_TEST_LIBS)
tests_unit_test_pop3_session_SOURCES = tests/unit/test_pop3_session.c
tests_unit_test_pop3_session_LDADD = $(ENGINE_TEST_LIBS)
# the mail transaction (MAIL, RCPT, DATA, BDAT, quotas, aliases) on a temporary store
check_PROGRAMS += tests/unit/test_smtp_txn
TESTS += tests/unit/test_smtp_txn
tests_unit_test_smtp_txn_SOURCES = tests/unit/test_smtp_txn.c
tests_unit_test_smtp_txn_LDADD = $(ENGINE_TEST_LIBS)

FUZZ_TARGETS += tests/fuzz/fuzz_smtp_session tests/fuzz/fuzz_pop3_session
tests_fuzz_fuzz_smtp_session_SOURCES = tests/fuzz/fuzz_smtp_session.c tests/fuzz/replay.c
tests_fuzz_fuzz_smtp_session_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -I$(top_srcdir)/tests/unit
tests_fuzz_fuzz_smtp_session_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_session_LDADD = $(FUZZ_ENGINE_LIBS)
tests_fuzz_fuzz_pop3_session_SOURCES = tests/fuzz/fuzz_pop3_session.c tests/fuzz/replay.c
tests_fuzz_fuzz_pop3_session_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -I$(top_srcdir)/tests/unit
tests_fuzz_fuzz_pop3_session_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pop3_session_LDADD = $(FUZZ_ENGINE_LIBS)

man_MANS += packaging/postied.8
EXTRA_DIST += packaging/postied.8

check_PROGRAMS += tests/unit/test_listener
TESTS += tests/unit/test_listener
tests_unit_test_listener_SOURCES = tests/unit/test_listener.c
tests_unit_test_listener_LDADD = server/libserver.a $(DELIVERY_LIBS) server/libdkim.a server/libtls.a auth/libauth.a storage/libstore.a auth/libauth.a \
	core/libconf.a core/libcore.a $(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
tests_unit_test_listener_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

check_PROGRAMS += tests/unit/test_smtp_parse
TESTS += tests/unit/test_smtp_parse
tests_unit_test_smtp_parse_SOURCES = tests/unit/test_smtp_parse.c
tests_unit_test_smtp_parse_LDADD = server/libserver.a core/libcore.a

FUZZ_TARGETS += tests/fuzz/fuzz_smtp_path tests/fuzz/fuzz_smtp_data
tests_fuzz_fuzz_smtp_path_SOURCES = tests/fuzz/fuzz_smtp_path.c tests/fuzz/replay.c
tests_fuzz_fuzz_smtp_path_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_path_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_path_LDADD = $(FUZZ_SERVER_LIB) core/libcore.a
tests_fuzz_fuzz_smtp_data_SOURCES = tests/fuzz/fuzz_smtp_data.c tests/fuzz/replay.c
tests_fuzz_fuzz_smtp_data_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_data_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtp_data_LDADD = $(FUZZ_SERVER_LIB) core/libcore.a

# sd_notify readiness (packaging/postie.service is Type=notify)
check_PROGRAMS += tests/unit/test_notify
TESTS += tests/unit/test_notify
tests_unit_test_notify_SOURCES = tests/unit/test_notify.c
tests_unit_test_notify_LDADD = tests/unit/libtesthelp.a server/libserver.a core/libcore.a

# conn.c and worker.c for real, with a GnuTLS client: a TLS read that must write
check_PROGRAMS += tests/unit/test_conn_tls
TESTS += tests/unit/test_conn_tls
tests_unit_test_conn_tls_SOURCES = tests/unit/test_conn_tls.c
tests_unit_test_conn_tls_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(PTHREAD_CFLAGS) -I$(top_srcdir)/tests/unit
# (the test helpers last: their fake_conn.o must not stand in for conn.c here)
tests_unit_test_conn_tls_LDADD = server/libserver.a $(DELIVERY_LIBS) auth/libauth.a \
	server/libtls.a storage/libstore.a core/libconf.a core/libcore.a tests/unit/libtesthelp.a \
	$(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
