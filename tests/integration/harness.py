"""Integration test harness: a real postied on free loopback ports with a
generated configuration, certificate and pam_wrapper set-up under a
temporary directory, and a small TAP runner.

    import harness
    def test_something():
        with harness.Server(limits={"command_timeout": 2}) as srv:
            ... srv.ports["smtp"] ...
    if __name__ == "__main__":
        harness.main(globals())

Server side: free_ports()/free_port(), certificates (make_certificate,
make_ca, make_issued_certificate), the pam_wrapper directory
(write_pam_setup and its pieces), Server, main(). The client side (TLS
context, raw-socket readers, SMTP submission and AUTH PLAIN, POP3 login and
fetching a mailbox) is in clients.py.
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir") or TOP_SRCDIR
PROTOCOLS = ("smtp", "submission", "submissions", "pop3", "pop3s")
TEST_TIMEOUT = int(os.environ.get("POSTIE_TEST_TIMEOUT", "90"))
LIBDIR = "/usr/lib/" + (subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"],
                                       capture_output=True, text=True).stdout.strip()
                        or "x86_64-linux-gnu")
USERS = {"alice": "alice-password", "bob": "bob-password"}
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound then released)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def free_port():
    """One free TCP port on 127.0.0.1, for a remote end a test starts itself
    (or leaves closed on purpose)."""
    return free_ports(1)[0]


def make_certificate(directory, cn="localhost", dns_names=("localhost",), ips=("127.0.0.1",)):
    """A self-signed ECDSA certificate and key made with certtool."""
    tmpl = os.path.join(directory, "cert.tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\n' % cn + "".join('dns_name = "%s"\n' % d for d in dns_names) +
                "".join('ip_address = "%s"\n' % i for i in ips) +
                'expiration_days = 30\ntls_www_server\nsigning_key\nencryption_key\n')
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key + ".new"],
                   check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key + ".new",
                    "--template", tmpl, "--outfile", cert + ".new"], check=True, capture_output=True)
    give_to_server(key + ".new", 0o640)
    os.rename(key + ".new", key)
    os.rename(cert + ".new", cert)
    return cert, key


def make_ca(directory, name="ca", cn="Postie Test CA"):
    """A test certificate authority (certtool): returns (certificate, key)."""
    tmpl = os.path.join(directory, name + ".tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\nca\ncert_signing_key\nexpiration_days = 30\n' % cn)
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key],
                   check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key, "--template", tmpl,
                    "--outfile", cert], check=True, capture_output=True)
    os.chmod(cert, 0o644)  # public: the server reads it after the privilege drop
    return cert, key


def make_issued_certificate(directory, name, ca, dns_names=(), ips=()):
    """A server certificate issued by ca (from make_ca) for the given names
    and IP addresses: returns (certificate, key), both readable by this process."""
    tmpl = os.path.join(directory, name + ".tmpl")
    with open(tmpl, "w") as f:
        f.write('cn = "%s"\n' % (dns_names[0] if dns_names else ips[0]) +
                "".join('dns_name = "%s"\n' % d for d in dns_names) +
                "".join('ip_address = "%s"\n' % i for i in ips) +
                "expiration_days = 30\ntls_www_server\nsigning_key\nencryption_key\n")
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", key],
                   check=True, capture_output=True)
    subprocess.run(["certtool", "--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca[0],
                    "--load-ca-privkey", ca[1], "--template", tmpl, "--outfile", cert],
                   check=True, capture_output=True)
    return cert, key


def server_user():
    """The user postied drops to when the tests run as root (tools/dev creates it)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    try:
        pwd.getpwnam("postie")
        return "postie"
    except KeyError:
        return "nobody"


def give_to_server(path, mode):
    """Make path readable by the server's group after the privilege drop."""
    if os.geteuid() == 0:
        os.chown(path, 0, pwd.getpwnam(server_user()).pw_gid)
    os.chmod(path, mode)


PAM_MATRIX = os.path.join(LIBDIR, "pam_wrapper", "pam_matrix.so")


