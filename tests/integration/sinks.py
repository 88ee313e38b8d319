"""The outside world for outbound tests: a small scripted SMTP server (real
sockets, real TLS through Python's ssl) and a loopback DNS server (dnsmasq).

    with sinks.Sink("127.0.0.1", port, tls=(cert, key)) as sink:
        ... sink.wait_messages(1) ...
"""

import os
import select
import socket
import ssl
import subprocess
import tempfile
import threading
import time

DEFAULT_EHLO = ("PIPELINING", "SIZE 100000000", "8BITMIME", "DSN", "SMTPUTF8", "ENHANCEDSTATUSCODES")


class Sink:
    """An SMTP server on ip:port, one thread a connection. Behaviour comes
    from its arguments: rcpt(address) and data(msg) return the reply line
    (default 250), hooks can misbehave on purpose. Every transaction that
    reaches the end of DATA is kept in .messages as a dict: mail (the MAIL
    line), rcpts (RCPT lines), data (bytes, dot-unstuffed), tls, auth, and
    pipelined (more commands had arrived before MAIL was answered). Every
    AUTH command that arrives, whatever becomes of it, is kept in .auths as
    (tls, mechanism): a test can tell that credentials were never sent.
    STARTTLS is served with tls=(certificate file, key file)."""

    def __init__(self, ip, port, ehlo=DEFAULT_EHLO, tls=None, auth=None, rcpt=None, data=None,
                 greeting=b"220 sink.test ESMTP\r\n", on_command=None, starttls_extra=b"",
                 data_delay=0.0):
        self.ip, self.port = ip, port
        self.ehlo = list(ehlo) + (["STARTTLS"] if tls else []) + (["AUTH PLAIN LOGIN"] if auth else [])
        self.tls, self.auth = tls, auth
        self.rcpt_fn = rcpt or (lambda address: b"250 2.1.5 Ok\r\n")
        self.data_fn = data or (lambda msg: b"250 2.0.0 Ok: queued\r\n")
        self.greeting = greeting
        self.on_command = on_command  # (conn, line) -> True when it handled the line itself
        self.starttls_extra = starttls_extra
        self.data_delay = data_delay
        self.messages, self.commands, self.connections, self.auths = [], [], 0, []
        self.data_started = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def wait_messages(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError("sink %s:%d got %d of %d messages; commands: %r"
                             % (self.ip, self.port, len(self.messages), n, self.commands[-20:]))

    def _serve(self, conn):
        conn.settimeout(30)
        state = {"tls": False, "auth": None, "mail": None, "rcpts": [], "pipelined": False}
        # unbuffered, so select() can tell whether the client sent ahead (RFC 2920)
        f = conn.makefile("rb", buffering=0)
        try:
            conn.sendall(self.greeting)
            while not self.stopping:
                line = f.readline(2048)
                if not line:
                    return
                with self.lock:
                    self.commands.append(line)
                if self.on_command and self.on_command(conn, line):
                    continue
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    if verb == b"HELO":
                        conn.sendall(b"250 sink.test\r\n")
                        continue
                    ext = [e for e in self.ehlo if not (state["tls"] and e == "STARTTLS")]
                    lines = ["sink.test"] + ext
                    conn.sendall("".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                                         for i, l in enumerate(lines)).encode())
                elif line.upper().startswith(b"STARTTLS") and self.tls:
                    conn.sendall(b"220 2.0.0 go ahead\r\n" + self.starttls_extra)
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    ctx.load_cert_chain(*self.tls)
                    conn = ctx.wrap_socket(conn, server_side=True)
                    f = conn.makefile("rb", buffering=0)
                    state.update(tls=True, mail=None, rcpts=[])
                elif line.upper().startswith(b"AUTH"):
                    self._auth(conn, f, line, state)
                elif verb == b"MAIL":
                    if self.auth and not state["auth"]:
                        conn.sendall(b"530 5.7.0 Authentication required\r\n")
                        continue
                    ahead = (isinstance(conn, ssl.SSLSocket) and conn.pending() > 0) or \
                        bool(select.select([conn], [], [], 0.05)[0])
                    state.update(mail=line.rstrip(b"\r\n"), rcpts=[], pipelined=ahead)
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                    reply = self.rcpt_fn(address)
                    if reply.startswith(b"2"):
                        state["rcpts"].append(line.rstrip(b"\r\n"))
                    conn.sendall(reply)
                elif verb == b"DATA":
                    if not state["mail"] or not state["rcpts"]:
                        conn.sendall(b"503 5.5.1 No valid recipients\r\n")
                        continue
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    self.data_started.set()
                    body = self._read_data(f)
                    if body is None:
                        return
                    if self.data_delay:
                        time.sleep(self.data_delay)
                    msg = dict(mail=state["mail"], rcpts=state["rcpts"], data=body, tls=state["tls"],
                               auth=state["auth"], pipelined=state["pipelined"])
                    reply = self.data_fn(msg)
                    if reply.startswith(b"2"):
                        with self.lock:
                            self.messages.append(msg)
                    conn.sendall(reply)
                    state.update(mail=None, rcpts=[])
                elif verb == b"RSET":
                    state.update(mail=None, rcpts=[])
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"NOOP":
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"500 5.5.2 Unknown command\r\n")
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _read_data(self, f):
        lines = []
        while True:
            line = f.readline(4096)
            if not line:
                return None
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)

    def _auth(self, conn, f, line, state):
        import base64
        parts = line.rstrip(b"\r\n").split(b" ")
        with self.lock:
            self.auths.append((state["tls"], parts[1].upper() if len(parts) > 1 else b""))
        if not state["tls"]:
            conn.sendall(b"538 5.7.11 Encryption required\r\n")
            return
        if parts[1].upper() == b"PLAIN":
            blob = parts[2] if len(parts) > 2 else None
            if blob is None:
                conn.sendall(b"334 \r\n")
                blob = f.readline().strip()
            _, user, password = base64.b64decode(blob).split(b"\0")
        else:
            conn.sendall(b"334 VXNlcm5hbWU6\r\n")
            user = base64.b64decode(f.readline().strip())
            conn.sendall(b"334 UGFzc3dvcmQ6\r\n")
            password = base64.b64decode(f.readline().strip())
        if self.auth == (user.decode(), password.decode()):
            state["auth"] = user.decode()
            conn.sendall(b"235 2.7.0 Authentication successful\r\n")
        else:
            conn.sendall(b"535 5.7.8 Authentication credentials invalid\r\n")


