# core: buffers, spans, errors, logging, allocation (no outside libraries)
noinst_LIBRARIES += server/core/libcore.a
server_core_libcore_a_SOURCES = \
	server/core/compat.h \
	server/core/span.h \
	server/core/err.c server/core/err.h \
	server/core/xmalloc.c server/core/xmalloc.h \
	server/core/buf.c server/core/buf.h \
	server/core/log.c server/core/log.h \
	server/core/linereader.c server/core/linereader.h

EXTRA_DIST += tests/unit/tap.h
check_PROGRAMS += tests/unit/test_buf
TESTS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_LDADD = server/core/libcore.a

check_PROGRAMS += tests/unit/test_linereader
TESTS += tests/unit/test_linereader
tests_unit_test_linereader_SOURCES = tests/unit/test_linereader.c
tests_unit_test_linereader_LDADD = server/core/libcore.a

FUZZ_TARGETS += tests/fuzz/fuzz_linereader
tests_fuzz_fuzz_linereader_SOURCES = tests/fuzz/fuzz_linereader.c tests/fuzz/replay.c
tests_fuzz_fuzz_linereader_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_linereader_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_linereader_LDADD = server/core/libcore.a
