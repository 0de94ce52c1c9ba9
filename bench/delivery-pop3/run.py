#!/usr/bin/python3
"""Side-by-side benchmark of sarn and Dovecot on this machine: LMTP delivery, POP3 download,
POP3 login rate and memory. Not a test; nothing runs it automatically.

    sudo /usr/bin/python3 bench/delivery-pop3/run.py [--quick] [--out FILE] [--json FILE]

Needs root (Dovecot switches to its own users), the Debian packages dovecot-core,
dovecot-pop3d, dovecot-lmtpd and whois (mkpasswd), and a built sarn (ninja -C build).
Both servers run on 127.0.0.1 from a scratch directory that is removed at the end.
See README.md next to this file for what is measured and how.
"""
import argparse
import base64
import glob
import hashlib
import json
import multiprocessing
import os
import platform
import pwd
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOMAIN = "example.com"
PASSWORD = "bench-password"
DOVECOT = "/usr/sbin/dovecot"


# ----------------------------------------------------------------------------- helpers

def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


T0 = time.monotonic()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """True when something listens on 127.0.0.1:port (read from /proc: connecting would
    start processes on Dovecot and change the idle memory figure)."""
    want = ":%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def wait_listening(ports, proc, what, logfile, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s:\n%s" % (what, proc.returncode, tail(logfile)))
        if all(listening(p) for p in ports):
            return
        time.sleep(0.05)
    raise RuntimeError("%s did not open %s:\n%s" % (what, ports, tail(logfile)))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          **kw).stdout.decode(errors="replace").strip()


def descendants(root):
    """root and every process below it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_by_pid(pids):
    """{pid: (VmRSS, Pss)} in kB; processes that vanished are left out."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                r = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")]
            with open("/proc/%d/smaps_rollup" % pid) as f:
                p = [int(l.split()[1]) for l in f if l.startswith("Pss:")]
        except OSError:
            continue
        if r:
            out[pid] = (r[0], p[0] if p else 0)
    return out


def memory(pids):
    """(sum of VmRSS, sum of Pss, number of processes) in kB."""
    m = memory_by_pid(pids)
    return sum(v[0] for v in m.values()), sum(v[1] for v in m.values()), len(m)


def proc_names(pids):
    names = {}
    for pid in pids:
        try:
            with open("/proc/%d/comm" % pid) as f:
                c = f.read().strip()
        except OSError:
            continue
        names[c] = names.get(c, 0) + 1
    return ", ".join("%s×%d" % (k, v) if v > 1 else k for k, v in sorted(names.items()))


# ----------------------------------------------------------------------------- messages

def crlf_stuffed(data):
    """Message bytes -> (payload for DATA ending in CRLF, dot-stuffed; original size)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    size = len(data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    return data, size


def load_corpus(corpus_dir):
    files = sorted(glob.glob(os.path.join(corpus_dir, "*.eml")))
    if not files:
        raise SystemExit("no *.eml in %s" % corpus_dir)
    out = []
    for fn in files:
        with open(fn, "rb") as f:
            out.append(crlf_stuffed(f.read()))
    return out


def big_message(i, size):
    """A size-byte message: base64 of pseudo-random bytes (deterministic per i)."""
    rnd = random.Random(i)
    head = (b"From: bench <bench@example.org>\r\nTo: user@example.com\r\n"
            b"Subject: big message %d\r\nMessage-ID: <big-%d@bench>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" % (i, i))
    body = base64.encodebytes(rnd.randbytes((size - len(head)) * 57 // 78))
    return crlf_stuffed(head + body)


# ----------------------------------------------------------------------------- clients

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _fill(self):
        data = self.s.recv(262144)
        if not data:
            raise EOFError("connection closed by server")
        self.buf += data

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            self._fill()

    def smtp_reply(self):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l[3:4] != b"-":
                return int(l[:3]), lines

    def pop_ok(self, cmd=None):
        if cmd is not None:
            self.s.sendall(cmd)
        l = self.line()
        if not l.startswith(b"+OK"):
            raise RuntimeError("POP3 %r -> %r" % (cmd, l))
        return l

    def pop_multi(self):
        """The body of a multi-line POP3 answer (after its status line), dot-stuffed,
        without the terminating '.' line; returns its length in bytes."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return 0
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                del self.buf[:i + 5]
                return i + 2
            start = max(0, len(self.buf) - 4)
            self._fill()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def lmtp_worker(port, jobs, barrier, q):
    """jobs: list of (recipient, payload, size). Pipelines MAIL/RCPT/DATA (both servers
    advertise PIPELINING, as LMTP requires), then sends the data and waits for the 250."""
    try:
        c = Conn(port)
        code, _ = c.smtp_reply()
        assert code == 220, code
        c.s.sendall(b"LHLO bench.example.org\r\n")
        code, _ = c.smtp_reply()
        assert code == 250, code
        barrier.wait()
        t0 = time.monotonic()
        nbytes = errors = 0
        first_err = None
        for rcpt, payload, size in jobs:
            c.s.sendall(b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt)
            codes = [c.smtp_reply() for _ in range(3)]
            if codes[0][0] != 250 or codes[1][0] != 250 or codes[2][0] != 354:
                errors += 1
                first_err = first_err or repr(codes)
                c.s.sendall(b"RSET\r\n")
                c.smtp_reply()
                continue
            c.s.sendall(payload)
            c.s.sendall(b".\r\n")
            code, lines = c.smtp_reply()
            if code != 250:
                errors += 1
                first_err = first_err or repr(lines)
            else:
                nbytes += size
        t1 = time.monotonic()
        c.s.sendall(b"QUIT\r\n")
        c.close()
        q.put((t0, t1, len(jobs) - errors, nbytes, errors, first_err))
    except BaseException as e:  # reported to the parent, which fails the run
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


