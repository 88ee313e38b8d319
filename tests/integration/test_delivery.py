"""Outbound delivery against a real outside world on loopback: dnsmasq for
MX, A and null MX records, scripted SMTP servers (sinks.py) as the remote
ends, and aiosmtpd as a smarthost with STARTTLS + AUTH. Relaying by route,
by MX preference with fallback, implicit MX; retries after 4xx; DSNs after
5xx, null MX, unknown domains and expiry (with their content checked); no
bounce to a null sender; hostile remote servers; kill -9 during delivery;
and the postiectl queue commands."""

import email
import email.policy
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import harness
import sinks
from clients import fetch_messages, pop3_login, submission, wait_mailbox


def relay_conf(routes=(), **keys):
    """A relay group: routes as (domain, host, port), other keys as they come."""
    text = ["routes = ( %s );" % ", ".join('{ domain = "%s"; host = "%s"; port = %d; }' % r for r in routes)]
    for k, v in keys.items():
        if isinstance(v, (list, tuple)):
            text.append("%s = [ %s ];" % (k, ", ".join('"%s"' % x for x in v)))
        else:
            text.append("%s = %s;" % (k, harness.conf_value(v)))
    return "relay = { %s };\n" % " ".join(text)


def submit(srv, rcpts, body=b"Subject: test\r\n\r\nhello\r\n", sender="alice@example.test",
           mail_options=(), rcpt_options=()):
    s = submission(srv, sender.split("@")[0])
    s.sendmail(sender, rcpts, body, mail_options=list(mail_options), rcpt_options=list(rcpt_options))
    s.quit()


def queue(srv):
    rc, out, err = srv.ctl("--json", "queue", "list")
    assert rc == 0, err
    return json.loads(out)


def wait_queue_empty(srv, timeout=20):
    deadline = time.time() + timeout
    while queue(srv) and time.time() < deadline:
        time.sleep(0.1)
    assert queue(srv) == [], queue(srv)


def parse(raw_msg):
    return email.message_from_bytes(raw_msg, policy=email.policy.compat32)


def report_of(dsn):
    """The message/delivery-status part as one text."""
    for part in parse(dsn).walk():
        if part.get_content_type() == "message/delivery-status":
            return "\n".join(str(p) for p in part.get_payload())
    raise AssertionError("no delivery-status part in:\n" + dsn.decode(errors="replace"))


def test_route_delivery_pipelined_with_dsn_parameters_and_tls():
    port = harness.free_port()
    with harness.Server(extra=relay_conf([("remote.test", "127.0.0.1", port)])) as srv, \
            sinks.Sink("127.0.0.1", port, tls=(srv.cert, srv.key)) as sink:
        srv.add_users("alice")
        body = b"Subject: route\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\r\n\xc3\xa9t\xc3\xa9\r\n"
        submit(srv, ["bob@remote.test", "carol@remote.test"], body,
               mail_options=["RET=HDRS", "ENVID=env123", "BODY=8BITMIME"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig@remote.test"])
        msg = sink.wait_messages(1)[0]
        assert msg["tls"], "STARTTLS was offered and not used"
        assert b"SIZE=" in msg["mail"] and b"BODY=8BITMIME" in msg["mail"], msg["mail"]
        assert b"RET=HDRS" in msg["mail"] and b"ENVID=env123" in msg["mail"], msg["mail"]
        assert msg["rcpts"] == [b"RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@remote.test",
                                b"RCPT TO:<carol@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@remote.test"], msg["rcpts"]
        # one transaction for both recipients; our Return-Path line stays home; the content is exact
        assert len(sink.messages) == 1
        assert not msg["data"].startswith(b"Return-Path:"), msg["data"][:200]
        assert msg["data"].startswith(b"Received: from "), msg["data"][:200]
        assert msg["data"].endswith(body), msg["data"]
        # the commands came as one pipelined group (RFC 2920): MAIL .. DATA before any reply was read
        assert msg["pipelined"], "RCPT did not follow MAIL before its reply"
        cmds = [c.split(b" ")[0].split(b":")[0].strip().upper() for c in sink.commands]
        assert cmds[cmds.index(b"MAIL"):cmds.index(b"MAIL") + 4] == [b"MAIL", b"RCPT", b"RCPT", b"DATA"], cmds
        wait_queue_empty(srv)
        srv.wait_log(r"event=relay_delivered .*to=\"carol@remote.test\"")
        # NOTIFY=SUCCESS went on to a server that offers DSN: reporting is its job, not ours
        assert fetch_messages(srv) == [], "a DSN for a delivery the next server reports itself"
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


def test_relayed_dsn_when_the_next_server_lacks_dsn():
    # RFC 3461 5.2.2: NOTIFY=SUCCESS cannot go on, so we report "relayed" ourselves
    port = harness.free_port()
    no_dsn = tuple(e for e in sinks.DEFAULT_EHLO if e != "DSN")
    with harness.Server(extra=relay_conf([("remote.test", "127.0.0.1", port)])) as srv, \
            sinks.Sink("127.0.0.1", port, ehlo=no_dsn) as sink:
        srv.add_users("alice")
        s = submission(srv, "alice")
        s.mail("alice@example.test", ["ENVID=env-relayed", "RET=HDRS"])
        assert s.rcpt("ann@remote.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;ann@remote.test"])[0] == 250
        assert s.rcpt("bob@remote.test")[0] == 250	# no NOTIFY: failures only
        assert s.rcpt("cat@remote.test", ["NOTIFY=NEVER"])[0] == 250
        assert s.data(b"Subject: receipt please\r\nX-Marker: relayed-headers\r\n\r\nbody text\r\n")[0] == 250
        s.quit()
        msg = sink.wait_messages(1)[0]
        assert not any(b"NOTIFY" in r for r in msg["rcpts"]), msg["rcpts"]
        dsn = wait_mailbox(srv, 1)[0]
        wait_queue_empty(srv)
        m = parse(dsn)
        assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:100]
        assert m["Subject"] == "Successful Mail Delivery Report" and m["To"] == "<alice@example.test>", m
        report = report_of(dsn)
        assert "Original-Envelope-Id: env-relayed" in report, report
        assert "Final-Recipient: rfc822; ann@remote.test" in report and "Action: relayed" in report, report
        assert "Original-Recipient: rfc822;ann@remote.test" in report and "Status: 2.0.0" in report, report
        assert "Remote-MTA: dns; 127.0.0.1[127.0.0.1:%d]" % port in report, report
        assert "bob@remote.test" not in report and "cat@remote.test" not in report, report
        assert "Will-Retry-Until" not in report, report
        headers = [p for p in m.walk() if p.get_content_type() == "text/rfc822-headers"]
        assert headers and b"X-Marker: relayed-headers" in headers[0].get_payload(decode=True)
        assert b"body text" not in dsn, "RET=HDRS returned the body"
        assert len(fetch_messages(srv)) == 1, "more than one report"


