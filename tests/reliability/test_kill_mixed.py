"""SIGKILL at random moments while mixed traffic runs: LMTP and SMTP deliveries, IMAP APPEND
(some literals above 1 MB), IMAP UID MOVE between folders, STORE \\Deleted + EXPUNGE, POP3
DELE + QUIT.

Every operation is tracked as a set of places the message may be in afterwards (a folder,
or None for "not stored / deleted"): an acknowledged delivery or APPEND puts it in exactly one
folder, an acknowledged MOVE in the destination, an acknowledged EXPUNGE or POP3 QUIT removes
it; an operation whose reply was lost in the crash leaves both outcomes possible, never both
at once and never neither (a MOVE without reply: in exactly one of source and destination).
At the end every message must be found at most once, in one of its possible places, byte for
byte as sent, and `sarn check` must be clean."""
import collections
import itertools
import random
import re
import threading
import time

import pytest

from sarntest import LineConn, ProtocolError, strip_received
from relia import Imap, lmtp_connect, msg_id, relia_message, send_mail

DELIVER_POP = "d0@example.com"     # deliveries into INBOX; POP3 DELE + QUIT
DELIVER_MOVE = "m1@example.com"    # deliveries (and some APPENDs) into INBOX; UID MOVE INBOX <-> Moved
APPEND_DEL = "a2@example.com"      # APPENDs into Archive; STORE \Deleted + EXPUNGE
USERS = {DELIVER_POP: "pw-d0", DELIVER_MOVE: "pw-m1", APPEND_DEL: "pw-a2"}
FOLDERS = ("INBOX", "Moved", "Archive")

CONN_ERRORS = (OSError, EOFError)


class Anomaly(Exception):
    """A reply that a crash cannot explain (NO, BAD, missing APPENDUID, wrong bytes...)."""


class Tracker:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}          # mid -> bytes as sent
        self.kind = {}          # mid -> "deliver" | "append"
        self.poss = {}          # (user, mid) -> set of folder names / None
        self.observed = set()   # (user, mid) seen in the store by a worker
        self.acked = collections.Counter()
        self.attempts = collections.Counter()
        self.anomalies = []
        self.ids = itertools.count()
        self.stop = threading.Event()
        self.groups = []        # MULTIAPPEND groups (lists of mids)

    def new(self, tag, kind, size=None):
        mid = f"{tag}-{next(self.ids)}"
        m = relia_message(mid, size)
        with self.lock:
            self.sent[mid] = m
            self.kind[mid] = kind
        return mid, m

    def pending(self, user, mid, folder):
        with self.lock:
            self.poss[(user, mid)] = {None, folder}

    def stored(self, user, mid, folder, what):
        """An acknowledged delivery/APPEND."""
        with self.lock:
            self.acked[what] += 1
            if (user, mid) not in self.observed:
                self.poss[(user, mid)] = {folder}

    def observe(self, user, mid, folder):
        with self.lock:
            if (user, mid) not in self.poss:
                self.anomalies.append(f"{user}: unknown message {mid} seen in {folder}")
                return False
            self.observed.add((user, mid))
            self.poss[(user, mid)] = {folder}
            return True

    def set(self, user, mid, places):
        with self.lock:
            self.poss[(user, mid)] = set(places)

    def anomaly(self, text):
        with self.lock:
            self.anomalies.append(text)


# ---- workers ----------------------------------------------------------------------------------
def delivery_worker(srv, tr, listener, seed):
    rng = random.Random(seed)
    while not tr.stop.is_set():
        c = None
        try:
            c = lmtp_connect(srv, listener)
            while not tr.stop.is_set():
                rcpts = rng.sample([DELIVER_POP, DELIVER_MOVE], rng.choice([1, 2]))
                mid, m = tr.new(f"{listener}{seed}", "deliver")
                for r in rcpts:
                    tr.pending(r, mid, "INBOX")
                tr.attempts[listener] += 1
                for r, code, t in send_mail(c, listener, rcpts, m):
                    if code == 250:
                        tr.stored(r, mid, "INBOX", listener)
                    else:
                        tr.anomaly(f"{listener} {mid} {r}: {code} {t}")
        except ProtocolError as e:
            tr.anomaly(f"{listener}: {e}")
        except CONN_ERRORS:
            pass
        finally:
            if c is not None:
                c.close()
        time.sleep(0.03)


