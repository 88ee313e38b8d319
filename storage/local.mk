# storage: lmdb.h is included only under storage/
noinst_LIBRARIES += storage/libstore.a
storage_libstore_a_SOURCES = storage/store.h storage/internal.h storage/keys.c storage/env.c \
	storage/accounts.c storage/mailbox.c storage/queue.c storage/rates.c storage/verify.c
storage_libstore_a_CFLAGS = $(AM_CFLAGS) $(LMDB_CFLAGS)
STORE_LIBS = storage/libstore.a core/libcore.a $(LMDB_LIBS) $(PTHREAD_LIBS)

check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c
tests_unit_test_store_LDADD = tests/unit/libtesthelp.a $(STORE_LIBS)
tests_unit_test_store_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)

# kill -9 during delivery, twenty times (durability of acknowledged deliveries)
check_PROGRAMS += tests/unit/crash_store
TESTS += tests/unit/crash_store
tests_unit_crash_store_SOURCES = tests/unit/crash_store.c
tests_unit_crash_store_LDADD = tests/unit/libtesthelp.a $(STORE_LIBS)
tests_unit_crash_store_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
