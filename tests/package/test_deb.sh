#!/bin/bash
# The Debian package end to end, TAP output (README: Debian package).
#
# Builds the .deb with `make deb` (the release tarball, dpkg-buildpackage -us
# -uc -b), runs lintian, makes a throwaway Debian 12 root with debootstrap from
# apt's configured mirror, installs the package there with apt (so its
# dependencies are resolved for real), and then, from the installed files and
# the installed configuration with its listeners moved to 127.0.0.1 and spare
# high ports: sends a message through submission (swaks, STARTTLS + AUTH PLAIN)
# as a system user of that root (so through pam_unix in postie-auth), fetches
# it over POP3 with STLS (python3 poplib, verifying the certificate that
# postinst generated), reloads with SIGHUP, checks a taken port is named,
# upgrades (the store and its mail stay), removes (the store stays), purges,
# and compares the root's files with those before the installation. Then
# the same root is booted with systemd-nspawn in a network namespace of its
# own (only loopback) and the package is installed under a real systemd:
# the Type=notify unit starts with its hardening, AUTH goes through pam_unix
# in the sandboxed root helper, reload and stop are clean, and with port 25
# taken the package still installs while the service fails naming the port.
#
# Needs root (debootstrap, chroot). The clients run on the host over
# loopback: the chroot shares its network. Environment:
#   top_srcdir, top_builddir   default: this file's ../..
#   POSTIE_TEST_DEB_CHECK=1    run the test suite inside dpkg-buildpackage too
#   POSTIE_TEST_DEB_KEEP=1     keep the work directory (printed) for a look
#   POSTIE_TEST_DEB_SYSTEMD=0  leave out the systemd-nspawn part
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
builddir=${top_builddir:-$srcdir}
suite=bookworm
started=$SECONDS
n=0
fails=0

ok() {		# ok CONDITION-STATUS NAME
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		fails=$((fails + 1))
		echo "not ok $n - $2"
	fi
}
check() {	# check NAME COMMAND...: one test point for a command's status
	local name=$1
	shift
	"$@" >"$tmp/check.out" 2>&1
	local rc=$?
	ok $rc "$name"
	[ $rc -eq 0 ] || sed 's/^/#   /' "$tmp/check.out" | head -40
	return $rc
}
note() { echo "# $*"; }
finish() {
	note "package test took $((SECONDS - started)) s"
	echo "1..$n"
	[ "$fails" -eq 0 ]
	exit $?
}
bail() {	# a step everything after depends on failed
	ok 1 "$1"
	[ -s "$tmp/check.out" ] && sed 's/^/#   /' "$tmp/check.out" | tail -40
	finish
}

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP the package test needs root (debootstrap, chroot)"
	exit 0
fi

tmp=$(mktemp -d /var/tmp/postie-deb-XXXXXX) || exit 1
root=$tmp/root
pid=
nspawn=
cleanup() {
	[ -n "$nspawn" ] && stop_container
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
	if [ "${POSTIE_TEST_DEB_KEEP:-0}" = 1 ]; then
		echo "# kept $tmp" >&2
	else
		rm -rf --one-file-system "$tmp"
	fi
}
# the container of the second part: systemd-nspawn, whose pid we keep
stop_container() {
	local i
	kill -TERM "$nspawn" 2>/dev/null	# nspawn shuts its systemd down in order
	for i in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.3; done
	kill -0 "$nspawn" 2>/dev/null && kill -KILL "$nspawn"
	wait "$nspawn" 2>/dev/null
	nspawn=
}
trap cleanup EXIT
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# --- tools on the host ---------------------------------------------------
need=()
for p in debhelper dpkg-dev lintian debootstrap fakeroot swaks python3 openssl systemd-container; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	note "installing ${need[*]}"
	(export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends "${need[@]}") >"$tmp/check.out" 2>&1 ||
		bail "install the test's tools: ${need[*]}"
fi

