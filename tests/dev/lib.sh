# Shared by the scripts in tests/dev/ (sourced): TAP counting and a fresh
# copy of the checkout.

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
# the last lines of a log file as TAP comments
show() { sed 's/^/# /' "$1" | tail -"${2:-40}"; }

# copy_tree TOP DEST: the tracked files of the checkout TOP as they are in its
# working tree (no var/, no build outputs) into DEST, which must not exist.
copy_tree() {
	mkdir "$2" && (cd "$1" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$2"
}

# Skip the whole script (TAP) unless this is a git checkout we run as root.
need_root_checkout() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "1..0 # SKIP run as root by tools/dev test"
		exit 0
	fi
	if ! git -C "$1" rev-parse --git-dir >/dev/null 2>&1; then
		echo "1..0 # SKIP not a git checkout (the copy is made from its tracked files)"
		exit 0
	fi
}
