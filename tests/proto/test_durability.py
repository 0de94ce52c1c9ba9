"""Crash safety: SIGKILL the server while mail is arriving; every acknowledged message must
survive exactly once and byte-identical, and the store must pass `sarn check`."""
import collections
import itertools
import random
import re
import threading
import time

import pytest

from sarntest import (EX_TEMPFAIL, LineConn, ProtocolError, make_message, smtp_stuff,
                      strip_received, strip_trace)

USERS = [f"u{i}@example.com" for i in range(4)]
STORM_USERS = {u: "pw" + u[:2] for u in USERS}


def storm_message(mid):
    """Deterministic message for an id: sizes from 300 B to ~150 KB, dots, 8-bit, long lines."""
    rng = random.Random(mid)
    size = rng.choice([300, 300, 3000, 3000, 30000, 150000])
    lines = [f"storm {mid}".encode()]
    n = 0
    while n < size:
        kind = rng.random()
        if kind < 0.05:
            l = b"."
        elif kind < 0.15:
            l = b"." + bytes(rng.choice(b"abc.") for _ in range(rng.randint(0, 20)))
        elif kind < 0.2:
            l = bytes(rng.randint(0x80, 0xff) for _ in range(rng.randint(1, 40)))
        elif kind < 0.25:
            l = b""
        else:
            l = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(rng.randint(1, 900)))
        lines.append(l)
        n += len(l) + 2
    body = b"\r\n".join(lines) + b"\r\n"
    return make_message(f"storm {mid}", body, msgid=f"<{mid}@storm>",
                        extra=f"X-Storm-Id: {mid}\r\n".encode())


