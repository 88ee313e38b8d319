"""SMTP with real clients (smtplib, swaks, msmtp): delivery to local
mailboxes read back byte-exact over POP3, submission with STARTTLS/465 and
AUTH, no open relay, the smuggling variants, limits, pipelining, a 25 MB
message, and the queue for authenticated relaying."""

import hashlib
import smtplib
import subprocess
import time

import harness
from clients import fetch_messages, smtp_dialogue, submission


def body_of(stored):
    """What the client sent: everything after the headers postie put in front."""
    lines = stored.split(b"\r\n")
    i = 0
    while i < len(lines) and (lines[i].startswith(b"Return-Path:") or lines[i].startswith(b"Received:")
                              or lines[i].startswith(b"\t")):
        i += 1
    return b"\r\n".join(lines[i:])


MSG = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\n"
       b".leading dot\r\n8-bit: \xc3\xa9\r\nbye\r\n")


def test_inbound_delivery_byte_exact():
    with harness.Server() as srv:
        srv.add_users("alice", "bob")
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("mx.remote.test")
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "dsn", "enhancedstatuscodes", "starttls"):
            assert s.has_extn(ext), ext
        s.sendmail("someone@remote.test", ["alice@example.test", "Alice@EXAMPLE.test"], MSG)
        s.quit()
        msgs = fetch_messages(srv)
        assert len(msgs) == 1, "one delivery for two spellings of one mailbox"
        assert body_of(msgs[0]) == MSG, msgs[0]
        assert msgs[0].startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from mx.remote.test ([127.0.0.1])")