# --- build ---------------------------------------------------------------
version=$(sed -n 's/^AC_INIT(\[postie\], \[\([^]]*\)\].*/\1/p' "$srcdir/configure.ac")
arch=$(dpkg --print-architecture)
[ -f "$builddir/Makefile" ] || { echo "# $builddir is not configured" >"$tmp/check.out"; bail "configured tree"; }
t=$SECONDS
if [ "${POSTIE_TEST_DEB_CHECK:-0}" = 1 ]; then
	check "make deb (with the test suite)" make -C "$builddir" deb DEB_BUILD_DIR="$tmp/build" ||
		bail "the package builds"
else
	check "make deb" env DEB_BUILD_OPTIONS=nocheck DEB_BUILD_PROFILES=nocheck \
		make -C "$builddir" deb DEB_BUILD_DIR="$tmp/build" || bail "the package builds"
fi
note "build took $((SECONDS - t)) s"
deb=$(ls "$tmp"/build/postie_"$version"-*_"$arch".deb 2>/dev/null | head -1)
check "postie_${version}-N_${arch}.deb built (version from configure.ac)" test -f "$deb" ||
	bail "the .deb is there"
changes=$(ls "$tmp"/build/postie_"$version"-*_"$arch".changes | head -1)
check "the .deb holds postied, postiectl, postie-auth in libexec, the unit and the man pages" \
	sh -c "dpkg -c '$deb' > '$tmp/contents' && for f in ./usr/sbin/postied ./usr/sbin/postiectl \
		./usr/libexec/postie-auth ./lib/systemd/system/postie.service ./etc/pam.d/postie \
		./etc/postie/postie.conf ./etc/fail2ban/filter.d/postie.conf ./usr/lib/tmpfiles.d/postie.conf \
		./usr/share/man/man8/postied.8.gz ./usr/share/man/man8/postiectl.8.gz \
		./usr/share/man/man5/postie.conf.5.gz; do grep -q \" \$f\$\" '$tmp/contents' || { echo missing \$f; exit 1; }; done"
check "conffiles: postie.conf, pam.d/postie, the fail2ban filter" \
	sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | sort | tr '\n' ' ' | \
		grep -qx '/etc/fail2ban/filter.d/postie.conf /etc/pam.d/postie /etc/postie/postie.conf '"

# --- lintian -------------------------------------------------------------
t=$SECONDS
lintian -I --pedantic --fail-on error,warning "$changes" >"$tmp/lintian.out" 2>&1
ok $? "lintian: no errors, no warnings that are not overridden"
grep -v 'root privileges' "$tmp/lintian.out" | sed 's/^/# lintian: /'
note "lintian took $((SECONDS - t)) s"

# --- a Debian 12 root ----------------------------------------------------
mirror=$(apt-get indextargets --format '$(CODENAME) $(LABEL) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
	awk -v s=$suite '$1 == s && $2 == "Debian" { print $3; exit }')
[ -n "$mirror" ] || { echo "# no $suite mirror in apt's sources" >"$tmp/check.out"; bail "a Debian mirror"; }
t=$SECONDS
# systemd in the root for the second part (booted with systemd-nspawn); the
# first part uses it as a plain chroot, where no service manager runs
check "debootstrap --variant=minbase $suite" debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus "$suite" "$root" "$mirror" ||
	bail "a Debian 12 root"
note "debootstrap took $((SECONDS - t)) s"
mount -t proc proc "$root/proc" || note "could not mount /proc in the root; going on without"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# nothing may start services in the root (there is no systemd in it anyway)
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/postie.deb"
t=$SECONDS
check "apt installs the package's dependencies" sh -c "chroot '$root' apt-get update -qq &&
	chroot '$root' env DEBIAN_FRONTEND=noninteractive apt-get satisfy -y -qq --no-install-recommends \
		\"\$(dpkg-deb -f '$deb' Depends)\"" || bail "dependencies installable"

