#!/usr/bin/env bash
# The tests that exercise threads, under ThreadSanitizer: the group commit
# (test_store, crash_store), the auth client and throttle, and
# a real postied (workers, writer, runner, auth reader) under the SMTP,
# delivery, auth and POP3 integration tests. A separate build in a fresh copy
# of the checkout (--enable-tsan cannot share a build with ASan). One TAP
# line per test program; a data race fails it (TSan exits non-zero, and the
# harness fails a postied that does).
set -uo pipefail

top=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$top/tests/dev/lib.sh"
need_root_checkout "$top"

tests=(
	tests/unit/test_store tests/unit/crash_store
	tests/unit/test_auth tests/unit/test_throttle
	tests/integration/test_smtp.py tests/integration/test_delivery.py
	tests/integration/test_auth.py tests/integration/test_pop3.py
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/postie"
copy_tree "$top" "$tree"
cd "$tree" || exit 1
if (autoreconf -fi && ./configure -q --enable-werror --enable-tsan && make -j"$(nproc)") >"$work/build.log" 2>&1; then
	ok "the ThreadSanitizer build"
else
	not_ok "the ThreadSanitizer build"
	show "$work/build.log"
	echo "1..$n"
	exit 1
fi
# halt_on_error: the first race ends the program, with its report in the log
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	make -j"$(nproc)" check TESTS="${tests[*]}" >"$work/check.log" 2>&1
for t in "${tests[@]}"; do
	base=${t%.py}	# automake names a script's results after it less its extension
	if [ -f "$base.trs" ] && ! grep -q '^:test-result: \(FAIL\|ERROR\|XPASS\)' "$base.trs" &&
		grep -q '^:test-result: PASS' "$base.trs"; then
		ok "$t under ThreadSanitizer"
	else
		not_ok "$t under ThreadSanitizer"
		[ -f "$base.log" ] && show "$base.log" 80
	fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