def pop3_worker(port, user, barrier, q):
    """Logs in, LIST, UIDL, RETR every message, QUIT; the timing includes the login."""
    try:
        c = Conn(port)
        c.pop_ok()
        barrier.wait()
        t0 = time.monotonic()
        c.pop_ok(b"USER %s\r\n" % user)
        c.pop_ok(b"PASS %s\r\n" % PASSWORD.encode())
        t_login = time.monotonic() - t0
        c.pop_ok(b"LIST\r\n")
        n = 0
        while True:
            l = c.line()
            if l == b".":
                break
            n += 1
        c.pop_ok(b"UIDL\r\n")
        while c.line() != b".":
            pass
        nbytes = 0
        for i in range(1, n + 1):
            c.pop_ok(b"RETR %d\r\n" % i)
            nbytes += c.pop_multi()
        c.pop_ok(b"QUIT\r\n")
        t1 = time.monotonic()
        c.close()
        q.put((t0, t1, n, nbytes, 0, None, t_login))
    except BaseException as e:
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


def login_worker(port, user, count, barrier, q):
    """count times: connect, greeting, USER, PASS, QUIT."""
    try:
        barrier.wait()
        t0 = time.monotonic()
        for _ in range(count):
            c = Conn(port)
            c.pop_ok()
            c.pop_ok(b"USER %s\r\n" % user)
            c.pop_ok(b"PASS %s\r\n" % PASSWORD.encode())
            c.pop_ok(b"QUIT\r\n")
            c.close()
        t1 = time.monotonic()
        q.put((t0, t1, count, 0, 0, None))
    except BaseException as e:
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


MP = multiprocessing.get_context("fork")


