# integration tests: the real postied on loopback, real clients (TAP via harness.py)
INTEGRATION_TESTS = tests/integration/test_core.py tests/integration/test_postiectl.py tests/integration/test_auth.py
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += tests/integration/harness.py $(INTEGRATION_TESTS) tools/dev .ci/run