def test_success_dsns_for_local_delivery_and_an_expanding_alias():
    # RFC 3461 5.2.3 and 5.2.7.3: "delivered" for a mailbox, "expanded" for an
    # alias with several targets, whose targets are not asked for success again
    port = harness.free_port()
    with harness.Server(extra=relay_conf([("remote.test", "127.0.0.1", port)]),
                        users={"carl": "carl-password"}) as srv, sinks.Sink("127.0.0.1", port) as sink:
        srv.add_users("alice", "bob", "carl")
        assert srv.ctl("alias", "add", "team@example.test", "carl", "dora@remote.test")[0] == 0
        s = submission(srv, "alice")
        s.mail("alice@example.test", ["ENVID=env-local"])
        assert s.rcpt("bob@example.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;bob@example.test"])[0] == 250
        assert s.rcpt("team@example.test", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.data(b"Subject: local receipt\r\n\r\nhello bob\r\n")[0] == 250
        s.quit()
        assert len(wait_mailbox(srv, 1, user="bob")) == 1 and len(wait_mailbox(srv, 1, user="carl")) == 1
        msg = sink.wait_messages(1)[0]
        assert msg["rcpts"] == [b"RCPT TO:<dora@remote.test> NOTIFY=NEVER"], msg["rcpts"]
        dsn = wait_mailbox(srv, 1)[0]
        wait_queue_empty(srv)
        m = parse(dsn)
        assert m["Subject"] == "Successful Mail Delivery Report" and m["To"] == "<alice@example.test>", m
        report = report_of(dsn)
        assert "Original-Envelope-Id: env-local" in report, report
        assert "Final-Recipient: rfc822; bob@example.test\nOriginal-Recipient: rfc822;bob@example.test\n" \
            "Action: delivered\nStatus: 2.0.0" in report, report
        assert "Final-Recipient: rfc822; team@example.test\nAction: expanded\nStatus: 2.0.0" in report, report
        assert "carl" not in report and "dora" not in report, report
        assert len(fetch_messages(srv)) == 1, "more than one report"
        # without NOTIFY=SUCCESS no report at all, and no queue entry for a local delivery
        submit(srv, ["bob@example.test"])
        assert len(wait_mailbox(srv, 2, user="bob")) == 2
        assert queue(srv) == [] and len(fetch_messages(srv)) == 1
        # from another server on port 25: the report goes back out, from the null sender
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("mx.remote.test")
        s.mail("eve@remote.test")
        assert s.rcpt("bob@example.test", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.data(b"Subject: inbound receipt\r\n\r\nhi\r\n")[0] == 250
        s.quit()
        out = sink.wait_messages(2)[1]
        assert out["mail"].startswith(b"MAIL FROM:<>"), out["mail"]
        assert out["rcpts"][0].startswith(b"RCPT TO:<eve@remote.test>"), out["rcpts"]
        assert b"Action: delivered" in out["data"] and b"Final-Recipient: rfc822; bob@example.test" in out["data"]
        wait_queue_empty(srv)
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


def test_success_reports_for_strangers_carry_headers_only_and_are_limited():
    # port 25 without AUTH: anyone can name any sender, so a success report is a
    # reflection channel: headers only whatever RET says, and few per address
    with harness.Server(smtp={"max_success_reports_per_hour": 2}) as srv:
        srv.add_users("alice", "bob")
        for i in range(3):
            s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
            s.ehlo("mx.remote.test")
            s.mail("alice@example.test", ["RET=FULL"])
            assert s.rcpt("bob@example.test", ["NOTIFY=SUCCESS"])[0] == 250
            assert s.data(b"Subject: stranger %d\r\nX-Marker: from-a-stranger\r\n\r\nSTRANGER-BODY\r\n" % i)[0] == 250
            s.quit()
        srv.wait_log(r"event=dsn_limit ip=127\.0\.0\.1 max=2 ")
        assert len(wait_mailbox(srv, 3, user="bob")) == 3  # the mail itself goes through
        dsns = wait_mailbox(srv, 2)
        wait_queue_empty(srv)
        assert len(fetch_messages(srv)) == 2, "a report past the limit"
        for dsn in dsns:
            m = parse(dsn)
            assert m["Subject"] == "Successful Mail Delivery Report", m
            assert "Action: delivered" in report_of(dsn)
            headers = [p for p in m.walk() if p.get_content_type() == "text/rfc822-headers"]
            assert headers and b"X-Marker: from-a-stranger" in headers[0].get_payload(decode=True), dsn
            assert not any(p.get_content_type() == "message/rfc822" for p in m.walk()), dsn
            assert b"STRANGER-BODY" not in dsn, "a stranger's content reflected in a success report"
        # an authenticated submission keeps RET=FULL: the whole message comes back
        s = submission(srv, "alice")
        s.mail("alice@example.test", ["RET=FULL"])
        assert s.rcpt("bob@example.test", ["NOTIFY=SUCCESS"])[0] == 250
        assert s.data(b"Subject: own\r\n\r\nSUBMITTED-BODY\r\n")[0] == 250
        s.quit()
        full = [d for d in wait_mailbox(srv, 3) if b"SUBMITTED-BODY" in d]
        assert len(full) == 1, "no full report for an authenticated RET=FULL"
        assert any(p.get_content_type() == "message/rfc822" for p in parse(full[0]).walk()), full[0]
        wait_queue_empty(srv)
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


def test_connection_reuse_and_per_destination_limit():
    port = harness.free_port()
    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1h"], max_per_destination=2)
    with harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        # the destination is down: thirty messages wait for it
        s = submission(srv, "alice")
        for i in range(30):
            s.sendmail("alice@example.test", ["r%d@remote.test" % i, "s%d@remote.test" % i],
                       b"Subject: m%d\r\n\r\nx\r\n" % i)
        s.quit()
        deadline = time.time() + 20
        while time.time() < deadline and sum(e["attempts"] for e in queue(srv)) < 30:
            time.sleep(0.1)
        with sinks.Sink("127.0.0.1", port) as sink:
            assert srv.ctl("queue", "flush")[0] == 0
            msgs = sink.wait_messages(30)
            # one transaction per message for both recipients, at most two connections at once
            assert all(len(m["rcpts"]) == 2 for m in msgs), msgs
            assert sink.connections <= 2, "%d connections for 30 messages (limit 2)" % sink.connections
            wait_queue_empty(srv)


def dns_world(port, sink_port):
    return sinks.Dns(port, mx=[("pref.test", "mx10.pref.test", 10), ("pref.test", "mx20.pref.test", 20),
                               ("fallback.test", "down.fallback.test", 10), ("fallback.test", "up.fallback.test", 20)],
                     a=[("mx10.pref.test", "127.0.0.4"), ("mx20.pref.test", "127.0.0.3"),
                        ("down.fallback.test", "127.0.0.2"), ("up.fallback.test", "127.0.0.3"),
                        ("implicit.test", "127.0.0.3")],
                     null_mx=["nullmx.test"])


def test_mx_preference_fallback_implicit_null_and_missing():
    dns_port, sink_port = harness.free_ports(2)
    conf = relay_conf(nameserver="127.0.0.1:%d" % dns_port, mx_port=sink_port, retry_schedule=["1s"])
    with dns_world(dns_port, sink_port), sinks.Sink("127.0.0.4", sink_port) as best, \
            sinks.Sink("127.0.0.3", sink_port) as second, harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        submit(srv, ["a@pref.test"], b"Subject: pref\r\n\r\nx\r\n")
        best.wait_messages(1)
        assert second.messages == [], "the preference 20 host got mail while preference 10 was up"
        # preference 10 of fallback.test is 127.0.0.2, where nothing listens: the next MX takes it
        submit(srv, ["b@fallback.test"], b"Subject: fallback\r\n\r\nx\r\n")
        second.wait_messages(1)
        assert second.messages[0]["rcpts"] == [b"RCPT TO:<b@fallback.test>"]
        # no MX record: the domain's own address (RFC 5321 5.1)
        submit(srv, ["c@implicit.test"], b"Subject: implicit\r\n\r\nx\r\n")
        second.wait_messages(2)
        # null MX and a domain that does not exist: permanent, bounced at once
        submit(srv, ["d@nullmx.test"], b"Subject: nullmx\r\n\r\nx\r\n")
        submit(srv, ["e@missing.test"], b"Subject: missing\r\n\r\nx\r\n")
        dsns = wait_mailbox(srv, 2)
        reports = [report_of(d) for d in dsns]
        assert any("5.1.10" in r and "d@nullmx.test" in r for r in reports), reports
        assert any("5.1.2" in r and "e@missing.test" in r for r in reports), reports
        wait_queue_empty(srv)


def test_retry_after_4xx_then_success():
    port = harness.free_port()
    tries = {}

    def rcpt(address):
        tries[address] = tries.get(address, 0) + 1
        return b"451 4.3.0 Try again later\r\n" if tries[address] == 1 else b"250 2.1.5 Ok\r\n"

    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1s"])
    # a server without PIPELINING: one command, one reply
    with sinks.Sink("127.0.0.1", port, rcpt=rcpt, ehlo=("SIZE 1000000", "8BITMIME")) as sink, \
            harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        submit(srv, ["once@remote.test"])
        srv.wait_log(r"event=relay_deferred .*to=\"once@remote.test\" attempt=1 reply=\".*451 4.3.0")
        assert not sink.wait_messages(1)[0]["pipelined"], "pipelined to a server without PIPELINING"
        assert tries["once@remote.test"] == 2
        wait_queue_empty(srv)
        srv.wait_log(r"event=relay_delivered .*to=\"once@remote.test\" attempt=2")
        assert fetch_messages(srv) == [], "a retried delivery bounced"


def test_bounce_after_5xx_with_its_content():
    port = harness.free_port()

    def rcpt(address):
        return b"550 5.1.1 <%s>: no such user here\r\n" % address.encode() if address.startswith("nobody") \
            else b"250 2.1.5 Ok\r\n"

    conf = relay_conf([("remote.test", "127.0.0.1", port)])
    with sinks.Sink("127.0.0.1", port, rcpt=rcpt) as sink, harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        submit(srv, ["nobody@remote.test", "somebody@remote.test"],
               b"Subject: doomed\r\nX-Marker: headers-are-returned\r\n\r\nsecret body text\r\n")
        sink.wait_messages(1)
        dsn = wait_mailbox(srv, 1)[0]
        m = parse(dsn)
        assert dsn.startswith(b"Return-Path: <>\r\n"), dsn[:100]
        assert m["From"].startswith("Mail Delivery System <MAILER-DAEMON@localhost>"), m["From"]
        assert m["To"] == "<alice@example.test>" and m["Auto-Submitted"] == "auto-replied"
        assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"
        report = report_of(dsn)
        assert "Final-Recipient: rfc822; nobody@remote.test" in report, report
        assert "Action: failed" in report and "Status: 5.1.1" in report, report
        assert "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: no such user here" in report, report
        assert "Remote-MTA: dns; 127.0.0.1[127.0.0.1:%d]" % port in report, report
        assert "somebody@remote.test" not in report, "a delivered recipient was reported"
        headers = [p for p in m.walk() if p.get_content_type() == "text/rfc822-headers"]
        assert headers and b"X-Marker: headers-are-returned" in headers[0].get_payload(decode=True)
        assert b"secret body text" not in dsn, "RET=HDRS returned the body"
        wait_queue_empty(srv)
        # RET=FULL returns the whole message
        submit(srv, ["nobody2@remote.test"], b"Subject: full\r\n\r\nthe whole body\r\n", mail_options=["RET=FULL"])
        dsn = wait_mailbox(srv, 2)[1]
        parts = [p for p in parse(dsn).walk() if p.get_content_type() == "message/rfc822"]
        assert parts and b"the whole body" in dsn, dsn


def test_expiry_bounce_and_no_bounce_to_null_sender():
    port = harness.free_port()
    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1s"], queue_lifetime="3s",
                      delay_warning="0")
    with sinks.Sink("127.0.0.1", port, rcpt=lambda a: b"451 4.2.1 Mailbox busy\r\n") as sink, \
            harness.Server(extra=conf) as srv:
        srv.add_users("alice", "bob")
        submit(srv, ["late@remote.test"], b"Subject: late\r\n\r\nx\r\n")
        dsn = wait_mailbox(srv, 1, timeout=30)[0]
        report = report_of(dsn)
        assert "Action: failed" in report and "Status: 4.2.1" in report, report
        assert b"delivery time expired" in dsn and b"451 4.2.1 Mailbox busy" in dsn, dsn
        wait_queue_empty(srv)
        # a null-sender message (a bounce itself) that fails: never a DSN to <>; the postmaster hears
        assert srv.ctl("alias", "add", "fwd@example.test", "gone@remote.test")[0] == 0
        assert srv.ctl("alias", "add", "postmaster@example.test", "bob")[0] == 0
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.sendmail("<>", ["fwd@example.test"], b"Subject: a bounce\r\n\r\nx\r\n")
        s.quit()
        notice = wait_mailbox(srv, 1, user="bob", timeout=30)[0]
        assert parse(notice)["To"] == "<postmaster@example.test>", notice[:300]
        assert "gone@remote.test" in report_of(notice)
        wait_queue_empty(srv)
        assert all(not c.startswith(b"MAIL FROM:<>") or b"gone" not in c for c in sink.commands)
        assert len(fetch_messages(srv)) == 1, "alice got more than her own bounce"


def text_of(octets, ch=b"x"):
    """About octets of body, in lines of 80 with CRLF."""
    return (ch * 78 + b"\r\n") * (octets // 80 + 1)


def fill_mailbox(srv, user, octets):
    """A message of about octets (plus our headers) straight into user's mailbox."""
    s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
    s.sendmail("filler@remote.test", ["%s@example.test" % user], b"Subject: filler\r\n\r\n" + text_of(octets, b"f"))
    s.quit()


def wait_queue(srv, ready, timeout=20):
    """The queue list once ready(entries) says so."""
    deadline = time.time() + timeout
    while True:
        q = queue(srv)
        if ready(q):
            return q
        assert time.time() < deadline, "queue never got there: %s\n%s" % (q, srv.log_text()[-3000:])
        time.sleep(0.1)


def test_alias_member_over_quota_is_queued_then_delivered():
    # a member of an alias with no room: the others get the message, its copy
    # waits in the queue as a local recipient (never dropped, never refusing
    # the others), with SIZE known at RCPT or only at the end of data
    conf = relay_conf(retry_schedule=["1h"])
    with harness.Server(extra=conf) as srv:
        srv.add_users("bob")
        assert srv.ctl("user", "add", "alice", "--quota", "3000")[0] == 0
        fill_mailbox(srv, "alice", 2300)
        assert srv.ctl("alias", "add", "team@example.test", "alice", "bob")[0] == 0
        body = b"Subject: team\r\n\r\n" + text_of(1000, b"t")
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30)
        s.ehlo("mx.remote.test")
        s.docmd("MAIL FROM:<eve@remote.test> SIZE=1200")
        code, text = s.docmd("RCPT TO:<alice@example.test>")
        assert code == 452 and b"4.2.2" in text, (code, text)  # one mailbox, no room: refused at RCPT
        assert s.docmd("RCPT TO:<team@example.test>")[0] == 250  # alice full, bob not
        assert s.data(body)[0] == 250
        s.mail("eve@remote.test")  # no SIZE: alice's lack of room shows at the end of data
        assert s.rcpt("team@example.test")[0] == 250
        assert s.data(body)[0] == 250
        s.quit()
        assert [b"Subject: team" in m for m in wait_mailbox(srv, 2, user="bob")] == [True, True]
        # both copies for alice wait as local recipients, tried once at once, deferred again
        q = wait_queue(srv, lambda q: len(q) == 2 and all(e["attempts"] == 1 for e in q))
        for e in q:
            assert e["sender"] == "eve@remote.test", e
            [r] = e["recipients"]
            assert r["address"] == "team@example.test" and r["local"] == "alice", r
            assert r["state"] == "pending" and r["reply"].startswith("452 4.2.2"), r
        rc, out, err = srv.ctl("queue", "show", q[0]["id"])
        assert rc == 0 and "pending team@example.test (local mailbox alice) 452 4.2.2" in out, out + err
        assert srv.log_text().count("event=local_deferred") == 4, srv.log_text()[-3000:]
        assert len(fetch_messages(srv)) == 1  # only the filler
        # room again (the filler deleted), flushed: alice gets both, the queue empties
        p = pop3_login(srv, "alice", "alice-password", implicit_tls=True)
        p.dele(1)
        p.quit()
        assert srv.ctl("queue", "flush")[0] == 0
        got = wait_mailbox(srv, 2)
        assert len(got) == 2 and all(b"Subject: team" in m and text_of(1000, b"t") in m for m in got), got
        wait_queue_empty(srv)
        srv.wait_log(r"event=local_delivered queue=[0-9a-f]{16} from=\"eve@remote.test\" "
                     r"to=\"team@example.test\" login=\"alice\"")
        assert len(fetch_messages(srv, "bob")) == 2
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


def test_alias_member_over_quota_bounces_at_queue_lifetime():
    conf = relay_conf(retry_schedule=["1s"], queue_lifetime="3s", delay_warning="0")
    with harness.Server(extra=conf, users={"carl": "carl-password"}) as srv:
        srv.add_users("bob", "carl")
        assert srv.ctl("user", "add", "alice", "--quota", "1200")[0] == 0
        fill_mailbox(srv, "alice", 900)
        assert srv.ctl("alias", "add", "team@example.test", "alice", "bob")[0] == 0
        submit(srv, ["team@example.test"], b"Subject: for the team\r\n\r\nhello\r\n", sender="carl@example.test")
        assert len(wait_mailbox(srv, 1, user="bob")) == 1
        dsn = wait_mailbox(srv, 1, user="carl", timeout=30)[0]
        report = report_of(dsn)
        assert "Final-Recipient: rfc822; team@example.test\nAction: failed\nStatus: 4.2.2" in report, report
        assert "alice" not in report, report  # the member's login stays ours
        assert b"delivery time expired" in dsn and b"Mailbox full" in dsn, dsn
        wait_queue_empty(srv)
        srv.wait_log(r"event=local_failed queue=[0-9a-f]{16} from=\"carl@example.test\" to=\"team@example.test\"")
        assert len(fetch_messages(srv)) == 1  # the filler only
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


def test_delay_warning():
    port = harness.free_port()
    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1s"], delay_warning="1s")
    with sinks.Sink("127.0.0.1", port, rcpt=lambda a: b"452 4.2.2 Over quota for now\r\n"), \
            harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        submit(srv, ["slow@remote.test"])
        warning = wait_mailbox(srv, 1, timeout=30)[0]
        report = report_of(warning)
        assert "Action: delayed" in report and "Will-Retry-Until:" in report, report
        assert parse(warning)["Subject"].startswith("Delayed Mail"), warning[:400]
        time.sleep(3)
        assert len(fetch_messages(srv)) == 1, "more than one delay warning"
        assert len(queue(srv)) == 1, "a delayed message left the queue"


def test_smarthost_with_auth_over_starttls():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    port = harness.free_port()
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.mail_from, list(envelope.rcpt_tos), None,
                             session.ssl is not None, envelope.original_content))
            return "250 2.0.0 Ok"

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"relayuser" and auth_data.password == b"relay-secret"
        if ok:
            logins.append((mechanism, auth_data.login))
        return AuthResult(success=ok, handled=False)

    with Pki() as pki, harness.Server(extra=relay_conf(smarthost="127.0.0.1:%d" % port, smarthost_user="relayuser",
                                              smarthost_password="relay-secret", smarthost_ca=pki.ca[0],
                                              retry_schedule=["1s"])) as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*pki.good)
        ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                         authenticator=authenticator, auth_required=True, auth_require_tls=True)
        ctl.start()
        try:
            srv.add_users("alice")
            submit(srv, ["x@anywhere.example", "y@elsewhere.example"], b"Subject: smart\r\n\r\nvia smarthost\r\n")
            deadline = time.time() + 20
            while not received and time.time() < deadline:
                time.sleep(0.1)
            assert received, srv.log_text()[-2000:]
            mail_from, rcpts, auth, was_tls, content = received[0]
            assert was_tls and mail_from == "alice@example.test", received[0]
            assert logins and logins[0][1] == b"relayuser", logins
            assert sorted(rcpts) == ["x@anywhere.example", "y@elsewhere.example"], rcpts
            assert b"via smarthost" in content and not content.startswith(b"Return-Path")
            wait_queue_empty(srv)
        finally:
            ctl.stop()