def pam_module(name):
    """The path of a system PAM module (pam_deny.so, pam_unix.so, ...)."""
    return os.path.join(LIBDIR, "security", name)


def pam_service(module, args=""):
    """A PAM service file text: module required for auth and account."""
    line = module + (" " + args if args else "")
    return "auth required %s\naccount required %s\n" % (line, line)


def pam_matrix_stack(passdb):
    """The "postie" service the tests use: pam_matrix against passdb."""
    return pam_service(PAM_MATRIX, "passdb=" + passdb)


def write_passdb(path, users):
    """A pam_matrix password file: {login: password}, service "postie"."""
    with open(path, "w") as f:
        for user, password in users.items():
            f.write("%s:%s:postie\n" % (user, password))


def write_pam_setup(directory, users, stack=None):
    """The pam_wrapper service directory postied is given (what tools/dev
    writes too): passdb for users, the "postie" service (pam_matrix, or
    stack), and "other", PAM's fallback, refusing everyone. Returns directory,
    the value of PAM_WRAPPER_SERVICE_DIR."""
    os.mkdir(directory)
    passdb = os.path.join(directory, "passdb")
    write_passdb(passdb, users)
    with open(os.path.join(directory, "postie"), "w") as f:
        f.write(stack or pam_matrix_stack(passdb))
    with open(os.path.join(directory, "other"), "w") as f:
        f.write(pam_service(pam_module("pam_deny.so")))
    return directory


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"%s"' % v


