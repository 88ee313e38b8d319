"""Logins through the real PAM helper: pam_wrapper with pam_matrix, and one
real system user through pam_unix (as root). SMTP AUTH over TLS, the
failure delay, the throttle, the mailbox requirement, plaintext refusal,
and the fail2ban filter against the real log line."""

import os
import re
import smtplib
import subprocess
import time

import harness
from clients import auth_plain, auth_plain_token, pop3_login, submission, tls_context


def test_login_good_bad_unknown_no_mailbox():
    with harness.Server(auth={"failure_delay": "1s"}, users={"carol": "carol-password"}) as srv:
        srv.add_users("alice", "bob")  # carol has a PAM account but no mailbox
        s = submission(srv)
        assert "auth" in s.esmtp_features and "PLAIN" in s.esmtp_features["auth"]
        s.login("alice", "alice-password")  # smtplib picks a mechanism and checks for 235
        s.quit()
        s = submission(srv)
        start = time.time()
        code, _ = auth_plain(s, "alice", "wrong")
        assert code == 535 and time.time() - start >= 0.9, "a failure must be answered late"
        start = time.time()
        code, _ = auth_plain(s, "bob", "bob-password")
        assert code == 235 and time.time() - start < 0.9, "a success must not be slowed"
        s.quit()
        for login, password in (("mallory", "x"), ("carol", "carol-password")):
            s = submission(srv)
            assert auth_plain(s, login, password)[0] == 535
            s.quit()
        srv.wait_log(r'event=auth result=fail proto=smtp ip=127\.0\.0\.1 login="carol" reason=no_mailbox')
        srv.wait_log(r'event=auth result=fail proto=smtp ip=127\.0\.0\.1 login="mallory" reason=bad_credentials')
        assert "alice-password" not in srv.log_text() and "wrong" not in srv.log_text()


def test_no_password_without_tls():
    with harness.Server() as srv:
        srv.add_users("alice")
        s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=20)
        s.ehlo("client.test")
        assert "auth" not in s.esmtp_features
        assert auth_plain(s, "alice", "alice-password")[0] == 538
        s.quit()
    # explicitly allowed on loopback
    with harness.Server(auth={"allow_plaintext_loopback": True}) as srv:
        srv.add_users("alice")
        s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=20)
        s.ehlo("client.test")
        assert auth_plain(s, "alice", "alice-password")[0] == 235
        s.quit()


def test_throttle_and_fail2ban_filter():
    with harness.Server(auth={"failure_delay": "100ms", "max_failures": 3}) as srv:
        srv.add_users("alice")
        for _ in range(3):
            s = submission(srv)
            assert auth_plain(s, "alice", "wrong")[0] == 535
            s.quit()
        s = submission(srv)
        # past the limit even the right password is refused, before PAM is asked
        assert auth_plain(s, "alice", "alice-password")[0] == 454
        s.quit()
        srv.wait_log(r"reason=throttled")
        with open(os.path.join(harness.TOP_SRCDIR, "packaging", "fail2ban", "filter.d", "postie.conf")) as f:
            failregex = re.search(r"^failregex = (.*)$", f.read(), re.M).group(1)
        rx = re.compile(failregex.replace("<HOST>", r"(?P<host>\S+)"))
        hits = [m.group("host") for m in map(rx.search, srv.log_text().splitlines()) if m]
        assert hits.count("127.0.0.1") >= 4, hits