def test_smarthost_refusing_our_password_keeps_the_mail():
    port = harness.free_port()
    with Pki() as pki, harness.Server(extra=relay_conf(
            smarthost="127.0.0.1:%d" % port, smarthost_user="relayuser", smarthost_password="wrong",
            smarthost_ca=pki.ca[0], retry_schedule=["1s"])) as srv, \
            sinks.Sink("127.0.0.1", port, tls=pki.good, auth=("relayuser", "right")) as sink:
        srv.add_users("alice")
        submit(srv, ["x@anywhere.example"])
        srv.wait_log(r"event=relay_auth result=fail peer=\"127.0.0.1\[127.0.0.1:%d\]\"" % port)
        time.sleep(1.5)
        q = queue(srv)
        assert len(q) == 1 and q[0]["recipients"][0]["state"] == "pending", q
        assert "535" in q[0]["recipients"][0]["reply"], q
        assert sink.messages == [] and fetch_messages(srv) == [], "refused credentials must not bounce"


class Pki:
    """Certificates for a smarthost on 127.0.0.1: a test CA (ca), one it issued
    for the smarthost's address and name (good), one it issued for another
    host (wrong_name), a self-signed one naming another host (self_signed),
    and a second CA that issued nothing here (other_ca)."""

    def __init__(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="postie-pki-")
        os.chmod(self.dir, 0o755)  # the CA file is read by the server after its privilege drop
        self.ca = harness.make_ca(self.dir)
        self.other_ca = harness.make_ca(self.dir, "other-ca", "Another Test CA")
        self.good = harness.make_issued_certificate(self.dir, "good", self.ca, ("localhost",), ("127.0.0.1",))
        self.wrong_name = harness.make_issued_certificate(self.dir, "wrong", self.ca, ("other.test",))
        sub = os.path.join(self.dir, "self")
        os.mkdir(sub)
        self.self_signed = harness.make_certificate(sub, "other.test", ("other.test",), ())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def smarthost_conf(port, **keys):
    return relay_conf(smarthost="127.0.0.1:%d" % port, smarthost_user="relayuser", smarthost_password="relay-secret",
                      retry_schedule=["1s"], **keys)