class Server:
    """A postied with its own directory, configuration, ports and PAM set-up."""

    def __init__(self, limits=None, auth=None, smtp=None, relay=None, extra="", users=None,
                 start=True, domains=("example.test",), pam_stack=None):
        self.dir = tempfile.mkdtemp(prefix="postie-it-")
        os.chmod(self.dir, 0o755)  # the server runs as another user when we are root
        self.autostart = start
        self.ports = dict(zip(PROTOCOLS, free_ports(len(PROTOCOLS))))
        self.postied = os.path.join(TOP_BUILDDIR, "server", "postied")
        self.postiectl = os.path.join(TOP_BUILDDIR, "tools", "postiectl")
        self.config_path = os.path.join(self.dir, "postie.conf")
        self.log_path = os.path.join(self.dir, "postied.log")
        self.users = dict(USERS, **(users or {}))
        self.proc = None
        self.returncode = None
        self.cert, self.key = make_certificate(self.dir)
        self._pam_setup(pam_stack)
        self._write_config(limits or {}, auth or {}, smtp or {}, relay or {}, extra, domains)

    def _pam_setup(self, pam_stack):
        self.pam_dir = write_pam_setup(os.path.join(self.dir, "pam"), self.users, pam_stack)

    def _write_config(self, limits, auth, smtp, relay, extra, domains):
        def group(name, values):
            if not values:
                return ""
            return "%s = { %s };\n" % (name, " ".join(
                "%s = %s;" % (k, conf_value(v)) for k, v in values.items()))
        limits = dict({"max_connections_per_ip": 256, "command_timeout": "30s"}, **limits)
        auth = dict({"helper": os.path.join(TOP_BUILDDIR, "auth", "helper", "postie-auth")}, **auth)
        listen = ",\n".join('  { protocol = "%s"; address = "127.0.0.1"; port = %d; }' % (p, port)
                            for p, port in self.ports.items())
        text = ('hostname = "localhost";\n'
                "domains = [ %s ];\n" % ", ".join('"%s"' % d for d in domains) +
                'user = "%s";\n' % server_user() +
                'storage = { path = "%s"; };\n' % os.path.join(self.dir, "store") +
                'tls = { certificate = "%s"; key = "%s"; };\n' % (self.cert, self.key) +
                'dkim = { directory = "%s"; };\n' % os.path.join(self.dir, "dkim") +
                group("limits", limits) + group("auth", auth) + group("smtp", smtp) +
                group("relay", relay) +
                "listen = (\n%s\n);\n" % listen + extra)
        with open(self.config_path, "w") as f:
            f.write(text)

    def env(self):
        env = dict(os.environ)
        env.update(PAM_WRAPPER="1", PAM_WRAPPER_SERVICE_DIR=self.pam_dir,
                   LD_PRELOAD=os.path.join(LIBDIR, "libpam_wrapper.so"))
        # the sanitizer runtime must not insist on being first in the preload list
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0"]))
        return env

    def start(self, timeout=20):
        seen = self.log_text().count("event=disconnect")  # a restart appends to the same log
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.postied, "-f", "-c", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env())
        deadline = time.time() + timeout
        for port in self.ports.values():
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError("postied exited (%s) at start:\n%s"
                                         % (self.proc.returncode, self.log_text()[-3000:]))
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise AssertionError("port %d does not accept:\n%s" % (port, self.log_text()[-3000:]))
                    time.sleep(0.05)
        # the probes above count against per-address limits until the server
        # has seen them close: wait for that, so tests start from zero
        deadline = time.time() + 5
        while self.log_text().count("event=disconnect") < seen + len(self.ports) and time.time() < deadline:
            time.sleep(0.02)
        return self

    def restart(self):
        """SIGTERM, then start again on the same directory: store, configuration, ports, log."""
        rc = self.stop()
        if rc != 0:
            raise AssertionError("postied exited with %s:\n%s" % (rc, self.log_text()[-3000:]))
        return self.start()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout=15):
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self):
        """SIGTERM, a bounded wait, SIGKILL of our own pid only if it hangs."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("postied did not stop on SIGTERM")
        self.returncode = self.proc.returncode
        self.log.close()
        return self.returncode

    def new_certificate(self, cn="reloaded.test"):
        self.cert, self.key = make_certificate(self.dir, cn)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=10):
        """Wait for a log line matching regex; return the match."""
        pattern = re.compile(regex)
        deadline = time.time() + timeout
        while True:
            m = pattern.search(self.log_text())
            if m:
                return m
            if time.time() > deadline:
                raise AssertionError("no log line matching %r in:\n%s" % (regex, self.log_text()[-3000:]))
            time.sleep(0.05)

    def add_users(self, *logins):
        """Give logins mailboxes (postiectl user add)."""
        for login in logins:
            rc, out, err = self.ctl("user", "add", login)
            if rc != 0:
                raise AssertionError("postiectl user add %s: %s" % (login, err))

    def ctl(self, *args, timeout=30):
        r = subprocess.run([self.postiectl, "-c", self.config_path] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def __enter__(self):
        if self.autostart:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            rc = self.stop()
            text = self.log_text()
            if exc_type is None:
                if SANITIZER_REPORT.search(text):
                    raise AssertionError("sanitizer report from postied:\n" + text[-4000:])
                if rc not in (None, 0):
                    raise AssertionError("postied exited with %s:\n%s" % (rc, text[-3000:]))
        finally:
            if exc_type is not None:
                sys.stdout.write("".join("# log: " + line + "\n"
                                         for line in self.log_text().splitlines()[-40:]))
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test took longer than %d s" % TEST_TIMEOUT)


def main(namespace):
    """Run every test_* function of a module in order and report TAP."""
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)]
    signal.signal(signal.SIGALRM, _alarm)
    if not os.path.exists(os.path.join(TOP_BUILDDIR, "server", "postied")):
        print("1..0 # SKIP server/postied is not built")
        return
    for i, (name, fn) in enumerate(tests, 1):
        signal.alarm(TEST_TIMEOUT)
        try:
            fn()
            signal.alarm(0)
            print("ok %d - %s" % (i, name))
        except BaseException:  # report every failure, even a timeout, as one result
            signal.alarm(0)
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
        sys.stdout.flush()
    print("1..%d" % len(tests))


def dkim_txt_records(srv):
    """The DKIM TXT records of srv's keys (postiectl dkim list --dns), as
    {b"selector._domainkey.domain.": b"v=DKIM1; k=...; p=..."}."""
    rc, out, err = srv.ctl("dkim", "list", "--dns")
    assert rc == 0, err
    records = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" IN TXT ")
        records[name.encode()] = "".join(re.findall(r'"([^"]*)"', rest)).encode()
    return records
