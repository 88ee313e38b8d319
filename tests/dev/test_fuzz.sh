#!/usr/bin/env bash
# Every fuzz target as a libFuzzer binary (clang, ASan + UBSan) for a bounded
# time each (POSTIE_FUZZ_SECONDS, default 30), starting from its corpus; the
# ordinary build only replays corpus and regress inputs. A fresh copy of the
# checkout, so the seed corpus is read, never written. One TAP line per
# target; a crash names the input libFuzzer saved (keep it in
# tests/fuzz/regress/TARGET/ once fixed).
set -uo pipefail

top=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$top/tests/dev/lib.sh"
need_root_checkout "$top"
seconds=${POSTIE_FUZZ_SECONDS:-30}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/postie"
copy_tree "$top" "$tree"
cd "$tree" || exit 1
targets=()
for f in tests/fuzz/fuzz_*.c; do
	targets+=("$(basename "$f" .c)")
done
if (autoreconf -fi && CC=clang ./configure -q --enable-fuzzers --enable-sanitizers &&
	make -j"$(nproc)" "${targets[@]/#/tests/fuzz/}") >"$work/build.log" 2>&1; then
	ok "the libFuzzer build"
else
	not_ok "the libFuzzer build"
	show "$work/build.log"
	echo "1..$n"
	exit 1
fi
mkdir "$work/new" "$work/crashes"
for t in "${targets[@]}"; do
	name=${t#fuzz_}
	mkdir "$work/new/$name"
	# new inputs go to the first directory, the seeds are only read
	if "tests/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$work/crashes/$name-" "$work/new/$name" "tests/fuzz/corpus/$name" \
		>"$work/$name.log" 2>&1; then
		ok "$t ran ${seconds}s without a finding"
	else
		not_ok "$t: a finding"
		show "$work/$name.log" 60
		for a in "$work/crashes/$name-"*; do
			[ -f "$a" ] && echo "# input ($a): $(od -An -c "$a" | head -c 2000 | tr '\n' ' ')"
		done
	fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
