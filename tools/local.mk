# tools: benchmark programs. Built by `make`; run by hand or by tools/bench/compare
# (postie against Postfix + Dovecot). They print figures and assert nothing:
# performance is never a timed test, so none of this is in `make check`.
EXTRA_DIST += tools/bench/compare
# one clock, one percentile rule and one reply reader for every bench tool
noinst_LIBRARIES += tools/bench/libbench.a
tools_bench_libbench_a_SOURCES = tools/bench/common.c tools/bench/common.h
noinst_PROGRAMS += tools/bench/bench-idle
tools_bench_bench_idle_SOURCES = tools/bench/idle.c
tools_bench_bench_idle_LDADD = tools/bench/libbench.a server/libtls.a core/libcore.a $(GNUTLS_LIBS)

sbin_PROGRAMS += tools/postiectl
tools_postiectl_SOURCES = tools/postiectl.c
tools_postiectl_LDADD = storage/libstore.a $(DKIM_LIBS) core/libconf.a core/libcore.a \
	$(GNUTLS_LIBS) $(LMDB_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
tools_postiectl_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

noinst_PROGRAMS += tools/bench/bench-store
tools_bench_bench_store_SOURCES = tools/bench/store.c
tools_bench_bench_store_LDADD = tools/bench/libbench.a $(STORE_LIBS)
tools_bench_bench_store_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
man_MANS += packaging/postiectl.8
EXTRA_DIST += packaging/postiectl.8

noinst_PROGRAMS += tools/bench/bench-smtp
tools_bench_bench_smtp_SOURCES = tools/bench/smtp.c
tools_bench_bench_smtp_LDADD = tools/bench/libbench.a server/libtls.a core/libcore.a $(GNUTLS_LIBS) $(PTHREAD_LIBS) -lm
tools_bench_bench_smtp_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

noinst_PROGRAMS += tools/bench/bench-login
tools_bench_bench_login_SOURCES = tools/bench/login.c
tools_bench_bench_login_LDADD = tools/bench/libbench.a $(PTHREAD_LIBS)
tools_bench_bench_login_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

noinst_PROGRAMS += tools/bench/bench-pop3
tools_bench_bench_pop3_SOURCES = tools/bench/pop3.c
tools_bench_bench_pop3_LDADD = tools/bench/libbench.a server/libtls.a core/libcore.a $(GNUTLS_LIBS) $(PTHREAD_LIBS)
tools_bench_bench_pop3_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

noinst_PROGRAMS += tools/bench/bench-relay
tools_bench_bench_relay_SOURCES = tools/bench/relay.c
tools_bench_bench_relay_LDADD = tools/bench/libbench.a $(PTHREAD_LIBS)
tools_bench_bench_relay_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
EXTRA_DIST += tools/bench/relay-run