def imap_session(srv, user):
    im = Imap(srv, timeout=20)
    if not im.greeting.startswith(b"* OK"):
        raise ProtocolError(f"greeting {im.greeting!r}")
    im.login(user, USERS[user])
    return im


def select(im, folder):
    _, untagged = im.ok(f"SELECT {folder}")
    return untagged


def uid_search(im, crit):
    _, untagged = im.ok(f"UID SEARCH {crit}")
    for line, _ in untagged:
        if line.startswith(b"* SEARCH"):
            return [int(x) for x in line.split()[2:]]
    return []


def fetch_ids(im, uids):
    """uid -> X-Relia-Id for the given UIDs."""
    if not uids:
        return {}
    _, untagged = im.ok(f"UID FETCH {','.join(map(str, uids))} "
                        f"(UID BODY.PEEK[HEADER.FIELDS (X-Relia-Id)])")
    out = {}
    for line, lits in untagged:
        m = re.match(rb"\* \d+ FETCH .*UID (\d+)", line)
        if m and lits:
            out[int(m.group(1))] = msg_id(lits[0])
    return out


def append_worker(srv, tr, seed):
    rng = random.Random(seed)
    while not tr.stop.is_set():
        im = None
        try:
            im = imap_session(srv, APPEND_DEL)
            while not tr.stop.is_set():
                user, folder = (APPEND_DEL, "Archive") if rng.random() < 0.8 else \
                    (DELIVER_MOVE, "INBOX")
                if user != APPEND_DEL:
                    im2 = imap_session(srv, user)
                else:
                    im2 = im
                if user == APPEND_DEL and rng.random() < 0.15:
                    # MULTIAPPEND: all of the messages or none of them, acknowledged or not.
                    group = [tr.new(f"multi{seed}", "append") for _ in range(rng.randint(2, 4))]
                    for mid, _ in group:
                        tr.pending(user, mid, folder)
                    tr.groups.append([mid for mid, _ in group])
                    tr.attempts["multiappend"] += 1
                    st, line = im.multiappend(folder, [m for _, m in group])
                    if st == "OK":
                        if not re.search(rb"\[APPENDUID \d+ \d+:\d+\]", line):
                            tr.anomaly(f"MULTIAPPEND: OK without APPENDUID range: {line!r}")
                        for mid, _ in group:
                            tr.stored(user, mid, folder, "multiappend")
                    else:
                        tr.anomaly(f"MULTIAPPEND {[m for m, _ in group]}: {line!r}")
                    continue
                big = rng.random() < 0.12
                mid, m = tr.new(f"app{seed}", "append",
                                size=rng.randint(1_100_000, 2_600_000) if big else None)
                tr.pending(user, mid, folder)
                tr.attempts["append-big" if big else "append"] += 1
                try:
                    st, line, _ = im2.command(f"APPEND {folder} (\\Seen)", literal=m)
                    if st == "OK":
                        if not re.search(rb"\[APPENDUID \d+ \d+\]", line):
                            tr.anomaly(f"APPEND {mid}: OK without APPENDUID: {line!r}")
                        tr.stored(user, mid, folder, "append-big" if big else "append")
                    else:
                        tr.anomaly(f"APPEND {mid} to {user}/{folder}: {line!r}")
                finally:
                    if im2 is not im:
                        im2.close()
        except ProtocolError as e:
            tr.anomaly(f"append: {e}")
        except CONN_ERRORS:
            pass
        finally:
            if im is not None:
                im.close()
        time.sleep(0.03)


def move_worker(srv, tr, seed):
    rng = random.Random(seed)
    user = DELIVER_MOVE
    while not tr.stop.is_set():
        im = None
        try:
            im = imap_session(srv, user)
            while not tr.stop.is_set():
                src, dst = ("INBOX", "Moved") if rng.random() < 0.75 else ("Moved", "INBOX")
                select(im, src)
                uids = uid_search(im, "ALL")
                if not uids:
                    time.sleep(0.1)
                    continue
                pick = rng.sample(uids, min(len(uids), rng.choice([1, 1, 2, 3])))
                ids = fetch_ids(im, pick)
                for uid in pick:
                    mid = ids.get(uid)
                    if mid is None:
                        tr.anomaly(f"MOVE: {user}/{src} UID {uid} has no X-Relia-Id")
                        continue
                    if not tr.observe(user, mid, src):
                        continue
                    tr.attempts["move"] += 1
                    tr.set(user, mid, {src, dst})   # until the reply is seen
                    st, line, _ = im.command(f"UID MOVE {uid} {dst}")
                    if st == "OK":
                        tr.set(user, mid, {dst})
                        tr.acked["move"] += 1
                    else:
                        tr.set(user, mid, {src})
                        tr.anomaly(f"UID MOVE {uid} ({mid}) {src}->{dst}: {line!r}")
        except ProtocolError as e:
            tr.anomaly(f"move: {e}")
        except CONN_ERRORS:
            pass
        finally:
            if im is not None:
                im.close()
        time.sleep(0.05)