def assert_deferred_without_auth(srv, sink, reason, event="relay_tls_verify result=fail .*reason"):
    """The mail waits in the queue with reason as its last reply, the log has
    it (escaped) in event, and the smarthost never saw an AUTH command."""
    srv.wait_log(r"event=%s=\"[^\"]*%s" % (event, reason))
    srv.wait_log(r"event=relay_deferred .*to=\"x@anywhere.example\" attempt=\d+ reply=\".*4\.[47]\.[25] ")
    q = queue(srv)
    assert len(q) == 1 and q[0]["recipients"][0]["state"] == "pending", q
    rc, out, err = srv.ctl("queue", "show", q[0]["id"])
    assert rc == 0 and re.search(reason, out), out + err
    assert sink.auths == [] and not any(c.upper().startswith(b"AUTH") for c in sink.commands), sink.commands
    assert sink.messages == [] and fetch_messages(srv) == [], \
        "a failed verification must defer, not deliver or bounce"


def test_smarthost_certificate_from_smarthost_ca_is_verified_then_auth():
    port = harness.free_port()
    with Pki() as pki, harness.Server(extra=smarthost_conf(port, smarthost_ca=pki.ca[0])) as srv, \
            sinks.Sink("127.0.0.1", port, tls=pki.good, auth=("relayuser", "relay-secret")) as sink:
        srv.add_users("alice")
        submit(srv, ["x@anywhere.example"])
        msg = sink.wait_messages(1)[0]
        assert msg["tls"] and msg["auth"] == "relayuser", msg
        assert sink.auths == [(True, b"PLAIN")], sink.auths
        wait_queue_empty(srv)


