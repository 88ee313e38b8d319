# configuration: libconfig is included only in config.c
noinst_LIBRARIES += core/libconf.a
core_libconf_a_SOURCES = core/config.c core/config.h
core_libconf_a_CFLAGS = $(AM_CFLAGS) $(LIBCONFIG_CFLAGS)

check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_LDADD = tests/unit/libtesthelp.a core/libconf.a core/libcore.a $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
tests_unit_test_config_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
