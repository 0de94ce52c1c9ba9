"""Shared helpers of the fault and load suites: deterministic messages, a small raw IMAP
client, and readers for the server's /proc entries."""
import os
import random
import re
import time

from sarntest import LineConn, ProtocolError, make_message, smtp_stuff

MID_RE = re.compile(rb"^X-Relia-Id: (\S+)\r$", re.M)


def relia_message(mid, size=None):
    """Deterministic message for an id; size picked from the id unless given. Contains
    dot-lines and 8-bit octets, always CRLF."""
    rng = random.Random(mid)
    if size is None:
        size = rng.choice([300, 300, 2000, 2000, 20000, 90000])
    lines = [f"relia {mid}".encode()]
    n = 0
    chunk = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(997))
    while n < size:
        kind = rng.random()
        if kind < 0.04:
            l = b"."
        elif kind < 0.1:
            l = b".." + chunk[:rng.randint(0, 30)]
        elif kind < 0.14:
            l = bytes(rng.randint(0x80, 0xff) for _ in range(rng.randint(1, 40)))
        elif kind < 0.17:
            l = b""
        else:
            k = rng.randint(0, 900)
            l = chunk[k:k + rng.randint(1, 97)] + chunk[:rng.randint(0, 900)]
        lines.append(l)
        n += len(l) + 2
    body = b"\r\n".join(lines) + b"\r\n"
    return make_message(f"relia {mid}", body, msgid=f"<{mid}@relia>",
                        extra=f"X-Relia-Id: {mid}\r\n".encode())


def msg_id(raw):
    m = MID_RE.search(raw[:4096])
    return m.group(1).decode() if m else None


# ---- /proc ----------------------------------------------------------------------------------
def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kb(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def spool_leftovers(server):
    d = server.data / "spool"
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) if d.exists() else []


def wait_settled(pid, seconds=10.0, fds_at_most=None):
    """Waits up to `seconds` until the fd count is at most fds_at_most; returns it."""
    deadline = time.monotonic() + seconds
    while True:
        n = fd_count(pid)
        if fds_at_most is not None and n <= fds_at_most:
            return n
        if time.monotonic() > deadline:
            return n
        time.sleep(0.2)


# ---- SMTP/LMTP --------------------------------------------------------------------------------
def lmtp_connect(server, listener="lmtp", timeout=20):
    c = LineConn(server.host, server.ports[listener], timeout=timeout)
    code, _ = c.reply()
    if code != 220:
        raise ProtocolError(f"greeting {code}")
    c.smtp("LHLO relia.test" if listener == "lmtp" else "EHLO relia.test", 250)
    return c


def send_mail(c, listener, rcpts, data):
    """One transaction on an open SMTP/LMTP connection: list of (rcpt, code, text)."""
    c.smtp("MAIL FROM:<relia@remote.test>", 250)
    ok = []
    out = []
    for r in rcpts:
        code, t = c.smtp(f"RCPT TO:<{r}>")
        if code == 250:
            ok.append(r)
        else:
            out.append((r, code, t))
    if not ok:
        c.smtp("RSET", 250)
        return out
    c.smtp("DATA", 354)
    c.send(smtp_stuff(data) + b".\r\n")
    if listener == "lmtp":
        for r in ok:
            code, t = c.reply()
            out.append((r, code, t))
    else:
        code, t = c.reply()
        out.extend((r, code, t) for r in ok)
    return out


# ---- raw IMAP ----------------------------------------------------------------------------------
class Imap:
    """A minimal IMAP client on LineConn: tagged commands, literals in responses."""

    def __init__(self, server, tls=False, timeout=20, listener=None):
        listener = listener or ("imaps" if tls else "imap")
        self.c = LineConn(server.host, server.ports[listener], timeout=timeout)
        if tls:
            self.c.starttls()
        self.n = 0
        self.greeting = self.c.readline()

    def close(self):
        self.c.close()

    def read_response_line(self):
        """One response line, with any literals it contains inlined as bytes: (line, [lits])."""
        line = self.c.readline()
        lits = []
        while True:
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return line, lits
            size = int(m.group(1))
            while len(self.c.buf) < size:
                self.c._fill()
            lits.append(self.c.buf[:size])
            self.c.buf = self.c.buf[size:]
            line = line + b"<lit>" + self.c.readline()

    def command(self, text, literal=None):
        """Sends a command (with an optional synchronising literal appended); returns
        (status, tagged line, untagged [(line, lits)])."""
        self.n += 1
        tag = f"r{self.n}".encode()
        if isinstance(text, str):
            text = text.encode()
        untagged = []
        if literal is not None:
            self.c.send(tag + b" " + text + b" {%d}\r\n" % len(literal))
            while True:
                line, lits = self.read_response_line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    return line.split(b" ")[1].decode(), line, untagged
                untagged.append((line, lits))
            self.c.send(literal + b"\r\n")
        else:
            self.c.send(tag + b" " + text + b"\r\n")
        while True:
            line, lits = self.read_response_line()
            if line.startswith(tag + b" "):
                return line.split(b" ")[1].decode(), line, untagged
            untagged.append((line, lits))

    def multiappend(self, folder, messages, flags="(\\Seen)"):
        """MULTIAPPEND (RFC 3502) with synchronising literals: (status, tagged line)."""
        self.n += 1
        tag = f"r{self.n}".encode()
        head = tag + f" APPEND {folder}".encode()
        for i, m in enumerate(messages):
            self.c.send(head + f" {flags} {{{len(m)}}}\r\n".encode())
            while True:
                line, _ = self.read_response_line()
                if line.startswith(b"+"):
                    break
                if line.startswith(tag + b" "):
                    return line.split(b" ")[1].decode(), line
            self.c.send(m)
            head = b""
        self.c.send(b"\r\n")
        while True:
            line, _ = self.read_response_line()
            if line.startswith(tag + b" "):
                return line.split(b" ")[1].decode(), line

    def ok(self, text, literal=None):
        st, line, untagged = self.command(text, literal)
        if st != "OK":
            raise ProtocolError(f"{text!r}: {line!r}")
        return line, untagged

    def login(self, user, password):
        return self.ok(f'LOGIN "{user}" "{password}"')