def test_self_signed_smarthost_naming_another_host_gets_no_auth():
    # the outside review's case: any certificate was accepted, and AUTH PLAIN followed
    port = harness.free_port()
    with Pki() as pki, harness.Server(extra=smarthost_conf(port)) as srv, \
            sinks.Sink("127.0.0.1", port, tls=pki.self_signed, auth=("relayuser", "relay-secret")) as sink:
        srv.add_users("alice")
        submit(srv, ["x@anywhere.example"])
        assert_deferred_without_auth(srv, sink, "certificate signer unknown")
        assert any(c.upper().startswith(b"STARTTLS") for c in sink.commands), sink.commands


def test_smarthost_ca_but_wrong_host_name_gets_no_auth():
    port = harness.free_port()
    with Pki() as pki, harness.Server(extra=smarthost_conf(port, smarthost_ca=pki.ca[0])) as srv, \
            sinks.Sink("127.0.0.1", port, tls=pki.wrong_name, auth=("relayuser", "relay-secret")) as sink:
        srv.add_users("alice")
        submit(srv, ["x@anywhere.example"])
        assert_deferred_without_auth(srv, sink, "certificate name mismatch: expected 127\\.0\\.0\\.1")
        assert "signer unknown" not in srv.log_text()


def test_smarthost_without_starttls_gets_no_auth():
    port = harness.free_port()
    with harness.Server(extra=smarthost_conf(port)) as srv, \
            sinks.Sink("127.0.0.1", port, auth=("relayuser", "relay-secret")) as sink:
        srv.add_users("alice")
        submit(srv, ["x@anywhere.example"])
        assert_deferred_without_auth(srv, sink, "does not offer STARTTLS", "relay_session .*error")


