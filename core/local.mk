# core: buffers, spans, errors, logging, allocation, clock, privilege drop
# (no outside libraries). Its .c files include autoconf's header as
# <config.h>: "config.h" would find core/config.h, the configuration schema.
noinst_LIBRARIES += core/libcore.a
core_libcore_a_SOURCES = \
	core/compat.h \
	core/span.h \
	core/err.c core/err.h \
	core/xmalloc.c core/xmalloc.h \
	core/buf.c core/buf.h \
	core/cursor.c core/cursor.h \
	core/log.c core/log.h \
	core/linereader.c core/linereader.h \
	core/clock.c core/clock.h \
	core/htable.c core/htable.h \
	core/privdrop.c core/privdrop.h
# The same library without the sanitizers, for the root helper postie-auth,
# which cannot run under them (pam_wrapper dlopens libpam with RTLD_DEEPBIND).
# In a build without sanitizers (a release, the package) the two are alike.
noinst_LIBRARIES += core/libcore-plain.a
core_libcore_plain_a_SOURCES = $(core_libcore_a_SOURCES)
core_libcore_plain_a_CFLAGS = -std=gnu11 $(WARN_CFLAGS) $(HARDEN_CFLAGS)

EXTRA_DIST += tests/unit/tap.h
check_PROGRAMS += tests/unit/test_buf
TESTS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_LDADD = core/libcore.a

check_PROGRAMS += tests/unit/test_linereader
TESTS += tests/unit/test_linereader
tests_unit_test_linereader_SOURCES = tests/unit/test_linereader.c
tests_unit_test_linereader_LDADD = core/libcore.a

FUZZ_TARGETS += tests/fuzz/fuzz_linereader
tests_fuzz_fuzz_linereader_SOURCES = tests/fuzz/fuzz_linereader.c tests/fuzz/replay.c
tests_fuzz_fuzz_linereader_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_linereader_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_linereader_LDADD = core/libcore.a

check_PROGRAMS += tests/unit/test_htable tests/unit/test_span
TESTS += tests/unit/test_htable tests/unit/test_span
tests_unit_test_htable_SOURCES = tests/unit/test_htable.c
tests_unit_test_htable_LDADD = core/libcore.a
tests_unit_test_span_SOURCES = tests/unit/test_span.c
tests_unit_test_span_LDADD = core/libcore.a

check_PROGRAMS += tests/unit/test_cursor
TESTS += tests/unit/test_cursor
tests_unit_test_cursor_SOURCES = tests/unit/test_cursor.c
tests_unit_test_cursor_LDADD = core/libcore.a