# the system user whose mail goes through the package, created before the
# snapshot so only the package's own traces are compared after the purge
password="Deb-test-$RANDOM-pw"
check "a system user carol in the root" sh -c "chroot '$root' useradd -m -s /bin/sh carol &&
	echo 'carol:$password' | chroot '$root' chpasswd"
snapshot() {
	chroot "$root" find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
		-o -path /var/tmp -o -path /var/cache -o -path /var/log -o -path /var/lib/apt -o -path /var/lib/dpkg \
		-o -path /usr/sbin/policy-rc.d \) -prune -o -print | sort
}
snapshot > "$tmp/before"

check "apt-get install ./postie.deb" sh -c "chroot '$root' env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends /tmp/postie.deb" || bail "the package installs"
note "installing into the root took $((SECONDS - t)) s"

# --- what the installation made ------------------------------------------
check "system user postie" sh -c "uid=\$(chroot '$root' id -u postie) && [ \"\$uid\" -lt 1000 ] &&
	chroot '$root' getent passwd postie | grep -q ':/usr/sbin/nologin\$'"
# (stat in the root: its uids are not the host's)
owner() { in_root stat -c '%U:%G %a' "$1"; }
check "/var/lib/postie belongs to postie, mode 750" test "$(owner /var/lib/postie)" = "postie:postie 750"
check "/etc/postie/domains.conf written at installation" grep -q '^domains = \[ "' "$root/etc/postie/domains.conf"
check "a self-signed certificate, key root:postie 0640" sh -c "
	[ '$(owner /etc/postie/tls/key.pem)' = 'root:postie 640' ] &&
	openssl x509 -noout -checkend 86400 -in '$root/etc/postie/tls/cert.pem'"
check "/etc/pam.d/postie includes common-auth and common-account" sh -c "
	grep -qx '@include common-auth' '$root/etc/pam.d/postie' && grep -qx '@include common-account' '$root/etc/pam.d/postie'"
check "the installed configuration is valid" in_root /usr/sbin/postied --check-config -c /etc/postie/postie.conf
check "postinst starts the unit with deb-systemd-invoke and does not fail if it cannot, restarts on upgrade" \
	sh -c "grep -q \"_dh_action=restart\" '$root/var/lib/dpkg/info/postie.postinst' &&
	grep -q \"deb-systemd-invoke \\\$_dh_action 'postie.service' >/dev/null || true\" '$root/var/lib/dpkg/info/postie.postinst'"

hostname=$(sed -n 's/^hostname = "\(.*\)";/\1/p' "$root/etc/postie/domains.conf")
domain=$(sed -n 's/^domains = \[ "\(.*\)" \];/\1/p' "$root/etc/postie/domains.conf")
note "host name $hostname, local domain $domain"

# --- run it on loopback ---------------------------------------------------
# five free loopback ports, then the installed configuration edited like an
# administrator would: every listener on 127.0.0.1, never 0.0.0.0
read -r p_smtp p_sub p_subs p_pop p_pops < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
conf=$root/etc/postie/postie.conf
sed -i -E \
	-e "s/(protocol = \"smtp\";[[:space:]]*address = )\"0\.0\.0\.0\"; port = 25;/\1\"127.0.0.1\"; port = $p_smtp;/" \
	-e "s/(protocol = \"submission\";[[:space:]]*address = )\"0\.0\.0\.0\"; port = 587;/\1\"127.0.0.1\"; port = $p_sub;/" \
	-e "s/(protocol = \"submissions\";[[:space:]]*address = )\"0\.0\.0\.0\"; port = 465;/\1\"127.0.0.1\"; port = $p_subs;/" \
	-e "s/(protocol = \"pop3\";[[:space:]]*address = )\"0\.0\.0\.0\"; port = 110;/\1\"127.0.0.1\"; port = $p_pop;/" \
	-e "s/(protocol = \"pop3s\";[[:space:]]*address = )\"0\.0\.0\.0\"; port = 995;/\1\"127.0.0.1\"; port = $p_pops;/" \
	"$conf"
