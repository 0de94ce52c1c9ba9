#!/usr/bin/python3
"""Side-by-side IMAP benchmark of sarn and Dovecot on this machine: a 10,000-message INBOX
filled over LMTP, then login + SELECT, header lists, body fetches, SEARCH, STORE, IDLE push
latency and memory per selected session. Not a test; nothing runs it automatically.

    sudo /usr/bin/python3 bench/imap/run.py [--quick] [--sarn PATH] [--out FILE] [--json FILE]

Needs root (Dovecot switches to its own users), the Debian packages dovecot-core,
dovecot-imapd, dovecot-lmtpd and whois (mkpasswd), and a built sarn. Both servers run on
127.0.0.1 from a scratch directory that is removed at the end. See README.md next to this
file for what is measured and how. Server set-up, LMTP client, process/memory helpers come
from ../delivery-pop3/run.py (imported, not copied).
"""
import argparse
import email.utils
import importlib.util
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

sys.dont_write_bytecode = True  # leave bench/delivery-pop3/ as it is
_spec = importlib.util.spec_from_file_location(
    "bench_delivery_pop3", os.path.join(REPO, "bench", "delivery-pop3", "run.py"))
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

log, free_port, wait_listening, memory_by_pid, proc_names = (
    B.log, B.free_port, B.wait_listening, B.memory_by_pid, B.proc_names)
DOMAIN, PASSWORD, DOVECOT = B.DOMAIN, B.PASSWORD, B.DOVECOT
BIG_USER = "big@" + DOMAIN
SEARCH_WORD = "quokka"       # in the body of every 97th synthetic message, nowhere else
SUBJECT_WORD = "invoice"     # in the subject of every 25th synthetic message (+ some corpus)
FLAG_STORES = 200            # single-message STOREs per repetition


# ----------------------------------------------------------------------------- messages

WORDS = ("the of and to in is that for it as with was on be by this are from at or an have "
         "not which but all were when we there can more if no out so said what up its about "
         "into than them only other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did many before must "
         "through back years where much your way well down should because each just those "
         "people how too little state good very make world still own see men work long get "
         "here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three report budget "
         "meeting schedule project release server mailbox delivery quarterly review draft "
         "attached please thanks regards tomorrow monday friday office team customer").split()
NAMES = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy "
         "rupert sybil trent victor walter").split()