class Dns:
    """dnsmasq on 127.0.0.1:port answering only what the test gives it:
    mx=[(domain, host, pref)], a=[(name, ip)], null_mx=[domain]; every other
    name under .test is NXDOMAIN."""

    def __init__(self, port, mx=(), a=(), null_mx=()):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="postie-dns-")
        conf = os.path.join(self.dir, "dnsmasq.conf")
        lines = ["port=%d" % port, "listen-address=127.0.0.1", "bind-interfaces", "no-resolv",
                 "no-hosts", "no-poll", "local=/test/", "log-facility=" + os.path.join(self.dir, "log")]
        lines += ["mx-host=%s,%s,%d" % m for m in mx]
        lines += ["host-record=%s,%s" % h for h in a]
        # RFC 7505: preference 0, the root as exchange (type 15, rdata 0000 00)
        lines += ["dns-rr=%s,15,000000" % d for d in null_mx]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        user = ["--user=nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "-C", conf, "--pid-file="] + user,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: %s" % self.proc.stdout.read().decode())
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError("dnsmasq does not answer on 127.0.0.1:%d" % port)

    def _answers(self):
        # a query for the root's NS record; any reply means it listens
        q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(q, ("127.0.0.1", self.port))
            return bool(s.recv(512))
        except OSError:
            return False
        finally:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return False