if grep -q '0\.0\.0\.0\|"::"' "$conf" || [ "$(grep -c 'address = "127.0.0.1"' "$conf")" -ne 5 ]; then
	grep -n 'address' "$conf" > "$tmp/check.out"
	bail "every listener moved to 127.0.0.1"
fi
ok 0 "listeners on 127.0.0.1:$p_smtp,$p_sub,$p_subs,$p_pop,$p_pops"

log=$tmp/postied.log
start_postied() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		/usr/sbin/postied -f -c /etc/postie/postie.conf >"$log" 2>&1 &
	pid=$!
	python3 - "$pid" $p_smtp $p_sub $p_subs $p_pop $p_pops <<-'EOF' >"$tmp/check.out" 2>&1
	import os, socket, sys, time
	pid, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
	deadline = time.time() + 30
	for port in ports:
	    while True:
	        try:
	            socket.create_connection(("127.0.0.1", port), 1).close()
	            break
	        except OSError:
	            if time.time() > deadline or not os.path.exists("/proc/%d" % pid):
	                sys.exit("port %d does not accept" % port)
	            time.sleep(0.2)
	EOF
	local rc=$?
	[ $rc -eq 0 ] || cat "$log" >>"$tmp/check.out"
	return $rc
}
stop_postied() {
	kill -TERM "$pid"
	wait "$pid"
	local rc=$?
	pid=
	return $rc
}
check "postied starts from the installed files as root and listens" start_postied || bail "postied runs"
helper_uids() {	# the real uid of postied's children running postie-auth
	local c
	for c in /proc/[0-9]*; do
		[ "$(awk '/^PPid:/ { print $2 }' "$c/status" 2>/dev/null)" = "$pid" ] || continue
		case "$(readlink "$c/exe")" in */usr/libexec/postie-auth) ;; *) continue ;; esac
		awk '/^Uid:/ { print $2 }' "$c/status"
	done
}
uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
check "postied dropped to postie; postie-auth stays root" sh -c "
	echo postied uid $(uid_of "$pid"), postie is $(in_root id -u postie), helper uids: $(helper_uids);
	[ '$(uid_of "$pid")' = '$(in_root id -u postie)' ] && [ '$(helper_uids)' = 0 ]"
check "postiectl user add carol (while postied runs)" in_root postiectl -c /etc/postie/postie.conf user add carol

token=deb-$RANDOM$RANDOM
send() {	# send SUBJECT-TOKEN
	swaks --server 127.0.0.1 --port "$p_sub" --tls --auth PLAIN --auth-user carol \
		--auth-password "$password" --from "carol@$domain" --to "carol@$domain" \
		--header "Subject: package test $1" --body "token $1" --timeout 30
}
check "swaks: submission with STARTTLS + AUTH PLAIN as carol (pam_unix) is accepted" send "$token"

cat > "$tmp/pop.py" <<'EOF'
# pop.py PORT CAFILE USER PASSWORD TOKEN MODE: STLS with the generated
# certificate verified; MODE fetch-delete, fetch-keep, empty or badpass
import poplib, ssl, sys
port, cafile, user, password, token, mode = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False          # we connect to 127.0.0.1; the chain is still verified
p = poplib.POP3("127.0.0.1", int(port), timeout=30)
p.stls(context=ctx)
p.user(user)
try:
    p.pass_(password)
except poplib.error_proto as e:
    if mode == "badpass":
        print("refused:", e)
        sys.exit(0)
    raise
if mode == "badpass":
    sys.exit("a wrong password was accepted")
count, size = p.stat()
if mode == "empty":
    sys.exit(0 if count == 0 else "%d messages left" % count)
for i in range(1, count + 1):
    lines = p.retr(i)[1]
    if any(token.encode() in l for l in lines):
        if mode == "fetch-delete":
            p.dele(i)
        p.quit()
        sys.exit(0)
