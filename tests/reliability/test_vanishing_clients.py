"""Clients that vanish half-way (mid-APPEND literal, mid-DATA, mid-TLS handshake,
mid-AUTHENTICATE) and clients that stop reading a big RETR / FETCH: nothing half-stored, no
spool leftovers, open fds back to where they were, and server memory bounded by the server's
own buffers, not by what the clients did not read."""
import os
import random
import socket
import ssl
import struct
import time

import pytest

from sarntest import LineConn, smtp_stuff, tls_client_context
from relia import (Imap, fd_count, lmtp_connect, relia_message, rss_kb, send_mail,
                   spool_leftovers, wait_settled)

USER, PW = "alice@example.com", "secret"
APPEND_SIZE = 5 * 1024 * 1024


def client_hello():
    """The first flight of a real TLS client."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_client_context().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def vanish(sock, rng):
    """Closes abruptly: half the time with an RST (SO_LINGER 0), else a normal FIN."""
    try:
        if rng.random() < 0.5:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def raw_conn(srv, listener):
    return LineConn(srv.host, srv.ports[listener], timeout=20)


def inbox_count(srv):
    im = Imap(srv)
    try:
        im.login(USER, PW)
        _, untagged = im.ok("STATUS INBOX (MESSAGES)")
        for l, _ in untagged:
            if b"MESSAGES" in l:
                return int(l.rsplit(b"MESSAGES ", 1)[1].rstrip(b")"))
    finally:
        im.close()
    raise AssertionError("no STATUS reply")


def vanishing_round(srv, rng, stats):
    payload = relia_message("big-append", APPEND_SIZE)[:APPEND_SIZE]
    hello = client_hello()

    # IMAP APPEND of 5 MB cut at a random point; synchronising and LITERAL+ literals.
    for i in range(10):
        im = Imap(srv)
        im.login(USER, PW)
        nonsync = i % 3 == 2
        im.c.send(b"x APPEND INBOX {%d%s}\r\n" % (APPEND_SIZE, b"+" if nonsync else b""))
        if not nonsync:
            line = im.c.readline()
            assert line.startswith(b"+"), line
        cut = rng.choice([0, 1, rng.randrange(APPEND_SIZE), APPEND_SIZE - 1, APPEND_SIZE])
        im.c.send(payload[:cut])   # all of it but not the CRLF that ends the command: still open
        vanish(im.c.sock, rng)
        stats["append cut"] += 1

    # SMTP and LMTP cut mid-DATA.
    msg = smtp_stuff(relia_message("big-data", 2_000_000))
    for i in range(8):
        listener = "lmtp" if i % 2 else "smtp"
        c = lmtp_connect(srv, listener)
        c.smtp("MAIL FROM:<v@remote.test>", 250)
        c.smtp(f"RCPT TO:<{USER}>", 250)
        c.smtp("DATA", 354)
        c.send(msg[:rng.randrange(len(msg))] + (b"\r\n." if i == 7 else b""))
        vanish(c.sock, rng)
        stats["data cut"] += 1

    # TLS: half a ClientHello, nothing at all, or a STARTTLS followed by half a hello.
    for i in range(12):
        listener = ("imaps", "pop3s")[i % 2]
        s = socket.create_connection((srv.host, srv.ports[listener]), timeout=10)
        if i % 3:
            s.sendall(hello[:rng.randrange(1, len(hello))])
        vanish(s, rng)
        stats["tls cut"] += 1
    for listener, cmd in (("imap", b"t STARTTLS\r\n"), ("pop3", b"STLS\r\n"),
                          ("smtp", b"EHLO x\r\nSTARTTLS\r\n")):
        c = raw_conn(srv, listener)
        c.readline()
        c.send(cmd)
        time.sleep(0.1)
        c.sock.sendall(hello[:len(hello) // 2])
        vanish(c.sock, rng)
        stats["starttls cut"] += 1

    # AUTHENTICATE left waiting for the client's response, or cut inside it.
    for i in range(6):
        if i % 2:
            c = raw_conn(srv, "pop3")
            c.expect_ok()
            c.sendline("AUTH PLAIN")
        else:
            c = raw_conn(srv, "imap")
            c.readline()
            c.sendline("a AUTHENTICATE PLAIN")
        line = c.readline()
        assert line.startswith(b"+"), line
        if i >= 2:
            c.send(b"AGFsaWNlQGV4YW1wbGUuY29tAHNlY3")  # half a response, no CRLF
        vanish(c.sock, rng)
        stats["auth cut"] += 1


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_vanishing_clients_leave_nothing(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_message_size": "20M"}})
    pid = srv.proc.pid
    rng = random.Random(11)
    # warm up: every kind of session once
    for l in ("lmtp", "smtp"):
        c = lmtp_connect(srv, l)
        assert send_mail(c, l, [USER], relia_message(f"warm-{l}"))[0][1] == 250
        c.close()
    before_msgs = inbox_count(srv)
    time.sleep(0.5)
    fds0, rss0 = fd_count(pid), rss_kb(pid)
    stats = {"append cut": 0, "data cut": 0, "tls cut": 0, "starttls cut": 0, "auth cut": 0}
    rss_after = []
    for _ in range(3):
        vanishing_round(srv, rng, stats)
        fds = wait_settled(pid, 15, fds_at_most=fds0)
        assert fds <= fds0, f"fds {fds0} -> {fds} after the vanishing clients: " \
                            f"{sorted(os.listdir(f'/proc/{pid}/fd'))}"
        rss_after.append(rss_kb(pid))
    assert srv.running()
    left = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = spool_leftovers(srv)
        if not left:
            break
        time.sleep(0.2)
    print(f"\nRESULT vanishing: {stats} x3 rounds; fds {fds0} -> {fd_count(pid)}; "
          f"RSS {rss0} kB -> {rss_after} kB; spool leftovers {left}")
    assert left == [], f"spool files left by vanished clients: {left}"
    assert inbox_count(srv) == before_msgs, "a cut APPEND or DATA was stored"
    # RSS may grow once (allocator arenas, TLS contexts), but not round after round.
    assert rss_after[-1] - rss_after[0] < 4096, f"RSS grows per round: {rss0} -> {rss_after} kB"
    assert rss_after[-1] - rss0 < 32768, f"RSS {rss0} -> {rss_after} kB"
    srv.stop_ok()
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


SLOW_USERS = {f"slow{i}@example.com": f"pw{i}" for i in range(8)}
BIG = 12 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_slow_readers_do_not_grow_memory(sarn_factory):
    srv = sarn_factory(users=SLOW_USERS, overrides={"limits": {"max_message_size": "20M"}})
    pid = srv.proc.pid
    big = relia_message("huge", BIG)
    c = lmtp_connect(srv, "lmtp")
    assert all(code == 250 for _, code, _ in send_mail(c, "lmtp", list(SLOW_USERS), big))
    c.close()
    # one complete round of each, so that lazily created things exist before the baseline
    for proto in ("pop3", "imap"):
        u = next(iter(SLOW_USERS))
        if proto == "pop3":
            p = raw_conn(srv, "pop3")
            p.expect_ok()
            p.pop3_login(u, SLOW_USERS[u])
            assert len(p.pop3_retr(1)) > BIG
            p.cmd_ok("QUIT")
            p.close()
        else:
            im = Imap(srv)
            im.login(u, SLOW_USERS[u])
            im.ok("SELECT INBOX")
            _, untagged = im.ok("FETCH 1 BODY.PEEK[]")
            im.close()
    time.sleep(0.5)
    fds0, rss0 = fd_count(pid), rss_kb(pid)

    stuck = []
    for u, pw in SLOW_USERS.items():
        for proto in ("pop3", "imap", "imap"):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(20)
            s.connect((srv.host, srv.ports[proto]))
            lc = LineConn.__new__(LineConn)
            lc.sock, lc.buf, lc.timeout = s, b"", 20
            if proto == "pop3":
                lc.expect_ok()
                lc.pop3_login(u, pw)
                lc.sendline("RETR 1")
            else:
                lc.readline()
                lc.sendline(f'a LOGIN "{u}" "{pw}"')
                assert lc.readline().startswith(b"a OK")
                lc.sendline("b SELECT INBOX")
                while not lc.readline().startswith(b"b OK"):
                    pass
                lc.sendline("c FETCH 1 (BODY[] BINARY.PEEK[1])" if len(stuck) % 2 else
                            "c FETCH 1 BODY[]")
            stuck.append(lc)
    unread = len(stuck) * BIG
    time.sleep(3)
    rss_stuck = rss_kb(pid)
    # the server is not blocked by them
    t0 = time.monotonic()
    im = Imap(srv)
    first = next(iter(SLOW_USERS))
    im.login(first, SLOW_USERS[first])
    im.ok("NOOP")
    im.close()
    latency = time.monotonic() - t0
    for lc in stuck:
        vanish(lc.sock, random.Random(1))
    fds = wait_settled(pid, 15, fds_at_most=fds0)
    time.sleep(0.5)
    rss_end = rss_kb(pid)
    print(f"\nRESULT slow readers: {len(stuck)} clients leaving {unread >> 20} MB unread; "
          f"RSS {rss0} -> {rss_stuck} kB while stuck -> {rss_end} kB after; fds {fds0} -> "
          f"{fds}; login+NOOP meanwhile {latency:.2f} s")
    assert rss_stuck - rss0 < len(stuck) * 1024 + 8192, \
        f"RSS grew by {rss_stuck - rss0} kB for {len(stuck)} stalled readers"
    assert fds <= fds0, f"fds {fds0} -> {fds}"
    assert latency < 3.0
    assert spool_leftovers(srv) == []
    srv.stop_ok()
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_logins_of_vanished_clients(sarn_factory):
    """200 clients send LOGIN and vanish before the answer (a reconnect storm, or a cheap
    attack: one line each). Their password checks must not delay a real client's login by
    tens of seconds, nor SIGTERM."""
    srv = sarn_factory(overrides={"limits": {"max_connections_per_ip": "1000",
                                             "max_connections_per_user": "1000"}})
    rng = random.Random(3)
    socks = []
    for i in range(200):
        s = socket.create_connection((srv.host, srv.ports["imap"]), timeout=20)
        s.recv(4096)
        s.sendall(b'a LOGIN "alice@example.com" "secret"\r\n' if i % 2 else
                  b"a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n")
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        vanish(s, rng)
    time.sleep(0.5)
    t0 = time.monotonic()
    im = Imap(srv, timeout=120)
    im.login(USER, PW)
    im.ok("NOOP")
    im.close()
    login_s = time.monotonic() - t0
    # the same backlog again, then SIGTERM
    socks = []
    for i in range(200):
        s = socket.create_connection((srv.host, srv.ports["imap"]), timeout=20)
        s.recv(4096)
        s.sendall(b'a LOGIN "alice@example.com" "secret"\r\n')
        socks.append(s)
    time.sleep(0.3)
    for s in socks:
        vanish(s, rng)
    time.sleep(0.2)
    t0 = time.monotonic()
    rc = srv.stop(timeout=120)
    stop_s = time.monotonic() - t0
    print(f"\nRESULT vanished logins: login after 200 vanished LOGINs took {login_s:.1f} s; "
          f"SIGTERM with 200 queued took {stop_s:.1f} s (rc={rc})")
    assert rc == 0
    assert login_s < 5, f"a login waited {login_s:.1f} s behind the password checks of 200 " \
                        f"clients that had already gone"
    assert stop_s < 5, f"SIGTERM took {stop_s:.1f} s: the server checked the passwords of 200 " \
                       f"vanished clients before exiting"
