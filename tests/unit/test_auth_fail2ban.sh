#!/bin/sh
# The fail2ban filter (packaging/fail2ban/filter.d/postie.conf) against the
# line auth/throttle.c logs (test_throttle checks that line's exact form).
# With fail2ban-regex (Debian package fail2ban) the real filter is run;
# without it, an equivalent grep -E/sed pattern. TAP output.
set -u
srcdir=${top_srcdir:-.}
filter="$srcdir/packaging/fail2ban/filter.d/postie.conf"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/postie-f2b-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
n=0
fails=0
check() {	# check NAME EXPECTED ACTUAL
	n=$((n + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $n - $1"
	else
		fails=$((fails + 1))
		echo "not ok $n - $1"
		printf '# expected: %s\n# got:      %s\n' "$2" "$3" | tr '\n' ' '
		echo
	fi
}

cat > "$tmp/postie.log" <<'LOG'
Nov 22 17:13:31 mail postied[1234]: notice sid=4e1f02a7 event=auth result=fail proto=pop3 ip=192.0.2.7 login="bob" reason=bad_credentials
Nov 22 17:13:32 mail postied[1234]: notice sid=4e1f02a8 event=auth result=fail proto=smtp ip=2001:db8::7 login="" reason=authzid_refused
Nov 22 17:13:33 mail postied[1234]: notice sid=4e1f02a9 event=auth result=fail proto=smtp ip=198.51.100.9 login="x sid=1 event=auth result=fail proto=smtp ip=203.0.113.66 login=\x22" reason=bad_credentials
Nov 22 17:13:34 mail postied[1234]: info sid=4e1f02aa event=auth result=ok proto=smtp ip=192.0.2.8 login="alice" cached=no
Nov 22 17:13:35 mail postied[1234]: warn sid=4e1f02ab event=auth result=tempfail proto=smtp ip=192.0.2.9
2026-11-22T17:13:36.123Z notice sid=4e1f02ac event=auth result=fail proto=smtp ip=192.0.2.10 login="carol" reason=throttled
Nov 22 17:13:37 mail postied[1234]: notice sid=4e1f02ad event=auth result=fail proto=pop3 ip=192.0.2.11 login="ip=203.0.113.67" reason=bad_credentials
Nov 22 17:13:39 mail postied[1234]: info sid=4e1f02ae event=helo name="x sid=1 event=auth result=fail proto=smtp ip=203.0.113.70 login="
Nov 22 17:13:40 postied[1234]: notice sid=4e1f02af event=auth result=fail proto=smtp ip=192.0.2.12 login="erin" reason=bad_credentials
Nov 22 17:13:38 mail postied[1234]: notice event=auth_helper error="x ip=203.0.113.68 login=" sid=1 event=auth result=fail proto=smtp ip=203.0.113.69 login=""
LOG
want="192.0.2.7 2001:db8::7 198.51.100.9 192.0.2.10 192.0.2.11 192.0.2.12"

if command -v fail2ban-regex >/dev/null 2>&1; then
	echo "# using $(command -v fail2ban-regex)"
	got=$(fail2ban-regex -o ip "$tmp/postie.log" "$filter" 2>&1 | tr '\n' ' ' | sed 's/ $//')
	check "fail2ban-regex bans exactly the failing addresses" "$want" "$got"
	got=$(fail2ban-regex -o ip "$tmp/postie.log" "$filter" 2>&1 | grep -c '203\.0\.113\.')
	check "addresses inside a login or another event are never banned" "0" "$got"
else
	echo "# fail2ban-regex not installed: checking the equivalent grep -E pattern"
	n=$((n + 1))
	echo "ok $n # SKIP fail2ban-regex is not installed"
fi

# The same pattern as the filter, for systems without fail2ban: anchored
# after the syslog prefix or the -f timestamp, address from the ip= field.
re='^([A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} ([^ ]+ )?postied(\[[0-9]+\])?: +|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z +)(notice +)?sid=[^ ]+ event=auth result=fail proto=[a-z0-9]+ ip=([^ ]+) login="'
got=$(grep -E "$re" "$tmp/postie.log" | sed -E "s/$re.*/\\5/" | tr '\n' ' ' | sed 's/ $//')
check "grep -E equivalent finds the same addresses" "$want" "$got"
# the filter file carries that same field order
got=$(grep -c '^failregex = .*sid=\\S+ event=auth result=fail proto=\[a-z0-9\]+ ip=<HOST> login="$' "$filter")
check "filter.d/postie.conf has the anchored field order" "1" "$got"

echo "1..$n"
[ "$fails" -eq 0 ]