sys.exit("no message with %s among %d" % (token, count))
EOF
pop() { python3 "$tmp/pop.py" "$p_pop" "$root/etc/postie/tls/cert.pem" carol "$@"; }
check "POP3 STLS: carol fetches the message, verifying the generated certificate, and deletes it" \
	pop "$password" "$token" fetch-delete
check "POP3: a wrong password is refused (pam_unix said no)" pop "wrong-$password" "$token" badpass
check "POP3: the deletion happened at QUIT" pop "$password" "$token" empty

kill -HUP "$pid"
check "SIGHUP reloads the installed configuration" sh -c "
	for i in \$(seq 50); do grep -q 'event=reload result=ok' '$log' && exit 0; sleep 0.1; done; exit 1"

# one postied a store: a second one on it refuses, saying so
check "a second postied on the same store refuses and says why" sh -c "
	! chroot '$root' env -i PATH=/usr/sbin:/usr/bin /usr/sbin/postied -f -c /etc/postie/postie.conf \
		> '$tmp/second.log' 2>&1 &&
	grep -q 'another postied already serves the store at /var/lib/postie' '$tmp/second.log'"
sed 's/^/#   /' "$tmp/second.log" | head -3
# a port that is taken (as by Postfix on 25): a clear error naming it (another store, same ports)
sed 's|path = "/var/lib/postie";|path = "/tmp/postie-taken";|' "$conf" > "$root/tmp/taken.conf"
check "a second postied on taken ports fails and names the address and port" sh -c "
	! chroot '$root' env -i PATH=/usr/sbin:/usr/bin /usr/sbin/postied -f -c /tmp/taken.conf \
		> '$tmp/taken.log' 2>&1 &&
	grep -q 'cannot listen on 127.0.0.1 port $p_smtp (smtp): Address already in use' '$tmp/taken.log'"
sed 's/^/#   /' "$tmp/taken.log" | head -3
rm -rf "$root/tmp/taken.conf" "$root/tmp/postie-taken"

token2=deb-kept-$RANDOM$RANDOM
check "a second message, left in the mailbox for the upgrade" send "$token2"
check "SIGTERM: postied stops and exits 0" stop_postied

# --- upgrade: the same files as a newer version ---------------------------
dpkg-deb -R "$deb" "$tmp/repack"
sed -i "s/^Version: .*/&+upgradetest1/" "$tmp/repack/DEBIAN/control"
dpkg-deb -b "$tmp/repack" "$root/tmp/postie-upgrade.deb" >/dev/null
echo "# edited" >> "$root/etc/postie/domains.conf"
check "upgrade to $(dpkg-deb -f "$root/tmp/postie-upgrade.deb" Version) installs" \
	in_root env DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /tmp/postie-upgrade.deb
check "the upgrade kept domains.conf and the edited postie.conf" sh -c "
	tail -1 '$root/etc/postie/domains.conf' | grep -qx '# edited' && grep -q 'port = $p_pop;' '$conf'"
check "after the upgrade postied starts again" start_postied || bail "postied runs after the upgrade"
check "the upgrade kept the store: the second message is still there" pop "$password" "$token2" fetch-keep
check "SIGTERM after the upgrade" stop_postied

# --- remove keeps the store, purge removes everything ---------------------
check "apt-get remove postie" in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq postie
check "after remove: programs gone, configuration and store kept" sh -c "
	[ ! -e '$root/usr/sbin/postied' ] && [ -f '$conf' ] && [ -f '$root/var/lib/postie/data.mdb' ] &&
	chroot '$root' dpkg-query -W -f='\${Status}' postie | grep -q 'config-files'"
check "dpkg --purge postie" in_root dpkg --purge postie
check "after purge: /etc/postie, /var/lib/postie, /etc/pam.d/postie are gone" sh -c "
	for f in /etc/postie /var/lib/postie /etc/pam.d/postie /etc/fail2ban/filter.d/postie.conf \
		/lib/systemd/system/postie.service /usr/lib/tmpfiles.d/postie.conf; do
		[ ! -e '$root'\$f ] || { echo left: \$f; exit 1; }; done"
