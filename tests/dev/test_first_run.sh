#!/usr/bin/env bash
# The newcomer's path, as README's quick start gives it: a copy of the
# checkout with no var/ and no build, inside a directory the user postie
# cannot traverse (as a clone under /root, mode 0700 on Debian, would be),
# then `tools/dev start`, alice -> bob through submission (STARTTLS + AUTH),
# bob reads it over POP3 (STLS), a kill -9 and `tools/dev start` at once
# (the zombie must not count as a running postied), the message still
# there, `tools/dev stop`. TAP on stdout. Run as root by `tools/dev test`.
set -uo pipefail

top=${top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
. "$top/tests/dev/lib.sh"
need_root_checkout "$top"

parent=$(mktemp -d)	# mode 0700: the user postie cannot traverse it
copy="$parent/postie"
token="first-run-$$-$RANDOM"
cleanup() {
	if [ -x "$copy/tools/dev" ] && [ -e "$copy/var/postied.pid" ]; then
		(cd "$copy" && tools/dev stop >/dev/null 2>&1)
	fi
	[ -L "$copy/var" ] && rm -rf "$(readlink -f "$copy/var")"
	rm -rf "$parent"
}
trap cleanup EXIT

copy_tree "$top" "$copy"
check "the copy has no var/ and no build" test ! -e "$copy/var" -a ! -e "$copy/configure"

send() {
	swaks --server 127.0.0.1:2587 -tls --auth PLAIN --auth-user alice --auth-password alice-password \
		--from alice@example.test --to bob@example.test \
		--header "Subject: $token" --body "hello from the first run $token" >"$parent/swaks.log" 2>&1
}

# The number of bob's messages that carry the token, read over POP3 with STLS.
count_for_bob() {
	python3 - "$token" <<-'EOF'
	import poplib, ssl, sys
	p = poplib.POP3("127.0.0.1", 2110, timeout=30)
	p.stls(context=ssl._create_unverified_context())
	p.user("bob")
	p.pass_("bob-password")
	n = 0
	for i in range(1, p.stat()[0] + 1):
	    if any(sys.argv[1].encode() in line for line in p.retr(i)[1]):
	        n += 1
	p.quit()
	print(n)
	EOF
}

cd "$copy" || exit 1
if tools/dev start >"$parent/start.log" 2>&1; then
	ok "tools/dev start on a fresh copy under a 0700 directory"
else
	not_ok "tools/dev start on a fresh copy under a 0700 directory"
	show "$parent/start.log"
	echo "1..$n"
	exit 1
fi
check "var/ is reachable by the user postie" runuser -u postie -- test -r "$(readlink -f var)/postie.conf"
if send; then ok "alice sends to bob through submission with STARTTLS and AUTH"
else not_ok "alice sends to bob through submission with STARTTLS and AUTH"; show "$parent/swaks.log" 20; fi
got=$(count_for_bob 2>&1)
check "bob reads it over POP3 with STLS (got: $got)" test "$got" = 1

pid=$(cat var/postied.pid)
kill -9 "$pid"
if tools/dev start >"$parent/restart.log" 2>&1; then
	ok "tools/dev start right after kill -9"
else
	not_ok "tools/dev start right after kill -9"
	show "$parent/restart.log" 20
fi
check "a new postied runs" test "$(cat var/postied.pid)" != "$pid"
got=$(count_for_bob 2>&1)
check "the message is still there after kill -9 (got: $got)" test "$got" = 1
if tools/dev stop >"$parent/stop.log" 2>&1; then ok "tools/dev stop"
else not_ok "tools/dev stop"; show "$parent/stop.log"; fi
check "nothing holds the pid file after stop" flock -n var/postied.pid true
echo "1..$n"
[ "$failed" -eq 0 ]
