#!/usr/bin/python3
"""Side-by-side message submission (RFC 6409) benchmark of sarn and Dovecot's submission
service on this machine: small-message submission rate over 1 and 8 connections (accepted
and end to end at a relay sink), one 10 MB message, connection + STARTTLS + AUTH + QUIT rate
and server memory. Not a test; nothing runs it automatically.

    sudo /usr/bin/python3 bench/submission/run.py [--quick] [--sarn PATH] [--out FILE] [--json FILE]

Needs root (Dovecot switches to its own users), the Debian packages dovecot-core,
dovecot-submissiond, python3-aiosmtpd, whois (mkpasswd) and openssl, and a built sarn. Both
servers relay to their own aiosmtpd sink on 127.0.0.1 (sarn through its queue's smarthost,
Dovecot through submission_relay_host). Everything runs from a scratch directory that is
removed at the end. See README.md next to this file for what is measured and how. Server
set-up, process/memory/CPU helpers come from ../delivery-pop3/run.py and ../imap/run.py
(imported, not copied).
"""
import argparse
import base64
import importlib.util
import json
import os
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

sys.dont_write_bytecode = True  # leave bench/imap/ and bench/delivery-pop3/ as they are
_spec = importlib.util.spec_from_file_location(
    "bench_imap", os.path.join(REPO, "bench", "imap", "run.py"))
I = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(I)
B = I.B  # bench/delivery-pop3/run.py, as imported by bench/imap/run.py

log, free_port, wait_listening, memory_by_pid, proc_names = (
    B.log, B.free_port, B.wait_listening, B.memory_by_pid, B.proc_names)
cpu_seconds = I.cpu_seconds
DOMAIN, PASSWORD, DOVECOT, MP = B.DOMAIN, B.PASSWORD, B.DOVECOT, B.MP
SENDER = "sender@" + DOMAIN
RCPT_DOMAIN = "remote.example"   # not local on either server: relayed


# ----------------------------------------------------------------------------- messages

WORDS = I.WORDS


def small_message(i, rnd, size=2048):
    """A text/plain message of about `size` bytes (CRLF, dot-stuffed), unique Message-ID."""
    head = ("From: Sender <%s>\r\nTo: Friend <friend@%s>\r\nSubject: bench message %d %s\r\n"
            "Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <sub-%d-%d@bench.example.com>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (SENDER, RCPT_DOMAIN, i, " ".join(rnd.choice(WORDS) for _ in range(4)),
               os.getpid(), i)).encode()
    lines, n = [], len(head)
    while n < size - 2:
        line = " ".join(rnd.choice(WORDS) for _ in range(12))
        lines.append(line)
        n += len(line) + 2
    return B.crlf_stuffed(head + "\r\n".join(lines).encode() + b"\r\n")