def test_smarthost_ca_reloaded_on_sighup():
    port = harness.free_port()
    with Pki() as pki:
        ca_file = os.path.join(pki.dir, "smarthost-ca.pem")
        shutil_copy(pki.other_ca[0], ca_file)
        with harness.Server(extra=smarthost_conf(port, smarthost_ca=ca_file)) as srv, \
                sinks.Sink("127.0.0.1", port, tls=pki.good, auth=("relayuser", "relay-secret")) as sink:
            srv.add_users("alice")
            submit(srv, ["x@anywhere.example"])
            srv.wait_log(r"event=relay_deferred .*certificate signer unknown")
            assert sink.auths == [] and sink.messages == []
            # the same key, a new file content: new connections trust the new CA
            shutil_copy(pki.ca[0], ca_file)
            srv.reload()
            srv.wait_log(r"event=reload result=ok")
            msg = sink.wait_messages(1)[0]
            assert msg["tls"] and msg["auth"] == "relayuser", msg
            wait_queue_empty(srv)


def shutil_copy(src, dst):
    import shutil
    shutil.copyfile(src, dst + ".new")
    os.chmod(dst + ".new", 0o644)
    os.rename(dst + ".new", dst)


def hostile(name, script):
    """A server that misbehaves in one way: script(conn, f) runs after accept."""
    import threading
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(0.2)
    state = {"stop": False, "conns": 0}

    def run():
        while not state["stop"]:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            state["conns"] += 1
            try:
                c.settimeout(10)
                script(c, c.makefile("rb"))
            except OSError:
                pass
            finally:
                c.close()
        s.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return s.getsockname()[1], state