snapshot > "$tmp/after"
# Debian policy lets a purge keep the system user (and the account files'
# backup copies that adding it made)
comm -3 "$tmp/before" "$tmp/after" | sed 's/^[[:space:]]*//' |
	grep -Ev '^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$' > "$tmp/leftover"
check "after purge nothing is left but the system user postie" sh -c "
	[ ! -s '$tmp/leftover' ] || { cat '$tmp/leftover'; exit 1; }; chroot '$root' id postie"
# --- under systemd: the same root booted with systemd-nspawn -------------
if [ "${POSTIE_TEST_DEB_SYSTEMD:-1}" = 0 ]; then
	finish
fi
mountpoint -q "$root/proc" && umount "$root/proc"
cp "$deb" "$root/root/postie.deb"	# /tmp is a fresh tmpfs once systemd runs
t=$SECONDS
# --private-network: the container has its own loopback and nothing else, so
# the standard ports there touch nothing on the host
systemd-nspawn -q -D "$root" -b --private-network --register=no --keep-unit \
	-M "postie-deb-$$" >"$tmp/nspawn.log" 2>&1 </dev/null &
nspawn=$!
leader=
for i in $(seq 150); do
	leader=$(awk -v p="$nspawn" '$1 == "PPid:" && $2 == p { print FILENAME }' /proc/[0-9]*/status 2>/dev/null |
		head -1 | cut -d/ -f3)
	[ -n "$leader" ] && nsenter -t "$leader" -a systemctl is-system-running >/dev/null 2>&1 && break
	[ -n "$leader" ] && [ "$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null)" = degraded ] && break
	sleep 0.2
done
in_ct() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_net() { nsenter -t "$leader" -n "$@"; }
if [ -z "$leader" ] || ! in_ct systemctl is-system-running >/dev/null 2>&1 &&
	[ "$(in_ct systemctl is-system-running 2>/dev/null)" != degraded ]; then
	tail -20 "$tmp/nspawn.log" > "$tmp/check.out"
	bail "the root boots with systemd-nspawn"