def large_message(i, size):
    """A size-byte message from SENDER: base64 of pseudo-random bytes."""
    rnd = random.Random(1000 + i)
    head = (b"From: Sender <%s>\r\nTo: friend@%s\r\nSubject: large message %d\r\n"
            b"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <large-%d@bench.example.com>"
            b"\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            % (SENDER.encode(), RCPT_DOMAIN.encode(), i, i))
    body = base64.encodebytes(rnd.randbytes((size - len(head)) * 57 // 78))
    return B.crlf_stuffed(head + body)


# ----------------------------------------------------------------------------- client

def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Smtp(B.Conn):
    """A minimal submission client on a raw socket (the same code for both servers)."""

    def __init__(self, port, tls=True, user=SENDER, ctx=None):
        super().__init__(port)
        self.expect(None, 220)
        self.ehlo = self.expect(b"EHLO client.bench.example.org\r\n", 250)
        if tls:
            self.expect(b"STARTTLS\r\n", 220)
            if self.buf:
                raise RuntimeError("data after STARTTLS reply")
            self.s = (ctx or client_tls_context()).wrap_socket(self.s)
            self.ehlo = self.expect(b"EHLO client.bench.example.org\r\n", 250)
        self.pipelining = any(l[4:].upper().startswith(b"PIPELINING") for l in self.ehlo)
        token = base64.b64encode(b"\0%s\0%s" % (user.encode(), PASSWORD.encode()))
        self.expect(b"AUTH PLAIN " + token + b"\r\n", 235)

    def expect(self, cmd, code):
        if cmd is not None:
            self.s.sendall(cmd)
        got, lines = self.smtp_reply()
        if got != code:
            raise RuntimeError("%r -> %r" % (cmd[:40] if cmd else "greeting", lines))
        return lines

    def send(self, payload, rcpt=b"friend@" + RCPT_DOMAIN.encode()):
        """One transaction; MAIL/RCPT/DATA pipelined when the server offers PIPELINING."""
        cmds = [b"MAIL FROM:<%s>\r\n" % SENDER.encode(), b"RCPT TO:<%s>\r\n" % rcpt,
                b"DATA\r\n"]
        if self.pipelining:
            self.s.sendall(b"".join(cmds))
            codes = [self.smtp_reply() for _ in cmds]
        else:
            codes = []
            for c in cmds:
                self.s.sendall(c)
                codes.append(self.smtp_reply())
                if codes[-1][0] >= 400:
                    break
        if [c for c, _ in codes] != [250, 250, 354]:
            raise RuntimeError("MAIL/RCPT/DATA -> %r" % [l for _, l in codes])
        self.s.sendall(payload)
        self.s.sendall(b".\r\n")
        code, lines = self.smtp_reply()
        if code != 250:
            raise RuntimeError("end of DATA -> %r" % lines)

    def quit(self):
        try:
            self.expect(b"QUIT\r\n", 221)
        finally:
            self.close()


def submit_worker(port, tls, payloads, barrier, q):
    """Connects, STARTTLS, AUTH (before the barrier), then submits every payload."""
    try:
        c = Smtp(port, tls)
        barrier.wait()
        t0 = time.monotonic()
        nbytes = 0
        for payload, size in payloads:
            c.send(payload)
            nbytes += size
        t1 = time.monotonic()
        c.quit()
        q.put((t0, t1, len(payloads), nbytes, 0, None))
    except BaseException as e:  # reported to the parent, which fails the run
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


def login_worker(port, tls, count, barrier, q):
    """count times: connect, EHLO, STARTTLS, EHLO, AUTH PLAIN, QUIT."""
    try:
        ctx = client_tls_context()
        barrier.wait()
        t0 = time.monotonic()
        for _ in range(count):
            Smtp(port, tls, ctx=ctx).quit()
        t1 = time.monotonic()
        q.put((t0, t1, count, 0, 0, None))
    except BaseException as e:
        try:
            barrier.abort()
        except Exception:
            pass
        q.put((0, 0, 0, 0, 1, "%s: %s" % (type(e).__name__, e)))


def parallel(target, arglists):
    """Like ../delivery-pop3's parallel(), but returns (first start, last end, items,
    bytes): the end-to-end figure needs the start time."""
    res = B.run_workers(target, arglists, 900)
    return (min(r[0] for r in res), max(r[1] for r in res), sum(r[2] for r in res),
            sum(r[3] for r in res))


# ----------------------------------------------------------------------------- relay sink

def sink_main(port, count, nbytes, last, ready, stop):
    """An aiosmtpd server that accepts everything, keeps nothing, and counts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            n = len(envelope.content)
            with count.get_lock():
                count.value += 1
                nbytes.value += n
                last.value = time.monotonic()
            return "250 2.0.0 Ok: queued"

    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=64 << 20,
                     server_hostname="sink.bench.example.org")
    ctl.start()
    ready.set()
    stop.wait()
    ctl.stop()


class Sink:
    def __init__(self, name):
        self.name = name
        self.port = free_port()
        self.count = MP.Value("q", 0)
        self.nbytes = MP.Value("q", 0)
        self.last = MP.Value("d", 0.0)
        self.ready, self._stop = MP.Event(), MP.Event()
        self.proc = None

    def start(self):
        self.proc = MP.Process(target=sink_main, args=(self.port, self.count, self.nbytes,
                                                       self.last, self.ready, self._stop),
                               daemon=True)
        self.proc.start()
        if not self.ready.wait(20):
            raise RuntimeError("sink for %s did not start" % self.name)

    def stop(self):
        if self.proc is None:
            return
        self._stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()
        self.proc = None

    def n(self):
        with self.count.get_lock():
            return self.count.value

    def wait_for(self, target, timeout):
        """Waits until the sink has `target` messages; returns the arrival time of the last
        one (time.monotonic, comparable across processes) or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.count.get_lock():
                if self.count.value >= target:
                    return self.last.value
            time.sleep(0.005)
        return None


# ----------------------------------------------------------------------------- servers

class SarnSubmission(I.SarnImap):
    def __init__(self, scratch, binary, sink_port, queue_extra=()):  # noqa: writes IMAP
        self.dir = os.path.join(scratch, "sarn")
        os.makedirs(self.dir)
        self.bin = os.path.join(self.dir, "sarn")
        shutil.copy2(binary, self.bin)  # others may rebuild the binary during the run
        self.src_binary = binary
        self.port = free_port()
        self.conf = os.path.join(self.dir, "sarn.conf")
        self.logfile = os.path.join(self.dir, "sarn.log")
        self.proc = self.logf = None
        with open(self.conf, "w") as f:
            f.write(f"""[server]
data_dir = {self.dir}/data
hostname = bench.example.com
log_level = warn
; workers = 0 (one per core), auth_threads = 2, delivery_threads = 8: the defaults

[listen]
submission = 127.0.0.1:{self.port}
submissions =
imap =
imaps =
lmtp =
pop3 =
pop3s =
smtp =

[limits]
auth_fail_delay_ms = 0
max_connections_per_ip = 1000
max_connections_per_user = 1000

[queue]
smarthost = 127.0.0.1:{sink_port}
; the sink offers no STARTTLS; Dovecot's relay is plain too
smarthost_tls = none
retry_min = 1
; max_per_domain = 4 and workers = 16: the defaults unless set here
""" + "".join(x + "\n" for x in queue_extra))
            with open(binary, "rb") as b:
                if b"max_remote_recipients_per_hour" in b.read():
                    # default 1000 per account and hour (since d89867d); a run sends 12,000
                    f.write("\n[submission]\nmax_remote_recipients_per_hour = 0\n")

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        wait_listening([self.port], self.proc, "sarn", self.logfile)

    def queue_files(self):
        q = os.path.join(self.dir, "data", "queue")
        try:
            return sorted(os.listdir(q))
        except OSError:
            return []


class DovecotSubmission(B.Dovecot):
    def __init__(self, scratch, users, sink_port, tls):  # noqa: see SarnSubmission
        self.name = "Dovecot"
        self.dir = os.path.join(scratch, "dovecot")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
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
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        # the same kind of certificate sarn generates for itself: self-signed EC P-256
        B.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj",
               "/CN=bench.example.com", "-keyout", key, "-out", cert])
        os.chmod(key, 0o600)
        tls_conf = (f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
                    "disable_plaintext_auth = yes" if tls else
                    "ssl = no\ndisable_plaintext_auth = no")
        with open(self.conf, "w") as f:
            f.write(f"""# Dovecot submission for the sarn benchmark: loopback only, defaults unless noted.
protocols = submission
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.logfile}
hostname = bench.example.com
{tls_conf}
auth_mechanisms = plain
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
# submission stores no mail, but the session needs a storage location to start
mail_location = maildir:~/Maildir
submission_relay_host = 127.0.0.1
submission_relay_port = {sink_port}
submission_relay_trusted = no
submission_relay_ssl = no
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
  default_fields = uid={uid} gid={gid} home={home}/%d/%n
}}
protocol submission {{
  # default 10: the memory step opens --sessions sessions of one account from 127.0.0.1
  mail_max_userip_connections = 1000
}}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
""")

    def start(self):
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        wait_listening([self.port], self.proc, self.name, self.logfile)


# ----------------------------------------------------------------------------- benchmark

def submit_run(s, sink, payload_lists, tls, timeout=600):
    """Submits payload_lists (one list per connection, all connections at once); returns
    (accepted msg/s, accept wall s, end-to-end wall s or None, server CPU s, messages)."""
    base = sink.n()
    n = sum(len(p) for p in payload_lists)
    cpu0 = cpu_seconds(s.pids())
    t0, t1, got, nbytes = parallel(submit_worker, [(s.port, tls, p) for p in payload_lists])
    last = sink.wait_for(base + got, timeout)
    cpu = cpu_seconds(s.pids()) - cpu0
    if got != n:
        raise RuntimeError("%s: %d of %d submitted" % (s.name, got, n))
    e2e = (last - t0) if last is not None else None
    return got / (t1 - t0), t1 - t0, e2e, cpu, got


def idle_sessions(s, n, tls):
    """n logged-in submission sessions (8 threads open them)."""
    import threading
    conns, errors = [], []
    lock = threading.Lock()

    def opener(k):
        ctx = client_tls_context()
        for _ in range(k):
            try:
                c = Smtp(s.port, tls, ctx=ctx)
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
        close_sessions(conns)
        raise RuntimeError("%s: %d sessions failed, first: %s" % (s.name, len(errors),
                                                                  errors[0]))
    return conns


def close_sessions(conns):
    for c in conns:
        try:
            c.quit()
        except Exception:
            c.close()


def mem_sample(s):
    pids = s.pids()
    m = memory_by_pid(pids)
    return (sum(v[0] for v in m.values()), sum(v[1] for v in m.values()), len(m),
            proc_names(pids), m)


def bench(args, scratch, servers, sinks):
    tls = not args.no_tls
    sink_s, sink_d = Sink("sarn"), Sink("Dovecot")
    for k in (sink_s, sink_d):
        k.start()
        sinks.append(k)
    sarn = SarnSubmission(scratch, args.sarn, sink_s.port, args.queue)
    dove = DovecotSubmission(scratch, [SENDER], sink_d.port, tls)
    sarn.sink, dove.sink = sink_s, sink_d
    both = [sarn, dove]
    info = B.machine_info(scratch, sarn, dove)
    if args.queue:
        info.append(("sarn [queue] settings added", ", ".join("`%s`" % x for x in args.queue)))
    info = [(k, v.replace("one process per connection", "one process per connection; "
                          "raw sockets, STARTTLS + AUTH PLAIN once per connection" if tls else
                          "one process per connection; raw sockets, plaintext AUTH PLAIN"))
            for k, v in info]
    try:
        import aiosmtpd
        info.append(("relay sink", "aiosmtpd %s (one per server, own process, counts and "
                     "discards)" % aiosmtpd.__version__))
    except ImportError:
        pass
    sarn.add_users([SENDER])
    res = B.Results()
    notes = []
    for s in both:
        s.start()
        servers.append(s)
        time.sleep(1.0)
        rss, pss, n, names, _ = mem_sample(s)
        res.add("mem_start", s.name, rss=rss, pss=pss, procs=n, names=names)
        log("%s started: %d processes (%s), RSS %d kB, PSS %d kB" % (s.name, n, names, rss, pss))

    # Warm-up (not timed): one message each end to end, so that sarn's TLS certificate,
    # the queue directory and both relay paths exist before the clock starts.
    rnd = random.Random(1)
    for s in both:
        c = Smtp(s.port, tls)
        if not c.pipelining:
            notes.append("%s does not offer PIPELINING: MAIL/RCPT/DATA sent one by one" % s.name)
        c.send(small_message(0, rnd)[0])
        c.quit()
        if s.sink.wait_for(1, 60) is None:
            raise RuntimeError("%s: warm-up message did not reach the sink:\n%s"
                               % (s.name, B.tail(s.logfile)))
    log("warm-up done")

    rnd = random.Random(42)
    small = [small_message(i, rnd, args.size) for i in range(args.n)]
    avg = statistics.mean(z for _, z in small)
    large = large_message(1, args.large_mb * 1000 * 1000)
    C = 8

    for r in range(args.reps):
        order = both if r % 2 == 0 else both[::-1]
        for conns in (1, C):
            lists = [small[i::conns] for i in range(conns)]
            for s in order:
                rate, wall, e2e, cpu, n = submit_run(s, s.sink, lists, tls)
                if e2e is None:
                    notes.append("%s: rep %d, %d connections: the sink did not get all %d "
                                 "messages within the timeout" % (s.name, r + 1, conns, n))
                res.add("small_%d" % conns, s.name, rate=rate, secs=wall, cpu=cpu / n,
                        e2e=e2e, e2e_rate=n / e2e if e2e else 0)
                log("rep %d %-8s %d × %.1f kB over %d conn: accepted %.2f s (%.0f msg/s), "
                    "end to end %s, server CPU %.2f ms/msg"
                    % (r + 1, s.name, n, avg / 1000, conns, wall, rate,
                       "%.2f s (%.0f msg/s)" % (e2e, n / e2e) if e2e else "TIMEOUT",
                       1000 * cpu / n))
        for s in order:
            rate, wall, e2e, cpu, n = submit_run(s, s.sink, [[large]], tls)
            res.add("large", s.name, secs=wall, e2e=e2e, cpu=cpu, mbs=large[1] / wall / 1e6)
            log("rep %d %-8s one %.1f MB message: accepted %.3f s, end to end %s, CPU %.2f s"
                % (r + 1, s.name, large[1] / 1e6, wall,
                   "%.3f s" % e2e if e2e else "TIMEOUT", cpu))
        for s in order:
            cpu0 = cpu_seconds(s.pids())
            t0, t1, n, _ = parallel(login_worker, [(s.port, tls, args.logins)
                                                   for _ in range(4)])
            cpu = cpu_seconds(s.pids()) - cpu0
            res.add("login", s.name, rate=n / (t1 - t0), secs=t1 - t0, cpu=cpu / n)
            log("rep %d %-8s %d logins (4 clients) %.2f s: %.1f/s, server CPU %.1f ms/login"
                % (r + 1, s.name, n, t1 - t0, n / (t1 - t0), 1000 * cpu / n))

    # Memory at the end: idle after the workload, then with --sessions logged-in sessions
    # (their cost = the whole tree then minus the same processes before).
    for s in both:
        time.sleep(2.0)
        rss0, pss0, n0, names0, before = mem_sample(s)
        try:
            conns = idle_sessions(s, args.sessions, tls)
        except RuntimeError as e:
            notes.append("memory step: %s" % e)
            res.add("mem", s.name, rss0=rss0, pss0=pss0, procs0=n0, names0=names0, rss=0,
                    pss=0, procs=0, names="", per_rss=0, per_pss=0)
            continue
        try:
            for r in range(3):
                time.sleep(1.0)
                rss, pss, n, names, now = mem_sample(s)
                same_rss = sum(v[0] for p, v in before.items() if p in now)
                same_pss = sum(v[1] for p, v in before.items() if p in now)
                res.add("mem", s.name, rss0=rss0, pss0=pss0, procs0=n0, names0=names0,
                        rss=rss, pss=pss, procs=n, names=names,
                        per_rss=(rss - same_rss) / args.sessions,
                        per_pss=(pss - same_pss) / args.sessions)
                log("memory %d %-8s idle %d kB RSS / %d kB PSS (%d procs); %d sessions: "
                    "%d kB RSS / %d kB PSS (%d procs)" % (r + 1, s.name, rss0, pss0, n0,
                                                         args.sessions, rss, pss, n))
        finally:
            close_sessions(conns)

    # Sanity: every message reached the sink, once; sarn's queue is empty.
    expected = 1 + args.reps * (2 * args.n + 1)
    for s in both:
        s.sink.wait_for(expected, 60)
        n = s.sink.n()
        if n != expected:
            notes.append("%s: the sink received %d messages, %d were submitted"
                         % (s.name, n, expected))
        if s.proc.poll() is not None:
            notes.append("%s exited with %s during the run" % (s.name, s.proc.returncode))
    left = sarn.queue_files()
    if left:
        notes.append("sarn: %d files left in DATA/queue at the end: %s"
                     % (len(left), ", ".join(left[:6])))
    errs = [l for l in B.tail(sarn.logfile, 2000).splitlines() if "level=error" in l
            or " error" in l.lower()]
    if errs:
        notes.append("sarn log: %d error lines, first: `%s`" % (len(errs), errs[0][:200]))
    derrs = [l for l in B.tail(dove.logfile, 5000).splitlines()
             if "Error:" in l or "Fatal:" in l or "Panic:" in l]
    if derrs:
        notes.append("Dovecot log: %d error lines, first: `%s`" % (len(derrs), derrs[0][:200]))
    info.append(("load average at end", "%.2f %.2f %.2f" % os.getloadavg()))
    info.append(("run time", "%.0f s" % (time.monotonic() - B.T0)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s|%s" % k: v for k, v in res.data.items()}, f, indent=1)
    return render(args, info, res, sarn, dove, avg, large[1], notes)


def render(args, info, res, sarn, dove, avg, large_size, notes):
    L = ["Machine and versions:", "", "| | |", "|---|---|"]
    L += ["| %s | %s |" % kv for kv in info]
    L += ["", "Median of %d repetitions (servers alternated, first server swapped every "
          "repetition); ratio = sarn / Dovecot; server CPU = user + system time of the "
          "server's processes from the first command until the sink had every message."
          % args.reps, "",
          "| measurement | sarn | Dovecot | sarn / Dovecot | better is | server CPU sarn / "
          "Dovecot |", "|---|---|---|---|---|---|"]

    def row(label, key, field, fmt, higher, cpu_field=None, cpu_fmt=None):
        v = {s.name: res.median(key, s.name, field) for s in (sarn, dove)}
        if not v[sarn.name] or not v[dove.name]:
            L.append("| %s | %s | %s | – | %s | |" % (label, v[sarn.name], v[dove.name],
                                                     "higher" if higher else "lower"))
            return
        cpus = ""
        if cpu_field:
            cpus = "%s / %s" % (cpu_fmt(res.median(key, sarn.name, cpu_field)),
                                cpu_fmt(res.median(key, dove.name, cpu_field)))
        L.append("| %s | %s | %s | %.2f | %s | %s |" % (
            label, fmt(v[sarn.name]), fmt(v[dove.name]), v[sarn.name] / v[dove.name],
            "higher" if higher else "lower", cpus))

    rate = lambda u: (lambda x: "%.0f %s" % (x, u) if x >= 100 else "%.1f %s" % (x, u))  # noqa
    sec = lambda x: "%.0f ms" % (x * 1000) if x < 1 else "%.2f s" % x  # noqa: E731
    msper = lambda x: "%.2f ms/msg" % (x * 1000)  # noqa: E731
    kb = lambda x: "%.0f kB" % x  # noqa: E731
    for conns in (1, 8):
        key = "small_%d" % conns
        what = "%d × %.1f kB, %d connection%s" % (args.n, avg / 1000, conns,
                                                  "s" if conns > 1 else "")
        row("submission, %s: accepted (last 250)" % what, key, "rate", rate("msg/s"), True,
            "cpu", msper)
        row("submission, %s: end to end (sink has all)" % what, key, "e2e_rate",
            rate("msg/s"), True)
    row("one %.0f MB message: time to accept (MAIL → 250 after DATA)" % (large_size / 1e6),
        "large", "secs", sec, False, "cpu", sec)
    row("one %.0f MB message: end to end (MAIL → sink has it)" % (large_size / 1e6),
        "large", "e2e", sec, False)
    row("connect + EHLO + %sAUTH PLAIN + QUIT, 4 clients" % ("STARTTLS + EHLO + " if not
                                                             args.no_tls else ""),
        "login", "rate", rate("logins/s"), True, "cpu", lambda x: "%.1f ms/login" % (x * 1000))
    row("memory idle after start, RSS (sum of processes)", "mem_start", "rss", kb, False)
    row("memory idle after start, PSS", "mem_start", "pss", kb, False)
    row("memory idle at the end (after the workload), RSS", "mem", "rss0", kb, False)
    row("memory idle at the end, PSS", "mem", "pss0", kb, False)
    row("memory with %d logged-in sessions, RSS" % args.sessions, "mem", "rss", kb, False)
    row("memory with %d logged-in sessions, PSS" % args.sessions, "mem", "pss", kb, False)
    row("memory per logged-in session, PSS", "mem", "per_pss", lambda x: "%.1f kB" % x, False)
    row("memory per logged-in session, RSS", "mem", "per_rss", lambda x: "%.1f kB" % x, False)
    L.append("")
    L.append("Processes counted: after start: sarn: %s; Dovecot: %s. At the end: sarn: %s; "
             "Dovecot: %s. With %d sessions: sarn: %s; Dovecot: %s." % (
                 res.data[("mem_start", sarn.name)][0]["names"],
                 res.data[("mem_start", dove.name)][0]["names"],
                 res.data[("mem", sarn.name)][-1]["names0"],
                 res.data[("mem", dove.name)][-1]["names0"], args.sessions,
                 res.data[("mem", sarn.name)][-1]["names"],
                 res.data[("mem", dove.name)][-1]["names"]))
    L += ["", "Findings / mismatches:" if notes else "No mismatches: every message reached "
          "the sink once, sarn's queue was empty at the end, no error in either log."]
    L += ["- " + n for n in notes]
    L += ["", "Every repetition (in order):", "", "| measurement | server | values |",
          "|---|---|---|"]
    for (key, name), vals in res.data.items():
        if key.startswith("small"):
            txt = ", ".join("%.0f msg/s accepted (%.2f s), end to end %s" % (
                v["rate"], v["secs"], "%.2f s" % v["e2e"] if v["e2e"] else "timeout")
                for v in vals)
        elif key == "large":
            txt = ", ".join("%.3f s accepted, %s end to end" % (
                v["secs"], "%.3f s" % v["e2e"] if v["e2e"] else "timeout") for v in vals)
        elif key == "login":
            txt = ", ".join("%.1f logins/s" % v["rate"] for v in vals)
        elif key == "mem":
            txt = ", ".join("%.0f / %.0f kB" % (v["per_pss"], v["per_rss"]) for v in vals) + \
                " (PSS / RSS per session)"
        else:
            txt = ", ".join("%d / %d kB" % (v["rss"], v["pss"]) for v in vals) + " (RSS / PSS)"
        L.append("| %s | %s | %s |" % (key, name, txt))
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sarn", default=os.path.join(REPO, "build", "sarn"))
    ap.add_argument("--n", type=int, default=2000, help="small messages per submission run")
    ap.add_argument("--size", type=int, default=2048, help="size of the small messages")
    ap.add_argument("--large-mb", type=int, default=10, help="size of the large message (MB)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--logins", type=int, default=10, help="logins per client (4 clients)")
    ap.add_argument("--sessions", type=int, default=50, help="logged-in sessions for memory")
    ap.add_argument("--queue", action="append", default=[], metavar="'KEY = VALUE'",
                    help="an extra line for sarn's [queue] section (repeatable), e.g. "
                    "'max_per_domain = 16'")
    ap.add_argument("--no-tls", action="store_true",
                    help="plaintext AUTH on loopback instead of STARTTLS")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    ap.add_argument("--scratch", default=None, help="parent of the scratch directory "
                    "(default: the system temporary directory; must be a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--json", help="write all raw figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps, args.logins, args.sessions = 200, 1, 3, 10
    if os.geteuid() != 0:
        raise SystemExit("run as root: Dovecot starts as root and switches to its users")
    if not os.path.exists(args.sarn):
        raise SystemExit("%s missing: build sarn first (ninja -C build)" % args.sarn)
    if not os.path.exists("/usr/lib/dovecot/submission"):
        raise SystemExit("/usr/lib/dovecot/submission missing: apt-get install "
                         "dovecot-submissiond")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        raise SystemExit("aiosmtpd missing: apt-get install python3-aiosmtpd")
    scratch = tempfile.mkdtemp(prefix="sarn-bench-submission-", dir=args.scratch)
    os.chmod(scratch, 0o755)
    servers, sinks = [], []

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        report = bench(args, scratch, servers, sinks)
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # keep cleaning up
                log("stopping %s: %s" % (s.name, e))
        for k in sinks:
            k.stop()
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