def synth_message(i, rnd):
    """A text/plain message of 2-20 kB (log-uniform), deterministic per i."""
    size = int(2000 * 10 ** rnd.random())
    subj = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 8)))
    if i % 50 == 1:
        subj = "%s %s" % (SUBJECT_WORD.capitalize(), subj)
    frm, to = rnd.choice(NAMES), rnd.choice(NAMES)
    date = email.utils.format_datetime(
        email.utils.localtime().replace(year=2026, month=1 + i % 12, day=1 + i % 28,
                                        hour=i % 24, minute=i % 60, second=0, microsecond=0))
    head = ("From: %s <%s@example.org>\r\nTo: %s <%s@example.com>\r\nSubject: %s\r\n"
            "Date: %s\r\nMessage-ID: <synth-%d@bench.example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (frm.capitalize(), frm, to.capitalize(), to, subj, date, i)).encode()
    lines, n = [], len(head)
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12))
        lines.append(line)
        n += len(line) + 2
    if i % 97 == 0:
        lines.insert(len(lines) // 2, "we saw a %s near the office today" % SEARCH_WORD)
    return B.crlf_stuffed(head + "\r\n".join(lines).encode() + b"\r\n")


def mailbox_messages(n, n_big, corpus):
    """n messages in delivery order: n_big 1 MiB messages spread evenly, the rest alternately
    a corpus message (cycled, name order) and a synthetic 2-20 kB one."""
    rnd = random.Random(42)
    big_at = {int((k + 0.5) * n / n_big) for k in range(n_big)} if n_big else set()
    out = []
    for j in range(n):
        if j in big_at:
            out.append(B.big_message(j, 1 << 20))
        elif j % 2 == 0:
            out.append(corpus[(j // 2) % len(corpus)])
        else:
            out.append(synth_message(j, rnd))
    return out


# ----------------------------------------------------------------------------- IMAP client

class Imap:
    """A minimal IMAP client on a raw socket: one logical response at a time (literals are
    skipped, or kept with keep=True)."""

    def __init__(self, port, timeout=300):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.n = 0
        self.greeting = self.response()[0]
        if not self.greeting.startswith(b"* OK"):
            raise RuntimeError("greeting %r" % self.greeting)

    def _fill(self):
        data = self.s.recv(1 << 20)
        if not data:
            raise EOFError("connection closed by server")
        self.buf += data

    def response(self, keep=False):
        """(text without literals, literal bytes) of the next response."""
        parts, lits, scan = [], 0, 0
        while True:
            i = self.buf.find(b"\r\n", scan)
            if i < 0:
                scan = max(0, len(self.buf) - 1)
                self._fill()
                continue
            line = bytes(self.buf[:i])
            del self.buf[:i + 2]
            scan = 0
            parts.append(line)
            if line.endswith(b"}"):
                j = line.rfind(b"{")
                if j >= 0 and line[j + 1:-1].isdigit():
                    n = int(line[j + 1:-1])
                    while len(self.buf) < n:
                        self._fill()
                    if keep:
                        parts.append(bytes(self.buf[:n]))
                    del self.buf[:n]
                    lits += n
                    continue
            return b"".join(parts), lits

    def send(self, cmd):
        """Sends a tagged command; returns the tag."""
        self.n += 1
        tag = b"a%d" % self.n
        self.s.sendall(tag + b" " + cmd + b"\r\n")
        return tag

    def wait(self, tag, keep=False, cmd=None):
        """Reads up to the tagged reply: (untagged texts, FETCH count, literal bytes, total
        bytes). Raises unless OK."""
        untagged, fetches, lits, total = [], 0, 0, 0
        while True:
            text, l = self.response(keep)
            lits += l
            total += len(text) + l
            if text.startswith(tag + b" "):
                if text[len(tag) + 1:len(tag) + 3] != b"OK":
                    raise RuntimeError("IMAP %r -> %r" % (cmd, text[:300]))
                return untagged, fetches, lits, total
            if text.startswith(b"* ") and b" FETCH (" in text[:30]:
                fetches += 1
                if keep:
                    untagged.append(text)
            else:
                untagged.append(text)

    def cmd(self, cmd, keep=False):
        return self.wait(self.send(cmd), keep, cmd)

    def login(self, user):
        self.cmd(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))

    def select(self, mailbox=b"INBOX"):
        untagged = self.cmd(b"SELECT " + mailbox)[0]
        for t in untagged:
            m = re.match(rb"\* (\d+) EXISTS", t)
            if m:
                return int(m.group(1))
        raise RuntimeError("SELECT without EXISTS")

    def logout(self):
        try:
            self.cmd(b"LOGOUT")
        except Exception:
            pass
        self.close()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def session(port):
    c = Imap(port)
    c.login(BIG_USER)
    c.select()
    return c


# ----------------------------------------------------------------------------- servers

class SarnImap(B.Sarn):
    def __init__(self, scratch, binary):  # noqa: super().__init__ writes a POP3 config
        self.dir = os.path.join(scratch, "sarn")
        os.makedirs(self.dir)
        self.bin = os.path.join(self.dir, "sarn")
        shutil.copy2(binary, self.bin)  # others may rebuild the binary during the run
        self.src_binary = binary
        self.imap, self.lmtp = free_port(), free_port()
        self.conf = os.path.join(self.dir, "sarn.conf")
        self.logfile = os.path.join(self.dir, "sarn.log")
        self.proc = self.logf = None
        with open(self.conf, "w") as f:
            f.write(f"""[server]
data_dir = {self.dir}/data
hostname = bench.example.com
log_level = warn
; workers = 0 (one per core), auth_threads = 2, delivery_threads: the defaults

[listen]
imap = 127.0.0.1:{self.imap}
lmtp = 127.0.0.1:{self.lmtp}
imaps =
pop3 =
pop3s =
smtp =
submission =
submissions =

[limits]
auth_fail_delay_ms = 0
max_connections_per_ip = 1000
max_connections_per_user = 1000
""")

    def version(self):
        """Version, git commit of the checkout the binary was built in (when it is one)."""
        v = B.run([self.bin, "--version"])
        src = os.path.dirname(os.path.dirname(os.path.realpath(self.src_binary)))
        try:
            rev = B.run(["git", "-C", src, "rev-parse", "--short", "HEAD"])
            dirty = B.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no"])
            v += ", git %s in %s%s" % (rev, src, " (with uncommitted changes)" if dirty else "")
        except (B.subprocess.CalledProcessError, OSError):
            pass
        try:
            bt = json.load(open(os.path.join(os.path.dirname(os.path.realpath(
                self.src_binary)), "meson-info", "intro-buildoptions.json")))
            v += ", buildtype %s" % [o["value"] for o in bt if o["name"] == "buildtype"][0]
        except (OSError, ValueError, IndexError):
            pass
        return v

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = B.subprocess.Popen([self.bin, "serve", "-c", self.conf],
                                       stdout=self.logf, stderr=self.logf)
        wait_listening([self.imap, self.lmtp], self.proc, "sarn", self.logfile)


class DovecotImap(B.Dovecot):
    def __init__(self, scratch, users, fsync="always"):  # noqa: see SarnImap
        self.name = "Dovecot"
        self.dir = os.path.join(scratch, "dovecot")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.imap, self.lmtp = free_port(), free_port()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.proc = self.logf = None
        uid, gid = B.mailuser()
        home = os.path.join(self.dir, "home")
        os.makedirs(os.path.join(home, DOMAIN))
        for u in users:
            h = os.path.join(home, DOMAIN, u.split("@")[0])
            os.makedirs(h)
            os.chown(h, uid, gid)
        passwd = os.path.join(self.dir, "passwd")
        hashed = B.yescrypt_hash()
        with open(passwd, "w") as f:
            for u in users:
                f.write("%s:{CRYPT}%s::::::\n" % (u, hashed))
        os.chmod(passwd, 0o644)
        with open(self.conf, "w") as f:
            f.write(f"""# Dovecot for the sarn IMAP benchmark: loopback only, no TLS, defaults unless noted.
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.logfile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = {fsync}
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
  default_fields = uid={uid} gid={gid} home={home}/%d/%n
}}
protocol imap {{
  # default 10: the memory step opens many sessions of one account from 127.0.0.1
  mail_max_userip_connections = 1000
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp}
  }}
  unix_listener lmtp {{
    mode = 0
  }}
}}
""")

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = B.subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                       stdout=self.logf, stderr=self.logf)
        wait_listening([self.imap, self.lmtp], self.proc, self.name, self.logfile)


def cpu_seconds(pids):
    """User + system CPU of the processes, including their reaped children (Dovecot's master
    reaps its imap/lmtp processes, so their CPU stays counted)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tck


class Timer:
    """Wall time and server CPU time of a block."""

    def __init__(self, server):
        self.server = server

    def __enter__(self):
        self.cpu0 = cpu_seconds(self.server.pids())
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.cpu = cpu_seconds(self.server.pids()) - self.cpu0
        return False


# ----------------------------------------------------------------------------- workers

def body_worker(port, uidset, barrier, q):
    """Logs in and selects before the barrier, then UID FETCH uidset BODY.PEEK[]."""
    try:
        c = session(port)
        barrier.wait()
        t0 = time.monotonic()
        _, n, lits, _ = c.cmd(b"UID FETCH %s BODY.PEEK[]" % uidset)
        t1 = time.monotonic()
        c.logout()
        q.put((t0, t1, n, lits, 0, None))
    except BaseException as e:  # reported to the parent, which fails the run
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


def uid_ranges(uids, k):
    """k contiguous UID ranges covering uids (sorted) with about equal message counts."""
    out = []
    for i in range(k):
        part = uids[i * len(uids) // k:(i + 1) * len(uids) // k]
        out.append(b"%d:%d" % (part[0], part[-1]))
    return out


def lmtp_open(port):
    c = B.Conn(port)
    code, _ = c.smtp_reply()
    assert code == 220, code
    c.s.sendall(b"LHLO bench.example.org\r\n")
    code, _ = c.smtp_reply()
    assert code == 250, code
    return c


def lmtp_send(c, rcpt, payload):
    c.s.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt.encode())
    codes = [c.smtp_reply() for _ in range(3)]
    if [x[0] for x in codes] != [250, 250, 354]:
        raise RuntimeError("LMTP %r" % codes)
    c.s.sendall(payload + b".\r\n")
    t_dot = time.monotonic()
    code, lines = c.smtp_reply()
    if code != 250:
        raise RuntimeError("LMTP end of data: %r" % lines)
    return t_dot


def idle_latency(s, n, payload, timeout=10.0):
    """A client IDLEs on the big INBOX; n messages are delivered over LMTP one after the other;
    returns the seconds from each LMTP 250 to the matching `* k EXISTS` (None = missed)."""
    c = session(s.port_imap)
    exists0 = c.select()
    tag = c.send(b"IDLE")
    text, _ = c.response()
    if not text.startswith(b"+"):
        raise RuntimeError("IDLE -> %r" % text)
    q = queue.Queue()

    def reader():
        try:
            while True:
                text, _ = c.response()
                now = time.monotonic()
                m = re.match(rb"\* (\d+) EXISTS", text)
                if m:
                    q.put((now, int(m.group(1))))
                if text.startswith(tag + b" "):
                    return
        except Exception as e:
            q.put((None, str(e)))
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    lm = lmtp_open(s.lmtp)
    out = []
    for k in range(n):
        time.sleep(0.05)
        t_dot = lmtp_send(lm, BIG_USER, payload)
        t250 = time.monotonic()
        want = exists0 + k + 1
        got = None
        deadline = t250 + timeout
        while time.monotonic() < deadline:
            try:
                t, v = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if t is None:
                raise RuntimeError("IDLE reader: %s" % v)
            if v >= want:
                got = t
                break
        out.append(None if got is None else (got - t250, got - t_dot))
    lm.s.sendall(b"QUIT\r\n")
    lm.close()
    c.s.sendall(b"DONE\r\n")
    th.join(10)
    c.logout()
    return out


# ----------------------------------------------------------------------------- benchmark

class Results(B.Results):
    pass


def pct(vals, p):
    v = sorted(vals)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def bench(args, scratch, servers):
    corpus = B.load_corpus(args.corpus)
    msgs = mailbox_messages(args.messages, args.big, corpus)
    total = sum(sz for _, sz in msgs)
    log("mailbox: %d messages, %.1f MB, mean %.0f bytes (%d corpus files, %d × 1 MiB)"
        % (len(msgs), total / 1e6, total / len(msgs), len(corpus), args.big))
    users = [BIG_USER]
    sarn = SarnImap(scratch, args.sarn)
    dove = DovecotImap(scratch, users)
    both = [sarn, dove]
    for s in both:
        s.port_imap = s.imap
    info = B.machine_info(scratch, sarn, dove)
    sarn.add_users(users)
    res = Results()
    notes = []
    for s in both:
        s.start()
        servers.append(s)
    time.sleep(1.0)

    # 1. Fill: every message over one LMTP connection, in the same order (same UIDs), both
    # servers at the same time (this is the set-up; filling one after the other would take
    # twice as long on a loaded 2-core machine).
    jobs = [(BIG_USER.encode(),) + m for m in msgs]
    barrier = B.MP.Barrier(len(both))
    qs = [B.MP.Queue() for _ in both]
    procs = [B.MP.Process(target=B.lmtp_worker, args=(s.lmtp, jobs, barrier, q), daemon=True)
             for s, q in zip(both, qs)]
    cpu0 = [cpu_seconds(s.pids()) for s in both]
    for p in procs:
        p.start()
    for s, q, p, c0 in zip(both, qs, procs, cpu0):
        t0, t1, n, nbytes, errors, first_err = q.get(timeout=1800)
        cpu = cpu_seconds(s.pids()) - c0
        p.join(5)
        if errors:
            raise RuntimeError("%s: fill: %d errors, first: %s" % (s.name, errors, first_err))
        wall = t1 - t0
        res.add("fill", s.name, rate=n / wall, secs=wall, cpu=cpu / n, mbs=nbytes / wall / 1e6)
        log("fill %-8s %d msgs %.1f s %.0f msg/s, server CPU %.1f s" % (s.name, n, wall,
                                                                        n / wall, cpu))

    # First header lists (nothing cached by the servers yet for these items), then the UID
    # and size list every later step uses (not timed).
    ENV = b"UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"
    HDR = b"UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
    listing = {}
    for s in both:
        c = session(s.imap)
        for key, cmd in (("env_first", ENV), ("hdr_first", HDR)):
            with Timer(s) as t:
                _, n, lits, tot = c.cmd(cmd)
            res.add(key, s.name, secs=t.wall, cpu=t.cpu, n=n, bytes=tot)
            log("%s %-8s %d FETCH %.2f s (%.1f MB), server CPU %.2f s"
                % (key, s.name, n, t.wall, tot / 1e6, t.cpu))
            if n != len(msgs):
                notes.append("%s: `%s` returned %d FETCH responses for %d messages"
                             % (s.name, cmd.decode(), n, len(msgs)))
        fetched = c.cmd(b"UID FETCH 1:* (UID RFC822.SIZE)", keep=True)[0]
        c.logout()
        lst = []
        for text in fetched:
            u = re.search(rb"UID (\d+)", text)
            z = re.search(rb"RFC822\.SIZE (\d+)", text)
            lst.append((int(u.group(1)), int(z.group(1))))
        listing[s.name] = sorted(lst)
    # The sizes differ by the trace headers each server prepends (Return-Path, Delivered-To,
    # Received), so only the UIDs are compared.
    if [u for u, _ in listing[sarn.name]] != [u for u, _ in listing[dove.name]]:
        notes.append("UID lists differ: sarn %d UIDs, Dovecot %d"
                     % (len(listing[sarn.name]), len(listing[dove.name])))
    for s in both:
        notes_size = statistics.median(a - b for a, b in zip(
            [z for _, z in listing[s.name]], [z for _, z in msgs]))
        log("%s: RFC822.SIZE - delivered size, median %+d bytes" % (s.name, notes_size))
    uids = {s.name: [u for u, _ in listing[s.name]] for s in both}
    bigs = {s.name: [u for u, z in listing[s.name] if z > 900_000] for s in both}
    searches = {}

    for r in range(args.reps):
        for s in both:
            name = s.name
            # 2. login + SELECT INBOX, a new connection each round
            lat_login, lat_sel = [], []
            with Timer(s) as t:
                for _ in range(args.logins):
                    t0 = time.monotonic()
                    c = Imap(s.imap)
                    c.login(BIG_USER)
                    t1 = time.monotonic()
                    c.select()
                    t2 = time.monotonic()
                    c.logout()
                    lat_login.append(t1 - t0)
                    lat_sel.append(t2 - t1)
            res.add("login_select", name, rate=args.logins / t.wall, cpu=t.cpu / args.logins,
                    secs=t.wall)
            res.add("select", name, secs=statistics.median(lat_sel))
            log("rep %d %-8s login+SELECT %.1f/s (SELECT median %.1f ms, login %.1f ms)"
                % (r + 1, name, args.logins / t.wall, 1000 * statistics.median(lat_sel),
                   1000 * statistics.median(lat_login)))

            c = session(s.imap)
            # 3. warm header lists
            for key, cmd in (("env_warm", ENV), ("hdr_warm", HDR)):
                with Timer(s) as t:
                    _, n, _, tot = c.cmd(cmd)
                res.add(key, name, secs=t.wall, cpu=t.cpu, n=n, bytes=tot)
                log("rep %d %-8s %s %.2f s (server CPU %.2f s)" % (r + 1, name, key, t.wall,
                                                                     t.cpu))
            # 4a. one ~1 MB message, several times
            lat = []
            with Timer(s) as t:
                for k in range(args.open_n):
                    uid = bigs[name][k % len(bigs[name])] if bigs[name] else uids[name][-1]
                    t0 = time.monotonic()
                    _, n, lits, _ = c.cmd(b"UID FETCH %d BODY.PEEK[]" % uid)
                    lat.append(time.monotonic() - t0)
                    if n != 1 or lits < 900_000:
                        raise RuntimeError("%s: UID FETCH %d BODY.PEEK[]: %d responses, %d "
                                           "bytes" % (name, uid, n, lits))
            res.add("open_big", name, secs=statistics.median(lat), cpu=t.cpu / args.open_n)
            log("rep %d %-8s open 1 MB message: median %.1f ms" % (r + 1, name,
                                                                  1000 * statistics.median(lat)))
            # 5. SEARCH (run twice per repetition)
            for key, cmd in (("search_text", b'UID SEARCH TEXT "%s"' % SEARCH_WORD.encode()),
                             ("search_subject", b'UID SEARCH SUBJECT "%s"'
                              % SUBJECT_WORD.encode())):
                for _ in range(2):
                    with Timer(s) as t:
                        untagged = c.cmd(cmd)[0]
                    found = []
                    for text in untagged:
                        if text.startswith(b"* SEARCH"):
                            found += [int(x) for x in text.split()[2:]]
                    searches.setdefault((key, name), set()).add(tuple(sorted(found)))
                    res.add(key, name, secs=t.wall, cpu=t.cpu, n=len(found))
                log("rep %d %-8s %s %.3f s, %d found" % (r + 1, name, key, t.wall, len(found)))
            # 6. STORE \Seen on 1:* (set, then clear), then single-message flag changes
            for key, op in (("store_all", b"+"), ("store_all_clear", b"-")):
                with Timer(s) as t:
                    _, n, _, _ = c.cmd(b"UID STORE 1:* %sFLAGS (\\Seen)" % op)
                res.add(key, name, secs=t.wall, cpu=t.cpu, n=n)
                log("rep %d %-8s %s %.2f s, %d FETCH" % (r + 1, name, key, t.wall, n))
            step = max(1, len(uids[name]) // FLAG_STORES)
            pick = uids[name][::step][:FLAG_STORES]
            op = b"+" if r % 2 == 0 else b"-"
            with Timer(s) as t:
                for u in pick:
                    c.cmd(b"UID STORE %d %sFLAGS (\\Flagged)" % (u, op))
            res.add("store_one", name, rate=len(pick) / t.wall, cpu=t.cpu / len(pick),
                    secs=t.wall)
            log("rep %d %-8s single STOREs %.0f/s" % (r + 1, name, len(pick) / t.wall))
            c.logout()

            # 4b. all bodies: 1 client, then 8 clients on an eighth each
            for key, k in (("bodies_1", 1), ("bodies_8", 8)):
                ranges = [b"1:*"] if k == 1 else uid_ranges(uids[name], k)
                with Timer(s) as t:
                    wall, n, nbytes, _ = B.parallel(body_worker, [(s.imap, u) for u in ranges])
                res.add(key, name, rate=n / wall, mbs=nbytes / wall / 1e6, secs=wall,
                        cpu=t.cpu, n=n)
                log("rep %d %-8s %s %d msgs %.1f MB %.2f s %.0f msg/s %.0f MB/s"
                    % (r + 1, name, key, n, nbytes / 1e6, wall, n / wall, nbytes / wall / 1e6))
                if n != len(uids[name]):
                    notes.append("%s: %s fetched %d of %d messages" % (name, key, n,
                                                                      len(uids[name])))

    # 7. IDLE push latency (adds messages to the INBOX: after every other step but memory)
    idle_msg = synth_message(1, random.Random(7))[0]
    per = -(-args.idle_n // args.reps)
    for r in range(args.reps):
        for s in both:
            lat = idle_latency(s, per, idle_msg)
            missed = sum(1 for x in lat if x is None)
            for x in lat:
                if x is not None:
                    res.add("idle", s.name, secs=x[0])
                    res.add("idle_dot", s.name, secs=x[1])
            if missed:
                res.add("idle_missed", s.name, n=missed)
                notes.append("%s: %d of %d IDLE notifications not seen within 10 s"
                             % (s.name, missed, per))
            got = [x[0] for x in lat if x is not None]
            log("rep %d %-8s IDLE: %d deliveries, median %.1f ms, max %.1f ms, %d missed"
                % (r + 1, s.name, len(lat), 1000 * statistics.median(got) if got else -1,
                   1000 * max(got) if got else -1, missed))

    # 8. memory per selected session (all on the big INBOX): the cost of a further
    # `sessions` sessions once `sessions` are open (so one-time caches and heap growth of the
    # first sessions do not count), sampled 3 times 1 s apart.
    for s in both:
        conns = open_sessions(s, args.sessions)
        try:
            time.sleep(2.0)
            pids = s.pids()
            before = memory_by_pid(pids)
            names0 = proc_names(pids)
            conns += open_sessions(s, args.sessions)
            for r in range(3):
                time.sleep(1.0)
                pids = s.pids()
                now = memory_by_pid(pids)
                same_rss = sum(v[0] for p, v in before.items() if p in now)
                same_pss = sum(v[1] for p, v in before.items() if p in now)
                rss1 = sum(v[0] for v in now.values())
                pss1 = sum(v[1] for v in now.values())
                res.add("mem", s.name, rss0=sum(v[0] for v in before.values()),
                        pss0=sum(v[1] for v in before.values()), rss=rss1, pss=pss1,
                        per_rss=(rss1 - same_rss) / args.sessions,
                        per_pss=(pss1 - same_pss) / args.sessions,
                        names=proc_names(pids), names0=names0)
                log("memory %d %-8s %d → %d sessions: RSS %d kB, PSS %d kB, %.0f kB PSS/session"
                    % (r + 1, s.name, args.sessions, 2 * args.sessions, rss1, pss1,
                       (pss1 - same_pss) / args.sessions))
        finally:
            for c in conns:
                c.logout()

    # Sanity: both servers found the same messages.
    for key in ("search_text", "search_subject"):
        a, b = searches.get((key, sarn.name)), searches.get((key, dove.name))
        if a != b:
            sa = set(next(iter(a))) if a else set()
            sb = set(next(iter(b))) if b else set()
            notes.append("%s: results differ: sarn %d UIDs, Dovecot %d; only sarn: %s; only "
                         "Dovecot: %s%s" % (key, len(sa), len(sb), sorted(sa - sb)[:8],
                                            sorted(sb - sa)[:8],
                                            " (varied between runs)" if len(a) > 1 or
                                            len(b) > 1 else ""))
    for s in both:
        if s.proc.poll() is not None:
            notes.append("%s exited with %s during the run" % (s.name, s.proc.returncode))
    info.append(("load average at end", "%.2f %.2f %.2f" % os.getloadavg()))
    info.append(("run time", "%.0f s" % (time.monotonic() - B.T0)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s|%s" % k: v for k, v in res.data.items()}, f, indent=1)
    return render(args, info, res, sarn, dove, msgs, notes, searches)


def open_sessions(s, n):
    """n sessions, each LOGIN + SELECT INBOX, opened by 8 threads."""
    conns, errors = [], []
    lock = threading.Lock()

    def opener(k):
        for _ in range(k):
            try:
                c = session(s.imap)
                with lock:
                    conns.append(c)
            except Exception as e:
                errors.append(str(e))
    threads = [threading.Thread(target=opener, args=(n // 8 + (1 if i < n % 8 else 0),))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for c in conns:
            c.close()
        raise RuntimeError("%s: %d sessions failed, first: %s" % (s.name, len(errors),
                                                                  errors[0]))
    return conns


def render(args, info, res, sarn, dove, msgs, notes, searches):
    L = ["Machine and versions:", "", "| | |", "|---|---|"]
    L += ["| %s | %s |" % kv for kv in info]
    L += ["", "Median of the repetitions (%d); ratio = sarn / Dovecot; server CPU = user + "
          "system seconds of the server's processes during the step." % args.reps, "",
          "| measurement | sarn | Dovecot | sarn / Dovecot | better is | server CPU sarn / "
          "Dovecot |", "|---|---|---|---|---|---|"]

    def row(label, key, field, fmt, higher, cpu=True):
        v = {s.name: res.median(key, s.name, field) for s in (sarn, dove)}
        if v[sarn.name] is None or v[dove.name] is None:
            L.append("| %s | %s | %s | – | %s | |" % (label, v[sarn.name], v[dove.name],
                                                     "higher" if higher else "lower"))
            return
        cells = [fmt(v[s.name]) for s in (sarn, dove)]
        cpus = ""
        if cpu:
            ca, cb = res.median(key, sarn.name, "cpu"), res.median(key, dove.name, "cpu")
            if ca is not None and cb is not None:
                cpus = "%s / %s" % (fcpu(ca), fcpu(cb))
        ratio = ("%.2f" % (v[sarn.name] / v[dove.name]) if v[dove.name] > 0 and v[sarn.name] > 0
                 else "n/a")
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            label, cells[0], cells[1], ratio, "higher" if higher else "lower", cpus))

    def fcpu(x):
        return "%.0f ms" % (x * 1000) if x < 10 else "%.1f s" % x

    sec = lambda x: "%.0f ms" % (x * 1000) if x < 1 else "%.2f s" % x  # noqa: E731
    ms = lambda x: "%.1f ms" % (x * 1000)  # noqa: E731
    rate = lambda unit: (lambda x: "%.0f %s" % (x, unit) if x >= 100 else "%.1f %s" % (x, unit))  # noqa
    N = len(msgs)
    mb = sum(z for _, z in msgs) / 1e6
    row("LMTP fill, %d messages (%.0f MB), 1 connection, both servers filled at the same time "
        "(once; CPU per message)" % (N, mb), "fill", "rate", rate("msg/s"), True)
    row("IMAP LOGIN + SELECT INBOX + LOGOUT, new connection each (%d rounds)" % args.logins,
        "login_select", "rate", rate("ops/s"), True)
    row("SELECT INBOX alone (%d messages), latency" % N, "select", "secs", ms, False, cpu=False)
    for key, what in (("env", "UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"),
                      ("hdr", "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO "
                              "SUBJECT DATE)])")):
        row("`%s`, first run (once)" % what, key + "_first", "secs", sec, False)
        row("`%s`, warm" % what, key + "_warm", "secs", sec, False)
    row("open one 1 MB message, `UID FETCH n BODY.PEEK[]` latency", "open_big", "secs", ms,
        False)
    for key, k in (("bodies_1", 1), ("bodies_8", 8)):
        row("all %d bodies, `UID FETCH a:b BODY.PEEK[]`, %d client%s" % (
            N, k, "s on an eighth each" if k > 1 else ""), key, "mbs", rate("MB/s"), True)
    row('`UID SEARCH TEXT "%s"`' % SEARCH_WORD, "search_text", "secs", sec, False)
    row('`UID SEARCH SUBJECT "%s"`' % SUBJECT_WORD, "search_subject", "secs", sec, False)
    row("`UID STORE 1:* +FLAGS (\\Seen)`", "store_all", "secs", sec, False)
    row("`UID STORE 1:* -FLAGS (\\Seen)`", "store_all_clear", "secs", sec, False)
    row("single-message `UID STORE n ±FLAGS (\\Flagged)`, one at a time", "store_one", "rate",
        rate("STOREs/s"), True)
    for s in (sarn, dove):
        for key in ("idle", "idle_dot"):
            v = res.raw(key, s.name, "secs")
            if v:
                res.add(key + "_p95", s.name, secs=pct(v, 95))
    n_idle = len(res.raw("idle", sarn.name, "secs"))
    row("IDLE push: LMTP 250 received → `* n EXISTS` received, median of %d (< 0: EXISTS came "
        "first)" % n_idle, "idle", "secs", ms, False, cpu=False)
    row("IDLE push: LMTP 250 → `* n EXISTS`, p95", "idle_p95", "secs", ms, False, cpu=False)
    row("IDLE push: end of LMTP DATA sent → `* n EXISTS` received, median", "idle_dot", "secs",
        ms, False, cpu=False)
    row("IDLE push: end of LMTP DATA sent → `* n EXISTS`, p95", "idle_dot_p95", "secs", ms,
        False, cpu=False)
    row("memory per session after LOGIN + SELECT of the big INBOX (%d → %d sessions), PSS"
        % (args.sessions, 2 * args.sessions), "mem", "per_pss", lambda x: "%.0f kB" % x, False,
        cpu=False)
    row("memory per session, RSS", "mem", "per_rss", lambda x: "%.0f kB" % x, False, cpu=False)
    row("memory, whole server with %d selected sessions, PSS" % args.sessions, "mem", "pss0",
        lambda x: "%.0f kB" % x, False, cpu=False)
    row("memory, whole server with %d selected sessions, PSS" % (2 * args.sessions), "mem",
        "pss", lambda x: "%.0f kB" % x, False, cpu=False)
    L.append("")
    for key in ("search_text", "search_subject"):
        L.append("%s found: sarn %s, Dovecot %s UIDs." % (
            key, "/".join(str(len(x)) for x in searches.get((key, sarn.name), [])),
            "/".join(str(len(x)) for x in searches.get((key, dove.name), []))))
    L.append("Processes for memory: sarn: %s → %s; Dovecot: %s → %s." % (
        res.data[("mem", sarn.name)][-1]["names0"], res.data[("mem", sarn.name)][-1]["names"],
        res.data[("mem", dove.name)][-1]["names0"], res.data[("mem", dove.name)][-1]["names"]))
    L += ["", "Findings / mismatches:" if notes else "No mismatches between the servers."]
    L += ["- " + n for n in notes]
    L += ["", "Every repetition:", "", "| measurement | server | values |", "|---|---|---|"]
    for (key, name), vals in res.data.items():
        if key == "mem":
            txt = ", ".join("%.0f / %.0f kB" % (v["per_pss"], v["per_rss"]) for v in vals) + \
                " (PSS / RSS per session)"
        elif key in ("idle", "idle_dot"):
            txt = "%d values, min %.1f ms, max %.1f ms" % (
                len(vals), 1000 * min(v["secs"] for v in vals),
                1000 * max(v["secs"] for v in vals))
        elif "rate" in vals[0]:
            txt = ", ".join("%.1f/s (%.2f s)" % (v["rate"], v["secs"]) for v in vals)
        elif "secs" in vals[0]:
            txt = ", ".join("%.1f ms" % (1000 * v["secs"]) for v in vals)
        else:
            txt = json.dumps(vals)
        L.append("| %s | %s | %s |" % (key, name, txt))
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sarn", default=os.path.join(REPO, "build", "sarn"))
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(REPO), "shared", "corpus",
                                                     "public"))
    ap.add_argument("--messages", type=int, default=10000, help="messages in the INBOX")
    ap.add_argument("--big", type=int, default=5, help="of which 1 MiB messages")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--logins", type=int, default=20, help="LOGIN+SELECT rounds per repetition")
    ap.add_argument("--open-n", type=int, default=10, help="1 MB fetches per repetition")
    ap.add_argument("--idle-n", type=int, default=51, help="IDLE deliveries in all")
    ap.add_argument("--sessions", type=int, default=50,
                    help="memory: cost of this many more selected sessions once as many are open")
    ap.add_argument("--quick", action="store_true", help="2000 messages, 1 repetition")
    ap.add_argument("--scratch", default=None, help="parent of the scratch directory "
                    "(default: the system temporary directory; must be a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--json", help="write all raw figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.big, args.reps, args.logins, args.open_n = 2000, 3, 1, 8, 5
        args.idle_n, args.sessions = 15, 20
    if os.geteuid() != 0:
        raise SystemExit("run as root: Dovecot starts as root and switches to its users")
    if not os.path.exists(args.sarn):
        raise SystemExit("%s missing: build sarn first (ninja -C build)" % args.sarn)
    for exe in ("/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp"):
        if not os.path.exists(exe):
            raise SystemExit("%s missing: apt-get install dovecot-imapd dovecot-lmtpd" % exe)
    scratch = tempfile.mkdtemp(prefix="sarn-bench-imap-", dir=args.scratch)
    os.chmod(scratch, 0o755)
    servers = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        report = bench(args, scratch, servers)
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # keep cleaning up
                log("stopping %s: %s" % (s.name, e))
        if args.keep:
            log("scratch kept: %s" % scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        log("interrupted (%s); servers stopped, scratch directory removed" % (e or "SIGINT"))
        sys.exit(130)