class Storm:
    def __init__(self, server):
        self.server = server
        self.acked = collections.Counter()   # (user, mid) -> times acknowledged
        self.sent = {}                        # mid -> bytes
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ids = itertools.count()
        self.errors = []
        self.threads = []
        self.stats = collections.Counter()

    def new(self, tag):
        mid = f"{tag}-{next(self.ids)}"
        m = storm_message(mid)
        with self.lock:
            self.sent[mid] = m
        return mid, m

    def ack(self, user, mid):
        with self.lock:
            self.acked[(user, mid)] += 1

    def _connect(self, listener):
        c = LineConn("127.0.0.1", self.server.ports[listener], timeout=20)
        code, _ = c.reply()
        if code != 220:
            raise ProtocolError(f"greeting {code}")
        c.smtp("LHLO storm.test" if listener == "lmtp" else "EHLO storm.test", 250)
        return c

    def worker(self, listener, tid):
        rng = random.Random(tid)
        while not self.stop.is_set():
            c = None
            try:
                c = self._connect(listener)
                while not self.stop.is_set():
                    nr = 2 if listener == "lmtp" else rng.choice([1, 1, 2])
                    rcpts = rng.sample(USERS, nr)
                    mid, m = self.new(f"{listener}{tid}")
                    c.smtp("MAIL FROM:<storm@remote.test>", 250)
                    for r in rcpts:
                        c.smtp(f"RCPT TO:<{r}>", 250)
                    c.smtp("DATA", 354)
                    c.send(smtp_stuff(m) + b".\r\n")
                    if listener == "lmtp":
                        for r in rcpts:
                            code, t = c.reply()
                            if code == 250:
                                self.ack(r, mid)
                            elif code // 100 != 4:
                                self.errors.append(f"LMTP {mid} {r}: {code} {t}")
                    else:
                        code, t = c.reply()
                        if code == 250:
                            for r in rcpts:
                                self.ack(r, mid)
                        elif code // 100 != 4:
                            self.errors.append(f"SMTP {mid}: {code} {t}")
                    self.stats[listener] += 1
            except (OSError, EOFError, ProtocolError, ValueError):
                self.stats[listener + "-reconnect"] += 1
                time.sleep(0.02)
            finally:
                if c is not None:
                    c.close()

    def deliver_worker(self, tid):
        rng = random.Random(1000 + tid)
        while not self.stop.is_set():
            user = rng.choice(USERS)
            mid, m = self.new(f"cli{tid}")
            try:
                r = self.server.deliver(user, m, check=False)
            except Exception as e:  # noqa: BLE001 - reported as a test failure
                self.errors.append(f"deliver {mid}: {e!r}")
                continue
            if r.returncode == 0:
                self.ack(user, mid)
            elif r.returncode != EX_TEMPFAIL:
                self.errors.append(f"deliver {mid}: exit {r.returncode} {r.stderr[-300:]!r}")
            self.stats["deliver"] += 1

    def start(self, smtp=3, lmtp=3, deliver=0):
        for i in range(smtp):
            self.threads.append(threading.Thread(target=self.worker, args=("smtp", i), daemon=True))
        for i in range(lmtp):
            self.threads.append(threading.Thread(target=self.worker, args=("lmtp", i), daemon=True))
        for i in range(deliver):
            self.threads.append(threading.Thread(target=self.deliver_worker, args=(i,), daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "storm threads hang"

    def verify(self):
        srv = self.server
        problems = []
        total = 0
        for user in USERS:
            found = collections.Counter()
            for uidl, raw in srv.fetch_all(user):
                total += 1
                m = re.search(rb"^X-Storm-Id: (\S+)\r$", raw, re.M)
                if not m:
                    problems.append(f"{user} {uidl}: message without X-Storm-Id: {raw[:200]!r}")
                    continue
                mid = m.group(1).decode()
                found[mid] += 1
                body = strip_trace(raw) if mid.startswith("cli") else strip_received(raw)
                if body != self.sent.get(mid):
                    problems.append(f"{user} {mid}: stored bytes differ from what was sent "
                                    f"(len {len(body)} vs {len(self.sent.get(mid, b''))})")
            for mid, n in found.items():
                if n > 1:
                    problems.append(f"{user} {mid}: stored {n} times")
            for (u, mid), n in self.acked.items():
                if u == user and found[mid] == 0:
                    problems.append(f"{user} {mid}: acknowledged but lost")
        return problems, total


def storm_with_kills(server, seconds, min_rounds, **workers):
    storm = Storm(server)
    storm.start(**workers)
    rng = random.Random()
    t0 = time.monotonic()
    rounds = 0
    while rounds < min_rounds or time.monotonic() - t0 < seconds:
        time.sleep(rng.uniform(0.3, 2.5))
        server.kill()
        rounds += 1
        time.sleep(rng.uniform(0, 0.3))
        server.start()
    time.sleep(1.0)
    storm.finish()
    return storm, rounds


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_delivery_storm_with_sigkill(sarn_factory):
    srv = sarn_factory(users=STORM_USERS)
    storm, rounds = storm_with_kills(srv, seconds=25, min_rounds=6, smtp=3, lmtp=3)
    print(f"{rounds} kills, {sum(storm.acked.values())} acknowledged deliveries, {storm.stats}")
    assert storm.errors == [], storm.errors[:20]
    assert sum(storm.acked.values()) > 50, f"too few deliveries to mean anything: {storm.stats}"
    problems, total = storm.verify()
    assert problems == [], f"{len(problems)} problems after {rounds} kills " \
                           f"({total} stored, {sum(storm.acked.values())} acked):\n" + \
                           "\n".join(problems[:30])
    srv.stop_ok()
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cli_deliver_during_server_crashes(sarn_factory):
    """`sarn deliver` (an MTA's local delivery agent) keeps running while the server crashes and
    runs its start-up recovery: an exit 0 must still mean the message is stored."""
    srv = sarn_factory(users=STORM_USERS)
    storm, rounds = storm_with_kills(srv, seconds=10, min_rounds=4, smtp=1, lmtp=1, deliver=3)
    print(f"{rounds} kills, {sum(storm.acked.values())} acknowledged deliveries, {storm.stats}")
    assert storm.errors == [], storm.errors[:20]
    assert storm.stats["deliver"] > 10
    problems, total = storm.verify()
    assert problems == [], "\n".join(problems[:30])
    srv.stop_ok()
    # The last start-up recovery ran while `sarn deliver` processes were writing, so it had to
    # leave recent crash leftovers (spool temp files, unreferenced blobs) alone; those may be
    # reported, but nothing else.
    r = srv.cli("check")
    out = (r.stdout + r.stderr).decode(errors="replace")
    leftovers = ("unfinished incoming message", "orphaned message file")
    other = [l for l in out.splitlines()
             if l.strip() and not any(x in l for x in leftovers) and "problem" not in l]
    assert other == [], out
    # a restart with no other writer cleans up completely
    srv.start()
    srv.stop_ok()
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")


@pytest.mark.timeout(120)
def test_ack_then_immediate_kill(sarn_factory):
    """A 250 means durably stored: SIGKILL right after the reply loses nothing."""
    srv = sarn_factory(users=STORM_USERS)
    sent = []
    for i in range(5):
        m = storm_message(f"immediate-{i}")
        listener = "lmtp" if i % 2 else "smtp"
        c = LineConn("127.0.0.1", srv.ports[listener])
        c.reply()
        c.smtp("LHLO x.test" if listener == "lmtp" else "EHLO x.test", 250)
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{USERS[0]}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        code, _ = c.reply()
        assert code == 250
        srv.kill()
        c.close()
        sent.append(m)
        srv.start()
    got = [strip_received(x) for x in srv.messages(USERS[0])]
    assert got == sent


@pytest.mark.timeout(120)
def test_pop3_quit_is_durable_under_kill(sarn_factory):
    """After QUIT's +OK the deletions are durable; without +OK nothing is half-done."""
    srv = sarn_factory(users=STORM_USERS)
    user = USERS[1]
    for i in range(12):
        srv.deliver(user, storm_message(f"pop-{i}"))
    all_uidls = [u for u, _ in srv.fetch_all(user)]
    deleted = set()
    rng = random.Random(7)
    for round_ in range(6):
        c = LineConn("127.0.0.1", srv.ports["pop3"])
        try:
            c.expect_ok()
            c.pop3_login(user, STORM_USERS[user])
            uidls = c.pop3_uidl_all()
            victims = uidls[:2]
            for n, _ in victims:
                c.cmd_ok(f"DELE {n}")
            c.sendline("QUIT")
            if rng.random() < 0.5:
                r = c.readstr()
                assert r.startswith("+OK")
                deleted |= {u for _, u in victims}
                srv.kill()
            else:
                srv.kill()  # QUIT may or may not have been processed
        finally:
            c.close()
        srv.start()
        remaining = [u for u, _ in srv.fetch_all(user)]
        assert not (set(remaining) & deleted), "a deletion acknowledged by QUIT came back"
        assert len(remaining) == len(set(remaining))
        assert set(remaining) <= set(all_uidls)
        # a QUIT without reply is all-or-nothing for the session's deletions
        gone = set(all_uidls) - set(remaining) - deleted
        assert len(gone) % 2 == 0
        deleted |= gone
        if not remaining:
            break
    srv.stop_ok()
    assert srv.cli("check").returncode == 0
