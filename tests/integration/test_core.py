"""Foundation: listeners, TLS upgrade and implicit TLS, pre-TLS input
discarded, limits and deadlines, reload and graceful stop, with real TLS
clients (Python's ssl, smtplib, poplib) against a real postied."""

import fcntl
import os
import poplib
import pwd
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import warnings

import harness
from clients import connect, pop3_login, read_line, read_smtp_reply, read_until_eof, tls_context

warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose


def test_greetings():
    with harness.Server() as srv:
        for proto in ("smtp", "submission"):
            with connect(srv.ports[proto]) as s:
                assert read_line(s).startswith(b"220 localhost ESMTP"), proto
        with connect(srv.ports["pop3"]) as s:
            assert read_line(s).startswith(b"+OK "), "pop3"
        for proto, want in (("submissions", b"220 localhost ESMTP"), ("pop3s", b"+OK ")):
            with tls_context().wrap_socket(connect(srv.ports[proto])) as s:
                assert s.version() in ("TLSv1.3", "TLSv1.2"), s.version()
                assert read_line(s).startswith(want), proto


def test_starttls_and_stls():
    with harness.Server() as srv:
        smtp = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=10)
        code, _ = smtp.ehlo("client.test")
        assert code == 250 and smtp.has_extn("starttls")
        assert smtp.starttls(context=tls_context())[0] == 220
        smtp.ehlo("client.test")
        assert not smtp.has_extn("starttls"), "STARTTLS offered again inside TLS"
        assert smtp.noop()[0] == 250
        smtp.quit()

        pop = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=10)
        assert "STLS" in pop.capa()
        pop.stls(context=tls_context())
        assert "STLS" not in pop.capa()
        pop.quit()

        # tls 1.1 is refused by default
        ctx = tls_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        try:
            with ctx.wrap_socket(connect(srv.ports["submissions"])) as s:
                read_line(s)
            raise AssertionError("TLS 1.1 handshake succeeded")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass


def test_pretls_input_discarded():
    """CVE-2011-0411 class: commands pipelined with STARTTLS never run inside TLS."""
    with harness.Server() as srv:
        with connect(srv.ports["submission"]) as raw:
            read_line(raw)
            raw.sendall(b"EHLO a\r\n")
            read_smtp_reply(raw)
            raw.sendall(b"STARTTLS\r\nNOOP\r\nNOOP\r\n")
            assert read_smtp_reply(raw).startswith(b"220 2.0.0")
            s = tls_context().wrap_socket(raw)
            s.sendall(b"EHLO b\r\n")
            first = read_smtp_reply(s)
            assert first.startswith(b"250-localhost"), first
            s.sendall(b"QUIT\r\n")
            assert read_smtp_reply(s).startswith(b"221")
        with connect(srv.ports["pop3"]) as raw:
            read_line(raw)
            raw.sendall(b"STLS\r\nCAPA\r\n")
            assert read_line(raw).startswith(b"+OK")
            s = tls_context().wrap_socket(raw)
            s.sendall(b"QUIT\r\n")
            assert read_line(s).startswith(b"+OK postie POP3 server signing off"), "CAPA leaked into TLS"


def test_garbage_before_and_after_tls():
    with harness.Server() as srv:
        with connect(srv.ports["submissions"]) as s:
            s.sendall(b"EHLO not-a-tls-client\r\n")
            assert read_until_eof(s) == b""  # handshake fails, connection closed
        with connect(srv.ports["pop3"]) as raw:
            read_line(raw)
            raw.sendall(b"STLS\r\n")
            read_line(raw)
            raw.sendall(b"\x16\x03\x01\x00\x05hello-garbage\r\n")
            assert b"+OK" not in read_until_eof(raw)
        srv.wait_log(r"event=disconnect reason=tls_handshake_failed")
        with connect(srv.ports["smtp"]) as s:  # others keep being served
            assert read_line(s).startswith(b"220")


