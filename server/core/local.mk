# core: buffers, spans, errors, logging, allocation (no outside libraries)
noinst_LIBRARIES += server/core/libcore.a
server_core_libcore_a_SOURCES = \
	server/core/compat.h \
	server/core/span.h \
	server/core/err.c server/core/err.h \
	server/core/xmalloc.c server/core/xmalloc.h \
	server/core/buf.c server/core/buf.h \
	server/core/log.c server/core/log.h

EXTRA_DIST += tests/unit/tap.h
check_PROGRAMS += tests/unit/test_buf
TESTS += tests/unit/test_buf
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c
tests_unit_test_buf_LDADD = server/core/libcore.a
