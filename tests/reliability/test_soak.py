"""Load held for a bounded time: thousands of simultaneous POP3, IMAP (IDLE included) and
LMTP connections from one asyncio client process. While they run: no error replies, IDLE
sessions see the deliveries; after they leave: the server's open fds back to the start and
its memory back near it."""
import asyncio
import collections
import random
import re
import resource
import time

import pytest

from sarntest import smtp_stuff
from relia import fd_count, relia_message, rss_kb, spool_leftovers, wait_settled

USERS = {f"soak{i}@example.com": f"pw-soak{i}" for i in range(4)}
OVERRIDES = {
    "limits": {"max_connections": "20000", "max_connections_per_ip": "20000",
               "max_connections_per_user": "5000"},
    "pop3": {"lock": "no"},   # many POP3 sessions per account
}
OP_TIMEOUT = 60


def raise_nofile(want=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, want)) if hard != resource.RLIM_INFINITY else max(soft, want)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return (soft, hard), new


class Load:
    def __init__(self, srv, seconds):
        self.srv = srv
        self.host = srv.host
        self.end = None
        self.seconds = seconds
        self.errors = []
        self.stats = collections.Counter()
        self.open = 0
        self.peak_open = 0
        self.delivered = collections.defaultdict(list)   # user -> [monotonic time of 250]
        self.idle_seen = []                              # (user, first EXISTS count, last)
        self.leave = None
        self.connect_sem = None

    def err(self, what):
        self.errors.append(what)

    async def connect(self, listener):
        async with self.connect_sem:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.srv.ports[listener], limit=1 << 20),
                OP_TIMEOUT)
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        return r, w

    def closed(self, w):
        self.open -= 1
        w.close()

    async def line(self, r):
        l = await asyncio.wait_for(r.readline(), OP_TIMEOUT)
        if not l:
            raise EOFError("server closed the connection")
        return l.rstrip(b"\r\n")

    async def imap_resp(self, r, w, tag, cmd):
        """Sends cmd, returns (tagged line, untagged lines); literals are read and skipped."""
        w.write(tag + b" " + cmd + b"\r\n")
        await w.drain()
        untagged = []
        t0 = time.monotonic()
        while True:
            try:
                l = await self.line(r)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(f"no reply to {cmd[:40]!r} after "
                                           f"{time.monotonic() - t0:.0f} s "
                                           f"({len(untagged)} untagged lines)") from None
            m = re.search(rb"\{(\d+)\}$", l)
            while m:
                await asyncio.wait_for(r.readexactly(int(m.group(1))), OP_TIMEOUT)
                l = l + b"<lit>" + await self.line(r)
                m = re.search(rb"\{(\d+)\}$", l)
            if l.startswith(tag + b" "):
                if not l.startswith(tag + b" OK"):
                    self.err(f"IMAP {cmd[:40]!r}: {l[:120]!r}")
                return l, untagged
            untagged.append(l)

    async def wait_or_leave(self, lo, hi):
        try:
            await asyncio.wait_for(self.leave.wait(), random.uniform(lo, hi))
        except asyncio.TimeoutError:
            pass
        return self.leave.is_set()

    # ---- clients -------------------------------------------------------------------------
    async def imap_client(self, user, idle, preauth):
        r, w = await self.connect("imap")
        try:
            await self.line(r)
            n = 0
            if not preauth:
                l, _ = await self.imap_resp(r, w, b"l", f'LOGIN "{user}" "{USERS[user]}"'.encode())
                if not l.startswith(b"l OK"):
                    return
                await self.imap_resp(r, w, b"s", b"SELECT INBOX")
            if idle:
                first = last = None
                w.write(b"i IDLE\r\n")
                await w.drain()
                while True:
                    l = await self.line(r)
                    if l.startswith(b"+"):
                        break
                    if not l.startswith(b"* "):
                        self.err(f"IDLE: {l[:120]!r}")
                        return
                idle_start = time.monotonic()
                self.stats["idle"] += 1
                lv = asyncio.ensure_future(self.leave.wait())
                t = None
                while True:
                    if t is None:
                        t = asyncio.ensure_future(self.line(r))
                    done, _ = await asyncio.wait({t, lv}, return_when=asyncio.FIRST_COMPLETED)
                    if t in done:
                        l, t = t.result(), None
                        m = re.match(rb"\* (\d+) EXISTS", l)
                        if m:
                            last = int(m.group(1))
                            first = first or last
                            self.stats["idle-exists"] += 1
                        continue
                    break
                w.write(b"DONE\r\n")
                await w.drain()
                while True:
                    if t is not None:
                        l, t = await t, None
                    else:
                        l = await self.line(r)
                    m = re.match(rb"\* (\d+) EXISTS", l)
                    if m:
                        last = int(m.group(1))
                    if l.startswith(b"i "):
                        if not l.startswith(b"i OK"):
                            self.err(f"IDLE DONE: {l!r}")
                        break
                self.idle_seen.append((user, first, last, idle_start))
            else:
                while not await self.wait_or_leave(2, 8):
                    n += 1
                    if preauth:
                        cmd = random.choice([b"CAPABILITY", b"NOOP"])
                    else:
                        cmd = random.choice([b"NOOP", b"STATUS INBOX (MESSAGES UIDNEXT)",
                                             b"UID SEARCH ALL", b"UID FETCH 1:5 (FLAGS RFC822.SIZE)",
                                             b"UID FETCH 1 BODY.PEEK[]", b"LIST \"\" *"])
                    await self.imap_resp(r, w, b"c%d" % n, cmd)
                    self.stats["imap-cmd"] += 1
            l, _ = await self.imap_resp(r, w, b"z", b"LOGOUT")
        finally:
            self.closed(w)

    async def pop3_client(self, user, preauth):
        r, w = await self.connect("pop3")
        try:
            async def cmd(c):
                w.write(c + b"\r\n")
                await w.drain()
                l = await self.line(r)
                if not l.startswith(b"+OK"):
                    self.err(f"POP3 {c[:30]!r}: {l[:120]!r}")
                    raise EOFError
                return l
            async def multi():
                while (await self.line(r)) != b".":
                    pass
            await self.line(r)
            if not preauth:
                await cmd(f"USER {user}".encode())
                await cmd(f"PASS {USERS[user]}".encode())
            while not await self.wait_or_leave(2, 8):
                if preauth:
                    await cmd(b"CAPA")
                    await multi()
                else:
                    c = random.choice([b"STAT", b"LIST", b"UIDL", b"RETR 1", b"TOP 2 3", b"NOOP"])
                    await cmd(c)
                    if c not in (b"STAT", b"NOOP"):
                        await multi()
                self.stats["pop3-cmd"] += 1
            await cmd(b"QUIT")
        except EOFError:
            pass
        finally:
            self.closed(w)

    async def lmtp_client(self, k):
        r, w = await self.connect("lmtp")
        try:
            async def reply():
                while True:
                    l = await self.line(r)
                    if l[3:4] != b"-":
                        return int(l[:3]), l
            async def cmd(c, expect):
                w.write(c + b"\r\n")
                await w.drain()
                code, l = await reply()
                if code != expect:
                    self.err(f"LMTP {c[:40]!r}: {l[:120]!r}")
                    raise EOFError
            await reply()
            await cmd(b"LHLO soak.test", 250)
            while not await self.wait_or_leave(3, 12):
                if random.random() < 0.5:
                    await cmd(b"NOOP", 250)
                    continue
                user = random.choice(list(USERS))
                msg = relia_message(f"soak-{k}-{self.stats['lmtp-sent']}", 2000)
                self.stats["lmtp-sent"] += 1
                await cmd(b"MAIL FROM:<soak@remote.test>", 250)
                await cmd(f"RCPT TO:<{user}>".encode(), 250)
                await cmd(b"DATA", 354)
                w.write(smtp_stuff(msg) + b".\r\n")
                await w.drain()
                code, l = await reply()
                if code == 250:
                    self.delivered[user].append(time.monotonic())
                    self.stats["lmtp-250"] += 1
                else:
                    self.err(f"LMTP DATA: {l!r}")
            await cmd(b"QUIT", 221)
        except EOFError:
            pass
        finally:
            self.closed(w)

    async def guarded(self, coro, what):
        try:
            await coro
        except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            self.err(f"{what}: {type(e).__name__} {e}")

    async def run(self, mix, sampler):
        self.leave = asyncio.Event()
        self.connect_sem = asyncio.Semaphore(64)
        users = list(USERS)
        tasks = []
        k = 0
        for kind, count in mix.items():
            for i in range(count):
                u = users[i % len(users)]
                k += 1
                if kind == "imap-idle":
                    c = self.imap_client(u, idle=True, preauth=False)
                elif kind == "imap-login":
                    c = self.imap_client(u, idle=False, preauth=False)
                elif kind == "imap-preauth":
                    c = self.imap_client(u, idle=False, preauth=True)
                elif kind == "pop3-login":
                    c = self.pop3_client(u, preauth=False)
                elif kind == "pop3-preauth":
                    c = self.pop3_client(u, preauth=True)
                else:
                    c = self.lmtp_client(k)
                tasks.append(asyncio.ensure_future(self.guarded(c, kind)))
        t0 = self.t0 = time.monotonic()
        samp = asyncio.ensure_future(sampler())
        await asyncio.sleep(self.seconds)
        self.leave_at = time.monotonic()
        self.leave.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        samp.cancel()
        self.elapsed = time.monotonic() - t0