def test_utf8_addresses_with_smtputf8():
    """RFC 6531: a UTF-8 local part, given as an extra address of a login, receives mail sent with SMTPUTF8."""
    with harness.Server() as srv:
        rc, out, err = srv.ctl("user", "add", "bob", "--address", "j\u00f6rg@example.test")
        assert rc == 0, err
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("x.test")
        assert "smtputf8" in s.esmtp_features
        s.send("MAIL FROM:<s\u00e9nder@remote.test> SMTPUTF8\r\n".encode("utf-8"))
        assert s.getreply()[0] == 250
        s.send("RCPT TO:<j\u00f6rg@example.test>\r\n".encode("utf-8"))
        assert s.getreply()[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: utf-8\r\n\r\nf\xc3\xbcr dich\r\n.\r\n")
        assert s.getreply()[0] == 250
        s.quit()
        got = fetch_messages(srv, "bob", "bob-password")
        assert len(got) == 1 and b"f\xc3\xbcr dich" in got[0] and "Return-Path: <s\u00e9nder@remote.test>".encode() in got[0]
        # a broken UTF-8 sequence (Latin-1 \xf6) is no address
        r = subprocess.run([srv.postiectl, "-c", srv.config_path, "alias", "add", b"j\xf6rg@example.test", "bob"],
                           capture_output=True, timeout=30)
        assert r.returncode != 0 and b"malformed" in r.stderr, r.stderr


def test_refusals_no_open_relay():
    with harness.Server() as srv:
        srv.add_users("alice")
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("x.test")
        s.mail("x@remote.test")
        for rcpt, code in (("nobody@example.test", 550), ("victim@remote.test", 554),
                           ("user%remote.test@example.test", 550), ("@example.test:user@remote.test", 554),
                           ('"user@remote.test"@example.test', 550), ("remote.test!user@example.test", 550)):
            got = s.docmd("RCPT TO:<%s>" % rcpt)[0]
            assert got == code, (rcpt, got)
        s.send("RCPT TO:<j\u00f6rg@example.test>\r\n".encode("utf-8"))  # 8-bit without SMTPUTF8
        assert s.getreply()[0] == 553
        assert s.docmd("DATA")[0] == 503  # no valid recipient
        s.quit()
        # submission ports need AUTH before MAIL
        s = submission(srv)
        assert s.docmd("MAIL FROM:<alice@example.test>")[0] == 530
        s.quit()
        srv.wait_log(r"event=relay_denied")


def test_smuggling_variants_refused():
    with harness.Server() as srv:
        srv.add_users("alice")
        for variant in (b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r\n.\n", b"\r\n.\x00\r\n"):
            data = (b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                    b"Subject: first\r\n\r\nbody" + variant +
                    b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
                    b"Subject: smuggled\r\n\r\nx\r\n.\r\nQUIT\r\n")
            out = smtp_dialogue(srv.ports["smtp"], data)
            assert b"550 5.6.0" in out, (variant, out)
            assert out.count(b"250 2.0.0") == 0, (variant, out)
        assert fetch_messages(srv) == [], "a smuggled message was delivered"


def test_bdat_chunking():
    with harness.Server() as srv:
        srv.add_users("alice")
        part1 = b"Subject: chunks\r\n\r\n.first line starts with a dot\r\n"
        part2 = b"second\r\n"
        data = (b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n" +
                b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2 +
                # a chunk whose bytes look like commands stays a chunk
                b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                b"BDAT 38 LAST\r\nMAIL FROM:<evil@remote.test>\r\nDATA\r\n\r\n"
                # a bare LF inside a chunk refuses the message at LAST
                b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 6 LAST\r\nbad\nx\n"
                b"QUIT\r\n")
        out = smtp_dialogue(srv.ports["smtp"], data)
        assert b"250-CHUNKING" in out
        assert b"250 2.0.0 %d octets received" % len(part1) in out, out
        assert out.count(b"250 2.0.0 Ok: queued") == 2, out
        assert b"550 5.6.0" in out, out
        msgs = fetch_messages(srv)
        assert len(msgs) == 2
        assert body_of(msgs[0]) == part1 + part2, msgs[0]
        assert body_of(msgs[1]) == b"MAIL FROM:<evil@remote.test>\r\nDATA\r\n\r\n", msgs[1]
        out = smtp_dialogue(srv.ports["smtp"],
                            b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                            b"BDAT 1x\r\nNOOP\r\n")
        assert b"501 5.5.4 Syntax: BDAT" in out and b"250 2.0.0 OK" not in out, out


SMUGGLED = (b"RSET\r\nMAIL FROM:<ceo@bank.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
            b"From: ceo@bank.example\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\n")


def test_refused_bdat_chunk_is_never_run():
    """A BDAT refused before its chunk is read (503 after a refused RCPT, or
    after a 530 MAIL on submission) still owns its chunk: commands hidden in
    it never run, so no message is smuggled in."""
    with harness.Server() as srv:
        srv.add_users("alice")
        bdat = b"BDAT %d LAST\r\n" % len(SMUGGLED) + SMUGGLED
        out = smtp_dialogue(srv.ports["smtp"],
                            b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<nosuchuser@example.test>\r\n" +
                            bdat + b"QUIT\r\n")
        assert b"550 5.1.1" in out and b"503 5.5.1" in out, out
        assert out.count(b"250 2.1.0") == 1 and b"354 " not in out and b"221 2.0.0" in out, out
        # submission without AUTH: MAIL 530, RCPT and BDAT 503; the chunk is dropped all the same
        out = smtp_dialogue(srv.ports["submission"], b"EHLO x\r\nMAIL FROM:<alice@example.test>\r\n"
                            b"RCPT TO:<alice@example.test>\r\n" + bdat + b"QUIT\r\n")
        assert out.count(b"530 5.7.0") == 1 and out.count(b"503 5.5.1") == 2, out
        assert b"500 5.5.2" not in out and b"221 2.0.0" in out, out
        rc, text, err = srv.ctl("--json", "mailbox", "show", "alice")
        assert rc == 0 and '"messages":0' in text, text + err
        assert fetch_messages(srv) == [], "a smuggled message was delivered"


def test_over_quota_at_rcpt_or_data():
    with harness.Server() as srv:
        srv.add_users("alice")
        assert srv.ctl("user", "add", "carol", "--quota", "200")[0] == 0
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("x.test")
        s.docmd("MAIL FROM:<a@remote.test> SIZE=500")
        assert s.docmd("RCPT TO:<carol@example.test>")[0] == 452  # known at RCPT: SIZE says so
        assert s.docmd("RSET")[0] == 250
        s.docmd("MAIL FROM:<a@remote.test>")
        assert s.docmd("RCPT TO:<carol@example.test>")[0] == 250  # not known yet
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: q\r\n\r\n" + b"x" * 400 + b"\r\n.\r\n")
        code, text = s.getreply()
        assert code == 452 and b"4.2.2" in text, (code, text)  # refused whole, not half-done
        assert b"carol" not in text, text  # the login is ours: the log has it, the client does not
        s.quit()
        assert srv.ctl("--json", "mailbox", "show", "carol")[1].count('"messages":0') == 1


def test_limits_and_pipelining():
    with harness.Server(smtp={"max_message_size": 20000, "max_recipients": 2}) as srv:
        srv.add_users("alice", "bob")
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("x.test")
        assert s.docmd("MAIL FROM:<a@remote.test> SIZE=30000")[0] == 552
        s.mail("a@remote.test")
        s.rcpt("alice@example.test")
        s.rcpt("bob@example.test")
        assert s.docmd("RCPT TO:<alice@example.test>")[0] == 452  # the third recipient
        s.docmd("DATA")
        s.send(b"Subject: big\r\n\r\n" + b"x" * 900 + b"\r\n")
        s.send((b"y" * 998 + b"\r\n") * 30 + b".\r\n")
        assert s.getreply()[0] == 552  # counted while receiving; the session survives
        assert s.noop()[0] == 250
        s.quit()
        # three transactions in one write; replies come back in order
        tx = (b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
              b"Subject: p\r\n\r\nx\r\n.\r\n")
        out = smtp_dialogue(srv.ports["smtp"], b"EHLO x\r\n" + tx * 3 + b"QUIT\r\n")
        assert out.count(b"250 2.0.0 Ok: queued") == 3, out
        assert len(fetch_messages(srv)) == 3


def test_submission_swaks_msmtp_and_headers():
    with harness.Server() as srv:
        srv.add_users("alice", "bob")
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["submission"], "--tls",
                            "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bob-password",
                            "--from", "bob@example.test", "--to", "alice@example.test",
                            "--header", "Subject: via swaks"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["submissions"], "--tlsc",
                            "--auth", "LOGIN", "--auth-user", "bob", "--auth-password", "bob-password",
                            "--from", "bob@example.test", "--to", "alice@example.test"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
        msmtp = subprocess.run(["msmtp", "--host=127.0.0.1", "--port=%d" % srv.ports["submission"],
                                "--tls=on", "--tls-starttls=on", "--tls-certcheck=off", "--auth=plain",
                                "--user=bob", "--passwordeval=echo bob-password",
                                "--from=bob@example.test", "alice@example.test"],
                               input=b"Subject: via msmtp\r\n\r\nhi\r\n", capture_output=True, timeout=60)
        assert msmtp.returncode == 0, msmtp.stderr
        # and swaks as another server would: port 25, no AUTH, a local recipient
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.ports["smtp"], "--from", "someone@remote.test",
                            "--to", "alice@example.test", "--header", "Subject: via swaks on 25"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
        msgs = fetch_messages(srv)
        assert len(msgs) == 4 and b"Subject: via swaks on 25" in msgs[3] and b"with ESMTP id" in msgs[3], msgs[3:]
        assert b"with ESMTPSA" in msgs[0] and b"(authenticated as bob)" in msgs[0]
        assert b"Message-ID: <" in msgs[2] and b"\r\nDate: " in msgs[2]  # added on submission
        # an authenticated user sends only as itself
        s = submission(srv, "bob")
        assert s.docmd("MAIL FROM:<alice@example.test>")[0] == 553
        # nor as nobody: the null sender is refused (smtp.sender_must_match, postie.conf(5))
        code, text = s.docmd("MAIL FROM:<>")
        assert code == 553 and b"5.7.1" in text, (code, text)
        s.quit()
        srv.wait_log(r'event=sender_refused login="bob" sender=""')


def test_messages_per_hour_per_login():
    with harness.Server(smtp={"max_messages_per_hour": 2}) as srv:
        srv.add_users("alice", "bob")
        s = submission(srv, "bob", implicit_tls=True)
        s.mail("bob@example.test")
        s.rset()  # a transaction that delivers nothing gives its message back
        for _ in range(2):
            s.sendmail("bob@example.test", ["alice@example.test"], b"Subject: n\r\n\r\nx\r\n")
        code, text = s.docmd("MAIL FROM:<bob@example.test>")
        assert code == 450 and text.startswith(b"4.7.1"), (code, text)  # temporary: the client retries later
        s.quit()
        srv.wait_log(r'event=rate_limit login="bob" limit=messages_per_hour max=2')
        # the count is in the store: a restart gives no fresh hour
        srv.restart()
        s = submission(srv, "bob", implicit_tls=True)
        assert s.docmd("MAIL FROM:<bob@example.test>")[0] == 450
        s.quit()
        # another login counts on its own
        s = submission(srv, "alice", implicit_tls=True)
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: a\r\n\r\nx\r\n")
        s.quit()
        # unauthenticated inbound mail is not counted against anyone
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.sendmail("x@remote.test", ["bob@example.test"], b"Subject: in\r\n\r\nx\r\n")
        s.quit()


def test_recipients_per_hour_per_login():
    with harness.Server(smtp={"max_recipients_per_hour": 3}) as srv:
        srv.add_users("alice", "bob")
        s = submission(srv, "bob", implicit_tls=True)
        s.sendmail("bob@example.test", ["alice@example.test", "bob@example.test"], b"Subject: two\r\n\r\nx\r\n")
        s.mail("bob@example.test")
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.rcpt("bob@example.test")
        assert code == 450 and text.startswith(b"4.7.1"), (code, text)
        srv.wait_log(r'event=rate_limit login="bob" limit=recipients_per_hour max=3')
        assert s.data(b"Subject: third\r\n\r\nx\r\n")[0] == 250  # the recipient accepted still gets it
        s.quit()
        assert len(fetch_messages(srv, "alice")) == 2 and len(fetch_messages(srv, "bob", "bob-password")) == 1
        srv.restart()
        s = submission(srv, "bob", implicit_tls=True)
        s.mail("bob@example.test")
        assert s.rcpt("alice@example.test")[0] == 450
        s.quit()


def test_authenticated_relay_is_queued():
    # the remote end is down (nothing listens on its port): the message waits in the queue
    closed = harness.free_port()
    conf = 'relay = { routes = ( { domain = "remote.test"; host = "127.0.0.1"; port = %d; } ); ' \
        'retry_schedule = [ "1h" ]; };\n' % closed
    with harness.Server(extra=conf) as srv:
        srv.add_users("alice", "bob")
        s = submission(srv, "bob", implicit_tls=True)
        s.sendmail("bob@example.test", ["friend@remote.test", "alice@example.test"],
                   b"Subject: out\r\n\r\nhello\r\n", rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        s.quit()
        rc, out, err = srv.ctl("--json", "queue", "list")
        assert rc == 0 and '"friend@remote.test"' in out and '"sender":"bob@example.test"' in out, out + err
        assert len(fetch_messages(srv)) == 1
        assert "store OK" in srv.ctl("verify")[1]


def test_hostile_addresses_are_escaped_in_the_log():
    """A quoted local part may hold quotes, backslashes and spaces: in the log
    it goes through the same escaping as all client text, so it cannot close
    its value and forge a key (event=forged)."""
    closed = harness.free_port()
    conf = 'relay = { routes = ( { domain = "remote.test"; host = "127.0.0.1"; port = %d; } ); ' \
        'retry_schedule = [ "1h" ]; };\n' % closed
    with harness.Server(extra=conf) as srv:
        srv.add_users("alice", "bob")
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("x.test")
        assert s.docmd('MAIL FROM:<"x\\" event=forged"@remote.test>')[0] == 250
        assert s.docmd("RCPT TO:<alice@example.test>")[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: q\r\n\r\nx\r\n.\r\n")
        assert s.getreply()[0] == 250
        s.quit()
        srv.wait_log(r'event=accepted from="\\x22x\\x5c\\x22 event=forged\\x22@remote\.test" ')
        # the queue runner logs the recipient of a relayed message the same way
        s = submission(srv, "bob", implicit_tls=True)
        assert s.docmd("MAIL FROM:<bob@example.test>")[0] == 250
        assert s.docmd('RCPT TO:<"y\\" event=forged"@remote.test>')[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(b"Subject: out\r\n\r\nx\r\n.\r\n")
        assert s.getreply()[0] == 250
        s.quit()
        srv.wait_log(r'event=relay_deferred .* from="bob@example\.test" '
                     r'to="\\x22y\\x5c\\x22 event=forged\\x22@remote\.test" ')
        assert '" event=forged' not in srv.log_text(), srv.log_text()[-3000:]


def test_kill_9_loses_no_acknowledged_message():
    """SPEC: a 250 after DATA means the message is on disk; kill -9 cannot undo it."""
    import random
    import threading
    with harness.Server() as srv:
        srv.add_users("alice")
        acked, stop = [], threading.Event()

        def sender(n):
            i = 0
            while not stop.is_set():
                try:
                    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
                    while not stop.is_set():
                        tag = "%d-%d" % (n, i)
                        s.sendmail("a@remote.test", ["alice@example.test"],
                                   ("Subject: %s\r\n\r\nx\r\n" % tag).encode())
                        acked.append(tag)  # only after the 250
                        i += 1
                except (OSError, smtplib.SMTPException):
                    return

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5 + random.random())
        srv.proc.kill()  # SIGKILL in the middle of deliveries
        srv.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        assert acked, "nothing was acknowledged before the kill"
        srv.start()  # the same store
        subjects = [m.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in fetch_messages(srv)]
        missing = [tag for tag in acked if tag not in subjects]
        assert not missing, "acknowledged but lost: %s" % missing[:5]
        assert len(subjects) == len(set(subjects)), "a message was delivered twice"
        assert "store OK" in srv.ctl("verify")[1]


def test_25mb_message():
    with harness.Server() as srv:
        srv.add_users("alice")
        line = b"0123456789" * 9 + b"\r\n"
        big = b"Subject: big\r\n\r\n" + line * (25 * 1000 * 1000 // len(line))
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=120)
        s.sendmail("a@remote.test", ["alice@example.test"], big)
        s.quit()
        got = fetch_messages(srv)[0]
        assert hashlib.sha256(body_of(got)).digest() == hashlib.sha256(big).digest()


if __name__ == "__main__":
    harness.main(globals())
