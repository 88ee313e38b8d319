"""POP3 with real clients (Python's poplib, mpop): login over STLS and
995, the maildrop snapshot, byte-exact retrieval with dot-stuffing and
8-bit bodies, a 25 MB message, listings of 50,000 messages, UIDL
stability, [IN-USE], deletion only at QUIT, and nothing deleted by a
dropped connection."""

import hashlib
import os
import poplib
import re
import socket
import subprocess
import tempfile
import time

import harness
from clients import pop3_login, retr_bytes, tls_context

SEED = os.path.join(harness.TOP_BUILDDIR, "tests", "integration", "postie-seed")


def seed(srv, login, data, count=1):
    # Each delivery is a nested LMDB transaction that allocates about 2.5 MB;
    # in a sanitizer build every one is mapped and poisoned afresh, which made
    # 50,000 copies take most of a test's time limit. The fixture is not under
    # test (postied keeps every check), so its heap is not poisoned.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "poison_heap=0"]))
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    try:
        subprocess.run([SEED, os.path.join(srv.dir, "store"), login, f.name, str(count)],
                       check=True, timeout=120, env=env)
    finally:
        os.unlink(f.name)


def login_when_unlocked(srv, seconds=10):
    """The server notices a dropped connection asynchronously; then the lock goes."""
    deadline = time.time() + seconds
    while True:
        try:
            return pop3_login(srv)
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0] or time.time() > deadline:
                raise
            time.sleep(0.1)


MESSAGE = (b"Subject: dots\r\nX-8bit: \xc3\xa9t\xc3\xa9\r\n\r\n.leading dot\r\n..two\r\n"
           b"line\r\n.\r\nafter a lone dot\r\n")


def test_login_and_retrieve_byte_exact():
    with harness.Server() as srv:
        srv.add_users("alice", "bob")
        seed(srv, "alice", MESSAGE)
        seed(srv, "alice", b"Subject: second\r\n\r\nbody\r\n")
        p = pop3_login(srv)
        count, size = p.stat()
        assert count == 2
        data, octets = retr_bytes(p, 1)
        assert data == MESSAGE, data
        listed = int(p.list(1).split()[2])
        # LIST gives the octets RETR sends: the message dot-stuffed
        assert listed == len(MESSAGE) + 3, (listed, len(MESSAGE))  # three lines start with '.'
        uidls = p.uidl()[1]
        p.quit()
        # the same UIDLs next time, and over implicit TLS too
        q = pop3_login(srv, "alice", "alice-password", implicit_tls=True)
        assert q.uidl()[1] == uidls
        assert b"Subject: second" in b"\r\n".join(q.top(2, 0)[1])
        q.quit()


def test_wrong_password_and_plaintext():
    with harness.Server(auth={"failure_delay": "100ms"}) as srv:
        srv.add_users("alice")
        p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
        assert b"USER" not in b" ".join(p.capa().keys() and [k.encode() for k in p.capa()])
        try:
            p.user("alice")
            raise AssertionError("USER accepted before STLS")
        except poplib.error_proto as e:
            assert b"[AUTH]" in e.args[0]
        p.quit()
        p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=30)
        p.stls(context=tls_context())
        assert "USER" in p.capa() and "SASL" in p.capa()
        p.user("alice")
        try:
            p.pass_("wrong")
            raise AssertionError("wrong password accepted")
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR [AUTH]")
        p.quit()


def test_in_use_and_deletion_semantics():
    with harness.Server() as srv:
        srv.add_users("alice")
        seed(srv, "alice", b"Subject: m\r\n\r\nx\r\n", count=3)
        p = pop3_login(srv)
        try:
            pop3_login(srv)
            raise AssertionError("second session got the mailbox")
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR [IN-USE]")
        p.dele(1)
        p.dele(2)
        p.sock.shutdown(socket.SHUT_RDWR)  # dropped without QUIT: nothing is deleted
        p.sock.close()
        p = login_when_unlocked(srv)
        assert p.stat()[0] == 3
        p.dele(1)
        p.rset()
        p.dele(3)
        p.quit()  # UPDATE: one commit
        srv.wait_log(r"event=expunge login=\"alice\" deleted=1")
        p = pop3_login(srv)
        assert p.stat()[0] == 2
        p.quit()
        assert "store OK" in srv.ctl("verify")[1]