fi
ok 0 "the root boots with systemd-nspawn (systemd $(in_ct systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p'))"
note "booting took $((SECONDS - t)) s"
# (/proc/net is the reading process's own network namespace)
check "lo is the container's only interface" sh -c "
	[ \"\$(nsenter -t $leader -n awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \$1 }' /proc/net/dev)\" = lo ]" ||
	bail "a private network"

# installed with policy-rc.d in place, so the first start (below) comes after
# the listeners are on 127.0.0.1: nothing here listens on 0.0.0.0
# and this time with /etc/mailname, which gives the local domain
echo Mail-Test.Example > "$root/etc/mailname"
check "dpkg -i under systemd (start held back by policy-rc.d)" in_ct dpkg -i /root/postie.deb
check "the local domain comes from /etc/mailname" grep -qx 'domains = \[ "mail-test.example" \];' \
	"$root/etc/postie/domains.conf"
sed -i -E 's/address = "0\.0\.0\.0";/address = "127.0.0.1";/' "$conf"
grep -q '0\.0\.0\.0' "$conf" && { grep -n 0.0.0.0 "$conf" > "$tmp/check.out"; bail "listeners on 127.0.0.1"; }
rm -f "$root/usr/sbin/policy-rc.d"
domain=$(sed -n 's/^domains = \[ "\(.*\)" \];/\1/p' "$root/etc/postie/domains.conf")
note "local domain in the container: $domain"
check "systemctl start postie: Type=notify says ready (listeners 127.0.0.1: 25 587 465 110 995)" sh -c "
	nsenter -t $leader -a systemctl start postie &&
	[ \"\$(nsenter -t $leader -a systemctl show -P StatusText postie)\" = serving ] &&
	[ \"\$(nsenter -t $leader -a systemctl show -P ActiveState postie)\" = active ]" ||
	in_ct journalctl -u postie --no-pager -n 20 -o cat | sed 's/^/#   /'
check "the unit's sandbox is applied (NoNewPrivs, capability bounding set, seccomp)" sh -c "
	m=\$(nsenter -t $leader -a systemctl show -P MainPID postie) &&
	st=\$(nsenter -t $leader -a cat /proc/\$m/status) && echo \"\$st\" | grep -E '^(NoNewPrivs|Seccomp|CapBnd)' &&
	echo \"\$st\" | grep -q '^NoNewPrivs:[[:space:]]*1' && echo \"\$st\" | grep -q '^Seccomp:[[:space:]]*2' &&
	echo \"\$st\" | grep -q '^CapBnd:[[:space:]]*00000000200004c5'"
check "postiectl user add carol" in_ct postiectl user add carol
token3=deb-systemd-$RANDOM$RANDOM
check "swaks under systemd: submission STARTTLS + AUTH as carol through pam_unix in the sandboxed helper" \
	in_net swaks --server 127.0.0.1 --port 587 --tls --auth PLAIN --auth-user carol \
	--auth-password "$password" --from "carol@$domain" --to "carol@$domain" \
	--header "Subject: package test $token3" --body "token $token3" --timeout 30
check "POP3 STLS under systemd: the message is there" \
	in_net python3 "$tmp/pop.py" 110 "$root/etc/postie/tls/cert.pem" carol "$password" "$token3" fetch-delete
check "systemctl reload postie: SIGHUP, RELOADING=1 then READY=1" sh -c "
	nsenter -t $leader -a systemctl reload postie &&
	nsenter -t $leader -a journalctl -u postie --no-pager -o cat | grep -q 'event=reload result=ok' &&
	[ \"\$(nsenter -t $leader -a systemctl show -P ActiveState postie)\" = active ]"
check "systemctl stop postie: clean exit" sh -c "nsenter -t $leader -a systemctl stop postie &&
	[ \"\$(nsenter -t $leader -a systemctl show -P Result postie)\" = success ]"
in_ct systemd-analyze security --no-pager postie.service > "$tmp/security.out" 2>&1
note "systemd-analyze security: $(tail -1 "$tmp/security.out")"

# port 25 taken, as by Postfix: an upgrade (same files again) restarts the
# service, which fails naming the port, and the package still installs
# (nsenter itself, not a function in a subshell: \$! must be the listener)
nsenter -t "$leader" -n python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 25)); s.listen(1); time.sleep(120)' &
squatter=$!
sleep 0.5
check "with 127.0.0.1:25 taken, dpkg -i (configure, restart) still succeeds" in_ct dpkg -i /root/postie.deb
sleep 3
check "the service failed and did not loop" sh -c "
	[ \"\$(nsenter -t $leader -a systemctl show -P ActiveState postie)\" = failed ] &&
	[ \"\$(nsenter -t $leader -a systemctl show -P NRestarts postie)\" = 0 ]"
check "its journal names the taken address and port" sh -c "nsenter -t $leader -a journalctl -u postie --no-pager -o cat |
	grep 'cannot listen on 127.0.0.1 port 25 (smtp): Address already in use'"
kill "$squatter"
wait "$squatter" 2>/dev/null
check "once the port is free, systemctl restart postie works" sh -c "nsenter -t $leader -a systemctl restart postie &&
	[ \"\$(nsenter -t $leader -a systemctl show -P StatusText postie)\" = serving ]"
check "dpkg --purge under systemd stops and disables the unit" sh -c "nsenter -t $leader -a dpkg --purge postie &&
	! nsenter -t $leader -a systemctl is-active -q postie &&
	[ ! -e '$root/etc/systemd/system/multi-user.target.wants/postie.service' ] && [ ! -e '$root/var/lib/postie' ]"
stop_container
finish
