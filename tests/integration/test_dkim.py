"""DKIM signing (RFC 6376, RFC 8463) as a receiver sees it: keys made with
postiectl dkim generate, mail submitted on 587 with AUTH to a remote
recipient routed to a sink, and the bytes the sink received verified by an
independent implementation (python3-dkim), both signatures (Ed25519-SHA256
and RSA-SHA256), with the TXT records postiectl dkim list --dns prints.
A plain message, a multipart one, long folded headers, dot-leading body
lines; one changed byte fails; what must stay unsigned stays unsigned."""

import json
import os
import re
import smtplib
import ssl
import stat

import dkim

import harness
import sinks


def tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submit(srv, rcpts, body, sender="alice@example.test"):
    s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=30)
    s.starttls(context=tls())
    s.login(sender.split("@")[0], sender.split("@")[0] + "-password")
    s.sendmail(sender, rcpts, body)
    s.quit()


def server(port):
    relay = 'relay = { routes = ( { domain = "remote.test"; host = "127.0.0.1"; port = %d; } ); };\n' % port
    return harness.Server(extra=relay)


def with_keys(srv):
    """Keys for example.test made by postiectl, then loaded by a reload (SIGHUP)."""
    rc, out, err = srv.ctl("dkim", "generate", "example.test")
    assert rc == 0, err
    srv.reload()
    srv.wait_log(r"event=reload result=ok")
    return harness.dkim_txt_records(srv)


def signatures(data):
    return re.findall(rb"(?m)^DKIM-Signature:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", data)


def verifies(data, idx, records):
    """python3-dkim's answer for signature idx: False for a mismatch, whichever way it says so."""
    try:
        return dkim.DKIM(data).verify(idx=idx, dnsfunc=lambda name, timeout=5: records.get(name))
    except dkim.ValidationError:
        return False


def verify_both(data, records):
    """Both signatures verify; returns their a= values."""
    sigs = signatures(data)
    assert len(sigs) == 2, data[:2000]
    algs = []
    for i, sig in enumerate(sigs):
        d = dkim.DKIM(data)
        ok = d.verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name))
        assert ok, "signature %d does not verify: %r\n%s" % (i, sig, data[:3000])
        algs.append(re.search(rb"a=([a-z0-9-]+);", sig.replace(b"\r\n", b"")).group(1))
        for line in sig.split(b"\r\n"):  # folded at 78 columns (a tab counted as 8)
            assert len(line.expandtabs(8)) <= 78, line
    return sorted(algs)


PLAIN = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@remote.test>\r\nSubject: plain\r\n"
         b"\r\nhello world  \r\n\r\nsecond paragraph\r\n\r\n\r\n")