def run_workers(target, arglists, timeout=600):
    """Runs target(*args, barrier, queue) in one process per arglist, all released together
    by a barrier after their set-up; returns their result tuples (raises on a worker error)."""
    barrier = MP.Barrier(len(arglists))
    q = MP.Queue()
    procs = [MP.Process(target=target, args=tuple(a) + (barrier, q), daemon=True)
             for a in arglists]
    for p in procs:
        p.start()
    try:
        res = [q.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join()
    errs = [r for r in res if r[4]]
    if errs:
        raise RuntimeError("%d errors, first: %s" % (sum(r[4] for r in errs), errs[0][5]))
    return res


def parallel(target, arglists):
    """run_workers, summed up: (wall seconds, items, bytes, mean of the workers' 7th result
    field or 0)."""
    res = run_workers(target, arglists)
    wall = max(r[1] for r in res) - min(r[0] for r in res)
    extra = statistics.mean(r[6] for r in res) if len(res[0]) > 6 else 0
    return wall, sum(r[2] for r in res), sum(r[3] for r in res), extra


# ----------------------------------------------------------------------------- servers

def mailuser():
    """The uid/gid Dovecot's mail processes run as."""
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


class Sarn:
    name = "sarn"

    def __init__(self, scratch, binary):
        self.dir = os.path.join(scratch, "sarn")
        os.makedirs(self.dir)
        self.bin = os.path.join(self.dir, "sarn")
        shutil.copy2(binary, self.bin)  # others may rebuild build/sarn during the run
        self.pop3, self.lmtp = free_port(), free_port()
        self.conf = os.path.join(self.dir, "sarn.conf")
        self.logfile = os.path.join(self.dir, "sarn.log")
        self.proc = self.logf = None
        with open(self.conf, "w") as f:
            f.write(f"""[server]
data_dir = {self.dir}/data
hostname = bench.example.com
log_level = warn
; workers = 0 (one per core) and auth_threads = 2: the defaults

[listen]
pop3 = 127.0.0.1:{self.pop3}
lmtp = 127.0.0.1:{self.lmtp}
pop3s =
smtp =
imap =
imaps =
submission =
submissions =

[limits]
auth_fail_delay_ms = 0
; default 200: the memory step opens 200 sessions plus the ones of the login step
max_connections_per_ip = 1000
max_connections_per_user = 1000
""")

    def version(self):
        v = run([self.bin, "--version"])
        try:
            rev = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
            dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
            files = [l.split(None, 1)[1] for l in dirty.splitlines() if l.strip()]
            files = [f for f in files if f.startswith("src/") or f.endswith("meson.build")]
            v += ", git %s" % rev
            if files:
                v += " + uncommitted changes to %s" % ", ".join(files)
        except (subprocess.CalledProcessError, OSError):
            pass
        with open(self.bin, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        return v + ", binary sha256 %s…" % digest

    def add_users(self, users):
        """`sarn user add` per account, 8 at a time (each one hashes with yescrypt)."""
        pending = list(users)
        running = []
        while pending or running:
            while pending and len(running) < 8:
                u = pending.pop()
                p = subprocess.Popen([self.bin, "user", "add", u, "-c", self.conf],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
                p.stdin.write(PASSWORD.encode() + b"\n")
                p.stdin.close()
                running.append((u, p))
            u, p = running.pop(0)
            err = p.stderr.read()
            if p.wait() != 0:
                raise RuntimeError("sarn user add %s: %s" % (u, err.decode(errors="replace")))

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        wait_listening([self.pop3, self.lmtp], self.proc, "sarn", self.logfile)

    def pids(self):
        return descendants(self.proc.pid)

    def stop(self):
        stop_proc(self.proc)
        self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def hash_note(self):
        import sqlite3
        db = sqlite3.connect(os.path.join(self.dir, "data", "accounts.db"))
        try:
            h = db.execute("SELECT hash FROM users LIMIT 1").fetchone()[0]
        finally:
            db.close()
        return ("`%s` hashes (`sarn user add`), verified on the `auth_threads = 2` job threads"
                % "$".join(h.split("$")[:3] + [""]))


class Dovecot:
    def __init__(self, scratch, label, fsync, users, with_pop3=True):
        self.name = label
        self.with_pop3 = with_pop3
        self.dir = os.path.join(scratch, label.replace(" ", "-").replace("=", "-"))
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.pop3, self.lmtp = free_port(), free_port()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.proc = self.logf = None
        uid, gid = mailuser()
        home = os.path.join(self.dir, "home")
        os.makedirs(os.path.join(home, DOMAIN))
        for u in users:
            h = os.path.join(home, DOMAIN, u.split("@")[0])
            os.makedirs(h)
            os.chown(h, uid, gid)
        passwd = os.path.join(self.dir, "passwd")
        hashed = yescrypt_hash()
        with open(passwd, "w") as f:
            for u in users:
                f.write("%s:{CRYPT}%s::::::\n" % (u, hashed))
        os.chmod(passwd, 0o644)
        pop3 = f"""
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}""" if with_pop3 else ""
        with open(self.conf, "w") as f:
            f.write(f"""# Dovecot for the sarn benchmark: loopback only, no TLS, defaults unless noted.
protocols = {"pop3 lmtp" if with_pop3 else "lmtp"}
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.logfile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
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
{pop3}
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

    def version(self):
        return "Dovecot " + run([DOVECOT, "--version"])

    def add_users(self, users):
        pass  # written into the passwd-file by __init__

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        ports = [self.pop3, self.lmtp] if self.with_pop3 else [self.lmtp]
        wait_listening(ports, self.proc, self.name, self.logfile)

    def pids(self):
        return descendants(self.proc.pid)

    def stop(self):
        stop_proc(self.proc)
        self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def hash_note(self):
        return ("passwd-file `{CRYPT}` + a `%s` hash from `mkpasswd -m yescrypt`, verified in "
                "the auth process; no auth cache (`auth_cache_size = 0`, the default)"
                % "$".join(yescrypt_hash().split("$")[:3] + [""]))


_HASH = None


def yescrypt_hash():
    global _HASH
    if _HASH is None:
        if shutil.which("mkpasswd") is None:
            raise SystemExit("mkpasswd not found: apt-get install whois")
        _HASH = subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"],
                               input=PASSWORD.encode(), stdout=subprocess.PIPE,
                               check=True).stdout.decode().strip()
        if not _HASH.startswith("$y$"):
            raise SystemExit("mkpasswd did not produce a yescrypt hash: %r" % _HASH)
    return _HASH


def stop_proc(proc):
    if proc is None or proc.poll() is not None:
        return
    tree = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # anything of that tree still alive (by pid, one at a time)
    for pid in tree[1:]:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"dovecot" in cmd or b"sarn" in cmd:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# ----------------------------------------------------------------------------- measurements

def fmt_rate(v, unit):
    return "%.0f %s" % (v, unit) if v >= 100 else "%.1f %s" % (v, unit)


class Results:
    def __init__(self):
        self.data = {}  # (key, server) -> list of dicts

    def add(self, key, server, **vals):
        self.data.setdefault((key, server), []).append(vals)

    def median(self, key, server, field):
        vals = [d[field] for d in self.data.get((key, server), [])]
        return statistics.median(vals) if vals else None

    def raw(self, key, server, field):
        return [d[field] for d in self.data.get((key, server), [])]


def deliver(server, jobs_per_conn):
    arglists = [(server.lmtp, jobs) for jobs in jobs_per_conn]
    wall, n, nbytes, _ = parallel(lmtp_worker, arglists)
    return wall, n, nbytes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sarn", default=os.path.join(REPO, "build", "sarn"))
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(REPO), "shared", "corpus",
                                                     "public"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=1500, help="corpus messages per delivery run")
    ap.add_argument("--big", type=int, default=50, help="1 MB messages per delivery run")
    ap.add_argument("--logins", type=int, default=10, help="logins per client (4 clients)")
    ap.add_argument("--idle", type=int, default=200, help="idle POP3 sessions for memory")
    ap.add_argument("--no-optimized", action="store_true",
                    help="skip the extra Dovecot instance with mail_fsync = optimized")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repetition (a smoke run)")
    ap.add_argument("--scratch", default=None, help="parent of the scratch directory "
                    "(default: the system temporary directory; must be a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--json", help="write all raw figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.small, args.big, args.logins, args.idle = 1, 200, 8, 5, 20
    if os.geteuid() != 0:
        raise SystemExit("run as root: Dovecot starts as root and switches to its users")
    if not os.path.exists(args.sarn):
        raise SystemExit("%s missing: cd %s && ninja -C build" % (args.sarn, REPO))
    for exe in ("/usr/lib/dovecot/pop3", "/usr/lib/dovecot/lmtp"):
        if not os.path.exists(exe):
            raise SystemExit("%s missing: apt-get install dovecot-pop3d dovecot-lmtpd" % exe)

    scratch = tempfile.mkdtemp(prefix="sarn-bench-", dir=args.scratch)
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


def machine_info(scratch, sarn, dovecot):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for l in f:
                if l.startswith("PRETTY_NAME="):
                    osname = l.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    fs = "?"
    try:
        dev = os.stat(scratch).st_dev
        best = ""
        with open("/proc/mounts") as f:
            for l in f:
                src, mnt, typ = l.split()[:3]
                try:
                    if os.stat(mnt).st_dev == dev and len(mnt) >= len(best):
                        best, fs = mnt, "%s on %s (mounted at %s)" % (typ, src, mnt)
                except OSError:
                    pass
    except OSError:
        pass
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M %Z")),
        ("CPU", "%s, nproc = %d" % (cpu, os.cpu_count())),
        ("memory", "%d MiB" % mem),
        ("OS / kernel", "%s, Linux %s" % (osname, platform.release())),
        ("storage (scratch dir)", fs),
        ("sarn", sarn.version()),
        ("Dovecot", dovecot.version()),
        ("client", "Python %s (one process per connection)" % platform.python_version()),
        ("load average at start", "%.2f %.2f %.2f" % os.getloadavg()),
    ]


def bench(args, scratch, servers):
    corpus = load_corpus(args.corpus)
    avg_small = sum(s for _, s in corpus) / len(corpus)
    log("corpus: %d messages, mean %.0f bytes" % (len(corpus), avg_small))
    bigs = [big_message(i, 1 << 20) for i in range(min(args.big, 16))]
    reps = args.reps
    K = 8

    # Accounts (the same names on every server):
    #   s<r>      : the 1-connection small-message run of repetition r, then 1-client download
    #   s<r>c<c>  : the 8-connection run (connection c), then the 8-client download
    #   b<r>, b<r>c<c>: the same for the 1 MB messages (b<r> downloaded by 1 client)
    #   l1..l4    : login rate;  i1..iN : idle sessions for the memory figure
    users = []
    for r in range(reps):
        users += ["s%d@%s" % (r, DOMAIN), "b%d@%s" % (r, DOMAIN)]
        users += ["s%dc%d@%s" % (r, c, DOMAIN) for c in range(K)]
        users += ["b%dc%d@%s" % (r, c, DOMAIN) for c in range(K)]
    users += ["l%d@%s" % (i, DOMAIN) for i in range(1, 5)]
    users += ["i%d@%s" % (i, DOMAIN) for i in range(1, args.idle + 1)]

    sarn = Sarn(scratch, args.sarn)
    dove = Dovecot(scratch, "Dovecot", "always", users)
    main_servers = [sarn, dove]
    all_servers = list(main_servers)
    if not args.no_optimized:
        dove_opt = Dovecot(scratch, "Dovecot optimized", "optimized", users, with_pop3=False)
        all_servers.append(dove_opt)
    info = machine_info(scratch, sarn, dove)

    t = time.monotonic()
    sarn.add_users(users)
    log("sarn: %d accounts created in %.1f s" % (len(users), time.monotonic() - t))

    res = Results()
    for s in all_servers:
        s.start()
        servers.append(s)
        time.sleep(1.0)
        rss, pss, n = memory(s.pids())
        res.add("mem_start", s.name, rss=rss, pss=pss, procs=n, names=proc_names(s.pids()))
        log("%s started: %d processes, RSS %d kB, PSS %d kB" % (s.name, n, rss, pss))

    def small_jobs(r, conns):
        if conns == 1:
            rc = ("s%d@%s" % (r, DOMAIN)).encode()
            return [[(rc,) + corpus[j % len(corpus)] for j in range(args.small)]]
        out = [[] for _ in range(conns)]
        for j in range(args.small):
            c = j % conns
            out[c].append((("s%dc%d@%s" % (r, c, DOMAIN)).encode(),) + corpus[j % len(corpus)])
        return out

    def big_jobs(r, conns):
        if conns == 1:
            rc = ("b%d@%s" % (r, DOMAIN)).encode()
            return [[(rc,) + bigs[j % len(bigs)] for j in range(args.big)]]
        out = [[] for _ in range(conns)]
        for j in range(args.big):
            c = j % conns
            out[c].append((("b%dc%d@%s" % (r, c, DOMAIN)).encode(),) + bigs[j % len(bigs)])
        return out

    # 1. LMTP delivery. Repetitions alternate the servers so that drift of the machine (other
    # load, disk) spreads over both.
    for r in range(reps):
        for kind, jobs_fn in (("small", small_jobs), ("big", big_jobs)):
            for conns in (1, K):
                for s in all_servers:
                    wall, n, nbytes = deliver(s, jobs_fn(r, conns))
                    key = "lmtp_%s_%d" % (kind, conns)
                    res.add(key, s.name, rate=n / wall, mbs=nbytes / wall / 1e6, n=n,
                            bytes=nbytes, secs=wall)
                    log("rep %d %s: %-18s %6d msgs %8.1f MB %6.2f s  %7.1f msg/s %6.1f MB/s"
                        % (r + 1, key, s.name, n, nbytes / 1e6, wall, n / wall,
                           nbytes / wall / 1e6))

    # 2. POP3 download: first download of each mailbox (sarn records the first download
    # time of every message; Dovecot updates flags at QUIT), then again.
    for r in range(reps):
        for s in main_servers:
            for key, arglists in (
                    ("pop3_1", [(s.pop3, ("s%d@%s" % (r, DOMAIN)).encode())]),
                    ("pop3_8", [(s.pop3, ("s%dc%d@%s" % (r, c, DOMAIN)).encode())
                                for c in range(K)]),
                    ("pop3_big_1", [(s.pop3, ("b%d@%s" % (r, DOMAIN)).encode())]),
                    ("pop3_1_again", [(s.pop3, ("s%d@%s" % (r, DOMAIN)).encode())])):
                wall, n, nbytes, t_login = parallel(pop3_worker, arglists)
                res.add(key, s.name, rate=n / wall, mbs=nbytes / wall / 1e6, n=n,
                        bytes=nbytes, secs=wall, login=t_login)
                log("rep %d %s: %-18s %6d msgs %8.1f MB %6.2f s  %7.1f msg/s %6.1f MB/s "
                    "(login %.2f s)" % (r + 1, key, s.name, n, nbytes / 1e6, wall, n / wall,
                                        nbytes / wall / 1e6, t_login))

    # 3. Login rate: 4 clients, each on its own account, connect/USER/PASS/QUIT in a loop.
    for r in range(reps):
        for s in main_servers:
            arglists = [(s.pop3, ("l%d@%s" % (i, DOMAIN)).encode(), args.logins)
                        for i in range(1, 5)]
            wall, n, _, _ = parallel(login_worker, arglists)
            res.add("login", s.name, rate=n / wall, n=n, secs=wall)
            log("rep %d login: %-18s %d logins %.2f s %.1f/s" % (r + 1, s.name, n, wall, n / wall))

    # 4. Memory: after the workload with no session, then with N logged-in POP3 sessions
    # open. Each state is sampled `reps` times, 1 s apart (the sessions are opened once per
    # server: every login costs a yescrypt hash). The cost per session compares the same
    # processes: Dovecot's idle lmtp processes may exit meanwhile (idle_kill), and are
    # then left out of the "before" side; processes started by the logins (pop3, auth,
    # stats) count for the sessions.
    for s in main_servers:
        time.sleep(2.0)
        before = []
        for r in range(reps):
            pids = s.pids()
            before.append((memory_by_pid(pids), proc_names(pids)))
            time.sleep(1.0)
        conns = open_idle(s, args.idle)
        try:
            for r in range(reps):
                time.sleep(1.0)
                pids = s.pids()
                now = memory_by_pid(pids)
                b, names0 = before[r]
                rss0, pss0, n0 = (sum(v[0] for v in b.values()), sum(v[1] for v in b.values()),
                                  len(b))
                rss1, pss1, n1 = (sum(v[0] for v in now.values()),
                                  sum(v[1] for v in now.values()), len(now))
                same_rss = sum(v[0] for p, v in b.items() if p in now)
                same_pss = sum(v[1] for p, v in b.items() if p in now)
                res.add("mem_idle", s.name, rss0=rss0, pss0=pss0, procs0=n0, rss=rss1,
                        pss=pss1, procs=n1, names=proc_names(pids), names0=names0,
                        per_rss=(rss1 - same_rss) / args.idle,
                        per_pss=(pss1 - same_pss) / args.idle)
                log("memory %d: %-18s no session %d kB RSS / %d kB PSS (%d procs); %d sessions "
                    "%d kB RSS / %d kB PSS (%d procs)" % (r + 1, s.name, rss0, pss0, n0,
                                                         args.idle, rss1, pss1, n1))
        finally:
            close_idle(conns)

    # Sanity: both servers hold the same number of messages in every mailbox downloaded.
    for key in ("pop3_1", "pop3_8", "pop3_big_1"):
        counts = {s.name: res.raw(key, s.name, "n") for s in main_servers}
        if len(set(map(tuple, counts.values()))) != 1:
            raise RuntimeError("message counts differ for %s: %s" % (key, counts))

    fsync_counts = census(all_servers, main_servers, corpus, bigs, scratch)
    info.append(("load average at end", "%.2f %.2f %.2f" % os.getloadavg()))
    info.append(("run time", "%.0f s" % (time.monotonic() - T0)))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s|%s" % k: v for k, v in res.data.items()}, f, indent=1)
    return render(args, info, res, sarn, dove, all_servers, avg_small, fsync_counts)


def open_idle(s, n):
    """n sessions logged in (USER/PASS), opened by 8 threads; returns the sockets."""
    import threading
    conns, errors = [], []
    lock = threading.Lock()

    def opener(names):
        for u in names:
            try:
                c = Conn(s.pop3)
                c.pop_ok()
                c.pop_ok(b"USER %s\r\n" % u)
                c.pop_ok(b"PASS %s\r\n" % PASSWORD.encode())
                with lock:
                    conns.append(c)
            except Exception as e:
                errors.append("%s: %s" % (u, e))
    names = [("i%d@%s" % (i, DOMAIN)).encode() for i in range(1, n + 1)]
    threads = [threading.Thread(target=opener, args=(names[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        close_idle(conns)
        raise RuntimeError("%s: %d idle logins failed, first: %s" % (s.name, len(errors),
                                                                     errors[0]))
    return conns


def close_idle(conns):
    for c in conns:
        try:
            c.s.sendall(b"QUIT\r\n")
            c.line()
        except Exception:
            pass
        c.close()


SYNC = ("fsync", "fdatasync", "sync_file_range", "syncfs", "msync")
WRITE = ("write", "writev", "pwrite64", "pwritev", "pwritev2")


def strace_count(s, scratch, tag, calls, action):
    """Runs action() with strace -c attached to every process of server s (-p takes every
    thread of a process, -f follows processes started later); returns {syscall: count}."""
    outfile = os.path.join(scratch, "strace-%s-%d.txt" % (tag, s.lmtp))
    cmd = ["strace", "-f", "-c", "-o", outfile, "-e", "trace=" + ",".join(calls)]
    for pid in s.pids():
        cmd += ["-p", str(pid)]
    tr = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        action()
        time.sleep(0.5)
    finally:
        tr.send_signal(signal.SIGINT)
        try:
            tr.wait(10)
        except subprocess.TimeoutExpired:
            tr.kill()
            tr.wait()
    out = {}
    for l in tail(outfile, 100).splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", l)
        if m and m.group(2) != "total":
            out[m.group(2)] = int(m.group(1))
    return out


def census(servers, pop3_servers, corpus, bigs, scratch):
    """System calls per operation, counted with strace on a few extra operations after the
    timed runs (not timed themselves): sync calls per 4 kB delivery, write calls per 1 MB
    delivery, sync calls per message of a first POP3 download. Skipped without strace."""
    if shutil.which("strace") is None:
        log("strace not found: no system call census")
        return {}
    out = {}
    n_small, n_big = 20, 3
    for s in servers:
        rc = ("l1@%s" % DOMAIN).encode()
        sync = strace_count(s, scratch, "sync", SYNC, lambda: deliver(
            s, [[(rc,) + corpus[j] for j in range(n_small)]]))
        rc2 = ("l2@%s" % DOMAIN).encode()
        writes = strace_count(s, scratch, "write", WRITE, lambda: deliver(
            s, [[(rc2,) + bigs[j] for j in range(n_big)]]))
        row = {"sync per 4 kB delivery": sum(sync.values()) / n_small,
               "sync detail": ", ".join("%s %.1f" % (k, v / n_small)
                                        for k, v in sorted(sync.items())),
               "write calls per 1 MB delivery": sum(writes.values()) / n_big}
        if s in pop3_servers:
            pop = strace_count(s, scratch, "pop", SYNC, lambda: parallel(
                pop3_worker, [(s.pop3, rc)]))
            row["sync per message, first POP3 download"] = sum(pop.values()) / n_small
        out[s.name] = row
        log("%s: %s" % (s.name, row))
    return out


def render(args, info, res, sarn, dove, all_servers, avg_small, fsync_counts):
    have_opt = len(all_servers) > 2
    opt = all_servers[2].name if have_opt else None
    L = []
    L.append("Machine and versions:\n")
    L.append("| | |")
    L.append("|---|---|")
    for k, v in info:
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("Median of %d repetitions; ratio = sarn / Dovecot (`mail_fsync = always`)."
             % args.reps)
    L.append("")
    hdr = "| measurement | sarn | Dovecot (fsync always) | sarn / Dovecot | better is |"
    sep = "|---|---|---|---|---|"
    if have_opt:
        hdr += " Dovecot (fsync optimized) | sarn / Dovecot optimized |"
        sep += "---|---|"
    L.append(hdr)
    L.append(sep)

    def row(label, key, field, unit, higher_better, extra_field=None, extra_unit=None,
            with_opt=False, fmt=None):
        cells = []
        vals = {}
        for s in [sarn, dove] + ([all_servers[2]] if have_opt and with_opt else []):
            v = res.median(key, s.name, field)
            vals[s.name] = v
            if v is None:
                cells.append("–")
                continue
            c = fmt(v) if fmt else fmt_rate(v, unit)
            if extra_field:
                c += " (%s)" % fmt_rate(res.median(key, s.name, extra_field), extra_unit)
            cells.append(c)
        ratio = "%.2f" % (vals[sarn.name] / vals[dove.name]) if vals[dove.name] else "–"
        line = "| %s | %s | %s | %s | %s |" % (label, cells[0], cells[1], ratio,
                                               "higher" if higher_better else "lower")
        if have_opt:
            if with_opt and vals.get(opt):
                line += " %s | %.2f |" % (cells[2], vals[sarn.name] / vals[opt])
            else:
                line += " | |"
        L.append(line)

    ks = avg_small / 1000
    for kind, label, n in (("small", "%.1f kB corpus messages ×%d" % (ks, args.small), args.small),
                           ("big", "1 MB messages ×%d" % args.big, args.big)):
        for conns in (1, 8):
            row("LMTP delivery, %s, %d connection%s" % (label, conns, "s" if conns > 1 else ""),
                "lmtp_%s_%d" % (kind, conns), "rate", "msg/s", True, "mbs", "MB/s",
                with_opt=True)
    n1 = int(res.median("pop3_1", sarn.name, "n"))
    n8 = int(res.median("pop3_8", sarn.name, "n"))
    nb = int(res.median("pop3_big_1", sarn.name, "n"))
    row("POP3 download, 1 client, %d messages (first download)" % n1, "pop3_1", "rate",
        "msg/s", True, "mbs", "MB/s")
    row("POP3 download, 8 clients × %d messages (first download)" % (n8 // 8), "pop3_8",
        "rate", "msg/s", True, "mbs", "MB/s")
    row("POP3 download, 1 client, %d × 1 MB (first download)" % nb, "pop3_big_1", "rate",
        "msg/s", True, "mbs", "MB/s")
    row("POP3 download, 1 client, %d messages again (already downloaded)" % n1,
        "pop3_1_again", "rate", "msg/s", True, "mbs", "MB/s")
    row("POP3 logins (connect, USER, PASS, QUIT), 4 clients", "login", "rate", "logins/s", True)
    kb = lambda v: "%.0f kB" % v  # noqa: E731
    row("memory idle after start, RSS (sum of processes)", "mem_start", "rss", "", False,
        fmt=kb, with_opt=False)
    row("memory idle after start, PSS", "mem_start", "pss", "", False, fmt=kb)
    row("memory idle after the workload, RSS", "mem_idle", "rss0", "", False, fmt=kb)
    row("memory idle after the workload, PSS", "mem_idle", "pss0", "", False, fmt=kb)
    row("memory with %d logged-in POP3 sessions, RSS" % args.idle, "mem_idle", "rss", "",
        False, fmt=kb)
    row("memory with %d logged-in POP3 sessions, PSS" % args.idle, "mem_idle", "pss", "",
        False, fmt=kb)
    row("memory per logged-in POP3 session, RSS", "mem_idle", "per_rss", "", False,
        fmt=lambda v: "%.1f kB" % v)
    row("memory per logged-in POP3 session, PSS", "mem_idle", "per_pss", "", False,
        fmt=lambda v: "%.1f kB" % v)
    L.append("")
    L.append("Processes counted (idle after start): sarn: %s; Dovecot: %s."
             % (res.data[("mem_start", sarn.name)][0]["names"],
                res.data[("mem_start", dove.name)][0]["names"]))
    L.append("After the workload: sarn: %s; Dovecot: %s." % (
        res.data[("mem_idle", sarn.name)][-1]["names0"],
        res.data[("mem_idle", dove.name)][-1]["names0"]))
    L.append("With %d sessions: sarn: %s; Dovecot: %s." % (
        args.idle, res.data[("mem_idle", sarn.name)][-1]["names"],
        res.data[("mem_idle", dove.name)][-1]["names"]))
    L.append("")
    L.append("Password hashes: sarn: %s. Dovecot: %s." % (sarn.hash_note(), dove.hash_note()))
    if fsync_counts:
        L.append("")
        L.append("System calls per operation (strace -f -c attached to every server process "
                 "during a few extra operations after the timed runs; not timed):")
        L.append("")
        names = list(fsync_counts)
        L.append("| | " + " | ".join(names) + " |")
        L.append("|---" * (len(names) + 1) + "|")
        keys = []
        for c in fsync_counts.values():
            keys += [k for k in c if k not in keys]
        for k in keys:
            cells = []
            for n in names:
                v = fsync_counts[n].get(k)
                cells.append("" if v is None else v if isinstance(v, str) else
                             "%.1f" % v if v >= 1 else "%.2f" % v)
            L.append("| %s | %s |" % (k, " | ".join(cells)))
    L.append("")
    L.append("Every repetition (in order):")
    L.append("")
    L.append("| measurement | server | values |")
    L.append("|---|---|---|")
    for (key, name), vals in res.data.items():
        if key == "mem_start":
            txt = ", ".join("%d / %d kB" % (v["rss"], v["pss"]) for v in vals) + " (RSS / PSS)"
        elif key == "mem_idle":
            txt = ", ".join("%.1f / %.1f kB" % (v["per_rss"], v["per_pss"]) for v in vals) + \
                " (RSS / PSS per session)"
        elif key.startswith("pop3"):
            txt = ", ".join("%.1f msg/s (%.2f s, login %.2f s)" % (v["rate"], v["secs"], v["login"])
                            for v in vals)
        elif key == "login":
            txt = ", ".join("%.1f logins/s" % v["rate"] for v in vals)
        else:
            txt = ", ".join("%.1f msg/s (%.2f s)" % (v["rate"], v["secs"]) for v in vals)
        L.append("| %s | %s | %s |" % (key, name, txt))
    return "\n".join(L)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        log("interrupted (%s); servers stopped, scratch directory removed" % (e or "SIGINT"))
        sys.exit(130)