def test_hostile_remote_servers_are_temporary_failures():
    def many_lines(c, f):
        c.sendall(b"220-hello\r\n" * 150 + b"220 done\r\n")

    def overlong(c, f):
        c.sendall(b"220 " + b"x" * 600 + b"\r\n")

    def silent(c, f):
        time.sleep(4)

    def closes_mid_reply(c, f):
        c.sendall(b"220 ok\r\n")
        f.readline()
        c.sendall(b"250-sink.test\r\n250-PIPEL")

    def bare_lf(c, f):
        c.sendall(b"220 ok\n")

    def drops_in_data(c, f):
        c.sendall(b"220 ok\r\n")
        for reply in (b"250 sink.test\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
            f.readline()
            c.sendall(reply)
        f.readline()

    cases = {"many_lines": many_lines, "overlong": overlong, "silent": silent,
             "closes_mid_reply": closes_mid_reply, "bare_lf": bare_lf, "drops_in_data": drops_in_data}
    servers = {name: hostile(name, fn) for name, fn in cases.items()}
    routes = [("%s.test" % name.replace("_", "-"), "127.0.0.1", port) for name, (port, _) in servers.items()]
    try:
        conf = relay_conf(routes, retry_schedule=["1h"], command_timeout="2s")
        with harness.Server(extra=conf) as srv:
            srv.add_users("alice")
            for domain, _, port in routes:
                submit(srv, ["x@" + domain])
            for domain, _, port in routes:
                srv.wait_log(r"event=relay_deferred .*to=\"x@%s\" attempt=1 reply=\"[^\"]*127\.0\.0\.1:%d"
                             % (domain, port), timeout=20)
            q = queue(srv)
            assert len(q) == len(routes) and all(r["recipients"][0]["state"] == "pending" for r in q), q
            assert fetch_messages(srv) == [], "a hostile server's failure bounced"
            # the server keeps serving everyone else meanwhile
            submit(srv, ["alice@example.test"])
            assert len(fetch_messages(srv)) == 1
    finally:
        for port, state in servers.values():
            state["stop"] = True


def test_bytes_sent_ahead_of_tls_are_discarded():
    port = harness.free_port()
    # CVE-2021-38371 class: a reply injected in plaintext with the 220 to STARTTLS
    with harness.Server(extra=relay_conf([("remote.test", "127.0.0.1", port)])) as srv, \
            sinks.Sink("127.0.0.1", port, tls=(srv.cert, srv.key),
                       starttls_extra=b"250-injected\r\n250 PIPELINING\r\n") as sink:
        srv.add_users("alice")
        submit(srv, ["bob@remote.test"])
        msg = sink.wait_messages(1)[0]
        assert msg["tls"]
        srv.wait_log(r"event=relay_tls_injection peer=\"[^\"]*\" discarded=%d " % len(b"250-injected\r\n250 PIPELINING\r\n"))
        wait_queue_empty(srv)


def test_a_slow_destination_cannot_take_every_slot():
    """More than RUNNER_DEST_WAITING_MAX (1000) parcels for one destination: the rest wait in the store."""
    slow_port, fast_port = harness.free_ports(2)
    conf = relay_conf([("slow.test", "127.0.0.1", slow_port), ("fast.test", "127.0.0.1", fast_port)],
                      max_per_destination=1, retry_schedule=["1h"])
    # 1031 messages from one login: past smtp.max_messages_per_hour (500), which is not under test here
    with sinks.Sink("127.0.0.1", slow_port, data_delay=2) as slow, sinks.Sink("127.0.0.1", fast_port) as fast, \
            harness.Server(extra=conf, smtp={"max_messages_per_hour": 0}) as srv:
        srv.add_users("alice")
        s = submission(srv, "alice")
        for i in range(1030):
            if i and i % 100 == 0:  # smtp.max_messages_per_session
                s.quit()
                s = submission(srv, "alice")
            s.sendmail("alice@example.test", ["r%d@slow.test" % i], b"Subject: s\r\n\r\nx\r\n")
        s.sendmail("alice@example.test", ["someone@fast.test"], b"Subject: f\r\n\r\nx\r\n")
        s.quit()
        srv.wait_log(r"event=relay_backlog deferred=\d+ waiting_max=1000", timeout=30)
        fast.wait_messages(1)  # other destinations go on meanwhile
        later = [e for e in queue(srv) if e["attempts"] == 0 and e["next_attempt"] > time.time() + 30]
        assert later, "no entry was put back for later"


def test_failed_tls_handshake_falls_back_only_when_configured():
    def broken_tls(conn, line):
        if line.upper().startswith(b"STARTTLS"):
            conn.sendall(b"220 2.0.0 go ahead\r\n")
            conn.sendall(b"this is not a TLS server hello\r\n" * 4)
            conn.close()
            return True
        return False

    for fallback in (False, True):
        port = harness.free_port()
        conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1h"], tls_fallback_plain=fallback)
        with harness.Server(extra=conf) as srv, \
                sinks.Sink("127.0.0.1", port, tls=(srv.cert, srv.key), on_command=broken_tls) as sink:
            srv.add_users("alice")
            submit(srv, ["bob@remote.test"])
            if fallback:
                msg = sink.wait_messages(1)[0]
                assert not msg["tls"]
                wait_queue_empty(srv)
            else:
                srv.wait_log(r"event=relay_deferred .*TLS handshake failed")
                assert sink.messages == [] and len(queue(srv)) == 1


def test_malformed_dns_answer_is_a_temporary_failure():
    import threading
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    dns.settimeout(0.2)
    stop = []

    def answer():
        while not stop:
            try:
                q, peer = dns.recvfrom(512)
            except socket.timeout:
                continue
            # the query's id, "an answer" with one record, then bytes that are no record at all
            dns.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[12:] + b"\xc0\xff\x00", peer)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        conf = relay_conf(nameserver="127.0.0.1:%d" % dns.getsockname()[1], retry_schedule=["1h"])
        with harness.Server(extra=conf) as srv:
            srv.add_users("alice")
            submit(srv, ["x@garbled.test"])
            srv.wait_log(r"event=relay_deferred .*to=\"x@garbled.test\" .*DNS")
            q = queue(srv)
            assert len(q) == 1 and q[0]["recipients"][0]["state"] == "pending", q
            assert fetch_messages(srv) == [], "a DNS failure bounced"
    finally:
        stop.append(1)
        t.join(2)
        dns.close()


