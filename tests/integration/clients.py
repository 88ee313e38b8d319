"""Client side of the integration tests: the ways a test talks to a postied
started by harness.Server, in one place instead of a copy in each test file.

Raw sockets (for what a real client library would not send):
    tls_context()              a client TLS context that verifies nothing
                               (the test certificates are self-signed)
    connect(port)              a TCP connection to 127.0.0.1:port
    read_line(sock)            one reply line, up to and including its LF
    read_smtp_reply(sock)      one SMTP reply, all the lines of a multi-line one
    read_until_eof(sock)       everything until the server closes (a reset ends it too)
    smtp_dialogue(port, data)  data sent in one write, then every byte of the
                               answers until the server closes

SMTP (smtplib):
    auth_plain_token(login, password)   the base64 AUTH PLAIN initial response
    auth_plain(smtp, login, password)   AUTH PLAIN sent as one command: (code, text)
    submission(srv, login=None)         a session on the submission port after
                                        STARTTLS and EHLO (on 465 with implicit_tls),
                                        logged in when a login is given

POP3 (poplib), passwords defaulting to "<login>-password" as harness.USERS has them:
    pop3_login(srv, user)          a session after STLS (or on 995 with
                                   implicit_tls), USER and PASS
    retr_bytes(pop, n)             message n as RETR sends it, dot-stuffing undone
    fetch_messages(srv, user)      every message of a mailbox, oldest first
    wait_mailbox(srv, n, user)     the messages, once the mailbox holds at least n
"""

import base64
import poplib
import smtplib
import socket
import ssl
import time

HOST = "127.0.0.1"


def tls_context():
    """A client TLS context that checks neither the name nor the chain."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(port, timeout=10):
    return socket.create_connection((HOST, port), timeout=timeout)


def read_line(sock, limit=4096):
    """One line, byte by byte so nothing after it is consumed (a TLS upgrade
    may follow); b"" or a partial line when the connection ends first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit, "reply line too long"
    return data


def read_smtp_reply(sock):
    """All the lines of one SMTP reply ("250-..." lines up to the "250 " one)."""
    lines = []
    while True:
        line = read_line(sock)
        assert line, "connection closed while reading a reply: %r" % lines
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def read_until_eof(sock, limit=1 << 20):
    """Everything the peer sends until it closes or resets the connection."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def smtp_dialogue(port, data, seconds=10):
    """Send data (commands, pipelined as the test likes) in one write, close
    our side, and return what the server answers until it closes (at most
    seconds). A reset is an error here, not an end."""
    s = connect(port, timeout=seconds)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    out = b""
    deadline = time.time() + seconds
    while time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def auth_plain_token(login, password):
    return base64.b64encode(("\0%s\0%s" % (login, password)).encode()).decode()


def auth_plain(smtp, login, password):
    """AUTH PLAIN with an initial response; the reply as (code, text), whatever it is."""
    return smtp.docmd("AUTH", "PLAIN " + auth_plain_token(login, password))


def default_password(login):
    return login + "-password"


def submission(srv, login=None, password=None, implicit_tls=False, timeout=30):
    """An SMTP session on srv's submission port after STARTTLS and EHLO (or
    on its submissions port, TLS from the start). With a login, smtplib
    logs in (password by default "<login>-password") and checks for 235."""
    if implicit_tls:
        s = smtplib.SMTP_SSL(HOST, srv.ports["submissions"], context=tls_context(), timeout=timeout)
    else:
        s = smtplib.SMTP(HOST, srv.ports["submission"], timeout=timeout)
        s.starttls(context=tls_context())
    s.ehlo("client.test")
    if login is not None:
        s.login(login, password if password is not None else default_password(login))
    return s


def pop3_login(srv, user="alice", password=None, implicit_tls=False, timeout=60):
    """A POP3 session on srv after STLS on the pop3 port (or on pop3s, TLS
    from the start), USER and PASS: poplib.error_proto if a step is refused."""
    if implicit_tls:
        p = poplib.POP3_SSL(HOST, srv.ports["pop3s"], context=tls_context(), timeout=timeout)
    else:
        p = poplib.POP3(HOST, srv.ports["pop3"], timeout=timeout)
        p.stls(context=tls_context())
    p.user(user)
    p.pass_(password if password is not None else default_password(user))
    return p


def retr_bytes(pop, n):
    """Message n as (bytes, octets): poplib splits lines and undoes
    dot-stuffing, so they are joined back with CRLF."""
    resp, lines, octets = pop.retr(n)
    return b"".join(line + b"\r\n" for line in lines), octets


def fetch_messages(srv, user="alice", password=None):
    """Every message in a mailbox, as RETR sends it (stuffing undone), oldest
    first, read over implicit TLS; nothing is deleted."""
    p = pop3_login(srv, user, password, implicit_tls=True)
    out = [retr_bytes(p, i)[0] for i in range(1, p.stat()[0] + 1)]
    p.quit()
    return out


def wait_mailbox(srv, n, user="alice", timeout=20):
    """The messages of user's mailbox once it holds at least n of them."""
    deadline = time.time() + timeout
    while True:
        got = fetch_messages(srv, user)
        if len(got) >= n or time.time() > deadline:
            assert len(got) >= n, "%s has %d of %d messages\n%s" % (user, len(got), n, srv.log_text()[-3000:])
            return got
        time.sleep(0.2)
