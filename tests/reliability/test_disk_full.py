"""A full disk: the data dir on a small tmpfs, filled up by another file. Deliveries must get a
temporary failure (4xx), IMAP APPEND a NO, POP3 QUIT / IMAP MOVE either happen or not — never
an OK for something that was not stored. After space is freed everything works again, nothing
acknowledged is missing or doubled, and `sarn check` is clean."""
import collections
import errno
import os
import random
import re
import subprocess

import pytest

from sarntest import LineConn, ProtocolError, strip_received
from relia import Imap, lmtp_connect, msg_id, relia_message, send_mail, spool_leftovers

USER = "alice@example.com"
PW = "secret"
FS_SIZE = "24m"


@pytest.fixture
def tmpfs_mount():
    mounted = []

    def mount(path, size=FS_SIZE):
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                            str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for the data dir (needs root / CAP_SYS_ADMIN): "
                        f"{r.stdout.decode(errors='replace').strip()}")
        mounted.append(path)
        return path

    yield mount
    for p in mounted:
        # Lazy: a server that is still running (failed test) keeps its files until it exits.
        subprocess.run(["umount", "-l", str(p)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class Filler:
    """A file that takes the free space of the filesystem, down to `leave` bytes."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.size = 0

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave=0):
        chunk = b"\xaa" * (1 << 20)
        os.lseek(self.fd, self.size, os.SEEK_SET)
        while True:
            want = self.free() - leave
            if want <= 0:
                break
            try:
                n = os.write(self.fd, chunk[:min(len(chunk), want)])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            self.size += n
        if leave == 0:
            # the last pages
            try:
                while True:
                    self.size += os.write(self.fd, b"\xaa" * 4096)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise

    def shrink_to_free(self, free):
        """Truncates the file so that about `free` bytes are available."""
        cur = self.free()
        if cur < free:
            self.size = max(0, self.size - (free - cur))
            os.ftruncate(self.fd, self.size)

    def remove(self):
        os.close(self.fd)
        os.unlink(self.path)


class Book:
    """What the server said about each message."""

    def __init__(self):
        self.sent = {}
        self.kind = {}
        self.acked = {}        # mid -> folder, for 250 / APPEND OK
        self.refused = set()   # mid answered 4xx / NO: must not be stored
        self.deleted = set()   # acknowledged deletions
        self.maybe = set()     # operations that may or may not have happened (none expected)
        self.replies = collections.Counter()
        self.bad = []          # replies that are neither success nor temporary failure
        self.n = 0

    def new(self, kind, size=None):
        self.n += 1
        mid = f"{kind}-{self.n}"
        self.sent[mid] = relia_message(mid, size)
        self.kind[mid] = kind
        return mid, self.sent[mid]


def deliver(srv, book, listener, size=None):
    mid, m = book.new(listener, size)
    c = lmtp_connect(srv, listener)
    try:
        (r, code, t), = send_mail(c, listener, [USER], m)
        c.smtp("QUIT")
    finally:
        c.close()
    book.replies[f"{listener} {code} {t[0][:5] if t else ''}".strip()] += 1
    if code == 250:
        book.acked[mid] = "INBOX"
    elif code // 100 == 4:
        book.refused.add(mid)
    else:
        book.bad.append(f"{listener} {mid}: {code} {t}")
    return code


def append(im, book, folder="Archive", size=None):
    mid, m = book.new("append", size)
    st, line, _ = im.command(f"APPEND {folder}", literal=m)
    code = re.search(rb"\[([A-Z]+)", line)
    book.replies[f"APPEND {st}" + (f" [{code.group(1).decode()}]" if st != "OK" and code else "")] += 1
    if st == "OK":
        if not re.search(rb"\[APPENDUID \d+ \d+\]", line):
            book.bad.append(f"APPEND {mid}: OK without APPENDUID {line!r}")
        book.acked[mid] = folder
    elif st == "NO":
        book.refused.add(mid)
    else:
        book.bad.append(f"APPEND {mid}: {line!r}")
    return st


def session(srv):
    im = Imap(srv)
    im.login(USER, PW)
    return im


def inventory(srv):
    """mid -> [(folder, bytes)]"""
    found = collections.defaultdict(list)
    im = session(srv)
    try:
        for folder in ("INBOX", "Archive", "Trash"):
            im.ok(f"SELECT {folder}")
            _, untagged = im.ok("UID FETCH 1:* (BODY.PEEK[])")
            for l, lits in untagged:
                if lits:
                    found[msg_id(lits[0])].append((folder, lits[0]))
    finally:
        im.close()
    return found


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_disk_full(sarn_factory, tmpfs_mount, tmp_path):
    srv = sarn_factory(users={USER: PW}, start=False,
                       overrides={"limits": {"max_message_size": "8M"}})
    tmpfs_mount(srv.data)
    srv.start()
    book = Book()

    # Some mail before the disk fills.
    for i in range(4):
        assert deliver(srv, book, "lmtp" if i % 2 else "smtp") == 250
    keep = session(srv)            # a session that lives through the whole test
    for i in range(3):
        assert append(keep, book) == "OK"
    keep.ok("SELECT INBOX")

    filler = Filler(srv.data / "filler")
    filler.fill(0)
    assert filler.free() < 8192, filler.free()

    # Disk completely full.
    full = collections.Counter()
    for listener in ("lmtp", "smtp", "lmtp", "smtp"):
        full[deliver(srv, book, listener, size=random.choice([300, 50_000]))] += 1
    for size in (300, 40_000, 2_000_000):
        full[append(keep, book, size=size)] += 1
    other = None
    try:
        other = session(srv)
        full[append(other, book, folder="INBOX")] += 1
        full["login-ok"] += 1
    except (ProtocolError, OSError, EOFError) as e:
        full[f"login: {e}"] += 1
    finally:
        if other is not None:
            other.close()
    assert srv.running(), "server died on a full disk"
    assert full.get(250, 0) == 0 and full.get("OK", 0) == 0, \
        f"something was acknowledged on a full disk: {full} {book.replies}"

    # POP3 DELE + QUIT and IMAP MOVE on a full disk: done (and acknowledged) or not at all.
    inbox_before = [mid for mid, f in book.acked.items() if f == "INBOX"]
    c = LineConn(srv.host, srv.ports["pop3"])
    try:
        c.expect_ok()
        c.pop3_login(USER, PW)
        first = msg_id(c.pop3_retr(1))
        c.cmd_ok("DELE 1")
        r = c.cmd("QUIT")
        book.replies[f"POP3 QUIT on full disk: {r[:30]}"] += 1
        if r.startswith("+OK"):
            book.deleted.add(first)
        elif not r.startswith("-ERR"):
            book.bad.append(f"POP3 QUIT: {r!r}")
        else:
            book.maybe.add(first)  # must still be there: checked below
    finally:
        c.close()
    st, line, _ = keep.command("UID MOVE 1:* Trash")   # whatever is left in INBOX
    book.replies[f"MOVE on full disk: {st}"] += 1
    moved = st == "OK"
    if st not in ("OK", "NO"):
        book.bad.append(f"MOVE: {line!r}")

    # A restart with the disk still full (start-up recovery) must work.
    srv.stop_ok()
    srv.start()
    keep.close()
    keep = session(srv)

    # Little free space: some things fit, some do not.
    rng = random.Random(5)
    for leave in (16 << 10, 64 << 10, 256 << 10, 1 << 20, 3 << 20):
        filler.shrink_to_free(leave)
        for _ in range(4):
            deliver(srv, book, rng.choice(["lmtp", "smtp"]),
                    size=rng.choice([300, 5000, 60_000, 700_000, 2_500_000]))
            append(keep, book, size=rng.choice([300, 5000, 60_000, 700_000, 2_500_000]))
        assert srv.running(), f"server died with {leave} bytes free"

    # Space freed: everything works again, in the old session too.
    filler.remove()
    for i in range(4):
        assert deliver(srv, book, "lmtp" if i % 2 else "smtp", size=100_000) == 250, book.replies
        assert append(keep, book, size=100_000) == "OK", book.replies
    keep.ok("NOOP")
    keep.close()

    found = inventory(srv)
    problems = list(book.bad)
    for mid, places in found.items():
        if mid is None:
            problems.append(f"messages without id: {len(places)}")
            continue
        if len(places) > 1:
            problems.append(f"{mid}: stored {len(places)} times")
        body = places[0][1] if book.kind[mid] == "append" else strip_received(places[0][1])
        if body != book.sent[mid]:
            problems.append(f"{mid}: bytes differ (len {len(body)} vs {len(book.sent[mid])})")
        if mid in book.refused:
            problems.append(f"{mid}: refused (4xx/NO) but stored in {places[0][0]}")
        if mid in book.deleted:
            problems.append(f"{mid}: POP3 QUIT +OK deleted it, but it is in {places[0][0]}")
    for mid, folder in book.acked.items():
        if mid in book.deleted:
            continue
        if mid not in found:
            problems.append(f"{mid}: acknowledged ({folder}) but lost")
        elif moved and mid in inbox_before and found[mid][0][0] != "Trash":
            problems.append(f"{mid}: MOVE to Trash acknowledged, but found in {found[mid][0][0]}")
    acked = len(book.acked)
    print(f"\nRESULT disk_full: acknowledged {acked}, refused {len(book.refused)}, "
          f"deleted {len(book.deleted)}, replies {dict(book.replies)}")
    assert problems == [], "\n".join(problems[:40])
    assert len(book.refused) >= 7, book.replies
    srv.stop_ok()
    assert spool_leftovers(srv) == []
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