def test_burst_reaches_pam_at_most_the_limit():
    """Attempts in flight count: 60 wrong passwords for one login sent at once,
    3 from each of 20 addresses, get at most the per-login limit (3 x 3) to PAM."""
    sleeper = harness.pam_module("pam_exec.so")
    with harness.Server(auth={"failure_delay": "100ms", "max_failures": 3, "cache_ttl": 0},
                        pam_stack=None) as srv:
        passdb = os.path.join(srv.pam_dir, "passdb")
        calls = os.path.join(srv.dir, "pam-calls")
        script = os.path.join(srv.dir, "count-and-wait")
        with open(script, "w") as f:  # each PAM check is counted, then takes its time
            f.write("#!/bin/sh\necho \"$PAM_USER\" >> %s\nexec /bin/sleep 0.5\n" % calls)
        os.chmod(script, 0o755)
        with open(os.path.join(srv.pam_dir, "postie"), "w") as f:
            f.write("auth required %s %s\n" % (sleeper, script) + harness.pam_matrix_stack(passdb))
        srv.add_users("alice")
        sessions = []
        for i in range(60):
            s = smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=30,
                             source_address=("127.0.0.%d" % (1 + i // 3), 0))
            s.starttls(context=tls_context())
            s.ehlo("client.test")
            sessions.append(s)
        token = auth_plain_token("alice", "wrong")
        for s in sessions:  # all sent before the first answer can come back
            s.send(("AUTH PLAIN %s\r\n" % token).encode())
        codes = [s.getreply()[0] for s in sessions]
        for s in sessions:
            s.close()
        with open(calls) as f:
            reached = f.read().split()
        assert 1 <= len(reached) <= 9, "%d attempts reached PAM" % len(reached)
        assert codes.count(535) == len(reached) and codes.count(454) == 60 - len(reached), codes
        srv.wait_log(r"reason=throttled")


def test_burst_of_remembered_logins_is_not_throttled():
    """A remembered success (the login cache) is no guess and is not counted:
    a client's 20 connections logging in at once from one address all get in,
    where 3 attempts in flight is the limit, and nothing is logged as failed."""
    with harness.Server(auth={"failure_delay": "100ms", "max_failures": 3}) as srv:
        srv.add_users("alice")
        s = submission(srv)
        assert auth_plain(s, "alice", "alice-password")[0] == 235  # PAM once: now remembered
        s.quit()
        sessions = [submission(srv) for _ in range(20)]
        token = auth_plain_token("alice", "alice-password")
        for s in sessions:  # all sent before the first answer can come back
            s.send(("AUTH PLAIN %s\r\n" % token).encode())
        codes = [s.getreply()[0] for s in sessions]
        for s in sessions:
            s.close()
        assert codes == [235] * 20, codes
        assert "event=auth result=fail" not in srv.log_text()


def test_pam_service_changes_only_on_restart():
    """The root helper is given its PAM service once, at start: a SIGHUP that
    names another one is logged as needing a restart, and logins keep using
    the first one (postied cannot switch the helper to a stack that lets all in)."""
    with harness.Server(auth={"failure_delay": "100ms", "cache_ttl": 0}) as srv:
        srv.add_users("alice")
        with open(os.path.join(srv.pam_dir, "permit"), "w") as f:
            f.write(harness.pam_service(harness.pam_module("pam_permit.so")))
        with open(srv.config_path) as f:
            text = f.read()
        assert "auth = { " in text
        with open(srv.config_path, "w") as f:
            f.write(text.replace("auth = { ", 'auth = { pam_service = "permit"; ', 1))
        srv.reload()
        srv.wait_log(r'event=reload note="auth\.pam_service changes only on restart"')
        srv.wait_log(r"event=reload result=ok")
        s = submission(srv)
        assert auth_plain(s, "alice", "wrong")[0] == 535  # still the "postie" stack
        assert auth_plain(s, "alice", "alice-password")[0] == 235
        s.quit()


def test_helper_restart_gives_tempfail_never_success():
    """A dead helper: pending logins get TEMPFAIL, never a success. Started as
    an ordinary user, postied starts it again (the same privileges). Started as
    root it has dropped root and could only start one without it (pam_unix
    would refuse every system user), so it logs why and stops as on SIGTERM,
    with status 75 for the service manager to start it again as root; no
    accepted message is lost."""
    with harness.Server() as srv:
        srv.add_users("alice")
        helper = None
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open("/proc/%s/stat" % pid) as f:
                        fields = f.read().split()
                except OSError:
                    continue
                if fields[1] == "(postie-auth)" and int(fields[3]) == srv.proc.pid:
                    helper = int(pid)
        assert helper, "postie-auth is not a child of postied"
        if os.geteuid() != 0:
            os.kill(helper, 9)
            srv.wait_log(r"event=auth_helper error=\"postie-auth exited")
            srv.wait_log(r"event=auth_helper action=restarted", timeout=15)
            s = submission(srv)
            assert auth_plain(s, "alice", "alice-password")[0] == 235
            s.quit()
            return
        s = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=20)
        s.sendmail("someone@remote.test", ["alice@example.test"],
                   b"Subject: accepted before\r\n\r\nkept across the stop\r\n")
        s.quit()
        idle = submission(srv)  # a session open when the helper dies
        os.kill(helper, 9)
        srv.wait_log(r"event=auth_helper error=\"postie-auth exited")
        srv.wait_log(r'event=auth_helper action=exit reason="postie-auth ran as root and postied no longer has root')
        assert srv.wait_exit(30) == 75, srv.log_text()[-3000:]
        assert idle.getreply()[0] == 421  # ended like on SIGTERM
        idle.close()
        text = srv.log_text()
        assert "event=stopped" in text and "action=restarted" not in text
        srv.log.close()
        srv.start()  # what systemd does on 75: postied as root again, with a root helper
        p = pop3_login(srv, "alice", "alice-password")
        assert p.stat()[0] == 1
        assert b"kept across the stop" in b"\r\n".join(p.retr(1)[1])
        p.quit()


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def test_pam_worker_death_mid_request_is_tempfail():
    """A PAM worker that dies holding a request answers TEMPFAIL, never a success."""
    sleeper = harness.pam_module("pam_exec.so")
    with harness.Server(auth={"failure_delay": "100ms", "cache_ttl": 0}, pam_stack=None) as srv:
        passdb = os.path.join(srv.pam_dir, "passdb")
        with open(os.path.join(srv.pam_dir, "postie"), "w") as f:  # a PAM module that takes its time
            f.write("auth required %s /bin/sleep 5\n" % sleeper + harness.pam_matrix_stack(passdb))
        srv.add_users("alice")
        s = submission(srv)
        token = auth_plain_token("alice", "alice-password")
        s.send(("AUTH PLAIN %s\r\n" % token).encode())
        helper = [k for k in children_of(srv.proc.pid)]
        deadline = time.time() + 5
        workers = []
        while not workers and time.time() < deadline:
            workers = [w for h in helper for w in children_of(h)]
            time.sleep(0.05)
        assert workers, "no PAM worker process"
        for w in workers:
            os.kill(w, 9)
        assert s.getreply()[0] == 454
        srv.wait_log(r"PAM worker \d+ died")
        s.close()


def test_auth_exchange_that_never_answers_times_out():
    with harness.Server(limits={"command_timeout": 2}) as srv:
        srv.add_users("alice")
        s = submission(srv)
        assert s.docmd("AUTH", "LOGIN")[0] == 334
        start = time.time()
        assert s.getreply()[0] == 421  # nothing more sent: the deadline ends it
        assert time.time() - start < 6
        s.close()


def test_login_cache():
    """A remembered success skips PAM; a new password goes to PAM; a flush forgets."""
    with harness.Server(auth={"failure_delay": "100ms"}) as srv:
        srv.add_users("alice")
        for _ in range(2):
            s = submission(srv)
            assert auth_plain(s, "alice", "alice-password")[0] == 235
            s.quit()
        srv.wait_log(r'login="alice" cached=no')
        srv.wait_log(r'login="alice" cached=yes')
        # PAM now says otherwise: the cached hash still matches the old password
        harness.write_passdb(os.path.join(srv.pam_dir, "passdb"),
                             {"alice": "new-password", "bob": "bob-password"})
        s = submission(srv)
        assert auth_plain(s, "alice", "alice-password")[0] == 235
        s.quit()
        # a password that does not match the cache goes to PAM
        s = submission(srv)
        assert auth_plain(s, "alice", "new-password")[0] == 235
        s.quit()
        # postiectl auth flush reaches the running server: the old password is gone
        assert srv.ctl("auth", "flush")[0] == 0
        s = submission(srv)
        assert auth_plain(s, "alice", "alice-password")[0] == 535
        s.quit()
    with harness.Server(auth={"cache_ttl": 0}) as srv:
        srv.add_users("alice")
        for _ in range(2):
            s = submission(srv)
            assert auth_plain(s, "alice", "alice-password")[0] == 235
            s.quit()
        assert "cached=yes" not in srv.log_text()


def test_real_system_user_through_pam_unix():
    """pam_unix reads /etc/shadow in the root helper (CI runs as root)."""
    if os.geteuid() != 0:
        print("# not root: pam_unix with a real system user needs root")
        return
    user, password = "postietest", "Real-Passw0rd!"
    subprocess.run(["userdel", "-r", user], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    try:
        subprocess.run(["chpasswd"], input="%s:%s\n" % (user, password), text=True, check=True)
        stack = harness.pam_service(harness.pam_module("pam_unix.so"))
        with harness.Server(pam_stack=stack, auth={"failure_delay": "100ms"}) as srv:
            srv.add_users(user)
            s = submission(srv)
            assert auth_plain(s, user, password)[0] == 235
            s.quit()
            s = submission(srv)
            assert auth_plain(s, user, "not-it")[0] == 535
            s.quit()
            # a locked account is refused even with the right password (once the
            # login cache is flushed, as an admin does after locking someone out)
            subprocess.run(["usermod", "-L", user], check=True)
            assert srv.ctl("auth", "flush")[0] == 0
            s = submission(srv)
            assert auth_plain(s, user, password)[0] == 535
            s.quit()
    finally:
        subprocess.run(["userdel", user], capture_output=True)


if __name__ == "__main__":
    harness.main(globals())
