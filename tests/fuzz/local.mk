# Fuzz targets are registered by each module's fragment into FUZZ_TARGETS;
# this fragment turns them into tests (replay build) or plain programs (libFuzzer).
EXTRA_DIST += tests/fuzz/replay.c tests/fuzz/README
if FUZZERS
noinst_PROGRAMS += $(FUZZ_TARGETS)
else
check_PROGRAMS += $(FUZZ_TARGETS)
TESTS += $(FUZZ_TARGETS)
endif