def test_large_message_streams():
    with harness.Server() as srv:
        srv.add_users("alice")
        line = b"0123456789" * 9 + b"\r\n"
        big = b"Subject: big\r\n\r\n" + line * (25 * 1024 * 1024 // len(line))
        seed(srv, "alice", big)
        p = pop3_login(srv)
        data, octets = retr_bytes(p, 1)
        assert hashlib.sha256(data).digest() == hashlib.sha256(big).digest()
        p.quit()


LISTING_MSGS = 50000


def read_multiline(f):
    """One multi-line reply, raw: the status line and the lines before the ".\r\n"."""
    status = f.readline()
    assert status.startswith(b"+OK"), status
    lines = []
    while True:
        line = f.readline()
        assert line.endswith(b"\r\n"), line  # a cut connection ends without CRLF
        if line == b".\r\n":
            return lines
        lines.append(line[:-2])


def test_listings_of_50000_messages_stream():
    """UIDL of 50,000 messages is about 1.2 MB, LIST about 0.5 MB: both far
    past the 256 KiB output limit, so they must stream, whole and in order."""
    with harness.Server() as srv:
        srv.add_users("alice")
        message = b"Subject: many\r\n\r\n.x\r\n"
        seed(srv, "alice", message, count=LISTING_MSGS)
        p = pop3_login(srv)
        assert p.stat() == (LISTING_MSGS, LISTING_MSGS * (len(message) + 1))
        p.dele(2)
        numbers = [n for n in range(1, LISTING_MSGS + 1) if n != 2]
        uidls = p.uidl()[1]
        assert len(uidls) == len(numbers), len(uidls)
        seen = set()
        for n, line in zip(numbers, uidls):
            m = re.fullmatch(rb"(\d+) ([0-9a-f]{16})", line)
            assert m and int(m.group(1)) == n, (n, line)
            seen.add(m.group(2))
        assert len(seen) == len(numbers)  # every UIDL unique
        # LIST gives the octets RETR sends: the line starting with "." is stuffed
        assert p.list()[1] == [b"%d %d" % (n, len(message) + 1) for n in numbers]
        # pipelined (RFC 2449 PIPELINING): STAT is answered only after both listings
        p.sock.sendall(b"UIDL\r\nLIST\r\nSTAT\r\n")
        assert read_multiline(p.file) == uidls
        assert read_multiline(p.file) == [b"%d %d" % (n, len(message) + 1) for n in numbers]
        assert p.file.readline() == b"+OK %d %d\r\n" % (len(numbers), len(numbers) * (len(message) + 1))
        p.quit()
        assert "limit=output_buffer" not in srv.log_text()


def test_mpop_fetches():
    with harness.Server() as srv:
        srv.add_users("alice")
        seed(srv, "alice", MESSAGE)
        d = tempfile.mkdtemp()
        mbox = os.path.join(d, "mbox")
        rc = os.path.join(d, "mpoprc")
        with open(rc, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                    "tls_certcheck off\nauth user\nuser alice\npassword alice-password\n"
                    "keep on\ndelivery mbox %s\nuidls_file %s/uidls\n" % (srv.ports["pop3"], mbox, d))
        os.chmod(rc, 0o600)
        open(mbox, "w").close()
        r = subprocess.run(["mpop", "-C", rc, "-q"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        with open(mbox, "rb") as f:
            got = f.read()
        assert b"Subject: dots" in got and b"after a lone dot" in got, got


def fetchmail(srv, d, port, ssl_mode, keep):
    """Run fetchmail once; messages land in d/out through a shell MDA."""
    rc = os.path.join(d, "fetchmailrc")
    out = os.path.join(d, "out")
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol POP3 uidl\n'
                '  user "alice" there with password "alice-password" is "alice" here\n'
                '  %s no sslcertck sslproto "TLS1.2+"\n'
                '  %s mda "/bin/sh -c \'cat >> %s\'"\n'
                % (port, "ssl" if ssl_mode == "implicit" else "", "keep" if keep else "nokeep", out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=d, FETCHMAILHOME=d)
    r = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "--nodetach", "-v"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-2000:]  # 1: no mail
    with open(out, "rb") if os.path.exists(out) else open(os.devnull, "rb") as f:
        return f.read(), r.stdout + r.stderr


def test_fetchmail_keep_and_nokeep():
    with harness.Server() as srv:
        srv.add_users("alice")
        seed(srv, "alice", MESSAGE, count=2)
        d = tempfile.mkdtemp()
        got, log = fetchmail(srv, d, srv.ports["pop3"], "stls", keep=True)
        assert got.count(b"Subject: dots") == 2 and b"after a lone dot" in got, log[-2000:]
        assert "STLS" in log or "starttls" in log.lower() or "TLS" in log, log[-2000:]
        p = pop3_login(srv)
        assert p.stat()[0] == 2  # kept
        p.quit()
        got, log = fetchmail(srv, tempfile.mkdtemp(), srv.ports["pop3s"], "implicit", keep=False)
        assert got.count(b"Subject: dots") == 2, log[-2000:]
        p = pop3_login(srv)
        assert p.stat()[0] == 0  # deleted at QUIT
        p.quit()


def test_damaged_maildrop_is_sys_perm():
    """A mail record of the wrong size (damage, written with mdb_load): -ERR [SYS/PERM], nothing changed."""
    with harness.Server() as srv:
        srv.add_users("alice", "bob")
        seed(srv, "alice", b"Subject: kept\r\n\r\nx\r\n")
        key = (bytes([5]) + b"alice" + (99).to_bytes(4, "big")).hex()
        dump = ("VERSION=3\nformat=bytevalue\ndatabase=mail\ntype=btree\nHEADER=END\n %s\n %s\nDATA=END\n"
                % (key, b"bad".hex()))
        r = subprocess.run(["mdb_load", "-s", "mail", os.path.join(srv.dir, "store")], input=dump.encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        p = poplib.POP3("127.0.0.1", srv.ports["pop3"], timeout=60)
        p.stls(context=tls_context())
        p.user("alice")
        try:
            p.pass_("alice-password")
            raise AssertionError("a damaged maildrop was opened")
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR [SYS/PERM]"), e.args[0]
        srv.wait_log(r"event=snapshot login=\"alice\" error=")
        # other mailboxes are served as ever
        seed(srv, "bob", b"Subject: fine\r\n\r\nx\r\n")
        q = pop3_login(srv, "bob", "bob-password")
        assert q.stat()[0] == 1
        q.quit()
        rc, out, err = srv.ctl("verify")
        assert rc != 0, "verify did not report the damage"


if __name__ == "__main__":
    harness.main(globals())