def test_kill_9_during_delivery_then_restart():
    port = harness.free_port()
    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1s"])
    with sinks.Sink("127.0.0.1", port) as fast:
        srv = harness.Server(extra=conf)
        with srv:
            srv.add_users("alice")
            submit(srv, ["first@remote.test"], b"Subject: first\r\n\r\nx\r\n")
            fast.wait_messages(1)
            wait_queue_empty(srv)
    store = None
    with sinks.Sink("127.0.0.1", port, data_delay=30) as slow:
        srv = harness.Server(extra=conf)
        srv.start()
        try:
            srv.add_users("alice")
            submit(srv, ["second@remote.test"], b"Subject: second\r\n\r\nx\r\n")
            assert slow.data_started.wait(20), srv.log_text()[-2000:]
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
            srv.log.close()
            store = srv
        except BaseException:
            srv.stop()
            raise
    with sinks.Sink("127.0.0.1", port) as again:
        store.start()
        try:
            store.wait_log(r"event=relay_release entries=1")
            msgs = again.wait_messages(1)
            assert [m["rcpts"] for m in msgs] == [[b"RCPT TO:<second@remote.test>"]], msgs
            wait_queue_empty(store)
            time.sleep(1.5)
            assert len(again.messages) == 1, "delivered twice after the restart"
            rc, out, err = store.ctl("verify")
            assert rc == 0, out + err
        finally:
            store.__exit__(None, None, None)


def test_postiectl_queue_commands():
    port = harness.free_port()
    conf = relay_conf([("remote.test", "127.0.0.1", port)], retry_schedule=["1h"])
    with harness.Server(extra=conf) as srv:
        srv.add_users("alice")
        for who in ("flushed", "deleted", "bounced"):
            submit(srv, ["%s@remote.test" % who], b"Subject: %s\r\n\r\nx\r\n" % who.encode())
        deadline = time.time() + 20
        while time.time() < deadline and not all(q["attempts"] == 1 for q in queue(srv) or [{"attempts": 0}]):
            time.sleep(0.1)
        q = {e["recipients"][0]["address"].split("@")[0]: e for e in queue(srv)}
        assert set(q) == {"flushed", "deleted", "bounced"}, q
        assert "refused" in q["flushed"]["recipients"][0]["reply"], q
        rc, out, err = srv.ctl("queue", "show", q["flushed"]["id"])
        assert rc == 0 and "pending flushed@remote.test" in out, out + err
        assert srv.ctl("queue", "show", "zz")[0] != 0
        assert srv.ctl("queue", "delete", "00000000000000ff")[0] != 0
        # delete: gone, nothing delivered, nothing bounced, the store consistent
        assert srv.ctl("queue", "delete", q["deleted"]["id"])[0] == 0
        assert "deleted@remote.test" not in json.dumps(queue(srv))
        # bounce: the runner fails it now and the sender gets the DSN
        assert srv.ctl("queue", "bounce", q["bounced"]["id"])[0] == 0
        dsn = wait_mailbox(srv, 1)[0]
        assert "bounced@remote.test" in report_of(dsn) and b"administrator" in dsn, dsn
        # flush: the sink is up now; the message goes at once instead of in an hour
        with sinks.Sink("127.0.0.1", port) as sink:
            rc, out, err = srv.ctl("queue", "flush", q["flushed"]["id"])
            assert rc == 0 and "1 queued message due now" in out, out + err
            sink.wait_messages(1)
            wait_queue_empty(srv)
        rc, out, err = srv.ctl("verify")
        assert rc == 0, out + err


if __name__ == "__main__":
    harness.main(globals())