def test_bad_lines():
    with harness.Server() as srv:
        with connect(srv.ports["smtp"]) as s:
            read_line(s)
            s.sendall(b"X" * 2000 + b"\r\nNOOP\r\n")
            assert read_smtp_reply(s).startswith(b"500 5.5.2 Line too long")
            assert read_smtp_reply(s).startswith(b"250 2.0.0")
            s.sendall(b"NO\x00OP\r\nNOOP\nNOOP\r\n")
            assert read_smtp_reply(s).startswith(b"500 5.5.2")
            assert read_smtp_reply(s).startswith(b"500 5.5.2")
            assert read_smtp_reply(s).startswith(b"250 2.0.0")
        with connect(srv.ports["pop3"]) as s:
            read_line(s)
            s.sendall(b"C" * 300 + b"\r\nQUIT\r\n")
            assert read_line(s).startswith(b"-ERR Line too long")
            assert read_line(s).startswith(b"+OK")
        srv.wait_log(r"event=limit limit=line_length")


def test_per_ip_limit():
    with harness.Server(limits={"max_connections_per_ip": 3}) as srv:
        held = [connect(srv.ports["smtp"]) for _ in range(3)]
        for s in held:
            assert read_line(s).startswith(b"220")
        with connect(srv.ports["smtp"]) as s:
            assert read_line(s).startswith(b"421 4.7.0"), "fourth connection not refused"
        with connect(srv.ports["pop3"]) as s:
            assert read_line(s).startswith(b"-ERR [SYS/TEMP]")
        srv.wait_log(r"event=limit limit=connections")
        held.pop().close()
        deadline = time.time() + 5
        while True:  # the server notices the close asynchronously
            with connect(srv.ports["smtp"]) as s:
                if read_line(s).startswith(b"220"):
                    break
            assert time.time() < deadline, "slot not released"
            time.sleep(0.1)
        for s in held:
            s.close()


def test_idle_and_trickle_deadlines():
    with harness.Server(limits={"preauth_idle_timeout": 2, "command_timeout": 2}) as srv:
        start = time.time()
        with connect(srv.ports["smtp"]) as s:
            read_line(s)
            assert read_line(s).startswith(b"421 4.4.2"), "no timeout reply"
            assert read_until_eof(s) == b""
        assert time.time() - start < 6
        with connect(srv.ports["pop3"]) as s:
            read_line(s)
            assert read_line(s).startswith(b"-ERR Timeout")
        # a command trickled one byte at a time still has one deadline
        with connect(srv.ports["smtp"]) as s:
            read_line(s)
            start = time.time()
            got = b""
            for ch in b"NOOP-that-never-ends":
                try:
                    s.sendall(bytes([ch]))
                except OSError:
                    break
                time.sleep(0.3)
                s.settimeout(0.01)
                try:
                    got += s.recv(4096)
                except (socket.timeout, BlockingIOError):
                    pass
                s.settimeout(10)
                if got:
                    break
            assert got.startswith(b"421 4.4.2"), got
            assert time.time() - start < 4
        srv.wait_log(r"event=timeout which=command")


def test_client_that_never_reads():
    with harness.Server(limits={"command_timeout": 3, "preauth_idle_timeout": 3}) as srv:
        hog = connect(srv.ports["smtp"])
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.setblocking(False)
        sent = 0
        chunk = b"NOOP\r\n" * 1000
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                sent += hog.send(chunk)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break
        # meanwhile another client is served normally
        with connect(srv.ports["smtp"]) as s:
            assert read_line(s).startswith(b"220")
            s.sendall(b"QUIT\r\n")
            assert read_smtp_reply(s).startswith(b"221")
        srv.wait_log(r"event=(timeout which=command|limit limit=output_buffer)", timeout=15)
        hog.close()
        assert sent > 0


def test_sighup_reloads_certificate():
    with harness.Server() as srv:
        before = tls_context().wrap_socket(connect(srv.ports["submissions"]))
        read_line(before)
        old_der = before.getpeercert(binary_form=True)
        srv.new_certificate()
        srv.reload()
        srv.wait_log(r"event=reload result=ok")
        with tls_context().wrap_socket(connect(srv.ports["submissions"])) as after:
            read_line(after)
            assert after.getpeercert(binary_form=True) != old_der, "certificate not reloaded"
        before.sendall(b"NOOP\r\n")  # the established session survives the reload
        assert read_smtp_reply(before).startswith(b"250")
        before.close()


def test_graceful_stop():
    srv = harness.Server()
    srv.start()
    try:
        smtp = connect(srv.ports["smtp"])
        read_line(smtp)
        pop = connect(srv.ports["pop3"])
        read_line(pop)
        tls = tls_context().wrap_socket(connect(srv.ports["submissions"]))
        read_line(tls)
        srv.signal(signal.SIGTERM)
        assert read_line(smtp).startswith(b"421 4.3.2"), "no SMTP goodbye"
        assert read_line(pop).startswith(b"-ERR [SYS/TEMP]"), "no POP3 goodbye"
        assert read_line(tls).startswith(b"421 4.3.2"), "no goodbye inside TLS"
        assert srv.wait_exit(15) == 0
    finally:
        srv.stop()