def expunge_worker(srv, tr, seed):
    rng = random.Random(seed)
    user, folder = APPEND_DEL, "Archive"
    while not tr.stop.is_set():
        im = None
        try:
            im = imap_session(srv, user)
            while not tr.stop.is_set():
                select(im, folder)
                # Messages flagged by an earlier session whose EXPUNGE reply was lost.
                flagged = fetch_ids(im, uid_search(im, "DELETED"))
                for uid, mid in flagged.items():
                    tr.observe(user, mid, folder)
                live = uid_search(im, "UNDELETED")
                if not live:
                    time.sleep(0.2)
                    continue
                pick = rng.sample(live, min(len(live), rng.choice([1, 2])))
                ids = fetch_ids(im, pick)
                victims = []
                for uid in pick:
                    mid = ids.get(uid)
                    if mid is None or not tr.observe(user, mid, folder):
                        tr.anomaly(f"EXPUNGE: {user}/{folder} UID {uid} unknown ({mid})")
                        continue
                    victims.append(mid)
                    tr.set(user, mid, {folder, None})
                doomed = set(victims) | set(flagged.values())
                for mid in doomed:
                    tr.set(user, mid, {folder, None})
                tr.attempts["expunge"] += 1
                im.ok(f"UID STORE {','.join(map(str, pick))} +FLAGS.SILENT (\\Deleted)")
                st, line, _ = im.command("EXPUNGE")
                if st != "OK":
                    tr.anomaly(f"EXPUNGE: {line!r}")
                    continue
                for mid in doomed:
                    tr.set(user, mid, {None})
                tr.acked["expunge"] += len(doomed)
                time.sleep(rng.uniform(0, 0.3))
        except ProtocolError as e:
            tr.anomaly(f"expunge: {e}")
        except CONN_ERRORS:
            pass
        finally:
            if im is not None:
                im.close()
        time.sleep(0.05)


def pop3_worker(srv, tr, seed):
    rng = random.Random(seed)
    user = DELIVER_POP
    while not tr.stop.is_set():
        c = None
        victims = []
        quit_sent = False
        try:
            c = LineConn(srv.host, srv.ports["pop3"], timeout=20)
            c.expect_ok()
            c.pop3_login(user, USERS[user])
            uidls = c.pop3_uidl_all()
            if not uidls:
                c.cmd_ok("QUIT")
                time.sleep(0.2)
                continue
            for n, _ in rng.sample(uidls, min(len(uidls), rng.choice([1, 2, 3]))):
                raw = c.pop3_retr(n)
                mid = msg_id(raw)
                if mid is None or not tr.observe(user, mid, "INBOX"):
                    tr.anomaly(f"POP3 message {n} without a known id: {raw[:200]!r}")
                    continue
                if strip_received(raw) != tr.sent[mid]:
                    tr.anomaly(f"POP3 RETR {mid}: bytes differ from what was sent")
                c.cmd_ok(f"DELE {n}")
                victims.append(mid)
                tr.set(user, mid, {"INBOX", None})
            tr.attempts["pop3-quit"] += 1
            quit_sent = True
            r = c.cmd("QUIT")
            if r.startswith("+OK"):
                for mid in victims:
                    tr.set(user, mid, {None})
                tr.acked["pop3-dele"] += len(victims)
            else:
                tr.anomaly(f"POP3 QUIT: {r!r}")
        except ProtocolError as e:
            tr.anomaly(f"pop3: {e}")
        except CONN_ERRORS:
            if not quit_sent:
                # DELE without QUIT deletes nothing: the message is still in INBOX.
                for mid in victims:
                    tr.set(user, mid, {"INBOX"})
        finally:
            if c is not None:
                c.close()
        time.sleep(rng.uniform(0.05, 0.4))


