"""Helpers for the sarn protocol test suites: a server controller and raw protocol clients.

Only stdlib. The SarnServer class starts a real `sarn serve` in its own directory with free
ports; the fixtures in conftest.py create and tear them down.
"""
import atexit
import base64
import os
import imaplib
import poplib
import random
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SARN_BIN = os.environ.get("SARN_BIN") or str(REPO / "build" / "sarn")

DEFAULT_PASSWORD = "secret"
# Users every default server gets (address -> password).
DEFAULT_USERS = {
    "alice@example.com": "secret",
    "bob@example.com": "bobsecret",
}
HOSTNAME = "mx.sarn.test"
ALL_LISTENERS = ("imap", "imaps", "pop3", "pop3s", "smtp", "submission", "submissions", "lmtp")
DEFAULT_LISTENERS = ("imap", "imaps", "pop3", "pop3s", "smtp", "lmtp")
TIMEOUT = float(os.environ.get("SARN_TEST_IO_TIMEOUT", "15"))  # seconds per client operation

EX_NOUSER = 67
EX_TEMPFAIL = 75


class ServerError(AssertionError):
    pass


_live = set()  # every started `sarn serve`, killed at exit if a test run is interrupted


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass


def _free_ports(n, host="127.0.0.1"):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tls_client_context(cafile=None, check_hostname=False):
    """A client TLS context: no verification unless cafile is given."""
    if cafile:
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.check_hostname = check_hostname
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SarnServer:
    """A `sarn serve` process with its own config, data dir and ports.

    overrides: {"section": {"key": value}}; a value of None removes the key.
    listeners: which [listen] entries get a port (the others are left empty).
    """

    def __init__(self, base, name="sarn", overrides=None, listeners=DEFAULT_LISTENERS,
                 users=None, tls_cert=None, tls_key=None, listen_host="127.0.0.1"):
        self.base = Path(base)
        self.name = name
        self.base.mkdir(parents=True, exist_ok=True)
        self.data = self.base / "data"
        self.config_path = self.base / "sarn.ini"
        self.log_path = self.base / "sarn.log"
        self.overrides = overrides or {}
        self.listeners = tuple(listeners)
        self.listen_host = listen_host
        self.host = "127.0.0.1" if listen_host in ("0.0.0.0", "127.0.0.1") else listen_host
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.ports = {}
        self.proc = None
        self._fixed_ports = False
        self.killed = False
        self.starts = 0
        self._users_created = False
        self._stopped = False

    # ---- configuration -------------------------------------------------------------
    def config_dict(self):
        cfg = {
            "server": {
                "data_dir": str(self.data),
                "hostname": HOSTNAME,
                "log_level": "debug",
            },
            "tls": {"cert": self.tls_cert or "", "key": self.tls_key or ""},
            "listen": {},
            "limits": {
                "auth_fail_delay_ms": "0",
                "auth_max_failures": "1000",
            },
            "auth": {"plaintext_auth": "loopback"},
            "pop3": {"retention_days": "0", "lock": "yes"},
        }
        for l in ALL_LISTENERS:
            cfg["listen"][l] = (f"{self.listen_host}:{self.ports[l]}" if l in self.ports else "")
        for sec, kv in self.overrides.items():
            d = cfg.setdefault(sec, {})
            for k, v in kv.items():
                if v is None:
                    d.pop(k, None)
                else:
                    d[k] = str(v)
        return cfg

    def write_config(self):
        if not self.ports or not self._fixed_ports:
            ports = _free_ports(len(self.listeners))
            self.ports = dict(zip(self.listeners, ports))
        lines = []
        for sec, kv in self.config_dict().items():
            lines.append(f"[{sec}]")
            for k, v in kv.items():
                lines.append(f"{k} = {v}")
            lines.append("")
        # Atomic replace: `sarn deliver` processes may be reading it during a restart.
        tmp = self.config_path.with_name(self.config_path.name + ".tmp")
        tmp.write_text("\n".join(lines))
        os.replace(tmp, self.config_path)

    # ---- CLI --------------------------------------------------------------------------
    def cli(self, *args, input=None, check=False, timeout=60, config=True):
        """Runs `sarn ARGS... -c CONFIG`. Returns CompletedProcess (bytes stdout/stderr)."""
        if not self.config_path.exists():
            self.write_config()
        cmd = [SARN_BIN, *args]
        if config:
            cmd += ["-c", str(self.config_path)]
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(cmd, input=input if input is not None else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and r.returncode != 0:
            raise ServerError(f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout!r}\n"
                              f"stderr: {r.stderr!r}")
        return r

    def add_user(self, address, password=DEFAULT_PASSWORD):
        self.cli("user", "add", address, input=password + "\n", check=True)
        self.users[address] = password

    def deliver(self, rcpt, message, check=True):
        """`sarn deliver -c CONFIG RCPT < message`; returns CompletedProcess."""
        if isinstance(message, str):
            message = message.encode()
        cmd = [SARN_BIN, "deliver", "-c", str(self.config_path), rcpt]
        r = subprocess.run(cmd, input=message, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if check and r.returncode != 0:
            raise ServerError(f"sarn deliver {rcpt} exited {r.returncode}: {r.stderr!r}")
        return r

    # ---- process ----------------------------------------------------------------------
    def start(self, timeout=20):
        if not os.access(SARN_BIN, os.X_OK):
            raise ServerError(f"sarn binary not found at {SARN_BIN} (set SARN_BIN or build it)")
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            self.write_config()
            if not self._users_created:
                for addr, pw in self.users.items():
                    self.cli("user", "add", addr, input=pw + "\n", check=True)
                self._users_created = True
            self.starts += 1
            with open(self.log_path, "ab") as logf:
                logf.write(f"==== start #{self.starts} ====\n".encode())
                logf.flush()
                self.proc = subprocess.Popen([SARN_BIN, "serve", "-c", str(self.config_path)],
                                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                             start_new_session=True)
            _live.add(self.proc)
            self.killed = False
            self._stopped = False
            try:
                self.wait_ready(timeout)
                self._fixed_ports = True
                return self
            except ServerError:
                log = self.log_tail()
                if self.proc.poll() is not None and "in use" in log and attempt + 1 < attempts:
                    continue
                self._force_kill()
                raise
        raise ServerError("could not start server")

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        pending = set(self.ports)
        started = False
        while pending or not started:
            if self.proc.poll() is not None:
                raise ServerError(f"sarn serve exited with {self.proc.returncode} during start-up"
                                  f"\n{self.log_tail()}")
            for l in list(pending):
                try:
                    with socket.create_connection((self.host, self.ports[l]), timeout=1):
                        pending.discard(l)
                except OSError:
                    pass
            if not pending and not started:
                # Ports are bound before the store and certificate are ready: the server is
                # ready once a plaintext listener greets.
                started = self._greets()
            if pending or not started:
                if time.monotonic() > deadline:
                    raise ServerError(f"listeners {sorted(pending)} not accepting after "
                                      f"{timeout}s\n{self.log_tail()}")
                time.sleep(0.05)

    def _greets(self):
        plain = [l for l in ("pop3", "imap", "smtp", "lmtp", "submission") if l in self.ports]
        if not plain:
            return True
        try:
            with socket.create_connection((self.host, self.ports[plain[0]]), timeout=1) as s:
                return len(s.recv(1)) == 1
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        self._stopped = True
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._force_kill()
            return None

    def stop_ok(self, timeout=15):
        rc = self.stop(timeout)
        if rc != 0:
            raise ServerError(f"sarn serve did not exit cleanly on SIGTERM: rc={rc} "
                              f"(None = hung, killed)\n{self.log_tail()}")

    def kill(self):
        """SIGKILL, like a crash or power loss of the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.killed = True

    def _force_kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        if self.running():
            self.stop_ok()
        return self.start()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    # ---- paths into the store -----------------------------------------------------------
    def account_dir(self, address):
        local, domain = address.split("@")
        return self.data / "mail" / domain.lower() / local

    def index_db(self, address):
        return self.account_dir(address) / "index.db"

    def blob_files(self, address):
        d = self.account_dir(address) / "blobs"
        return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []

    @property
    def cert_path(self):
        return Path(self.tls_cert) if self.tls_cert else self.data / "tls" / "cert.pem"

    # ---- clients -------------------------------------------------------------------------
    def pop3(self, user="alice@example.com", password=None, mode="plain", login=True):
        """poplib client; mode plain|stls|ssl."""
        if mode == "ssl":
            p = poplib.POP3_SSL(self.host, self.ports["pop3s"], context=tls_client_context(),
                                timeout=TIMEOUT)
        else:
            p = poplib.POP3(self.host, self.ports["pop3"], timeout=TIMEOUT)
            if mode == "stls":
                p.stls(tls_client_context())
        if login:
            p.user(user)
            p.pass_(password if password is not None else self.users[user])
        return p

    def imap(self, user="alice@example.com", password=None, mode="plain", login=True):
        """imaplib client; mode plain|starttls|ssl."""
        if mode == "ssl":
            m = imaplib.IMAP4_SSL(self.host, self.ports["imaps"], ssl_context=tls_client_context(),
                                  timeout=TIMEOUT)
        else:
            m = imaplib.IMAP4(self.host, self.ports["imap"], timeout=TIMEOUT)
            if mode == "starttls":
                m.starttls(tls_client_context())
        if login:
            m.login(user, password if password is not None else self.users[user])
        return m

    def raw(self, listener, tls=False, host=None, source=None):
        c = LineConn(host or self.host, self.ports[listener], source=source)
        if tls:
            c.starttls()
        return c

    def smtp(self, listener="smtp"):
        s = smtplib.SMTP(self.host, self.ports[listener], timeout=TIMEOUT)
        return s

    def lmtp(self):
        return smtplib.LMTP(self.host, self.ports["lmtp"], timeout=TIMEOUT)

    def fetch_all(self, user="alice@example.com", password=None):
        """All messages of user's maildrop via raw POP3 RETR: list of (uidl, bytes)."""
        c = self.raw("pop3")
        try:
            c.expect_ok()
            c.pop3_login(user, password if password is not None else self.users[user])
            uidls = c.pop3_uidl_all()
            out = []
            for n, uid in uidls:
                out.append((uid, c.pop3_retr(n)))
            c.cmd_ok("QUIT")
            return out
        finally:
            c.close()

    def messages(self, user="alice@example.com", password=None):
        return [m for _, m in self.fetch_all(user, password)]


class ProtocolError(AssertionError):
    pass


class LineConn:
    """A raw line-oriented client connection (POP3/SMTP/LMTP)."""

    def __init__(self, host, port, timeout=TIMEOUT, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def sendline(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("connection closed by server")
        self.buf += d

    def readline(self, maxlen=1 << 20):
        """One line with its CRLF removed (bytes). EOFError if the server closed."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                if not line.endswith(b"\r\n"):
                    raise ProtocolError(f"line without CRLF from server: {line!r}")
                return line[:-2]
            if len(self.buf) > maxlen:
                raise ProtocolError("server line too long")
            self._fill()

    def readstr(self):
        return self.readline().decode("utf-8", "replace")

    def read_until(self, terminator=b"\r\n.\r\n", maxlen=1 << 30):
        """Raw bytes up to and including terminator."""
        while True:
            i = self.buf.find(terminator)
            if i >= 0:
                data, self.buf = self.buf[:i + len(terminator)], self.buf[i + len(terminator):]
                return data
            if len(self.buf) > maxlen:
                raise ProtocolError("too much data")
            self._fill()

    def closed_by_server(self, wait=5.0):
        """True if the server closes the connection within wait seconds (data is discarded)."""
        self.sock.settimeout(wait)
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        return False

    def starttls(self, ctx=None, server_hostname=None):
        if self.buf:
            raise ProtocolError(f"data received before the TLS handshake: {self.buf!r}")
        self.sock = (ctx or tls_client_context()).wrap_socket(self.sock,
                                                             server_hostname=server_hostname)

    @property
    def tls(self):
        return isinstance(self.sock, ssl.SSLSocket)

    # ---- POP3 ---------------------------------------------------------------------------
    def expect_ok(self):
        line = self.readstr()
        if not line.startswith("+OK"):
            raise ProtocolError(f"expected +OK, got {line!r}")
        return line

    def cmd(self, line):
        """Sends a POP3 command; returns the first response line (str)."""
        self.sendline(line)
        return self.readstr()

    def cmd_ok(self, line):
        r = self.cmd(line)
        if not r.startswith("+OK"):
            raise ProtocolError(f"{line!r}: expected +OK, got {r!r}")
        return r

    def cmd_err(self, line):
        r = self.cmd(line)
        if not r.startswith("-ERR"):
            raise ProtocolError(f"{line!r}: expected -ERR, got {r!r}")
        return r

    def multiline(self):
        """Body of a POP3 multi-line response, raw (dot-stuffed), without the final '.'."""
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        data = self.read_until(b"\r\n.\r\n")
        return data[:-3]

    def multiline_lines(self):
        raw = self.multiline()
        return [l.decode() for l in pop3_unstuff(raw).split(b"\r\n")[:-1]] if raw else []

    def pop3_login(self, user, password):
        self.cmd_ok(f"USER {user}")
        return self.cmd_ok(f"PASS {password}")

    def pop3_retr(self, n, cmd="RETR"):
        self.cmd_ok(f"{cmd} {n}")
        return pop3_unstuff(self.multiline())

    def pop3_uidl_all(self):
        self.cmd_ok("UIDL")
        out = []
        for l in self.multiline_lines():
            n, u = l.split(" ", 1)
            out.append((int(n), u))
        return out

    def pop3_list_all(self):
        self.cmd_ok("LIST")
        out = []
        for l in self.multiline_lines():
            n, s = l.split(" ", 1)
            out.append((int(n), int(s)))
        return out

    # ---- SMTP/LMTP ------------------------------------------------------------------------
    def reply(self):
        """Reads one (possibly multi-line) SMTP reply: (code, [texts])."""
        texts = []
        while True:
            line = self.readstr()
            if len(line) < 3 or not line[:3].isdigit():
                raise ProtocolError(f"bad SMTP reply line {line!r}")
            texts.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), texts
            if line[3] != "-":
                raise ProtocolError(f"bad SMTP reply line {line!r}")

    def smtp(self, line, expect=None):
        self.sendline(line)
        code, texts = self.reply()
        if expect is not None and code != expect:
            raise ProtocolError(f"{line!r}: expected {expect}, got {code} {texts}")
        return code, texts


def pop3_unstuff(raw):
    """Undoes POP3 dot-stuffing of a multi-line body (lines with CRLF)."""
    if not raw:
        return raw
    lines = raw.split(b"\r\n")
    out = [l[1:] if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(out)


def smtp_stuff(data):
    """Dot-stuffs a CRLF message for SMTP DATA (must end in CRLF)."""
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def enhanced(texts):
    """The enhanced status code (e.g. '5.1.1') at the start of an SMTP reply text, or ''."""
    m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", texts[0] if isinstance(texts, list) else texts)
    return m.group(1) if m else ""


TRACE_FIELDS = (b"received:", b"return-path:", b"delivered-to:", b"x-original-to:")


def _split_first_field(data):
    """(field bytes incl. continuation lines and CRLF, rest)."""
    i = 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            raise AssertionError("unterminated header field")
        i = j + 2
        if i < len(data) and data[i:i + 1] in (b" ", b"\t"):
            continue
        return data[:i], data[i:]


def strip_received(data):
    """Removes the Return-Path: field and the one Received: field that sarn puts on top of
    what it stores from SMTP/LMTP (both must be there)."""
    assert data.startswith(b"Return-Path: <"), f"message does not start with Return-Path: {data[:80]!r}"
    _, data = _split_first_field(data)
    assert data.startswith(b"Received: "), f"message does not start with Received: {data[:80]!r}"
    _, rest = _split_first_field(data)
    return rest


def strip_trace(data):
    """Removes any leading trace fields (Received, Return-Path, Delivered-To)."""
    while data[:20].lower().startswith(TRACE_FIELDS):
        _, data = _split_first_field(data)
    return data


def make_message(subject="test", body="Hello.\r\n", msgid=None, extra=b"", frm="sender@remote.test",
                 to="alice@example.com"):
    if isinstance(body, str):
        body = body.encode()
    msgid = msgid or f"<{random.getrandbits(64):x}@test>"
    hdr = (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
           f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n").encode() + extra + b"\r\n"
    return hdr + body


def sasl_plain(user, password, authz=""):
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode()).decode()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def wait_for(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