def test_check_config_reports_lines():
    with harness.Server(start=False) as srv:
        bad = os.path.join(srv.dir, "bad.conf")
        with open(srv.config_path) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text + '\nno_such_key = 1;\nlisten_typo = "x";\n')
        r = subprocess.run([srv.postied, "--check-config", "-c", bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "bad.conf:%d" % (text.count("\n") + 2) in r.stderr, r.stderr
        assert "no_such_key" in r.stderr and "listen_typo" in r.stderr, r.stderr
        r = subprocess.run([srv.postied, "--check-config", "-c", srv.config_path],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([srv.postied, "-f", "-c", bad], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, "started with a bad configuration"


def test_shipped_config_is_valid():
    """packaging/postie.conf passes --check-config once its paths exist."""
    with harness.Server(start=False) as srv:
        with open(os.path.join(harness.TOP_SRCDIR, "packaging", "postie.conf")) as f:
            text = f.read()
        text = text.replace("/etc/postie/tls/cert.pem", srv.cert).replace(
            "/etc/postie/tls/key.pem", srv.key).replace(
            '"/var/lib/postie"', '"%s"' % os.path.join(srv.dir, "store"))
        conf = os.path.join(srv.dir, "shipped.conf")
        with open(conf, "w") as f:
            f.write(text)
        r = subprocess.run([srv.postied, "--check-config", "-c", conf],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr


def test_privileges_dropped_when_root():
    """Started as root, postied serves as `user`, and its store belongs to that user."""
    if os.geteuid() != 0:
        return  # nothing to drop: the whole test suite runs as this user
    with harness.Server() as srv:
        with open("/proc/%d/status" % srv.proc.pid) as f:
            status = f.read()
        uid = int(re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).group(1))
        ids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        gids = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        want = pwd.getpwnam(harness.server_user())
        assert set(map(int, ids)) == {want.pw_uid}, ids
        assert set(map(int, gids)) == {want.pw_gid}, gids
        assert uid != 0
        assert re.search(r"^NoNewPrivs:\s+1", status, re.M), "no_new_privs not set"
        assert os.stat(os.path.join(srv.dir, "store")).st_uid == want.pw_uid
        srv.wait_log(r"event=privdrop user=\"%s\"" % want.pw_name)


def test_second_postied_on_the_same_store_refuses():
    """One postied a store: a second one says who holds it and starts nothing."""
    with harness.Server() as srv:
        r = subprocess.run([srv.postied, "-f", "-c", srv.config_path], capture_output=True,
                           text=True, env=srv.env(), timeout=30)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "another postied already serves the store at %s" % os.path.join(srv.dir, "store") in r.stderr, \
            r.stderr
        with connect(srv.ports["smtp"]) as s:  # the first one still serves
            assert read_line(s).startswith(b"220 ")


def wait_zombie(pid, lock, timeout=10):
    """Wait until pid has died but is not reaped (state Z), as kill -9 leaves it,
    and its last thread has let go of lock (a dead leader shows Z while other
    threads may still be exiting)."""
    deadline = time.time() + timeout
    while True:
        with open("/proc/%d/stat" % pid) as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        if zombie:
            fd = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        assert time.time() < deadline, "pid %d did not die" % pid
        time.sleep(0.02)


def test_restart_right_after_kill_9():
    """A killed postied, still a zombie, does not count as running: the next start works."""
    with harness.Server() as srv:
        srv.add_users("alice")
        with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as c:
            c.sendmail("someone@remote.test", ["alice@example.test"], b"Subject: kept\r\n\r\nbody\r\n")
        old = srv.proc
        old.send_signal(signal.SIGKILL)
        # not reaped: as after kill -9 of a process we are not the parent of
        wait_zombie(old.pid, os.path.join(srv.dir, "store"))  # postied locks the store directory
        srv.log.close()
        srv.start()
        assert srv.proc.pid != old.pid
        pop = pop3_login(srv, "alice", "alice-password")
        assert pop.stat()[0] == 1
        pop.quit()
        old.wait(5)


if __name__ == "__main__":
    harness.main(globals())