# ---- verification -----------------------------------------------------------------------------
def collect(srv):
    """(user, mid) -> [(folder, bytes)] of everything in the store."""
    found = collections.defaultdict(list)
    strays = []
    for user in USERS:
        im = imap_session(srv, user)
        try:
            for folder in FOLDERS:
                st, line, _ = im.command(f"SELECT {folder}")
                if st != "OK":
                    continue
                _, untagged = im.ok("UID FETCH 1:* (UID BODY.PEEK[])")
                for l, lits in untagged:
                    if not re.match(rb"\* \d+ FETCH", l):
                        continue
                    if not lits:
                        strays.append(f"{user}/{folder}: FETCH without body: {l[:120]!r}")
                        continue
                    mid = msg_id(lits[0])
                    if mid is None:
                        strays.append(f"{user}/{folder}: message without id {lits[0][:120]!r}")
                        continue
                    found[(user, mid)].append((folder, lits[0]))
        finally:
            im.close()
    return found, strays


def verify(srv, tr):
    found, problems = collect(srv)
    for key in set(found) - set(tr.poss):
        problems.append(f"{key}: stored but never sent to this account")
    lost = dup = 0
    for key, places in tr.poss.items():
        user, mid = key
        got = found.get(key, [])
        if len(got) > 1:
            dup += 1
            problems.append(f"{user} {mid}: stored {len(got)} times: {[f for f, _ in got]} "
                            f"(possible {places})")
            continue
        where = got[0][0] if got else None
        if where not in places:
            if where is None:
                lost += 1
            problems.append(f"{user} {mid}: found in {where}, expected one of {places}")
        if got:
            raw = got[0][1]
            body = raw if tr.kind[mid] == "append" else strip_received(raw)
            if body != tr.sent[mid]:
                problems.append(f"{user} {mid}: bytes differ (len {len(body)} vs "
                                f"{len(tr.sent[mid])})")
    for group in tr.groups:
        # Groups the expunge worker never touched must be all there or all absent.
        if any((APPEND_DEL, mid) in tr.observed for mid in group):
            continue
        n = sum(1 for mid in group if found.get((APPEND_DEL, mid)))
        if n not in (0, len(group)):
            problems.append(f"MULTIAPPEND {group} half done: {n} of {len(group)} stored")
    return problems, lost, dup, sum(len(v) for v in found.values())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_during_mixed_load(sarn_factory):
    srv = sarn_factory(users=USERS, overrides={"limits": {"max_message_size": "8M"}})
    im = imap_session(srv, DELIVER_MOVE)
    im.ok("CREATE Moved")
    im.close()

    tr = Tracker()
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in [
        (delivery_worker, (srv, tr, "lmtp", 1)), (delivery_worker, (srv, tr, "lmtp", 2)),
        (delivery_worker, (srv, tr, "smtp", 3)),
        (append_worker, (srv, tr, 4)), (append_worker, (srv, tr, 5)),
        (move_worker, (srv, tr, 6)), (expunge_worker, (srv, tr, 7)), (pop3_worker, (srv, tr, 8)),
    ]]
    for t in threads:
        t.start()
    rng = random.Random()
    kills = 0
    t0 = time.monotonic()
    while kills < 10 or time.monotonic() - t0 < 40:
        time.sleep(rng.uniform(0.4, 3.0))
        srv.kill()
        kills += 1
        time.sleep(rng.uniform(0, 0.3))
        srv.start()
    time.sleep(1.5)
    tr.stop.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "workers hang"

    problems, lost, dup, stored = verify(srv, tr)
    acked_msgs = sum(tr.acked[k] for k in ("lmtp", "smtp", "append", "append-big",
                                           "multiappend"))
    print(f"\nRESULT kill_mixed: {kills} kills, attempts {dict(tr.attempts)}, "
          f"acknowledged {dict(tr.acked)} ({acked_msgs} messages stored), {stored} in store "
          f"at the end, lost {lost}, duplicated {dup}, anomalies {len(tr.anomalies)}")
    assert tr.anomalies == [], "\n".join(tr.anomalies[:30])
    assert problems == [], f"{len(problems)} problems after {kills} kills:\n" + \
        "\n".join(problems[:40])
    assert tr.acked["move"] > 5 and tr.acked["expunge"] > 3 and tr.acked["pop3-dele"] > 3 \
        and tr.acked["append-big"] > 0 and tr.acked["multiappend"] > 0 and acked_msgs > 100, f"too little traffic: {tr.acked}"
    srv.stop_ok()
    r = srv.cli("check")
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