MULTIPART = (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: multipart\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n"
             b"List-Id: <list.example.test>\r\nList-Unsubscribe: <mailto:leave@example.test>\r\n\r\n"
             b"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\t tabs \r\n--b1\r\n"
             b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b1--\r\n")

FOLDED = (b"From: \"Alice, with a comma\" (and a comment)\r\n <alice@example.test>\r\n"
          b"To: bob@remote.test,\r\n\tcarol@remote.test\r\n"
          b"Subject: " + b"\r\n ".join(b"word%d" % i for i in range(200)) + b"\r\n"
          b"References: " + b"\r\n\t".join(b"<%d@example.test>" % i for i in range(150)) + b"\r\n"
          b"\r\nbody\r\n")

DOTS = (b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: dots\r\n\r\n"
        b".leading dot\r\n..two dots\r\n.\r\nx\r\n. \r\n...\r\n")


EMPTY = b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: empty body\r\n\r\n"


def test_keys_generate_list_retire_and_modes():
    port = harness.free_ports(1)[0]
    with server(port) as srv:
        srv.wait_log(r"event=dkim_no_key domain=example.test")
        rc, out, err = srv.ctl("dkim", "generate", "example.test")
        assert rc == 0, err
        rc, out, err = srv.ctl("--json", "dkim", "list")
        assert rc == 0, err
        keys = json.loads(out)
        assert sorted(k["algorithm"] for k in keys) == ["ed25519", "rsa"], keys
        for k in keys:
            assert k["domain"] == "example.test" and k["selector"].endswith("-" + k["algorithm"]), k
            st = os.stat(k["file"])
            assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
            assert stat.S_IMODE(os.stat(os.path.dirname(k["file"])).st_mode) == 0o750
            if os.geteuid() == 0:
                assert st.st_uid == 0 and st.st_gid == harness.pwd.getpwnam(harness.server_user()).pw_gid
        records = harness.dkim_txt_records(srv)
        assert len(records) == 2 and all(v.startswith(b"v=DKIM1; k=") for v in records.values()), records
        # a second key of the same name is refused; a bad algorithm too
        rc, out, err = srv.ctl("dkim", "generate", "example.test", "--selector", keys[0]["selector"],
                               "--algorithm", keys[0]["algorithm"])
        assert rc != 0 and "already exists" in err, (out, err)
        rc, out, err = srv.ctl("dkim", "generate", "example.test", "--algorithm", "dsa")
        assert rc != 0
        # a bad file is skipped at reload, the rest loaded
        with open(os.path.join(srv.dir, "dkim", "example.test", "broken.key"), "w") as f:
            f.write("not a key\n")
        srv.reload()
        srv.wait_log(r"event=dkim_key file=\"[^\"]*broken.key\".*action=skipped")
        os.unlink(os.path.join(srv.dir, "dkim", "example.test", "broken.key"))
        rc, out, err = srv.ctl("dkim", "retire", "example.test", keys[0]["selector"])
        assert rc == 0, err
        rc, out, err = srv.ctl("--json", "dkim", "list")
        assert [k["selector"] for k in json.loads(out)] == [keys[1]["selector"]], out
        assert os.path.exists(os.path.join(srv.dir, "dkim", "example.test", "retired",
                                           keys[0]["selector"] + ".key"))
        rc, out, err = srv.ctl("dkim", "retire", "example.test", keys[0]["selector"])
        assert rc != 0


def test_signed_messages_verify():
    port = harness.free_ports(1)[0]
    with server(port) as srv, sinks.Sink("127.0.0.1", port) as sink:
        srv.add_users("alice")
        records = with_keys(srv)
        bodies = [PLAIN, MULTIPART, FOLDED, DOTS, EMPTY]
        for i, body in enumerate(bodies):
            submit(srv, ["bob@remote.test"], body)
            sink.wait_messages(i + 1)
        for body, msg in zip(bodies, sink.messages):
            data = msg["data"]
            assert not data.startswith(b"Return-Path:"), data[:200]
            assert data.startswith(b"DKIM-Signature: "), data[:200]
            assert data.endswith(body.split(b"\r\n\r\n", 1)[1]), data[-300:]
            assert verify_both(data, records) == [b"ed25519-sha256", b"rsa-sha256"]
            h = re.search(rb"h=([^;]*);", signatures(data)[0].replace(b"\r\n\t", b"")).group(1)
            # From, To, Subject, Date over-signed; Date and Message-ID added by submission, signed
            names = h.split(b":")
            assert names.count(b"from") == 2 and names.count(b"date") == 2 and b"message-id" in names, h
            assert b"received" not in names, h
        assert b"list-id" in re.search(rb"h=([^;]*);", signatures(sink.messages[1]["data"])[0]
                                       .replace(b"\r\n\t", b"")).group(1)
        assert len(re.findall(r"event=dkim_signed domain=example.test selectors=\S+-ed25519,\S+-rsa",
                              srv.log_text())) == len(bodies)

        # one byte changed after signing: both fail
        data = sink.messages[0]["data"]
        changed = data.replace(b"hello world", b"hellO world")
        assert not verifies(changed, 0, records) and not verifies(changed, 1, records)
        # a Subject added after signing, which the signatures over-signed: fails too
        added = data.replace(b"\r\n\r\n", b"\r\nSubject: added\r\n\r\n", 1)
        assert not verifies(added, 0, records) and not verifies(added, 1, records)
        assert verifies(data, 0, records) and verifies(data, 1, records)


def test_unsigned_when_not_one_author_or_no_key():
    port = harness.free_ports(1)[0]
    with server(port) as srv, sinks.Sink("127.0.0.1", port) as sink:
        srv.add_users("alice")
        with_keys(srv)
        two = b"From: alice@example.test, bob@example.test\r\nSender: alice@example.test\r\nSubject: two\r\n\r\nx\r\n"
        other = b"From: alice@other.test\r\nSubject: no key\r\n\r\nx\r\n"
        submit(srv, ["bob@remote.test"], two)
        submit(srv, ["bob@remote.test"], other)
        msgs = sink.wait_messages(2)
        for msg in msgs:
            assert not signatures(msg["data"]), msg["data"][:500]
        srv.wait_log(r"event=dkim_unsigned reason=\"not one From: address")


if __name__ == "__main__":
    harness.main(globals())