def run_load(srv, mix, seconds):
    pid = srv.proc.pid
    load = Load(srv, seconds)
    samples = []

    async def sampler():
        while True:
            try:
                samples.append((time.monotonic(), load.open, fd_count(pid), rss_kb(pid)))
            except OSError:
                pass
            await asyncio.sleep(1)

    asyncio.run(load.run(mix, sampler))
    return load, samples


def warm_up(srv):
    """One session of each kind, so that caches that exist once are in the baseline."""
    mix = {"imap-idle": 1, "imap-login": 1, "imap-preauth": 1, "pop3-login": 1,
           "pop3-preauth": 1, "lmtp": 4}
    run_load(srv, mix, 8)


# Logins are yescrypt checks on two job threads (about 5-10 per second on the 2-core test
# machine), so a couple of hundred sessions log in; the other connections stay in the
# not-authenticated state or are LMTP sessions, which cost the server the same fd and buffers.
MIX = {"imap-idle": 100, "imap-login": 30, "imap-preauth": 800, "pop3-login": 20,
       "pop3-preauth": 550, "lmtp": 700}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_thousands_of_connections(sarn_factory):
    old, nofile = raise_nofile()
    try:
        srv = sarn_factory(users=USERS, overrides=OVERRIDES)
        pid = srv.proc.pid
        for u in USERS:
            for i in range(5):
                srv.deliver(u, relia_message(f"seed-{u}-{i}", 3000))
        warm_up(srv)
        time.sleep(1)
        fds0, rss0 = fd_count(pid), rss_kb(pid)
        rounds = []
        errors = []
        idle_missed = []
        for hold in (50, 35):
            load, samples = run_load(srv, MIX, hold)
            fds_end = wait_settled(pid, 20, fds_at_most=fds0)
            time.sleep(2)
            rss_end = rss_kb(pid)
            peak_fds = max(s[2] for s in samples)
            peak_rss = max(s[3] for s in samples)
            errors += load.errors
            # IDLE sessions must have seen the deliveries to their account.
            for user, first, last, since in load.idle_seen:
                during = [t for t in load.delivered[user] if since + 1 < t < load.leave_at - 2]
                if during and first is None:
                    idle_missed.append(f"{user}: IDLE from {since - load.t0:.1f} s, "
                                       f"{len(during)} deliveries to it from "
                                       f"{during[0] - load.t0:.1f} s to "
                                       f"{during[-1] - load.t0:.1f} s, no EXISTS")
            rounds.append(dict(peak_open=load.peak_open, peak_fds=peak_fds, peak_rss=peak_rss,
                               fds_end=fds_end, rss_end=rss_end, secs=round(load.elapsed),
                               idle=load.stats["idle"], stats=dict(load.stats),
                               errors=len(load.errors)))
            print(f"\nRESULT soak round: {sum(MIX.values())} connections {MIX}; {rounds[-1]}; "
                  f"baseline fds {fds0} RSS {rss0} kB")
        print(f"RESULT soak: nofile {old} -> {nofile}; IDLE sessions without EXISTS "
              f"{len(idle_missed)}")
        problems = []
        if errors:
            problems.append(f"{len(errors)} errors: " + "; ".join(
                f"{n} x {e}" for e, n in collections.Counter(errors).most_common(10)))
        for r in rounds:
            if r["peak_open"] < 2000 or r["peak_fds"] < 2000:
                problems.append(f"only {r['peak_open']} simultaneous connections, "
                                f"{r['peak_fds']} server fds")
            if r["fds_end"] > fds0 + 2:
                problems.append(f"server fds {fds0} -> {r['fds_end']} after the clients left")
        if idle_missed:
            problems.append(f"{len(idle_missed)} IDLE sessions saw no EXISTS: " +
                            "; ".join(idle_missed[:5]))
        # Memory after the clients left: near the start, and a second identical round must
        # not leave more behind than the first.
        r1, r2 = rounds
        if r2["rss_end"] - rss0 > max(16384, (r1["peak_rss"] - rss0) // 4) or \
                r2["rss_end"] - r1["rss_end"] > 8192:
            problems.append(f"server VmRSS not back near the start after the clients left: "
                            f"{rss0} kB at the start, peak {r1['peak_rss']} / after round 1 "
                            f"{r1['rss_end']}, peak {r2['peak_rss']} / after round 2 "
                            f"{r2['rss_end']} kB")
        if spool_leftovers(srv):
            problems.append(f"spool leftovers {spool_leftovers(srv)}")
        srv.stop_ok()
        r = srv.cli("check")
        if r.returncode != 0:
            problems.append("sarn check: " + (r.stdout + r.stderr).decode(errors="replace"))
        assert problems == [], "\n".join(problems)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_idle_sessions_beyond_inotify_limit(sarn_factory):
    """More IMAP sessions in IDLE than Linux's per-user inotify instance limit
    (fs.inotify.max_user_instances, 128 by default, shared by every process of the user the
    server runs as): a few hundred phones on one server."""
    limit = int(open("/proc/sys/fs/inotify/max_user_instances").read())
    n = min(limit + 40, 400)
    old, _ = raise_nofile()
    try:
        srv = sarn_factory(users=USERS, overrides=OVERRIDES)
        load, samples = run_load(srv, {"imap-idle": n, "lmtp": 20}, max(20, n // 5))
        print(f"\nRESULT many IDLE: {load.stats['idle']} of {n} IDLE commands accepted "
              f"(fs.inotify.max_user_instances = {limit}); {dict(load.stats)}")
        assert load.errors == [], f"{len(load.errors)} of {n} IDLE sessions failed " \
            f"(fs.inotify.max_user_instances = {limit}): " + "; ".join(
                f"{k} x {e}" for e, k in collections.Counter(load.errors).most_common(5))
        srv.stop_ok()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
