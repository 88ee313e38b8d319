"""postiectl against the store of a running postied: every command, --json,
and bad arguments (one-line error, non-zero exit, store unchanged)."""

import json
import os
import pwd
import subprocess

import harness


def give_to_server_user(path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(harness.server_user())
        os.chown(path, pw.pw_uid, pw.pw_gid)


def ok(srv, *args):
    rc, out, err = srv.ctl(*args)
    assert rc == 0, "postiectl %s: rc=%d %s" % (" ".join(args), rc, err)
    return out


def refused(srv, *args, want=""):
    rc, out, err = srv.ctl(*args)
    assert rc != 0, "postiectl %s succeeded: %s" % (" ".join(args), out)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("postiectl: "), err
    assert want in lines[0], lines[0]
    return lines[0]


def test_users_while_running():
    with harness.Server() as srv:
        assert "added alice" in ok(srv, "user", "add", "alice", "--quota", "10M",
                                   "--address", "Alice.Smith@example.test")
        ok(srv, "user", "add", "bob")
        users = json.loads(ok(srv, "--json", "user", "list"))
        assert [u["login"] for u in users] == ["alice", "bob"], users
        assert users[0]["quota"] == 10 << 20
        shown = json.loads(ok(srv, "--json", "user", "show", "alice"))
        assert shown["addresses"] == ["alice.smith@example.test"] and shown["messages"] == 0
        assert "alice: 0 messages" in ok(srv, "mailbox", "show", "alice")
        assert json.loads(ok(srv, "--json", "mailbox", "show", "bob"))["bytes"] == 0
        refused(srv, "user", "add", "alice", want="already exists")
        refused(srv, "user", "add", "Bad Login", want="malformed")
        refused(srv, "user", "add", "carol", "--quota", "lots", want="is not a size")
        refused(srv, "user", "add", "carol", "--address", "not-an-address", want="malformed")
        refused(srv, "user", "show", "carol", want="not found")  # the failed add left nothing
        refused(srv, "user", "del", "nobody", want="not found")
        assert "deleted bob" in ok(srv, "user", "del", "bob")
        assert [u["login"] for u in json.loads(ok(srv, "--json", "user", "list"))] == ["alice"]


def test_aliases():
    with harness.Server() as srv:
        ok(srv, "user", "add", "alice")
        ok(srv, "alias", "add", "team@example.test", "alice", "partner@remote.test")
        got = json.loads(ok(srv, "--json", "alias", "list"))
        assert {(a["alias"], a["target"]) for a in got} == {
            ("team@example.test", "alice"), ("team@example.test", "partner@remote.test")}
        ok(srv, "alias", "add", "a@example.test", "b@example.test")
        refused(srv, "alias", "add", "b@example.test", "a@example.test", want="loop")
        refused(srv, "alias", "add", "c@example.test", "nobody", want="not found")
        refused(srv, "alias", "add", "bad address", "alice", want="malformed")
        assert "b@example.test" not in ok(srv, "alias", "list").split(" -> ")[0]
        ok(srv, "alias", "del", "a@example.test")
        refused(srv, "alias", "del", "a@example.test", want="not found")


def test_stats_verify_backup_queue():
    with harness.Server() as srv:
        ok(srv, "user", "add", "alice")
        stats = json.loads(ok(srv, "--json", "stats"))
        assert stats["users"] == 1 and stats["messages"] == 0 and stats["map_size"] > 0
        assert "store OK" in ok(srv, "verify")
        backup = os.path.join(srv.dir, "backup")
        os.mkdir(backup)
        give_to_server_user(backup)  # postiectl works as the server's user
        ok(srv, "backup", backup)
        assert os.path.getsize(os.path.join(backup, "data.mdb")) > 0
        assert json.loads(ok(srv, "--json", "queue", "list")) == []
        refused(srv, "queue", "show", "zz", want="not a queue id")
        refused(srv, "queue", "show", "00000000000000ff", want="not found")
        assert "configuration OK" in ok(srv, "check-config")
        rc, out, err = srv.ctl("frobnicate")
        assert rc == 2 and "usage:" in err


def test_foreign_store_refused():
    with harness.Server(start=False) as srv:
        store = os.path.join(srv.dir, "store")
        os.mkdir(store)
        with open(os.path.join(store, "data.mdb"), "w") as f:
            f.write("precious data that is not a postie store\n")
        give_to_server_user(store)
        give_to_server_user(os.path.join(store, "data.mdb"))
        r = subprocess.run([srv.postied, "-f", "-c", srv.config_path], capture_output=True,
                           text=True, timeout=30, env=srv.env())
        assert r.returncode != 0 and "not a postie store" in r.stderr, r.stderr
        with open(os.path.join(store, "data.mdb")) as f:
            assert f.read().startswith("precious data")
        rc, out, err = srv.ctl("user", "list")
        assert rc != 0 and "cannot open the store" in err


if __name__ == "__main__":
    harness.main(globals())
