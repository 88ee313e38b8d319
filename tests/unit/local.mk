# The unit-test helper layer: one library for every unit test and fuzz
# target. testlib.c (directories, files, reply checks; libc only),
# testlib_store.c (a temporary store; storage/libstore.a) and fake_conn.c
# (conn.c's API without sockets, and script runners for the engines; put
# it before server/libserver.a). An archive: each test pulls in only the
# objects it calls, so a test without the store or the engines does not
# need their libraries.
noinst_LIBRARIES += tests/unit/libtesthelp.a
tests_unit_libtesthelp_a_SOURCES = tests/unit/testlib.c tests/unit/testlib.h tests/unit/testlib_store.c \
	tests/unit/fake_conn.c tests/unit/fake_conn.h
