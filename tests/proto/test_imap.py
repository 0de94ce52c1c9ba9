"""IMAP (RFC 9051, 3501 and extensions) against a real `sarn serve`: happy paths.

Raw transcripts (class IC) for exact syntax; imaplib where the client library is the point.
The unhappy paths are in test_imap_errors.py, which imports the helpers from here.
"""
import base64
import imaplib
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sarntest import SarnServer, make_message, sasl_plain, strip_trace

ALICE = "alice@example.com"
BOB = "bob@example.com"
CORPUS = Path("/work/shared/corpus/public")
DEFAULT_BOXES = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
           "Archive": "\\Archive"}
SYSTEM_FLAGS = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}
DATE_RE = r'"[ \d]\d-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"'
PUSH_WAIT = 10.0  # seconds an IDLE/NOOP push may take


# ---------------------------------------------------------------------------------------
# Fast servers: the two default accounts are made once (a password hash costs ~0.3 s each)
# and each test's server starts from a copy of that data dir. Overrides conftest's `server`.
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _imap_template(tmp_path_factory, shared_cert):
    base = tmp_path_factory.mktemp("imap-template")
    srv = SarnServer(base / "t", name="template", tls_cert=shared_cert[0],
                     tls_key=shared_cert[1])
    srv.write_config()
    for addr, pw in srv.users.items():
        srv.cli("user", "add", addr, input=pw + "\n", check=True)
    # Logins are what these tests do most, and a yescrypt check costs ~0.3 s of CPU: swap
    # the hashes for SHA-512-crypt ones (the server verifies with crypt(3), any scheme).
    db = sqlite3.connect(str(srv.data / "accounts.db"))
    try:
        for addr, pw in srv.users.items():
            h = subprocess.run(["openssl", "passwd", "-6", "-salt", "imaptest", pw], check=True,
                               capture_output=True, text=True).stdout.strip()
            db.execute("UPDATE users SET hash = ? WHERE address = ?", (h, addr))
        db.commit()
    finally:
        db.close()
    return srv.data


def fast_server(sarn_factory, template, **kw):
    """sarn_factory(**kw), started from a copy of the template data dir."""
    srv = sarn_factory(start=False, **kw)
    shutil.copytree(template, srv.data)
    srv._users_created = True
    return srv.start()


@pytest.fixture
def server(sarn_factory, _imap_template):
    return fast_server(sarn_factory, _imap_template)


# ---------------------------------------------------------------------------------------
# A raw IMAP client and a response parser
# ---------------------------------------------------------------------------------------

class Res:
    """The outcome of one command: untagged responses (bytes, literals inline) and the
    tagged line (str)."""

    def __init__(self, cmd, untagged, tagged):
        self.cmd = cmd
        self.untagged = untagged
        self.tagged = tagged
        parts = tagged.split(" ", 2)
        self.status = parts[1].upper() if len(parts) > 1 else ""
        m = re.match(r"\S+ \S+ \[([^\]]*)\]", tagged)
        self.code = m.group(1) if m else ""

    @property
    def ok(self):
        return self.status == "OK"

    def lines(self):
        return [u.decode("utf-8", "replace") for u in self.untagged]

    def starting(self, prefix):
        """Untagged responses (str) that start with prefix, case-insensitively."""
        p = prefix.upper()
        return [l for l in self.lines() if l.upper().startswith(p)]

    def fetches(self):
        """[(seq, {ITEM: value})] of the untagged FETCH responses, in order."""
        out = []
        for u in self.untagged:
            m = re.match(rb"\* (\d+) FETCH ", u, re.I)
            if m:
                out.append((int(m.group(1)), fetch_items(u[m.end():])))
        return out

    def fetch_map(self):
        """{seq: items}; fails on two FETCH responses for one message."""
        d = {}
        for seq, items in self.fetches():
            d.setdefault(seq, {}).update(items)
        return d

    def __repr__(self):
        body = "\n".join(l[:300] for l in self.lines())
        return f"\n C: {self.cmd}\n{body}\n{self.tagged}"


class IC:
    """A raw IMAP connection that keeps a transcript."""

    def __init__(self, server, listener="imap", greet=True, tls=False, source=None):
        self.server = server
        self.c = server.raw(listener, source=source)
        if listener == "imaps":
            self.c.starttls()
        if tls:
            pass
        self.n = 0
        self.greeting = self.resp().decode() if greet else None

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.c.send(data)

    def sendline(self, line):
        self.c.sendline(line)

    def readn(self, n):
        while len(self.c.buf) < n:
            self.c._fill()
        d, self.c.buf = self.c.buf[:n], self.c.buf[n:]
        return d

    def resp(self):
        """One whole server response (its line and any literals), without the last CRLF."""
        out = b""
        while True:
            line = self.c.readline()
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            out += b"\r\n" + self.readn(int(m.group(1)))

    def resp_str(self):
        return self.resp().decode("utf-8", "replace")

    def tag(self):
        self.n += 1
        return f"t{self.n}"

    def cmd(self, *pieces, tag=None, plus=False):
        """Sends a command: pieces alternate text, literal bytes, text, ... A synchronising
        literal waits for the "+" continuation (plus=True sends {n+} instead). If the server
        answers a literal with a tagged response instead of "+", that is the result."""
        tag = tag or self.tag()
        untagged = []
        shown = []
        for i, p in enumerate(pieces):
            if i % 2 == 0:
                data = p.encode() if isinstance(p, str) else p
                if i == 0:
                    data = tag.encode() + b" " + data
                if i + 1 < len(pieces):
                    lit = pieces[i + 1]
                    data += b"{%d%s}\r\n" % (len(lit), b"+" if plus else b"")
                    self.send(data)
                    shown.append(data)
                    if not plus:
                        while True:
                            r = self.resp()
                            if r.startswith(b"+"):
                                break
                            if r.startswith(b"*"):
                                untagged.append(r)
                                continue
                            return Res(b"".join(shown).decode("utf-8", "replace"), untagged,
                                       r.decode("utf-8", "replace"))
                else:
                    self.send(data + b"\r\n")
                    shown.append(data)
            else:
                self.send(p + (b"\r\n" if i == len(pieces) - 1 else b""))
                shown.append(b"<%d bytes>" % len(p))
        return self.finish(tag, b"".join(shown).decode("utf-8", "replace"), untagged)

    def finish(self, tag, cmd="", untagged=None):
        untagged = [] if untagged is None else untagged
        while True:
            r = self.resp()
            if r.startswith(tag.encode() + b" "):
                return Res(cmd, untagged, r.decode("utf-8", "replace"))
            if r.startswith(b"+"):
                raise AssertionError(f"unexpected continuation {r!r} for {cmd!r}")
            untagged.append(r)

    def ok(self, *pieces, **kw):
        r = self.cmd(*pieces, **kw)
        assert r.ok, f"expected OK: {r!r}"
        return r

    def login(self, user=ALICE, password=None):
        pw = password if password is not None else self.server.users[user]
        return self.ok(f'LOGIN {quote(user)} {quote(pw)}')

    def select(self, box="INBOX", examine=False):
        return self.ok(f"{'EXAMINE' if examine else 'SELECT'} {quote(box)}")

    def idle_start(self):
        tag = self.tag()
        self.sendline(f"{tag} IDLE")
        r = self.resp_str()
        assert r.startswith("+"), f"IDLE: expected a continuation, got {r!r}"
        return tag

    def wait_untagged(self, pred, timeout=PUSH_WAIT):
        """Reads untagged responses until pred(line str) is true; returns all read."""
        got = []
        deadline = time.monotonic() + timeout
        self.c.sock.settimeout(0.2)
        try:
            while time.monotonic() < deadline:
                try:
                    r = self.resp().decode("utf-8", "replace")
                except (socket.timeout, TimeoutError):
                    continue
                got.append(r)
                if pred(r):
                    return got
        finally:
            self.c.sock.settimeout(self.c.timeout)
        raise AssertionError(f"no matching push within {timeout}s; got {got!r}")

    def quiet_for(self, secs=0.5):
        """The responses that arrive within secs (none expected usually)."""
        got = []
        self.c.sock.settimeout(secs)
        try:
            while True:
                got.append(self.resp().decode("utf-8", "replace"))
        except (socket.timeout, TimeoutError):
            return got
        finally:
            self.c.sock.settimeout(self.c.timeout)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def session(server, user=ALICE, box=None, examine=False, rev2=False, fill=0):
    """A logged-in IC, optionally with ENABLE IMAP4rev2, `fill` messages appended to INBOX
    (see fill()) and a selected mailbox."""
    ic = IC(server)
    ic.login(user)
    if rev2:
        ic.ok("ENABLE IMAP4rev2")
    if fill:
        ic.filled = globals()["fill"](server, fill, user=user, ic=ic)
    if box is not None:
        ic.select(box, examine)
    return ic


# ---- response parsing ------------------------------------------------------------------

class Atom(str):
    pass


def parse_sexp(data, i=0):
    """Parses IMAP response data from data[i:]: returns (list of values, next index).
    Atoms are Atom (str), strings bytes, NIL None, lists list."""
    out = []
    n = len(data)
    while i < n:
        c = data[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            v, i = parse_sexp(data, i + 1)
            out.append(v)
        elif c == b")":
            return out, i + 1
        elif c == b'"':
            j = i + 1
            s = bytearray()
            while data[j:j + 1] != b'"':
                if data[j:j + 1] == b"\\":
                    j += 1
                s += data[j:j + 1]
                j += 1
                if j >= n:
                    raise ValueError(f"unterminated quoted string in {data!r}")
            out.append(bytes(s))
            i = j + 1
        elif c in (b"{", b"~") and re.match(rb"~?\{\d+\+?\}\r\n", data[i:]):
            m = re.match(rb"~?\{(\d+)\+?\}\r\n", data[i:])
            ln = int(m.group(1))
            st = i + m.end()
            out.append(data[st:st + ln])
            i = st + ln
        else:
            j = i
            depth = 0
            while j < n:
                ch = data[j:j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                j += 1
            a = data[i:j].decode("utf-8", "replace")
            out.append(None if a.upper() == "NIL" else Atom(a))
            i = j
    return out, i


def fetch_items(data):
    """b'(UID 1 FLAGS (\\Seen) BODY[] {3}\\r\\nabc)' -> {'UID': '1', 'FLAGS': [...], ...}."""
    vals, _ = parse_sexp(data)
    assert len(vals) == 1 and isinstance(vals[0], list), f"FETCH data not a list: {data!r}"
    lst = vals[0]
    assert len(lst) % 2 == 0, f"FETCH data has an odd number of members: {data!r}"
    return {str(lst[k]).upper(): lst[k + 1] for k in range(0, len(lst), 2)}


def text(v):
    """A parsed string/atom as str (None stays None)."""
    if v is None:
        return None
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def flags(v):
    """A FLAGS value without \\Recent (an IMAP4rev1 session may see it on new messages)."""
    return [str(f) for f in v if str(f).lower() != "\\recent"]


def lower(v):
    """Recursively lower-cases strings in a parsed structure (for case-insensitive checks)."""
    if isinstance(v, list):
        return [lower(x) for x in v]
    if v is None:
        return None
    return text(v).lower()


def parse_list_line(line):
    """'* LIST (\\HasNoChildren) "/" INBOX ...' -> (set of attrs, delim, name, rest)."""
    raw = line.encode() if isinstance(line, str) else line
    m = re.match(rb"\* (LIST|LSUB) ", raw, re.I)
    assert m, f"not a LIST response: {line!r}"
    vals, _ = parse_sexp(raw[m.end():])
    attrs = {str(a) for a in vals[0]}
    return attrs, text(vals[1]), text(vals[2]), vals[3:]


def list_map(res):
    """{name: attrs} of the LIST responses of res."""
    out = {}
    for l in res.untagged:
        if re.match(rb"\* LIST ", l, re.I):
            attrs, _, name, _ = parse_list_line(l)
            out[name] = {a.lower() for a in attrs}
    return out


def status_items(res, box=None):
    """{ITEM: int} of the (only or named) STATUS response."""
    for l in res.untagged:
        m = re.match(rb"\* STATUS ", l, re.I)
        if not m:
            continue
        vals, _ = parse_sexp(l[m.end():])
        if box is not None and text(vals[0]) != box:
            continue
        it = vals[1]
        return {str(it[k]).upper(): (None if it[k + 1] is None else int(it[k + 1]))
                for k in range(0, len(it), 2)}
    raise AssertionError(f"no STATUS response for {box}: {res!r}")


def all_statuses(res):
    out = {}
    for l in res.untagged:
        m = re.match(rb"\* STATUS ", l, re.I)
        if m:
            vals, _ = parse_sexp(l[m.end():])
            it = vals[1]
            out[text(vals[0])] = {str(it[k]).upper(): int(it[k + 1]) for k in range(0, len(it), 2)}
    return out


def caps_of(line):
    """Capability names (upper case) from '* CAPABILITY ...' or '[CAPABILITY ...]'."""
    m = re.search(r"CAPABILITY ([^\]\r\n]*)", line, re.I)
    assert m, f"no capability list in {line!r}"
    return [c.upper() for c in m.group(1).split()]


def search_nums(res):
    """Numbers of the untagged SEARCH response (exactly one expected)."""
    s = res.starting("* SEARCH")
    assert len(s) == 1, f"expected one * SEARCH: {res!r}"
    return [int(x) for x in s[0].split()[2:]]


def esearch(res, tag=None):
    """Parsed * ESEARCH: {'TAG': str|None, 'UID': bool, ITEM: value str}."""
    es = res.starting("* ESEARCH")
    assert len(es) == 1, f"expected one * ESEARCH: {res!r}"
    vals, _ = parse_sexp(es[0][len("* ESEARCH"):].encode())
    out = {"TAG": None, "UID": False}
    i = 0
    if vals and isinstance(vals[0], list):
        corr = vals[0]
        assert str(corr[0]).upper() == "TAG", es[0]
        out["TAG"] = text(corr[1])
        i = 1
    if i < len(vals) and str(vals[i]).upper() == "UID":
        out["UID"] = True
        i += 1
    while i + 1 < len(vals):
        out[str(vals[i]).upper()] = text(vals[i + 1])
        i += 2
    if tag is not None:
        assert out["TAG"] == tag, f"ESEARCH must carry (TAG \"{tag}\"): {es[0]}"
    return out


def expand_set(s):
    """'1:3,7' -> [1, 2, 3, 7]."""
    out = []
    for part in s.split(","):
        if ":" in part:
            a, b = part.split(":")
            a, b = int(a), int(b)
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


# ---- messages ----------------------------------------------------------------------------

def msg(subject="test", body="Hello.\r\n", **kw):
    return make_message(subject=subject, body=body, **kw)


MULTIPART = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>, carol@example.org\r\n"
    b"Cc: dave@example.net\r\n"
    b"Subject: multipart test\r\n"
    b"Message-ID: <mp1@example.com>\r\n"
    b"In-Reply-To: <parent@example.com>\r\n"
    b"Date: Fri, 02 Jan 2026 10:20:30 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XyZ\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XyZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 line one\r\n"
    b"line two\r\n"
    b"--XyZ\r\n"
    b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    b"\r\n"
    b"AAECAwQFBgcICf8=\r\n"
    b"--XyZ--\r\n"
    b"epilogue\r\n")
MULTIPART_BIN = bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255])
MULTIPART_PART1 = b"caf=C3=A9 line one\r\nline two"


def append(ic, box, message, flags=None, date=None):
    """APPEND over an IC; returns the new UID (from APPENDUID)."""
    args = f"APPEND {quote(box)}"
    if flags is not None:
        args += f" ({flags})"
    if date is not None:
        args += f' "{date}"'
    r = ic.ok(args + " ", message)
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", r.tagged, re.I)
    assert m, f"APPEND OK must carry [APPENDUID v uid] (RFC 4315): {r!r}"
    return int(m.group(2))


def fill(server, n, box="INBOX", user=ALICE, prefix="msg", ic=None):
    """Appends n small messages to box (subjects "msg 1"...); returns their bytes."""
    out = []
    own = ic is None
    if own:
        ic = session(server, user)
    for i in range(n):
        m = msg(subject=f"{prefix} {i + 1}", body=f"Body number {i + 1}.\r\n")
        append(ic, box, m)
        out.append(m)
    if own:
        ic.ok("LOGOUT")
        ic.close()
    return out


def uids(ic):
    r = ic.ok("UID SEARCH ALL")
    return search_nums(r)


# ---------------------------------------------------------------------------------------
# Greeting, CAPABILITY, LOGIN, AUTHENTICATE, STARTTLS, ID, ENABLE, NAMESPACE, LOGOUT
# ---------------------------------------------------------------------------------------

EXPECTED_CAPS = ["IMAP4REV1", "IMAP4REV2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE",
                 "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "LIST-EXTENDED",
                 "LIST-STATUS", "SPECIAL-USE", "ESEARCH", "SEARCHRES", "BINARY", "MULTIAPPEND",
                 "STATUS=SIZE", "STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN"]


def test_greeting_has_capability(server):
    with IC(server) as ic:
        g = ic.greeting
        assert re.match(r"\* OK \[CAPABILITY [^\]]+\] \S", g), g
        caps = caps_of(g)
        for c in EXPECTED_CAPS:
            assert c in caps, f"{c} missing from greeting capabilities: {g}"
        assert any(re.fullmatch(r"APPENDLIMIT=\d+", c) for c in caps), g
        assert "LOGINDISABLED" not in caps  # loopback, plaintext allowed


def test_capability_command(server):
    with IC(server) as ic:
        r = ic.ok("CAPABILITY")
        caps = r.starting("* CAPABILITY ")
        assert len(caps) == 1, r
        names = caps_of(caps[0])
        for c in EXPECTED_CAPS:
            assert c in names, f"{c} missing: {r!r}"
        assert r.tagged.startswith("t1 OK"), r


def test_login_ok_carries_capability(server):
    with IC(server) as ic:
        r = ic.login()
        assert re.match(r"t1 OK \[CAPABILITY [^\]]+\]", r.tagged), r
        caps = caps_of(r.tagged)
        assert "IMAP4REV1" in caps and "IDLE" in caps
        # Authenticated state: a command that needs it works.
        ic.ok("LIST \"\" INBOX")


def test_login_case_insensitive_command_and_literal_args(server):
    with IC(server) as ic:
        r = ic.ok("login ", ALICE.encode(), " ", b"secret")
        assert "[CAPABILITY" in r.tagged.upper()
        r = ic.ok('sElEcT inbox')
        assert r.code.upper() == "READ-WRITE"


def test_login_literal_plus(server):
    with IC(server) as ic:
        r = ic.cmd("LOGIN ", ALICE.encode(), " ", b"secret", plus=True)
        assert r.ok, r


def test_login_atom_args(server):
    with IC(server) as ic:
        # alice@example.com is a valid atom (no specials).
        assert ic.cmd("LOGIN alice@example.com secret").ok


def test_authenticate_plain_sasl_ir(server):
    with IC(server) as ic:
        r = ic.ok(f"AUTHENTICATE PLAIN {sasl_plain(ALICE, 'secret')}")
        assert "[CAPABILITY" in r.tagged.upper(), r
        ic.ok("SELECT INBOX")


def test_authenticate_plain_continuation(server):
    with IC(server) as ic:
        ic.sendline("a1 AUTHENTICATE PLAIN")
        cont = ic.resp_str()
        assert cont == "+ " or cont == "+", f"empty challenge expected: {cont!r}"
        ic.sendline(sasl_plain(BOB, "bobsecret"))
        r = ic.finish("a1")
        assert r.ok and "[CAPABILITY" in r.tagged.upper(), r


def test_authenticate_plain_sasl_ir_empty_response(server):
    # RFC 4959 §3: "=" is an empty initial response; PLAIN then fails (no credentials) or
    # the server answers with a continuation. It must not log anybody in.
    with IC(server) as ic:
        ic.sendline("a1 AUTHENTICATE PLAIN =")
        r = ic.resp_str()
        if r.startswith("+"):
            ic.sendline("*")
            r = ic.resp_str()
        assert r.startswith("a1 NO") or r.startswith("a1 BAD"), r


def test_authenticate_login(server):
    with IC(server) as ic:
        ic.sendline("a1 AUTHENTICATE LOGIN")
        c1 = ic.resp_str()
        assert c1.startswith("+ "), c1
        assert base64.b64decode(c1[2:]).lower().startswith(b"user"), c1
        ic.sendline(base64.b64encode(ALICE.encode()).decode())
        c2 = ic.resp_str()
        assert c2.startswith("+ ") and base64.b64decode(c2[2:]).lower().startswith(b"pass"), c2
        ic.sendline(base64.b64encode(b"secret").decode())
        r = ic.finish("a1")
        assert r.ok, r


def test_authenticate_cancel(server):
    # RFC 9051 §6.2.2: "*" cancels; the server rejects the command with BAD.
    with IC(server) as ic:
        ic.sendline("a1 AUTHENTICATE PLAIN")
        assert ic.resp_str().startswith("+")
        ic.sendline("*")
        r = ic.finish("a1")
        assert r.status == "BAD", r
        ic.login()  # still in not-authenticated state, usable


def test_starttls_then_login(server):
    with IC(server) as ic:
        r = ic.ok("STARTTLS")
        ic.c.starttls()
        assert ic.c.tls
        r = ic.ok("CAPABILITY")
        caps = caps_of(r.starting("* CAPABILITY")[0])
        assert "STARTTLS" not in caps, "STARTTLS advertised again inside TLS"
        assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps
        ic.login()
        ic.select()


def test_imaplib_starttls_and_imaps(server):
    m = server.imap(mode="starttls")
    try:
        typ, data = m.select("INBOX")
        assert typ == "OK"
    finally:
        m.logout()
    m = server.imap(mode="ssl")
    try:
        typ, data = m.list()
        assert typ == "OK" and any(b"INBOX" in d for d in data)
    finally:
        m.logout()


def test_imaps_greeting(server):
    with IC(server, "imaps") as ic:
        assert ic.c.tls
        assert ic.greeting.startswith("* OK")
        caps = caps_of(ic.greeting) if "CAPABILITY" in ic.greeting else []
        assert "STARTTLS" not in caps
        ic.login()


def test_id(server):
    with IC(server) as ic:
        r = ic.ok('ID ("name" "pytest" "version" "1.0")')
        ids = r.starting("* ID ")
        assert len(ids) == 1, r
        vals, _ = parse_sexp(ids[0][5:].encode())
        assert isinstance(vals[0], list) and len(vals[0]) % 2 == 0, ids[0]
        d = {text(vals[0][k]).lower(): text(vals[0][k + 1]) for k in range(0, len(vals[0]), 2)}
        assert d.get("name") == "sarn", ids[0]
        r = ic.ok("ID NIL")
        assert len(r.starting("* ID ")) == 1


def test_enable_imap4rev2(server):
    with session(server) as ic:
        r = ic.ok("ENABLE IMAP4rev2")
        assert r.starting("* ENABLED") and "IMAP4REV2" in r.starting("* ENABLED")[0].upper(), r
        # Enabling again or something unknown: OK, nothing (new) enabled.
        r = ic.ok("ENABLE X-UNKNOWN-EXTENSION")
        for l in r.starting("* ENABLED"):
            assert "X-UNKNOWN" not in l.upper(), r


def test_namespace(server):
    with session(server) as ic:
        r = ic.ok("NAMESPACE")
        assert r.lines() == ['* NAMESPACE (("" "/")) NIL NIL'], r


def test_noop_and_logout(server):
    with IC(server) as ic:
        ic.ok("NOOP")
        ic.login()
        ic.ok("NOOP")
        r = ic.ok("LOGOUT")
        assert r.starting("* BYE"), f"LOGOUT must send * BYE before the tagged OK: {r!r}"
        assert ic.c.closed_by_server(5)


def test_check_command(server):
    with session(server, box="INBOX") as ic:
        ic.ok("CHECK")


# ---------------------------------------------------------------------------------------
# Mailboxes: LIST, LSUB, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS
# ---------------------------------------------------------------------------------------

def test_list_defaults_special_use(server):
    with session(server) as ic:
        r = ic.ok('LIST "" "*"')
        for l in r.starting("* LIST"):
            _, delim, _, _ = parse_list_line(l)
            assert delim == "/", l
        lm = list_map(r)
        assert set(lm) == DEFAULT_BOXES, r
        for box, use in SPECIAL.items():
            assert use.lower() in lm[box], f"{box} must have {use}: {r!r}"
        assert not any(a in lm["INBOX"] for a in
                       ("\\sent", "\\drafts", "\\trash", "\\junk", "\\archive")), r


def test_list_special_use_selection(server):
    with session(server) as ic:
        ic.ok('CREATE "Other"')
        r = ic.ok('LIST (SPECIAL-USE) "" "*"')
        lm = list_map(r)
        assert set(lm) == set(SPECIAL), r
        r = ic.ok('LIST "" "*" RETURN (SPECIAL-USE)')
        lm = list_map(r)
        assert set(lm) == DEFAULT_BOXES | {"Other"}, r
        assert "\\sent" in lm["Sent"] and not (lm["Other"] & {"\\sent", "\\trash"}), r


def test_list_empty_pattern_gives_delimiter(server):
    with session(server) as ic:
        r = ic.ok('LIST "" ""')
        ls = r.starting("* LIST")
        assert len(ls) == 1, r
        attrs, delim, name, _ = parse_list_line(ls[0])
        assert delim == "/" and name == "" and "\\noselect" in {a.lower() for a in attrs}, r


def test_list_hierarchy_percent_and_children(server):
    with session(server) as ic:
        ic.ok('CREATE "Proj/a/b"')
        ic.ok('CREATE "Proj/c"')
        r = ic.ok('LIST "" "%"')
        lm = list_map(r)
        assert "Proj" in lm and "Proj/a" not in lm and "Proj/c" not in lm, r
        assert "\\haschildren" in lm["Proj"], r
        assert "\\hasnochildren" in lm["INBOX"] or "\\haschildren" not in lm["INBOX"]
        r = ic.ok('LIST "" "Proj/%"')
        assert set(list_map(r)) == {"Proj/a", "Proj/c"}, r
        r = ic.ok('LIST "Proj/" "*"')
        assert set(list_map(r)) == {"Proj/a", "Proj/a/b", "Proj/c"}, r
        r = ic.ok('LIST "" "*"')
        lm = list_map(r)
        assert "\\hasnochildren" in lm["Proj/a/b"] and "\\haschildren" in lm["Proj/a"], r


def test_list_inbox_case_insensitive(server):
    with session(server) as ic:
        r = ic.ok('LIST "" "inbox"')
        assert set(list_map(r)) == {"INBOX"}, r
        r = ic.ok('SELECT "iNbOx"')
        ic.ok('STATUS inbox (MESSAGES)')


def test_list_multiple_patterns_and_return_children(server):
    # RFC 5258: a list of patterns, RETURN (CHILDREN).
    with session(server) as ic:
        ic.ok('CREATE "A/B"')
        r = ic.ok('LIST "" ("Sent" "A") RETURN (CHILDREN)')
        lm = list_map(r)
        assert set(lm) == {"Sent", "A"}, r
        assert "\\haschildren" in lm["A"] and "\\hasnochildren" in lm["Sent"], r


def test_list_subscribed(server):
    with session(server) as ic:
        ic.ok('CREATE "Sub1"')
        ic.ok('CREATE "NotSub"')
        ic.ok('SUBSCRIBE "Sub1"')
        r = ic.ok('LIST (SUBSCRIBED) "" "*"')
        lm = list_map(r)
        assert "Sub1" in lm and "NotSub" not in lm, r
        assert all("\\subscribed" in a for a in lm.values()), r
        assert DEFAULT_BOXES <= set(lm), f"default mailboxes must be subscribed: {r!r}"
        r = ic.ok('LIST "" "*" RETURN (SUBSCRIBED)')
        lm = list_map(r)
        assert "\\subscribed" in lm["Sub1"] and "\\subscribed" not in lm["NotSub"], r
        r = ic.ok('LSUB "" "*"')
        names = {parse_list_line(l)[2] for l in r.starting("* LSUB")}
        assert "Sub1" in names and "NotSub" not in names, r
        ic.ok('UNSUBSCRIBE "Sub1"')
        r = ic.ok('LIST (SUBSCRIBED) "" "Sub1"')
        assert not r.starting("* LIST"), r


def test_list_subscribed_nonexistent(server):
    # RFC 5258 §3: a subscribed name that does not exist is listed with \NonExistent.
    with session(server) as ic:
        ic.ok('SUBSCRIBE "Ghost"')
        r = ic.ok('LIST (SUBSCRIBED) "" "Ghost"')
        lm = list_map(r)
        assert "Ghost" in lm and "\\nonexistent" in lm["Ghost"], r


def test_list_status(server):
    with session(server, fill=3) as ic:
        ic.ok("SELECT INBOX")
        ic.ok("STORE 1 +FLAGS (\\Seen)")
        r = ic.ok('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
        st = all_statuses(r)
        assert st.get("INBOX") == {"MESSAGES": 3, "UNSEEN": 2, "UIDNEXT": 4}, r
        assert st.get("Trash", {}).get("MESSAGES") == 0, r
        # RFC 5819 §2: the STATUS response follows the LIST response of its mailbox.
        lines = r.lines()
        for i, l in enumerate(lines):
            if l.upper().startswith("* STATUS"):
                assert i > 0 and lines[i - 1].upper().startswith("* LIST"), r


def test_create_delete(server):
    with session(server) as ic:
        ic.ok('CREATE "Work"')
        assert "Work" in list_map(ic.ok('LIST "" "*"'))
        ic.ok('DELETE "Work"')
        assert "Work" not in list_map(ic.ok('LIST "" "*"'))


def test_create_makes_parents_and_trailing_delimiter(server):
    with session(server) as ic:
        ic.ok('CREATE "x1/y1/z1"')
        lm = list_map(ic.ok('LIST "" "x1*"'))
        assert {"x1", "x1/y1", "x1/y1/z1"} <= set(lm), lm
        ic.ok('SELECT "x1/y1"')  # the made parent is a real mailbox (RFC 9051 §6.3.4)
        ic.ok('CREATE "Trail/"')
        assert "Trail" in list_map(ic.ok('LIST "" "Trail"'))


def test_delete_with_inferiors_becomes_noselect(server):
    with session(server) as ic:
        ic.ok('CREATE "P/Q"')
        append(ic, "P", msg())
        ic.ok('DELETE "P"')
        lm = list_map(ic.ok('LIST "" "P*"'))
        assert "\\noselect" in lm.get("P", set()) and "P/Q" in lm, lm
        r = ic.cmd('SELECT "P"')
        assert r.status == "NO", r
        ic.ok('DELETE "P/Q"')
        ic.ok('DELETE "P"')
        assert not list_map(ic.ok('LIST "" "P*"'))


def test_rename_moves_inferiors_keeps_messages(server):
    with session(server) as ic:
        ic.ok('CREATE "Old/Kid"')
        u = append(ic, "Old/Kid", msg(subject="kid"))
        st = status_items(ic.ok('STATUS "Old/Kid" (UIDVALIDITY)'))
        ic.ok('RENAME "Old" "New"')
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "New" in lm and "New/Kid" in lm and "Old" not in lm and "Old/Kid" not in lm, lm
        st2 = status_items(ic.ok('STATUS "New/Kid" (MESSAGES UIDVALIDITY UIDNEXT)'))
        assert st2["MESSAGES"] == 1 and st2["UIDVALIDITY"] == st["UIDVALIDITY"], st2
        ic.ok('SELECT "New/Kid"')
        assert uids(ic) == [u]


def test_rename_inbox(server):
    with session(server, fill=2) as ic:
        ic.ok('RENAME INBOX "Saved"')
        st = status_items(ic.ok('STATUS INBOX (MESSAGES)'))
        assert st["MESSAGES"] == 0
        st = status_items(ic.ok('STATUS "Saved" (MESSAGES)'))
        assert st["MESSAGES"] == 2
        assert {"INBOX", "Saved"} <= set(list_map(ic.ok('LIST "" "*"')))
        append(ic, "INBOX", msg())


def test_subscribe_unsubscribe_roundtrip(server):
    with session(server) as ic:
        ic.ok('UNSUBSCRIBE "Junk"')
        names = {parse_list_line(l)[2] for l in ic.ok('LSUB "" "*"').starting("* LSUB")}
        assert "Junk" not in names and "Sent" in names


def test_mutf7_names(server):
    with session(server) as ic:
        ic.ok('CREATE "&AOk-t&AOk-"')  # "été"
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "&AOk-t&AOk-" in lm, lm
        ic.ok('SELECT "&AOk-t&AOk-"')
    with session(server, rev2=True) as ic:
        r = ic.ok('LIST "" "*"')
        lm = list_map(r)
        assert "été" in lm and "&AOk-t&AOk-" not in lm, r
        ic.ok('CREATE "日本"')
        ic.ok('SELECT "日本"')
    with session(server) as ic:
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "&ZeVnLA-" in lm, f"rev1 client must see modified UTF-7: {lm}"


def test_status_items(server):
    with session(server, box="INBOX", fill=3) as ic:
        msgs = ic.filled
        ic.ok("STORE 1 +FLAGS (\\Seen \\Deleted)")
        ic.ok("STORE 2 +FLAGS (\\Seen)")
        r = ic.ok("FETCH 1:* RFC822.SIZE")
        total = sum(int(it["RFC822.SIZE"]) for _, it in r.fetches())
        r = ic.ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
        st = status_items(r)
        sel = ic.ok("EXAMINE INBOX")
        uv = int(re.search(r"UIDVALIDITY (\d+)", "\n".join(sel.lines())).group(1))
        assert st == {"MESSAGES": 3, "UIDNEXT": 4, "UIDVALIDITY": uv, "UNSEEN": 1,
                      "DELETED": 1, "SIZE": total}, r
        assert total == sum(len(m) for m in msgs)
        assert re.match(r"\* STATUS (INBOX|\"INBOX\") \(", r.lines()[0]), r


def test_status_appendlimit(server):
    # RFC 7889 §4: STATUS APPENDLIMIT.
    with IC(server) as ic:
        cap = [c for c in caps_of(ic.greeting) if c.startswith("APPENDLIMIT=")][0]
        ic.login()
        st = status_items(ic.ok("STATUS INBOX (APPENDLIMIT)"))
        assert st["APPENDLIMIT"] in (int(cap.split("=")[1]), None), st


# ---------------------------------------------------------------------------------------
# SELECT, EXAMINE, CLOSE, UNSELECT
# ---------------------------------------------------------------------------------------

def test_select_rev1_responses(server):
    with session(server, fill=3) as ic:
        ic.ok("SELECT INBOX")
        ic.ok("STORE 1 +FLAGS (\\Seen)")
        ic.ok("UNSELECT")
        r = ic.ok("SELECT INBOX")
        lines = r.lines()
        flags = r.starting("* FLAGS ")
        assert len(flags) == 1, r
        fl = set(parse_sexp(flags[0][8:].encode())[0][0])
        assert SYSTEM_FLAGS <= fl, r
        assert "* 3 EXISTS" in lines, r
        assert any(re.fullmatch(r"\* \d+ RECENT", l) for l in lines), \
            f"rev1 SELECT must send * n RECENT (RFC 3501 §6.3.1): {r!r}"
        assert any(re.match(r"\* OK \[UNSEEN 2\]", l) for l in lines), r
        pf = [l for l in lines if l.startswith("* OK [PERMANENTFLAGS (")]
        assert pf and "\\*" in pf[0], r
        uv = [l for l in lines if re.match(r"\* OK \[UIDVALIDITY [1-9]\d*\]", l)]
        assert uv, r
        assert any(re.match(r"\* OK \[UIDNEXT 4\]", l) for l in lines), r
        assert re.match(r"t\d+ OK \[READ-WRITE\]", r.tagged), r


def test_select_rev2_responses(server):
    with session(server, fill=2, rev2=True) as ic:
        r = ic.ok("SELECT INBOX")
        lines = r.lines()
        assert "* 2 EXISTS" in lines, r
        assert not any(re.fullmatch(r"\* \d+ RECENT", l) for l in lines), \
            f"IMAP4rev2 has no RECENT response: {r!r}"
        ls = r.starting("* LIST ")
        assert len(ls) == 1 and parse_list_line(ls[0])[2] == "INBOX", \
            f"RFC 9051 §6.3.2: SELECT MUST return a LIST response with the mailbox name: {r!r}"
        assert any(re.match(r"\* OK \[UIDVALIDITY \d+\]", l) for l in lines), r
        assert any(re.match(r"\* OK \[UIDNEXT 3\]", l) for l in lines), r
        assert any(l.startswith("* OK [PERMANENTFLAGS (") for l in lines), r
        assert r.code == "READ-WRITE", r


def test_select_other_mailbox_sends_closed_rev2(server):
    # RFC 9051 §7.1 (CLOSED): boundary when SELECT closes the selected mailbox.
    with session(server, box="INBOX", rev2=True) as ic:
        r = ic.ok('SELECT "Sent"')
        assert r.lines() and re.match(r"\* OK \[CLOSED\]", r.lines()[0]), r


def test_examine_read_only(server):
    with session(server, fill=1) as ic:
        r = ic.ok("EXAMINE INBOX")
        assert r.code == "READ-ONLY", r
        r = ic.ok("FETCH 1 BODY[]")
        items = r.fetch_map()[1]
        assert "\\Seen" not in [str(f) for f in items.get("FLAGS", [])], r
        ic.ok("UNSELECT")
        r = ic.ok("SELECT INBOX")
        r = ic.ok("FETCH 1 FLAGS")
        assert "\\Seen" not in r.fetch_map()[1]["FLAGS"], "EXAMINE + FETCH BODY[] set \\Seen"


def test_close_expunges_silently(server):
    with session(server, fill=3, box="INBOX") as ic:
        ic.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        r = ic.ok("CLOSE")
        assert not [l for l in r.lines() if "EXPUNGE" in l.upper()], r
        assert status_items(ic.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 2
        r = ic.cmd("FETCH 1 FLAGS")
        assert r.status == "BAD", f"after CLOSE no mailbox is selected: {r!r}"


def test_close_on_examine_does_not_expunge(server):
    with session(server, fill=2, box="INBOX") as ic:
        ic.ok("STORE 1 +FLAGS (\\Deleted)")
        ic.ok("EXAMINE INBOX")
        ic.ok("CLOSE")
        assert status_items(ic.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 2


def test_unselect_does_not_expunge(server):
    with session(server, fill=2, box="INBOX") as ic:
        ic.ok("STORE 1 +FLAGS (\\Deleted)")
        r = ic.ok("UNSELECT")
        assert not [l for l in r.lines() if "EXPUNGE" in l.upper()], r
        assert status_items(ic.ok("STATUS INBOX (MESSAGES DELETED)")) == \
            {"MESSAGES": 2, "DELETED": 1}


# ---------------------------------------------------------------------------------------
# APPEND, MULTIAPPEND, LITERAL+, BINARY append
# ---------------------------------------------------------------------------------------

def test_append_appenduid_flags_date(server):
    with session(server) as ic:
        m = msg(subject="appended")
        r = ic.ok('APPEND INBOX (\\Seen \\Flagged $Work) "17-Jul-1996 02:44:25 -0700" ', m)
        mm = re.match(r"t\d+ OK \[APPENDUID (\d+) (\d+)\]", r.tagged)
        assert mm, r
        uv, uid = int(mm.group(1)), int(mm.group(2))
        sel = ic.ok("SELECT INBOX")
        assert f"[UIDVALIDITY {uv}]" in "\n".join(sel.lines())
        r = ic.ok(f"UID FETCH {uid} (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        it = r.fetch_map()[1]
        assert {str(f) for f in it["FLAGS"]} >= {"\\Seen", "\\Flagged", "$Work"}, r
        assert it["BODY[]"] == m
        assert int(it["RFC822.SIZE"]) == len(m)
        d = datetime.strptime(text(it["INTERNALDATE"]).strip(), "%d-%b-%Y %H:%M:%S %z")
        assert d == datetime(1996, 7, 17, 9, 44, 25, tzinfo=timezone.utc), it["INTERNALDATE"]


def test_append_literal_plus(server):
    with session(server) as ic:
        m = msg(subject="plus")
        r = ic.cmd("APPEND Drafts (\\Draft) ", m, plus=True)
        assert r.ok and "APPENDUID" in r.tagged.upper(), r
        ic.ok("SELECT Drafts")
        it = ic.ok("FETCH 1 (FLAGS BODY.PEEK[])").fetch_map()[1]
        assert it["BODY[]"] == m and "\\Draft" in it["FLAGS"]


def test_append_binary_literal8(server):
    # RFC 3516 §4.4: APPEND with literal8 (~{n}) stores the bytes as given.
    with session(server) as ic:
        m = msg(subject="bin", body=b"8bit \xc3\xa9 text\r\n",
                extra=b"Content-Transfer-Encoding: binary\r\n")
        ic.send(f"a1 APPEND INBOX ~{{{len(m)}}}\r\n".encode())
        c = ic.resp_str()
        assert c.startswith("+"), c
        ic.send(m + b"\r\n")
        r = ic.finish("a1")
        assert r.ok, r
        ic.ok("SELECT INBOX")
        assert ic.ok("FETCH 1 BODY.PEEK[]").fetch_map()[1]["BODY[]"] == m


def test_append_to_selected_mailbox_sends_exists(server):
    with session(server, box="INBOX") as ic:
        r = ic.ok("APPEND INBOX ", msg())
        assert "* 1 EXISTS" in r.lines() or "* 1 EXISTS" in ic.ok("NOOP").lines(), r


def test_multiappend(server):
    with session(server) as ic:
        m1, m2, m3 = msg(subject="m1"), msg(subject="m2"), msg(subject="m3")
        r = ic.cmd("APPEND Archive (\\Seen) ", m1, " ", m2, ' (\\Flagged) "01-Feb-2020 10:00:00 +0000" ',
                   m3)
        assert r.ok, r
        mm = re.search(r"\[APPENDUID (\d+) ([\d:,]+)\]", r.tagged)
        assert mm, r
        assert expand_set(mm.group(2)) == [1, 2, 3], r
        ic.ok("SELECT Archive")
        fm = ic.ok("FETCH 1:* (FLAGS BODY.PEEK[])").fetch_map()
        assert [fm[i]["BODY[]"] for i in (1, 2, 3)] == [m1, m2, m3]
        assert "\\Seen" in fm[1]["FLAGS"] and "\\Flagged" in fm[3]["FLAGS"]
        assert "\\Flagged" not in fm[2]["FLAGS"]


def test_imaplib_append_and_fetch(server):
    m = server.imap()
    try:
        data = msg(subject="via imaplib")
        typ, resp = m.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()), data)
        assert typ == "OK" and b"APPENDUID" in resp[0].upper()
        typ, _ = m.select("INBOX")
        typ, d = m.fetch("1", "(BODY.PEEK[] FLAGS)")
        assert typ == "OK" and d[0][1] == data
        assert b"\\Flagged" in b"".join(x if isinstance(x, bytes) else x[0] for x in d), d
    finally:
        m.logout()


# ---------------------------------------------------------------------------------------
# FETCH
# ---------------------------------------------------------------------------------------

@pytest.fixture
def mp(server):
    """alice's INBOX with [plain message, multipart message]; a session with INBOX selected."""
    ic = session(server)
    plain = msg(subject="plain one", body="Line 1\r\nLine 2\r\n")
    append(ic, "INBOX", plain, date="01-Jan-2026 00:00:00 +0000")
    append(ic, "INBOX", MULTIPART, date="02-Jan-2026 10:20:30 +0100")
    ic.select()
    ic.plain = plain
    yield ic
    ic.close()


def test_fetch_flags_uid_internaldate_size(mp):
    r = mp.ok("FETCH 1:2 (FLAGS UID INTERNALDATE RFC822.SIZE)")
    fm = r.fetch_map()
    assert set(fm) == {1, 2}, r
    assert flags(fm[1]["FLAGS"]) == [] and fm[1]["UID"] == "1" and fm[2]["UID"] == "2", r
    for l in r.lines():
        assert re.search(r"INTERNALDATE " + DATE_RE, l), l
    assert int(fm[1]["RFC822.SIZE"]) == len(mp.plain)
    assert int(fm[2]["RFC822.SIZE"]) == len(MULTIPART)


def test_fetch_envelope(mp):
    env = mp.ok("FETCH 2 ENVELOPE").fetch_map()[2]["ENVELOPE"]
    assert len(env) == 10, env
    assert text(env[0]) == "Fri, 02 Jan 2026 10:20:30 +0100"
    assert text(env[1]) == "multipart test"
    assert lower(env[2]) == [["alice example", None, "alice", "example.com"]], env
    assert lower(env[3]) == lower(env[2]) and lower(env[4]) == lower(env[2]), \
        "Sender and Reply-To default to From (RFC 9051 §7.5.2)"
    assert lower(env[5]) == [["bob", None, "bob", "example.com"],
                             [None, None, "carol", "example.org"]], env
    assert lower(env[6]) == [[None, None, "dave", "example.net"]], env
    assert env[7] is None
    assert text(env[8]) == "<parent@example.com>"
    assert text(env[9]) == "<mp1@example.com>"


def test_fetch_bodystructure_multipart(mp):
    r = mp.ok("FETCH 2 (BODYSTRUCTURE BODY)")
    it = r.fetch_map()[2]
    bs = lower(it["BODYSTRUCTURE"])
    p1, p2 = bs[0], bs[1]
    assert bs[2] == "mixed", bs
    assert bs[3] == ["boundary", "xyz"], bs
    assert p1[:7] == ["text", "plain", ["charset", "utf-8"], None, None, "quoted-printable",
                      str(len(MULTIPART_PART1))], p1
    # body-fld-lines: the part's text is "...one CRLF line two" (the last CRLF belongs to the
    # boundary); Dovecot counts 1 (LFs), others 2. Either is accepted.
    assert p1[7] in ("1", "2"), f"text body-fld-lines: {p1}"
    assert p2[:7] == ["application", "octet-stream", ["name", "data.bin"], None, None, "base64",
                      "16"], p2
    # Extension data of the basic part: md5, disposition, ...
    assert ["attachment", ["filename", "data.bin"]] in p2[7:], p2
    # BODY is the non-extensible form: no parameters after the subtype.
    body = lower(it["BODY"])
    assert body[2] == "mixed" and len(body) == 3, body


def test_fetch_bodystructure_plain(mp):
    bs = lower(mp.ok("FETCH 1 BODYSTRUCTURE").fetch_map()[1]["BODYSTRUCTURE"])
    assert bs[:7] == ["text", "plain", ["charset", "us-ascii"], None, None, "7bit",
                      str(len("Line 1\r\nLine 2\r\n"))], bs
    assert bs[7] == "2", bs


def test_fetch_sections(mp):
    r = mp.ok("FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[2] "
              "BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (Subject cc)] "
              "BODY.PEEK[HEADER.FIELDS.NOT (Subject CC)])")
    it = r.fetch_map()[2]
    hdr_end = MULTIPART.index(b"\r\n\r\n") + 4
    assert it["BODY[HEADER]"] == MULTIPART[:hdr_end], r
    assert it["BODY[TEXT]"] == MULTIPART[hdr_end:]
    assert it["BODY[1]"] == MULTIPART_PART1
    assert it["BODY[2]"] == b"AAECAwQFBgcICf8="
    assert it["BODY[1.MIME]"] == (b"Content-Type: text/plain; charset=utf-8\r\n"
                                  b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    keys = [k for k in it if k.startswith("BODY[HEADER.FIELDS ")]
    assert len(keys) == 1, it.keys()
    assert it[keys[0]] == b"Cc: dave@example.net\r\nSubject: multipart test\r\n\r\n"
    notk = [k for k in it if k.startswith("BODY[HEADER.FIELDS.NOT")][0]
    assert b"Subject:" not in it[notk] and b"Cc:" not in it[notk]
    assert it[notk].startswith(b"From: Alice") and it[notk].endswith(b"\r\n\r\n")
    assert "FLAGS" not in it  # PEEK sets nothing


def test_fetch_partial(mp):
    r = mp.ok("FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<3.100> BODY.PEEK[]<100000.5>)")
    it = r.fetch_map()[1]
    assert it["BODY[]<0>"] == mp.plain[:10], r
    body = mp.plain[mp.plain.index(b"\r\n\r\n") + 4:]
    assert it["BODY[TEXT]<3>"] == body[3:103]
    assert it["BODY[]<100000>"] == b"", r


def test_fetch_body_sets_seen_and_reports_flags(mp):
    r = mp.ok("FETCH 1 BODY[]")
    it = r.fetch_map()[1]
    assert it["BODY[]"] == mp.plain
    assert "\\Seen" in it.get("FLAGS", []), \
        f"RFC 9051 §6.4.5: setting \\Seen implicitly must be reported with FLAGS: {r!r}"
    assert "\\Seen" in mp.ok("FETCH 1 FLAGS").fetch_map()[1]["FLAGS"]
    r = mp.ok("FETCH 2 RFC822.HEADER")
    assert "\\Seen" not in mp.ok("FETCH 2 FLAGS").fetch_map()[2]["FLAGS"], \
        "RFC822.HEADER is like BODY.PEEK[HEADER]"
    r = mp.ok("FETCH 2 RFC822.TEXT")
    assert "\\Seen" in mp.ok("FETCH 2 FLAGS").fetch_map()[2]["FLAGS"]


def test_fetch_rfc822_items(mp):
    r = mp.ok("FETCH 2 (RFC822.HEADER RFC822.TEXT RFC822)")
    it = r.fetch_map()[2]
    hdr_end = MULTIPART.index(b"\r\n\r\n") + 4
    assert it["RFC822"] == MULTIPART
    assert it["RFC822.HEADER"] == MULTIPART[:hdr_end]
    assert it["RFC822.TEXT"] == MULTIPART[hdr_end:]


def test_fetch_macros(mp):
    fast = mp.ok("FETCH 1 FAST").fetch_map()[1]
    assert set(fast) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}, fast
    al = mp.ok("FETCH 1 ALL").fetch_map()[1]
    assert set(al) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}, al
    full = mp.ok("FETCH 1 FULL").fetch_map()[1]
    assert set(full) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}, full


def test_fetch_binary(mp):
    r = mp.ok("FETCH 2 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1] BINARY.SIZE[1])")
    it = r.fetch_map()[2]
    assert it["BINARY[2]"] == MULTIPART_BIN, r
    assert int(it["BINARY.SIZE[2]"]) == len(MULTIPART_BIN)
    dec = "café line one\r\nline two".encode()
    assert it["BINARY[1]"] == dec
    assert int(it["BINARY.SIZE[1]"]) == len(dec)
    # NUL in the decoded data must go in a literal8 (RFC 3516 §4.3).
    raw = [u for u in r.untagged if b"BINARY[2]" in u][0]
    assert re.search(rb"BINARY\[2\] ~\{11\}\r\n", raw), raw[:200]


def test_fetch_binary_partial_and_sets_seen(mp):
    r = mp.ok("FETCH 2 BINARY[2]<2.3>")
    it = r.fetch_map()[2]
    assert it.get("BINARY[2]<2>") == MULTIPART_BIN[2:5], r
    assert "\\Seen" in it.get("FLAGS", []), r


def test_fetch_uid_fetch_includes_uid(mp):
    r = mp.ok("UID FETCH 2 FLAGS")
    fm = r.fetch_map()
    assert list(fm) == [2] and fm[2]["UID"] == "2" and flags(fm[2]["FLAGS"]) == [], r
    r = mp.ok("UID FETCH 1:* RFC822.SIZE")
    assert set(r.fetch_map()) == {1, 2}
    r = mp.ok("UID FETCH 50:60 FLAGS")
    # RFC 9051 §6.4.9: "n:*" style ranges - 50:60 matches nothing (not an error).
    assert not r.fetches(), r
    r = mp.ok("UID FETCH 5:* FLAGS")
    assert [s for s, _ in r.fetches()] == [2], \
        f"UID 5:* means 2:5 here and must return the last message (RFC 9051 §6.4.9): {r!r}"


def test_fetch_sequence_forms(mp):
    assert set(mp.ok("FETCH * UID").fetch_map()) == {2}
    assert set(mp.ok("FETCH 2:1 UID").fetch_map()) == {1, 2}
    assert set(mp.ok("FETCH 1,2 UID").fetch_map()) == {1, 2}
    assert set(mp.ok("FETCH *:1 UID").fetch_map()) == {1, 2}


def test_fetch_corpus_roundtrip(server):
    files = sorted(p for p in CORPUS.glob("*.eml"))
    files = [f for f in files if f.stat().st_size < 200_000 and b"\0" not in f.read_bytes()]
    files = files[::13][:25]
    if not files:
        pytest.skip(f"no corpus at {CORPUS}")
    datas = [f.read_bytes() for f in files]
    with session(server) as ic:
        for d in datas:
            r = ic.cmd("APPEND Archive ", d, plus=True)
            assert r.ok, r
        ic.select("Archive")
        r = ic.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[] BODYSTRUCTURE ENVELOPE BODY)")
        fm = r.fetch_map()
        assert len(fm) == len(datas)
        for i, d in enumerate(datas, 1):
            it = fm[i]
            crlf = re.sub(rb"(?<!\r)\n", b"\r\n", d)
            assert it["BODY[]"] in (d, crlf), files[i - 1]
            assert int(it["RFC822.SIZE"]) == len(d), files[i - 1]
            assert isinstance(it["BODYSTRUCTURE"], list) and isinstance(it["ENVELOPE"], list)
            assert len(it["ENVELOPE"]) == 10, files[i - 1]


# ---------------------------------------------------------------------------------------
# STORE
# ---------------------------------------------------------------------------------------

def test_store_flags(server):
    with session(server, fill=3, box="INBOX") as ic:
        r = ic.ok("STORE 1 +FLAGS (\\Flagged $Label1)")
        fm = r.fetch_map()
        assert set(fm) == {1} and {"\\Flagged", "$Label1"} <= set(fm[1]["FLAGS"]), r
        r = ic.ok("STORE 1 -FLAGS ($Label1)")
        assert set(flags(r.fetch_map()[1]["FLAGS"])) == {"\\Flagged"}, r
        r = ic.ok("STORE 1:2 FLAGS (\\Answered)")
        fm = r.fetch_map()
        assert flags(fm[1]["FLAGS"]) == ["\\Answered"] and flags(fm[2]["FLAGS"]) == ["\\Answered"], r
        r = ic.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        assert not r.fetches(), f".SILENT must not send FETCH: {r!r}"
        assert "\\Deleted" in ic.ok("FETCH 3 FLAGS").fetch_map()[3]["FLAGS"]
        r = ic.ok("STORE 3 FLAGS.SILENT ()")
        assert not r.fetches()
        assert flags(ic.ok("FETCH 3 FLAGS").fetch_map()[3]["FLAGS"]) == []
        # Single flag without parentheses (RFC 9051 store-att-flags: flag *(SP flag)).
        ic.ok("STORE 2 +FLAGS \\Seen")
        assert "\\Seen" in ic.ok("FETCH 2 FLAGS").fetch_map()[2]["FLAGS"]


def test_store_keyword_case_and_permanentflags(server):
    with session(server, fill=1, box="INBOX") as ic:
        ic.ok("STORE 1 +FLAGS (Work)")
        ic.ok("STORE 1 +FLAGS (WORK)")
        fl = ic.ok("FETCH 1 FLAGS").fetch_map()[1]["FLAGS"]
        assert [f.lower() for f in fl].count("work") == 1, fl
        r = ic.ok("SEARCH KEYWORD work")
        assert search_nums(r) == [1]


def test_uid_store_includes_uid(server):
    with session(server, fill=2, box="INBOX") as ic:
        r = ic.ok("UID STORE 2 +FLAGS (\\Flagged)")
        fm = r.fetch_map()
        assert list(fm) == [2] and fm[2].get("UID") == "2", \
            f"RFC 9051 §6.4.9: FETCH responses of UID STORE include UID: {r!r}"


# ---------------------------------------------------------------------------------------
# COPY, MOVE, EXPUNGE
# ---------------------------------------------------------------------------------------

def test_copy_copyuid(server):
    with session(server, fill=3, box="INBOX") as ic:
        ic.ok("STORE 2 +FLAGS ($Tag \\Flagged)")
        uv = status_items(ic.ok("STATUS Archive (UIDVALIDITY)"))["UIDVALIDITY"]
        r = ic.ok("COPY 2:3 Archive")
        m = re.match(r"t\d+ OK \[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", r.tagged)
        assert m, r
        assert int(m.group(1)) == uv
        assert expand_set(m.group(2)) == [2, 3] and expand_set(m.group(3)) == [1, 2], r
        assert status_items(ic.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 3
        ic.ok("SELECT Archive")
        fm = ic.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetch_map()
        assert {"\\Flagged", "$Tag"} <= set(fm[1]["FLAGS"])
        subj = [v for k, v in fm[1].items() if k.startswith("BODY[")][0]
        assert subj == b"Subject: msg 2\r\n\r\n", fm


def test_uid_copy(server):
    with session(server, fill=3, box="INBOX") as ic:
        r = ic.ok("UID COPY 1,3 Trash")
        m = re.search(r"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", r.tagged)
        assert m and expand_set(m.group(1)) == [1, 3] and expand_set(m.group(2)) == [1, 2], r


def test_move(server):
    with session(server, fill=4, box="INBOX") as ic:
        r = ic.ok("MOVE 2:3 Archive")
        lines = r.lines()
        cu = [i for i, l in enumerate(lines) if re.match(r"\* OK \[COPYUID \d+ [\d:,]+ [\d:,]+\]", l)]
        ex = [i for i, l in enumerate(lines) if re.fullmatch(r"\* \d+ EXPUNGE", l)]
        assert len(cu) == 1, f"RFC 6851 §4.3: COPYUID goes in an untagged OK before EXPUNGEs: {r!r}"
        assert len(ex) == 2 and cu[0] < ex[0], r
        seqs = [int(lines[i].split()[1]) for i in ex]
        assert seqs in ([2, 2], [3, 2]), r
        m = re.search(r"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", lines[cu[0]])
        assert expand_set(m.group(1)) == [2, 3] and expand_set(m.group(2)) == [1, 2]
        assert uids(ic) == [1, 4]
        assert status_items(ic.ok("STATUS Archive (MESSAGES)"))["MESSAGES"] == 2


def test_uid_move(server):
    with session(server, fill=3, box="INBOX") as ic:
        r = ic.ok("UID MOVE 3 Junk")
        assert "* 3 EXPUNGE" in r.lines(), r
        assert uids(ic) == [1, 2]


def test_expunge_sequence_numbers(server):
    with session(server, fill=5, box="INBOX") as ic:
        ic.ok("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)")
        r = ic.ok("EXPUNGE")
        exp = [int(l.split()[1]) for l in r.lines() if re.fullmatch(r"\* \d+ EXPUNGE", l)]
        assert len(exp) == 3, r
        # Replay: each EXPUNGE refers to the numbering after the previous ones.
        alive = [1, 2, 3, 4, 5]
        for n in exp:
            assert 1 <= n <= len(alive), r
            del alive[n - 1]
        assert alive == [1, 3], f"wrong messages expunged: {r!r}"
        assert uids(ic) == [1, 3]


def test_uid_expunge_only_given(server):
    with session(server, fill=4, box="INBOX") as ic:
        ic.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
        r = ic.ok("UID EXPUNGE 2:3")
        assert len([l for l in r.lines() if l.endswith(" EXPUNGE")]) == 2, r
        assert uids(ic) == [1, 4]


def test_imaplib_flow(server):
    fill(server, 2)
    m = server.imap()
    try:
        assert m.select("INBOX")[1] == [b"2"]
        typ, d = m.search(None, "ALL")
        assert d == [b"1 2"]
        m.store("1", "+FLAGS", "\\Deleted")
        typ, d = m.expunge()
        assert typ == "OK" and d == [b"1"]
        typ, d = m.uid("FETCH", "1:*", "(UID)")
        assert typ == "OK" and b"UID 2" in d[0]
        m.close()
    finally:
        m.logout()


# ---------------------------------------------------------------------------------------
# SEARCH, ESEARCH, SEARCHRES
# ---------------------------------------------------------------------------------------

@pytest.fixture
def sb(server):
    """INBOX with 4 messages of known content, flags and dates; session selected."""
    ic = session(server)
    ms = [
        msg(subject="Quarterly report", body="The numbers are in.\r\n", frm="boss@corp.test",
            to="alice@example.com"),
        msg(subject="Lunch?", body="Pizza at noon? Grüße\r\n".encode(), frm="friend@pals.test",
            extra=b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"),
        msg(subject="Re: Quarterly report", body="Looks good." + "x" * 3000 + "\r\n",
            frm="cfo@corp.test", extra=b"X-Priority: 1\r\n"),
        msg(subject="newsletter", body="Unsubscribe here.\r\n", frm="news@list.test"),
    ]
    ms[2] = ms[2].replace(b"Date: Thu, 01 Jan 2026", b"Date: Mon, 05 Jan 2026")
    dates = ["01-Jan-2026 12:00:00 +0000", "02-Jan-2026 12:00:00 +0000",
             "05-Jan-2026 12:00:00 +0000", "10-Jan-2026 12:00:00 +0000"]
    for m, d in zip(ms, dates):
        append(ic, "INBOX", m, date=d)
    ic.select()
    ic.ok("STORE 1 +FLAGS (\\Seen)")
    ic.ok("STORE 2 +FLAGS (\\Flagged \\Seen)")
    ic.ok("STORE 3 +FLAGS ($Important)")
    ic.ok("STORE 4 +FLAGS (\\Deleted)")
    ic.ms = ms
    yield ic
    ic.close()


SEARCH_CASES = [
    ("ALL", [1, 2, 3, 4]),
    ("SEEN", [1, 2]),
    ("UNSEEN", [3, 4]),
    ("FLAGGED", [2]),
    ("UNFLAGGED", [1, 3, 4]),
    ("DELETED", [4]),
    ("UNDELETED", [1, 2, 3]),
    ("KEYWORD $Important", [3]),
    ("UNKEYWORD $Important", [1, 2, 4]),
    ("FROM corp.test", [1, 3]),
    ("TO alice", [1, 2, 3, 4]),
    ("SUBJECT quarterly", [1, 3]),
    ('SUBJECT "Re: Quarterly"', [3]),
    ("BODY pizza", [2]),
    ("TEXT unsubscribe", [4]),
    ("TEXT newsletter", [4]),
    ("HEADER X-Priority 1", [3]),
    ('HEADER X-Priority ""', [3]),
    ("LARGER 1000", [3]),
    ("SMALLER 1000", [1, 2, 4]),
    ("NOT SEEN", [3, 4]),
    ("OR FLAGGED DELETED", [2, 4]),
    ("SEEN FLAGGED", [2]),
    ("(SEEN) (NOT FLAGGED)", [1]),
    ("2:3", [2, 3]),
    ("UID 1,4", [1, 4]),
    ("BEFORE 05-Jan-2026", [1, 2]),
    ("ON 05-Jan-2026", [3]),
    ("SINCE 05-Jan-2026", [3, 4]),
    ("SENTON 5-Jan-2026", [3]),
    ("SENTBEFORE 05-Jan-2026", [1, 2, 4]),
    ("SENTSINCE 05-Jan-2026", [3]),
    ("ANSWERED", []),
    ("UNANSWERED", [1, 2, 3, 4]),
    ("DRAFT", []),
    ("*", [4]),
    ("BODY report", []),
    ("TEXT report", [1, 3]),
    ("OR OR SEEN DELETED FLAGGED", [1, 2, 4]),
    ("NOT 1:2", [3, 4]),
    ("UID 2:*", [2, 3, 4]),
    ("1,3:4", [1, 3, 4]),
    ("KEYWORD $IMPORTANT", [3]),
    ("SUBJECT QUARTERLY", [1, 3]),
    ("FROM \"friend@pals\"", [2]),
    ("NOT OR SEEN DELETED", [3]),
    ("HEADER Subject lunch", [2]),
    ("HEADER X-Absent \"\"", []),
]


def test_search_keys(sb):
    wrong = []
    for criteria, expected in SEARCH_CASES:
        r = sb.cmd(f"SEARCH {criteria}")
        got = search_nums(r) if r.ok else r.tagged
        if got != expected:
            wrong.append(f"SEARCH {criteria}: expected {expected}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_search_size_boundaries(sb):
    sizes = [int(it["RFC822.SIZE"]) for _, it in sorted(sb.ok("FETCH 1:* RFC822.SIZE").fetches())]
    s1 = sizes[0]
    r = sb.ok(f"SEARCH LARGER {s1}")
    assert 1 not in search_nums(r), f"LARGER n means size > n (RFC 9051 §6.4.4): {r!r}"
    r = sb.ok(f"SEARCH SMALLER {s1}")
    assert 1 not in search_nums(r), f"SMALLER n means size < n: {r!r}"
    assert 1 in search_nums(sb.ok(f"SEARCH LARGER {s1 - 1}"))
    assert 1 in search_nums(sb.ok(f"SEARCH SMALLER {s1 + 1}"))


def test_search_unicode_case_folding(sb):
    r = sb.ok("SEARCH CHARSET UTF-8 BODY ", "GRÜSSE".encode())
    r2 = sb.ok("SEARCH CHARSET UTF-8 BODY ", "GRÜßE".encode())
    assert search_nums(r2) == [2] or search_nums(r) == [2], (r, r2)


def test_search_senton_uses_header_date_as_written(server):
    # RFC 9051 §6.4.4: SENTON/SENTBEFORE/SENTSINCE use the Date: field "disregarding time
    # and timezone": 00:30 +0900 on 5 Jan is 5 Jan, although it is 4 Jan in UTC.
    m = msg(subject="tokyo").replace(b"Date: Thu, 01 Jan 2026 00:00:00 +0000",
                                     b"Date: Mon, 05 Jan 2026 00:30:00 +0900")
    with session(server) as ic:
        append(ic, "INBOX", m)
        ic.select()
        assert search_nums(ic.ok("SEARCH SENTON 5-Jan-2026")) == [1]
        assert search_nums(ic.ok("SEARCH SENTBEFORE 5-Jan-2026")) == []
        assert search_nums(ic.ok("SEARCH SENTSINCE 5-Jan-2026")) == [1]


def test_search_charset_utf8_literal(sb):
    r = sb.ok("SEARCH CHARSET UTF-8 BODY ", "grüße".encode())
    assert search_nums(r) == [2], r
    r = sb.ok("SEARCH CHARSET US-ASCII SUBJECT lunch")
    assert search_nums(r) == [2], r


def test_search_new_old_recent_rev1(server):
    with session(server, fill=2, box="INBOX") as ic:
        r = ic.ok("SEARCH RECENT")
        rec = search_nums(r)
        assert search_nums(ic.ok("SEARCH NEW")) == [n for n in rec], "NEW = RECENT UNSEEN here"
        assert search_nums(ic.ok("SEARCH OLD")) == [n for n in (1, 2) if n not in rec]


def test_uid_search(sb):
    sb.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    sb.ok("EXPUNGE")
    r = sb.ok("UID SEARCH FLAGGED")
    assert search_nums(r) == [2], r  # UID, not sequence number 1
    r = sb.ok("SEARCH FLAGGED")
    assert search_nums(r) == [1], r


def test_esearch_return(sb):
    r = sb.ok("SEARCH RETURN (MIN MAX COUNT ALL) UNDELETED")
    tag = r.tagged.split()[0]
    e = esearch(r, tag)
    assert not e["UID"]
    assert e["MIN"] == "1" and e["MAX"] == "3" and e["COUNT"] == "3", r
    assert expand_set(e["ALL"]) == [1, 2, 3], r
    assert not r.starting("* SEARCH"), r
    r = sb.ok("UID SEARCH RETURN (COUNT) DELETED")
    e = esearch(r, r.tagged.split()[0])
    assert e["UID"] and e["COUNT"] == "1" and "MIN" not in e, r
    r = sb.ok("SEARCH RETURN () FLAGGED")  # () means ALL (RFC 4731 §3.1)
    e = esearch(r, r.tagged.split()[0])
    assert expand_set(e["ALL"]) == [2], r


def test_esearch_no_match(sb):
    r = sb.ok("SEARCH RETURN (MIN MAX COUNT) ANSWERED")
    e = esearch(r, r.tagged.split()[0])
    assert e.get("COUNT") == "0" and "MIN" not in e and "MAX" not in e, r
    assert re.fullmatch(r'\* ESEARCH \(TAG "t\d+"\)( COUNT 0)?', r.starting("* ESEARCH")[0]), r


def test_search_rev2_answers_esearch(server):
    with session(server, fill=3, box="INBOX", rev2=True) as ic:
        r = ic.ok("SEARCH 2:*")
        assert not r.starting("* SEARCH"), f"after ENABLE IMAP4rev2 SEARCH answers ESEARCH: {r!r}"
        e = esearch(r, r.tagged.split()[0])
        assert expand_set(e["ALL"]) == [2, 3], r
        r = ic.ok("UID SEARCH 5:6")
        e = esearch(r, r.tagged.split()[0])
        assert e["UID"] and "ALL" not in e, r


def test_searchres(sb):
    r = sb.ok("SEARCH RETURN (SAVE) FLAGGED")
    assert not r.starting("* SEARCH") and not r.starting("* ESEARCH"), \
        f"RETURN (SAVE) alone sends no result (RFC 5182 §2.1): {r!r}"
    fm = sb.ok("FETCH $ (UID)").fetch_map()
    assert set(fm) == {2}, fm
    r = sb.ok("UID SEARCH RETURN (SAVE COUNT) OR SEEN DELETED")
    e = esearch(r, r.tagged.split()[0])
    assert e["COUNT"] == "3", r
    fm = sb.ok("UID FETCH $ (UID)").fetch_map()
    assert set(fm) == {1, 2, 4}, fm
    r = sb.ok("SEARCH $ SEEN")
    assert search_nums(r) == [1, 2], r
    sb.ok("STORE $ +FLAGS.SILENT (\\Answered)")
    assert search_nums(sb.ok("SEARCH ANSWERED")) == [1, 2, 4]
    # An expunge removes the message from $ (RFC 5182 §2.1).
    sb.ok("EXPUNGE")
    fm = sb.ok("UID FETCH $ (UID)").fetch_map()
    assert set(fm) == {1, 2}, fm
    # With MIN, SAVE keeps only the minimum (RFC 5182 §2.1).
    r = sb.ok("SEARCH RETURN (SAVE MIN) ALL")
    assert esearch(r, r.tagged.split()[0])["MIN"] == "1", r
    assert set(sb.ok("FETCH $ (UID)").fetch_map()) == {1}


def test_searchres_empty_before_search(server):
    with session(server, fill=1, box="INBOX") as ic:
        r = ic.ok("FETCH $ FLAGS")  # empty $ is not an error (RFC 5182 §2.1)
        assert not r.fetches(), r


# ---------------------------------------------------------------------------------------
# Two sessions, IDLE, delivery, POP3 at the same time
# ---------------------------------------------------------------------------------------

def test_other_session_flags_seen_at_noop(server):
    with session(server, fill=3, box="INBOX") as a, session(server, box="INBOX") as b:
        b.ok("STORE 2 +FLAGS (\\Flagged)")
        r = a.ok("NOOP")
        fm = r.fetch_map()
        assert 2 in fm and "\\Flagged" in fm[2]["FLAGS"], f"flag change by another session: {r!r}"


def test_other_session_expunge_deferred_during_fetch(server):
    with session(server, fill=3, box="INBOX") as a, session(server, box="INBOX") as b:
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        for cmd in ("FETCH 1:* FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL"):
            r = a.ok(cmd)
            assert not [l for l in r.lines() if l.endswith("EXPUNGE")], \
                f"RFC 9051 §7.5.1: no EXPUNGE during {cmd.split()[0]}: {r!r}"
        r = a.ok("SEARCH ALL")
        assert search_nums(r) in ([1, 2, 3], [1, 3]), \
            f"sequence numbers must not shift before NOOP: {r!r}"
        r = a.ok("NOOP")
        assert "* 2 EXPUNGE" in r.lines(), r
        assert search_nums(a.ok("SEARCH ALL")) == [1, 2]
        assert search_nums(a.ok("UID SEARCH ALL")) == [1, 3]


def test_other_session_append_seen_at_noop(server):
    with session(server, fill=1, box="INBOX") as a, session(server) as b:
        append(b, "INBOX", msg(subject="new"))
        r = a.ok("NOOP")
        assert "* 2 EXISTS" in r.lines(), r


def test_idle_push_from_delivery(server):
    with session(server, fill=1, box="INBOX") as a:
        tag = a.idle_start()
        server.deliver(ALICE, msg(subject="pushed"))
        a.wait_untagged(lambda l: l == "* 2 EXISTS")
        a.sendline("DONE")
        r = a.finish(tag)
        assert r.ok, r
        it = a.ok("FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").fetch_map()[2]
        assert b"pushed" in list(it.values())[0]


def test_idle_push_from_lmtp(server):
    with session(server, box="INBOX") as a:
        tag = a.idle_start()
        l = server.lmtp()
        l.sendmail("x@remote.test", [ALICE], msg(subject="via lmtp"))
        l.quit()
        a.wait_untagged(lambda l: l == "* 1 EXISTS")
        a.sendline("DONE")
        assert a.finish(tag).ok


def test_idle_push_from_other_session(server):
    with session(server, fill=3, box="INBOX") as a, session(server, box="INBOX") as b:
        tag = a.idle_start()
        b.ok("STORE 1 +FLAGS (\\Flagged)")
        got = a.wait_untagged(lambda l: re.match(r"\* 1 FETCH \(.*FLAGS", l) is not None)
        assert "\\Flagged" in got[-1], got
        b.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        a.wait_untagged(lambda l: l == "* 3 EXPUNGE")
        append(b, "INBOX", msg())
        a.wait_untagged(lambda l: l == "* 3 EXISTS")
        a.sendline("DONE")
        assert a.finish(tag).ok


def test_idle_done_without_changes(server):
    with session(server, box="INBOX") as a:
        tag = a.idle_start()
        assert a.quiet_for(0.3) == []
        a.sendline("DONE")
        r = a.finish(tag)
        assert r.ok and not r.untagged, r


def test_idle_in_authenticated_state(server):
    with session(server) as a:
        tag = a.idle_start()
        a.sendline("DONE")
        assert a.finish(tag).ok


def test_pop3_dele_shows_as_expunge(server):
    with session(server, fill=3, box="INBOX") as a:
        p = server.pop3()
        p.dele(2)
        p.quit()
        r = a.ok("NOOP")
        assert "* 2 EXPUNGE" in r.lines(), f"POP3 DELE+QUIT must show as EXPUNGE: {r!r}"
        assert uids(a) == [1, 3]


def test_imap_expunge_seen_by_pop3(server):
    with session(server, fill=3, box="INBOX") as a:
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
    msgs = server.messages()
    assert len(msgs) == 2
    assert b"msg 2" in msgs[0] and b"msg 3" in msgs[1]


def test_pop3_retr_sets_nothing_visible_wrong(server):
    # A POP3 download and an IMAP session at the same time see the same bytes.
    sent = fill(server, 2)
    with session(server, box="INBOX") as a:
        got = server.messages()
        assert got == sent
        fm = a.ok("FETCH 1:2 BODY.PEEK[]").fetch_map()
        assert [fm[1]["BODY[]"], fm[2]["BODY[]"]] == sent


def test_delivered_message_fetch(server):
    m = msg(subject="delivered", body="Body.\r\n")
    server.deliver(ALICE, m)
    with session(server, box="INBOX") as a:
        it = a.ok("FETCH 1 (BODY.PEEK[] RFC822.SIZE)").fetch_map()[1]
        assert strip_trace(it["BODY[]"]) == m
        assert int(it["RFC822.SIZE"]) == len(it["BODY[]"])


def test_users_are_separate(server):
    fill(server, 2, user=ALICE)
    with session(server, user=BOB) as b:
        st = status_items(b.ok("STATUS INBOX (MESSAGES)"))
        assert st["MESSAGES"] == 0


# ---------------------------------------------------------------------------------------
# More FETCH shapes, big messages, pipelining, corpus consistency
# ---------------------------------------------------------------------------------------

INNER = (b"From: Inner <inner@example.org>\r\n"
         b"Subject: inner subject\r\n"
         b"Date: Sat, 03 Jan 2026 08:00:00 +0000\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/alternative; boundary=\"in\"\r\n"
         b"\r\n"
         b"--in\r\n"
         b"Content-Type: text/plain\r\n"
         b"\r\n"
         b"inner plain\r\n"
         b"--in\r\n"
         b"Content-Type: text/html\r\n"
         b"\r\n"
         b"<p>inner html</p>\r\n"
         b"--in--\r\n")
OUTER = (b"From: Outer <outer@example.org>\r\n"
         b"To: alice@example.com\r\n"
         b"Subject: =?utf-8?q?caf=C3=A9?= forwarded\r\n"
         b"Date: Sun, 04 Jan 2026 09:00:00 +0000\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"out\"\r\n"
         b"\r\n"
         b"--out\r\n"
         b"Content-Type: text/plain\r\n"
         b"\r\n"
         b"see attached\r\n"
         b"--out\r\n"
         b"Content-Type: message/rfc822\r\n"
         b"\r\n" + INNER +
         b"--out--\r\n")


def test_fetch_message_rfc822_parts(server):
    with session(server) as ic:
        append(ic, "INBOX", OUTER)
        ic.select()
        r = ic.ok("FETCH 1 (BODYSTRUCTURE ENVELOPE BODY.PEEK[2] BODY.PEEK[2.HEADER] "
                  "BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.2] BODY.PEEK[2.2.MIME] "
                  "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)])")
        it = r.fetch_map()[1]
        ih = INNER.index(b"\r\n\r\n") + 4
        assert it["BODY[2]"] == INNER, r
        assert it["BODY[2.HEADER]"] == INNER[:ih]
        assert it["BODY[2.TEXT]"] == INNER[ih:]
        assert it["BODY[2.1]"] == b"inner plain"
        assert it["BODY[2.2]"] == b"<p>inner html</p>"
        assert it["BODY[2.2.MIME]"] == b"Content-Type: text/html\r\n\r\n"
        k = [k for k in it if k.startswith("BODY[2.HEADER.FIELDS")][0]
        assert it[k] == b"Subject: inner subject\r\n\r\n"
        # The envelope keeps encoded words as they are (RFC 9051 §7.5.2).
        assert text(it["ENVELOPE"][1]) == "=?utf-8?q?caf=C3=A9?= forwarded"
        bs = lower(it["BODYSTRUCTURE"])
        msgpart = bs[1]
        assert msgpart[:2] == ["message", "rfc822"], msgpart
        assert int(msgpart[6]) == len(INNER), msgpart
        assert lower(msgpart[7])[1] == "inner subject", "message/rfc822 carries the envelope"
        assert msgpart[8][-5 if len(msgpart[8]) > 4 else -1] in ("alternative",) or \
            "alternative" in msgpart[8], msgpart[8]
        assert msgpart[9] == str(INNER.count(b"\r\n")), "body-fld-lines of message/rfc822"


def test_fetch_single_part_sections(server):
    m = msg(subject="single", body="only body\r\n")
    with session(server) as ic:
        append(ic, "INBOX", m)
        ic.select()
        r = ic.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (X-ABSENT)] "
                  "BODY.PEEK[]<0.1>)")
        it = r.fetch_map()[1]
        assert it["BODY[1]"] == b"only body\r\n", "part 1 of a single-part message is its body"
        assert it["BODY[TEXT]"] == b"only body\r\n"
        k = [k for k in it if k.startswith("BODY[HEADER.FIELDS")][0]
        assert it[k] == b"\r\n", r
        assert it["BODY[]<0>"] == b"F", r


def test_big_message_append_and_fetch(server):
    big = msg(subject="big", body=(b"0123456789abcdef" * 4 + b"\r\n") * 24000)  # ~1.6 MB
    with session(server) as ic:
        append(ic, "INBOX", big)
        r = ic.cmd("APPEND INBOX ", big, plus=True)
        assert r.ok, r
        ic.select()
        r = ic.ok("FETCH 1:2 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[]<1000000.100>)")
        fm = r.fetch_map()
        for n in (1, 2):
            assert int(fm[n]["RFC822.SIZE"]) == len(big)
            assert fm[n]["BODY[]"] == big
            assert fm[n]["BODY[]<1000000>"] == big[1000000:1000100]
        st = status_items(ic.ok("STATUS INBOX (SIZE)"))
        assert st["SIZE"] == 2 * len(big)


def test_pipelined_commands(server):
    with session(server, fill=2) as ic:
        ic.send(b"p1 SELECT INBOX\r\np2 FETCH 1 UID\r\np3 STORE 2 +FLAGS (\\Seen)\r\n"
                b"p4 SEARCH SEEN\r\np5 NOOP\r\n")
        r5 = None
        seen = []
        while r5 is None:
            line = ic.resp_str()
            m = re.match(r"(p\d) (OK|NO|BAD)", line)
            if m:
                seen.append(m.group(1))
                assert m.group(2) == "OK", line
                if m.group(1) == "p5":
                    r5 = line
            elif line.startswith("* SEARCH"):
                assert line == "* SEARCH 2", line
        assert seen == ["p1", "p2", "p3", "p4", "p5"], seen


def corpus_sample(step=11, limit=30):
    files = sorted(CORPUS.glob("*.eml"))
    out = []
    for f in files[::step]:
        d = f.read_bytes()
        if len(d) < 150_000 and b"\0" not in d:
            out.append((f.name, d))
    return out[:limit]


def leaf_parts(bs, prefix=""):
    """[(section, size, type/subtype, cte)] of the leaves of a parsed BODYSTRUCTURE."""
    out = []
    if isinstance(bs[0], list):  # multipart
        i = 0
        while i < len(bs) and isinstance(bs[i], list):
            out += leaf_parts(bs[i], f"{prefix}{i + 1}.")
            i += 1
        return out
    sec = prefix[:-1] if prefix else "1"
    typ = f"{text(bs[0])}/{text(bs[1])}".lower()
    out.append((sec, int(bs[6]), typ, (text(bs[5]) or "").lower()))
    if typ in ("message/rfc822", "message/global") and len(bs) > 8 and isinstance(bs[8], list):
        inner = bs[8]
        if isinstance(inner[0], list):
            out += leaf_parts(inner, sec + ".")
        else:
            out += leaf_parts(inner, sec + ".1.")
    return out


def test_corpus_bodystructure_sizes_match_sections(server):
    sample = corpus_sample()
    if not sample:
        pytest.skip(f"no corpus at {CORPUS}")
    wrong = []
    with session(server) as ic:
        for _, d in sample:
            assert ic.cmd("APPEND Archive ", d, plus=True).ok
        ic.select("Archive")
        bss = ic.ok("FETCH 1:* BODYSTRUCTURE").fetch_map()
        for n, (name, _) in enumerate(sample, 1):
            leaves = leaf_parts(bss[n]["BODYSTRUCTURE"])[:12]
            if not leaves:
                continue
            items = " ".join(f"BODY.PEEK[{s}]" for s, _, _, _ in leaves)
            r = ic.cmd(f"FETCH {n} ({items})")
            if not r.ok:
                wrong.append(f"{name}: {r.tagged}")
                continue
            it = r.fetch_map()[n]
            for s, size, typ, cte in leaves:
                got = it.get(f"BODY[{s}]")
                if got is None or len(got) != size:
                    wrong.append(f"{name} part {s} ({typ}): BODYSTRUCTURE size {size}, "
                                 f"BODY[{s}] has {None if got is None else len(got)}")
            for s, size, typ, cte in leaves[:3]:
                if cte not in ("base64", "quoted-printable", "7bit", "8bit", "binary", ""):
                    continue
                r = ic.cmd(f"FETCH {n} (BINARY.PEEK[{s}] BINARY.SIZE[{s}])")
                if not r.ok:
                    if "UNKNOWN-CTE" not in r.tagged.upper():
                        wrong.append(f"{name} BINARY[{s}] ({cte}): {r.tagged}")
                    continue
                bi = r.fetch_map()[n]
                if len(bi.get(f"BINARY[{s}]") or b"") != int(bi.get(f"BINARY.SIZE[{s}]", -1)):
                    wrong.append(f"{name} part {s} ({cte}): BINARY.SIZE "
                                 f"{bi.get(f'BINARY.SIZE[{s}]')} != len(BINARY) "
                                 f"{len(bi.get(f'BINARY[{s}]') or b'')}")
    assert not wrong, "\n".join(wrong[:30])


# ---------------------------------------------------------------------------------------
# More sessions and flags
# ---------------------------------------------------------------------------------------

def test_interleaved_appends_unique_uids(server):
    with session(server) as a, session(server) as b:
        got = []
        for i in range(6):
            got.append(append(a if i % 2 else b, "INBOX", msg(subject=f"i{i}")))
        assert got == sorted(got) and len(set(got)) == 6, got
        a.select()
        assert uids(a) == got


def test_uids_not_reused_after_expunge(server):
    with session(server, box="INBOX", fill=3) as ic:
        ic.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        ic.ok("EXPUNGE")
        u = append(ic, "INBOX", msg())
        assert u == 4, "UIDs strictly ascend; an expunged UID is never reused"
        sel = ic.ok("SELECT INBOX")
        assert any("[UIDNEXT 5]" in l for l in sel.lines()), sel


def test_copy_keeps_internaldate(server):
    with session(server) as ic:
        append(ic, "INBOX", msg(), date="05-Mar-2021 11:12:13 +0200")
        ic.select()
        ic.ok("COPY 1 Archive")
        d1 = ic.ok("FETCH 1 INTERNALDATE").fetch_map()[1]["INTERNALDATE"]
        ic.select("Archive")
        d2 = ic.ok("FETCH 1 INTERNALDATE").fetch_map()[1]["INTERNALDATE"]
        p = lambda v: datetime.strptime(text(v).strip(), "%d-%b-%Y %H:%M:%S %z")  # noqa: E731
        assert p(d1) == p(d2) == datetime(2021, 3, 5, 9, 12, 13, tzinfo=timezone.utc)


def test_move_seen_by_both_sessions(server):
    with session(server, box="INBOX", fill=3) as a, session(server, box="Archive") as b:
        r = a.ok("MOVE 1 Archive")
        assert "* 1 EXPUNGE" in r.lines()
        r = b.ok("NOOP")
        assert "* 1 EXISTS" in r.lines(), r
        it = b.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]").fetch_map()[1]
        assert list(it.values())[0] == b"Subject: msg 1\r\n\r\n"


def test_status_recent_rev1(server):
    with session(server, fill=2) as ic:
        st = status_items(ic.ok("STATUS INBOX (MESSAGES RECENT)"))
        assert st["MESSAGES"] == 2 and st["RECENT"] in (0, 1, 2), st


def test_rev2_no_recent_anywhere(server):
    with session(server, box="INBOX", fill=2, rev2=True) as ic:
        r = ic.ok("SELECT INBOX")
        assert "\\recent" not in "\n".join(r.lines()).lower(), r
        r = ic.ok("FETCH 1:* FLAGS")
        assert "\\recent" not in "\n".join(r.lines()).lower(), r
        r = ic.cmd("STATUS INBOX (RECENT)")
        # RECENT is gone from IMAP4rev2 (RFC 9051 Appendix E); BAD, or a value for rev1 use.
        assert r.status in ("BAD", "OK"), r


def test_noop_sees_delivery(server):
    with session(server, box="INBOX", fill=1) as a:
        server.deliver(ALICE, msg(subject="while selected"))
        r = a.ok("NOOP")
        assert "* 2 EXISTS" in r.lines(), r


def test_idle_push_pop3_expunge(server):
    with session(server, box="INBOX", fill=2) as a:
        tag = a.idle_start()
        p = server.pop3()
        p.dele(1)
        p.quit()
        a.wait_untagged(lambda l: l == "* 1 EXPUNGE")
        a.sendline("DONE")
        assert a.finish(tag).ok


def test_id_after_login(server):
    with session(server) as ic:
        r = ic.ok("ID NIL")
        assert r.starting("* ID ("), r


def test_rev2_names_are_not_mutf7(server):
    # After ENABLE IMAP4rev2 names are UTF-8: "&AOk-x" is those five characters, not "éx".
    with session(server, rev2=True) as ic:
        ic.ok('CREATE "&AOk-x"')
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "&AOk-x" in lm and "éx" not in lm, lm
    with session(server) as ic:
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "&-AOk-x" in lm, f"a rev1 client sees '&' as '&-': {sorted(lm)}"


def test_list_status_skips_noselect(server):
    # RFC 5819 §2: no STATUS for \Noselect / \NonExistent mailboxes.
    with session(server) as ic:
        ic.ok('CREATE "NS/child"')
        ic.ok('DELETE "NS"')
        r = ic.ok('LIST "" "NS*" RETURN (STATUS (MESSAGES))')
        st = all_statuses(r)
        assert "NS" not in st and "NS/child" in st, r


def test_inbox_children(server):
    with session(server) as ic:
        ic.ok('CREATE "INBOX/sub"')
        lm = list_map(ic.ok('LIST "" "%"'))
        assert "\\haschildren" in lm["INBOX"], lm
        lm = list_map(ic.ok('LIST "" "INBOX/%"'))
        assert set(lm) == {"INBOX/sub"}, lm
        lm = list_map(ic.ok('LIST "" "inbox/%"'))
        assert set(lm) == {"INBOX/sub"}, f"INBOX is case-insensitive as a prefix too: {lm}"


def test_idle_ignores_other_accounts(server):
    with session(server, box="INBOX") as a:
        tag = a.idle_start()
        server.deliver(BOB, msg(subject="for bob"))
        assert a.quiet_for(0.5) == []
        server.deliver(ALICE, msg(subject="for alice"))
        a.wait_untagged(lambda l: l == "* 1 EXISTS")
        a.sendline("DONE")
        assert a.finish(tag).ok


def test_shutdown_sends_bye(server):
    # RFC 9051 §7.1.5: BYE when the server is shutting down.
    with session(server, box="INBOX") as a:
        a.idle_start()
        server.stop()
        got = []
        try:
            while True:
                got.append(a.resp_str())
        except (EOFError, ConnectionError, OSError):
            pass
        assert any(l.startswith("* BYE") for l in got), got


def test_rename_selected_mailbox_by_other_session(server):
    with session(server) as a, session(server) as b:
        a.ok('CREATE "Ren"')
        append(a, "Ren", msg())
        a.select("Ren")
        b.ok('RENAME "Ren" "Ren2"')
        r = a.cmd("NOOP")
        assert r.status in ("OK", "NO", "BAD") or r.starting("* BYE")
        st = status_items(b.ok('STATUS "Ren2" (MESSAGES)'))
        assert st["MESSAGES"] == 1


def test_envelope_groups_sender_replyto(server):
    m = (b"From: A <a@x.test>\r\nSender: S <s@x.test>\r\nReply-To: R <r@x.test>\r\n"
         b"To: undisclosed-recipients:;\r\nCc: Team: m1@x.test, m2@x.test;\r\n"
         b"Subject: groups\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nbody\r\n")
    with session(server) as ic:
        append(ic, "INBOX", m)
        ic.select()
        env = lower(ic.ok("FETCH 1 ENVELOPE").fetch_map()[1]["ENVELOPE"])
        assert env[2] == [["a", None, "a", "x.test"]]
        assert env[3] == [["s", None, "s", "x.test"]], "Sender"
        assert env[4] == [["r", None, "r", "x.test"]], "Reply-To"
        assert env[5] == [[None, None, "undisclosed-recipients", None],
                          [None, None, None, None]], env[5]
        assert env[6] == [[None, None, "team", None], [None, None, "m1", "x.test"],
                          [None, None, "m2", "x.test"], [None, None, None, None]], env[6]


def test_header_fields_folded_and_repeated(server):
    m = (b"From: a@x.test\r\nReceived: one\r\n\tcontinued\r\nSubject: s\r\n"
         b"Received: two\r\n\r\nbody\r\n")
    with session(server) as ic:
        append(ic, "INBOX", m)
        ic.select()
        it = ic.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (RECEIVED)]").fetch_map()[1]
        assert list(it.values())[0] == b"Received: one\r\n\tcontinued\r\nReceived: two\r\n\r\n"


def test_append_date_with_space_padded_day(server):
    with session(server) as ic:
        append(ic, "INBOX", msg(), date=" 5-Mar-2021 11:12:13 +0200")
        ic.select()
        d = text(ic.ok("FETCH 1 INTERNALDATE").fetch_map()[1]["INTERNALDATE"])
        assert datetime.strptime(d.strip(), "%d-%b-%Y %H:%M:%S %z") == \
            datetime(2021, 3, 5, 9, 12, 13, tzinfo=timezone.utc), d


def test_delivered_internaldate_is_now(server):
    server.deliver(ALICE, msg())
    with session(server, box="INBOX") as ic:
        d = text(ic.ok("FETCH 1 INTERNALDATE").fetch_map()[1]["INTERNALDATE"])
        t = datetime.strptime(d.strip(), "%d-%b-%Y %H:%M:%S %z")
        assert abs((datetime.now(timezone.utc) - t).total_seconds()) < 300, d


def test_state_survives_restart(server):
    with session(server, box="INBOX", fill=2) as ic:
        ic.ok("STORE 1 +FLAGS ($Kept \\Answered)")
        ic.ok('CREATE "Persist/Me"')
        ic.ok('SUBSCRIBE "Persist/Me"')
        sel = ic.ok("SELECT INBOX")
        uv = [l for l in sel.lines() if "UIDVALIDITY" in l][0]
    server.restart()
    with session(server) as ic:
        sel = ic.ok("SELECT INBOX")
        assert uv in sel.lines(), (uv, sel)
        fl = ic.ok("FETCH 1 FLAGS").fetch_map()[1]["FLAGS"]
        assert {"$Kept", "\\Answered"} <= set(fl), fl
        lm = list_map(ic.ok('LIST (SUBSCRIBED) "" "Persist*"'))
        assert "Persist/Me" in lm


def test_blob_files_released(server):
    with session(server) as ic:
        ic.ok('CREATE "Tmp"')
        append(ic, "Tmp", msg(subject="a"))
        append(ic, "Tmp", msg(subject="b"))
        assert len(server.blob_files(ALICE)) == 2
        ic.select("Tmp")
        ic.ok("COPY 1:2 Archive")
        assert len(server.blob_files(ALICE)) == 2, "COPY shares the message file"
        ic.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        ic.ok("EXPUNGE")
        assert len(server.blob_files(ALICE)) == 2, "still referenced from Archive"
        ic.ok("UNSELECT")
        ic.ok('DELETE "Tmp"')
        ic.select("Archive")
        ic.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
        ic.ok("CLOSE")
        assert server.blob_files(ALICE) == [], "files of expunged/deleted messages stay"


def test_rename_inbox_keeps_inferiors(server):
    with session(server, fill=1) as ic:
        ic.ok('CREATE "INBOX/kid"')
        ic.ok('RENAME INBOX "Old-Inbox"')
        lm = list_map(ic.ok('LIST "" "*"'))
        assert "INBOX/kid" in lm and "INBOX" in lm and "Old-Inbox" in lm, lm


def test_lsub_percent_unsubscribed_parent(server):
    # RFC 3501 §6.3.9: a parent of a subscribed name that matches "%" is listed \Noselect.
    with session(server) as ic:
        ic.ok('CREATE "Deep/Sub"')
        ic.ok('SUBSCRIBE "Deep/Sub"')
        ic.cmd('UNSUBSCRIBE "Deep"')
        r = ic.ok('LSUB "" "%"')
        ls = {parse_list_line(l)[2]: {a.lower() for a in parse_list_line(l)[0]}
              for l in r.starting("* LSUB")}
        assert "Deep" in ls and "\\noselect" in ls["Deep"], r


def test_list_recursivematch_childinfo(server):
    # RFC 5258 §3.5: RECURSIVEMATCH reports CHILDINFO ("SUBSCRIBED") for a parent that is
    # not subscribed itself but has a subscribed child.
    with session(server) as ic:
        ic.ok('CREATE "Par/Kid"')
        ic.ok('SUBSCRIBE "Par/Kid"')
        ic.cmd('UNSUBSCRIBE "Par"')
        r = ic.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        par = [l for l in r.starting("* LIST") if parse_list_line(l)[2] == "Par"]
        assert len(par) == 1, r
        ext = parse_list_line(par[0])[3]
        assert ext and lower(ext[0]) == ["childinfo", ["subscribed"]], r
        r = ic.cmd('LIST (RECURSIVEMATCH) "" "%"')
        assert r.status == "BAD", f"RECURSIVEMATCH alone is BAD (RFC 5258 §3): {r!r}"


def test_list_remote_option_ignored(server):
    # RFC 5258 §3: REMOTE must be accepted; without remote mailboxes it changes nothing.
    with session(server) as ic:
        r = ic.ok('LIST (REMOTE) "" "*"')
        assert set(list_map(r)) == DEFAULT_BOXES, r


def test_list_special_use_with_status(server):
    with session(server) as ic:
        append(ic, "Sent", msg())
        r = ic.ok('LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))')
        st = all_statuses(r)
        assert set(st) == set(SPECIAL) and st["Sent"]["MESSAGES"] == 1, r


def test_rev1_raw_utf8_name(server):
    # An IMAP4rev1 client must send modified UTF-7; raw 8-bit in a quoted name is not
    # allowed (RFC 3501 §4.3 quoted TEXT-CHAR, §5.1.3). Refusing it, or treating it as the
    # same name as its modified UTF-7 form, are both safe; two different mailboxes are not.
    with session(server) as ic:
        r = ic.cmd('CREATE "été8"')
        if r.ok:
            lm = list_map(ic.ok('LIST "" "*"'))
            assert "&AOk-t&AOk-8" in lm, f"a rev1 client must see modified UTF-7: {sorted(lm)}"
            r2 = ic.cmd('CREATE "&AOk-t&AOk-8"')
            assert r2.status == "NO", f"same name twice: {r2!r}"


def test_idle_done_pipelined_with_next_command(server):
    with session(server, box="INBOX", fill=1) as ic:
        tag = ic.idle_start()
        ic.send(b"DONE\r\nq1 FETCH 1 UID\r\n")
        assert ic.finish(tag).ok
        r = ic.finish("q1")
        assert r.ok and r.fetch_map() == {1: {"UID": "1"}}, r


def test_append_pipelined_with_next_command(server):
    with session(server) as ic:
        m1, m2 = msg(subject="p1"), msg(subject="p2")
        ic.send(f"q1 APPEND INBOX {{{len(m1)}+}}\r\n".encode() + m1 +
                f"\r\nq2 APPEND INBOX {{{len(m2)}+}}\r\n".encode() + m2 + b"\r\nq3 SELECT INBOX\r\n")
        assert ic.finish("q1").ok and ic.finish("q2").ok
        r = ic.finish("q3")
        assert r.ok and "* 2 EXISTS" in r.lines(), r
        fm = ic.ok("FETCH 1:2 BODY.PEEK[]").fetch_map()
        assert [fm[1]["BODY[]"], fm[2]["BODY[]"]] == [m1, m2]


def test_implicit_seen_reaches_other_session(server):
    with session(server, box="INBOX", fill=2) as a, session(server, box="INBOX") as b:
        a.ok("FETCH 2 BODY[]")
        r = b.ok("NOOP")
        fm = r.fetch_map()
        assert 2 in fm and "\\Seen" in fm[2]["FLAGS"], r


def test_uid_fetch_after_remote_expunge_is_consistent(server):
    with session(server, box="INBOX", fill=4) as a, session(server, box="INBOX") as b:
        b.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        r = a.ok("UID FETCH 1:* (UID)")
        view = [1, 2, 3, 4]
        for l in r.untagged:
            s = l.decode()
            m = re.fullmatch(r"\* (\d+) EXPUNGE", s)
            if m:
                del view[int(m.group(1)) - 1]
                continue
            m = re.fullmatch(r"\* (\d+) FETCH \(UID (\d+)\)", s)
            if m:
                n, u = int(m.group(1)), int(m.group(2))
                assert 1 <= n <= len(view) and view[n - 1] == u, \
                    f"FETCH {n} (UID {u}) does not match the view {view}: {r!r}"
        assert a.ok("NOOP") and uids(a) == [2, 4]
        r = a.ok("FETCH 1:* UID")
        assert {s: it["UID"] for s, it in r.fetches()} == {1: "2", 2: "4"}, r


@pytest.mark.timeout(60)
def test_big_mailbox_multiappend_search_expunge(server):
    n = 300
    with session(server) as ic:
        parts = ["APPEND Archive "]
        for i in range(n):
            if i:
                parts.append(" ")
            parts.append(msg(subject=f"bulk {i}", body=f"bulk body {i}\r\n"))
        r = ic.cmd(*parts, plus=True)
        assert r.ok, r
        m = re.search(r"\[APPENDUID \d+ ([\d:,]+)\]", r.tagged)
        assert m and expand_set(m.group(1)) == list(range(1, n + 1)), r.tagged[:200]
        sel = ic.ok("SELECT Archive")
        assert f"* {n} EXISTS" in sel.lines()
        r = ic.ok("SEARCH RETURN (ALL COUNT) 1:*")
        e = esearch(r)
        assert e["ALL"] == f"1:{n}" and e["COUNT"] == str(n), r
        r = ic.ok("SEARCH SUBJECT \"bulk 299\"")
        assert search_nums(r) == [300], r
        r = ic.ok("UID SEARCH RETURN (COUNT) TEXT \"bulk body 5\"")
        assert esearch(r)["COUNT"] == "11", r  # 5, 50-59
        ic.ok("STORE 2:* +FLAGS.SILENT (\\Deleted)")
        r = ic.ok("EXPUNGE")
        exp = [int(l.split()[1]) for l in r.lines() if l.endswith(" EXPUNGE")]
        alive = list(range(1, n + 1))
        for k in exp:
            del alive[k - 1]
        assert alive == [1], f"{len(exp)} EXPUNGE responses left {alive[:10]}"
        assert uids(ic) == [1]


def test_move_into_same_mailbox(server):
    with session(server, box="INBOX", fill=2) as ic:
        r = ic.ok("UID MOVE 1 INBOX")
        assert "* 1 EXPUNGE" in r.lines() or "* 1 EXPUNGE" in ic.ok("NOOP").lines(), r
        assert uids(ic) == [2, 3], "the moved message has a new UID"
        assert len(ic.ok("FETCH 1:* UID").fetches()) == 2


def test_copy_of_message_expunged_by_other_session(server):
    with session(server, box="INBOX", fill=2) as a, session(server, box="INBOX") as b:
        b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        r = a.cmd("COPY 1:2 Archive")
        assert "TRYCREATE" not in r.tagged.upper(), f"Archive exists: {r!r}"
        assert r.status in ("OK", "NO"), r
        n = status_items(a.ok("STATUS Archive (MESSAGES)"))["MESSAGES"]
        assert n in (1, 0) if r.status == "NO" else n == 1, (r, n)
        r = a.cmd("MOVE 1 Trash")
        assert "TRYCREATE" not in r.tagged.upper(), f"Trash exists: {r!r}"


@pytest.mark.timeout(60)
def test_pipelined_big_fetches_with_backpressure(server):
    # The client writes 120 FETCHes of a 150 KB message without reading, from a thread,
    # then reads everything: every FETCH is answered, in order, with the whole message.
    import threading
    big = msg(subject="bp", body=(b"x" * 70 + b"\r\n") * 2100)
    with session(server, box=None) as ic:
        append(ic, "INBOX", big)
        ic.select()
        cmds = b"".join(b"f%d FETCH 1 (BODY.PEEK[] UID)\r\n" % i for i in range(120))
        cmds += b"f120 SEARCH ALL\r\n"
        t = threading.Thread(target=ic.send, args=(cmds,))
        t.start()
        got = 0
        for i in range(121):
            r = ic.finish(f"f{i}")
            assert r.ok, r
            if i < 120:
                assert r.fetch_map()[1]["BODY[]"] == big
                got += 1
            else:
                assert search_nums(r) == [1]
        t.join(10)
        assert got == 120


def test_searchres_reset_by_select(server):
    # RFC 5182 §2.1: SELECT/EXAMINE reset "$" to empty.
    with session(server, box="INBOX", fill=2) as ic:
        ic.ok("SEARCH RETURN (SAVE) ALL")
        ic.ok("SELECT INBOX")
        assert not ic.ok("FETCH $ UID").fetches()


@pytest.mark.timeout(60)
def test_concurrent_flag_changes_are_not_lost(server):
    # Two sessions add different flags/keywords to the same messages at the same time:
    # every message ends with all of them (no lost read-modify-write).
    import threading
    n = 60
    with session(server, box="INBOX", fill=n) as a, session(server, box="INBOX") as b:
        errors = []

        def run(ic, items):
            try:
                for it in items:
                    for k in range(1, n + 1, 7):
                        r = ic.cmd(f"STORE {k}:{min(k + 6, n)} +FLAGS.SILENT ({it})")
                        if not r.ok:
                            errors.append(r)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        ta = threading.Thread(target=run, args=(a, ["\\Seen", "$A1", "$A2", "\\Answered"]))
        tb = threading.Thread(target=run, args=(b, ["\\Flagged", "$B1", "$B2", "\\Draft"]))
        ta.start()
        tb.start()
        ta.join(50)
        tb.join(50)
        assert not errors, errors[:3]
        a.ok("NOOP")
        fm = a.ok("FETCH 1:* FLAGS").fetch_map()
        want = {"\\Seen", "$A1", "$A2", "\\Answered", "\\Flagged", "$B1", "$B2", "\\Draft"}
        lost = {s: want - set(it["FLAGS"]) for s, it in fm.items() if want - set(it["FLAGS"])}
        assert not lost, f"flag updates lost: {dict(list(lost.items())[:5])}"


def test_rename_keeps_special_use(server):
    # RFC 6154 §2: the special-use attribute belongs to the mailbox, so it follows a RENAME.
    with session(server) as ic:
        ic.ok('RENAME "Sent" "Sent Items"')
        lm = list_map(ic.ok('LIST (SPECIAL-USE) "" "*"'))
        assert "Sent Items" in lm and "\\sent" in lm["Sent Items"] and "Sent" not in lm, lm


def test_uid_expunge_only_deleted(server):
    with session(server, box="INBOX", fill=3) as ic:
        ic.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        r = ic.ok("UID EXPUNGE 1:*")
        assert [l for l in r.lines() if l.endswith("EXPUNGE")] == ["* 2 EXPUNGE"], r
        assert uids(ic) == [1, 3]


def test_enable_only_supported(server):
    with session(server) as ic:
        r = ic.ok("ENABLE CONDSTORE IMAP4rev2 UTF8=ACCEPT QRESYNC")
        en = " ".join(r.starting("* ENABLED")).upper().split()[2:]
        assert en == ["IMAP4REV2"], f"only advertised extensions can be enabled: {r!r}"


def test_pop3_snapshot_vs_imap_expunge(server):
    # POP3 numbers messages at login; an IMAP expunge meanwhile must not make POP3 DELE hit
    # the wrong message.
    with session(server, box="INBOX", fill=3) as a:
        p = server.pop3()
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        try:
            p.retr(1)  # gone: -ERR, or still served from the snapshot; both fine
        except Exception:  # noqa: BLE001
            pass
        p.dele(2)  # the message with UID 2 ("msg 2")
        p.quit()
        r = a.ok("NOOP")
        assert uids(a) == [3], f"POP3 DELE 2 must delete msg 2 (UID 2): {r!r}"


def test_bare_lf_message_is_consistent(server):
    # SMTP, LMTP and `sarn deliver` turn bare LF into CRLF on the way in (ARCHITECTURE.md);
    # APPEND must too, or the IMAP layer must send CRLF (RFC 5322 §2.3, RFC 3501 §2.3.1
    # message text; docs/MIME.md). Either way: CRLF lines out of IMAP and POP3, and sizes
    # that match what is sent.
    m = b"From: lf@x.test\nSubject: bare lf\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n\nline1\nline2\n"
    with session(server) as ic:
        r = ic.cmd("APPEND INBOX ", m)
        if not r.ok:
            return  # refusing bare LF is allowed
        ic.select()
        it = ic.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                   "BODYSTRUCTURE)").fetch_map()[1]
        body = it["BODY[]"]
        assert int(it["RFC822.SIZE"]) == len(body), it
        assert it["BODY[HEADER]"] + it["BODY[TEXT]"] == body
        assert int(lower(it["BODYSTRUCTURE"])[6]) == len(it["BODY[TEXT]"])
        assert search_nums(ic.ok("SEARCH BODY line2")) == [1]
        assert re.search(rb"(?<!\r)\n", body) is None, f"IMAP sent bare LF: {body!r}"
    got = server.messages()
    assert got and re.search(rb"(?<!\r)\n", got[0]) is None, f"POP3 sent bare LF: {got[0]!r}"


def test_nul_never_sent_in_plain_literal(server):
    # RFC 9051 §4.3: a literal (not literal8) cannot carry NUL; APPEND took one via literal8.
    m = msg(subject="nul", body=b"before\x00after\r\n",
            extra=b"Content-Transfer-Encoding: binary\r\n")
    with session(server) as ic:
        ic.send(f"a1 APPEND INBOX ~{{{len(m)}}}\r\n".encode())
        assert ic.resp_str().startswith("+")
        ic.send(m + b"\r\n")
        r = ic.finish("a1")
        if not r.ok:
            return
        ic.select()
        r = ic.ok("FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT] RFC822)")
        for u in r.untagged:
            for mm in re.finditer(rb"(~?)\{(\d+)\}\r\n", u):
                data = u[mm.end():mm.end() + int(mm.group(2))]
                assert mm.group(1) == b"~" or b"\0" not in data, \
                    f"NUL inside a plain literal: {u[:200]!r}"


def test_big_headers_around_32k(server):
    # Header lists may come from a copy kept in the index for headers up to 32 KiB: the
    # answers must be the same on both sides of that size.
    def make(total):
        head = b"From: big@x.test\r\nSubject: big header\r\n"
        tail = b"X-Last: the end\r\n\r\n"
        filler_len = total - len(head) - len(tail)
        lines = []
        while filler_len > 0:
            n = min(filler_len, 900)
            line = b"X-Fill: " + b"f" * max(0, n - 10) + b"\r\n"
            line = line[:n] if n >= 10 else b""
            if not line:
                break
            if not line.endswith(b"\r\n"):
                line = line[:-2] + b"\r\n"
            lines.append(line)
            filler_len -= len(line)
        return head + b"".join(lines) + tail + b"body\r\n"
    sizes = [32 * 1024 - 1, 32 * 1024, 32 * 1024 + 1, 32 * 1024 + 700, 40000]
    msgs = [make(s) for s in sizes]
    with session(server) as ic:
        for m in msgs:
            r = ic.cmd("APPEND INBOX ", m, plus=True)
            assert r.ok, r
        ic.select()
        r = ic.ok("FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (X-LAST SUBJECT)] "
                  "BODY.PEEK[HEADER.FIELDS.NOT (X-FILL)] RFC822.HEADER)")
        fm = r.fetch_map()
        for i, m in enumerate(msgs, 1):
            it = fm[i]
            hdr = m[:m.index(b"\r\n\r\n") + 4]
            assert it["BODY[HEADER]"] == hdr, f"message {i} ({len(hdr)} header bytes)"
            assert it["RFC822.HEADER"] == hdr, i
            k = [k for k in it if k.startswith("BODY[HEADER.FIELDS (")][0]
            assert it[k] == b"Subject: big header\r\nX-Last: the end\r\n\r\n", (i, it[k][:80])
            k = [k for k in it if k.startswith("BODY[HEADER.FIELDS.NOT")][0]
            assert it[k] == b"From: big@x.test\r\nSubject: big header\r\nX-Last: the end\r\n\r\n", \
                (i, it[k][:80])
        r = ic.ok('SEARCH HEADER X-Last "the end"')
        assert search_nums(r) == [1, 2, 3, 4, 5], r
        r = ic.ok("SEARCH LARGER 40000")
        assert search_nums(r) == [5], r


def test_login_password_with_specials(server):
    pw = 'p"a\\ss w{1}%*(x)'
    server.add_user("carol@example.com", pw)
    with IC(server) as ic:
        ic.ok(f"LOGIN carol@example.com {quote(pw)}")
    with IC(server) as ic:
        ic.ok("LOGIN carol@example.com ", pw.encode())
    with IC(server) as ic:
        ic.ok(f"AUTHENTICATE PLAIN {sasl_plain('carol@example.com', pw)}")
    with IC(server) as ic:
        r = ic.cmd(f"LOGIN carol@example.com {quote(pw[:-1])}")
        assert r.status == "NO", r


@pytest.mark.timeout(60)
def test_long_pipeline_mixed_commands(server):
    # 400 commands in one write (APPEND with LITERAL+, STORE, FETCH, SEARCH, NOOP): every
    # one is answered once, in order, although the server yields between batches.
    import threading
    with session(server, box="INBOX", fill=1) as ic:
        out = []
        tags = []
        for i in range(400):
            t = f"m{i}"
            tags.append(t)
            k = i % 5
            if k == 0:
                m = msg(subject=f"pipe {i}")
                out.append(f"{t} APPEND INBOX {{{len(m)}+}}\r\n".encode() + m + b"\r\n")
            elif k == 1:
                out.append(f"{t} STORE 1 +FLAGS.SILENT ($P{i})\r\n".encode())
            elif k == 2:
                out.append(f"{t} FETCH 1 (UID FLAGS)\r\n".encode())
            elif k == 3:
                out.append(f"{t} UID SEARCH ALL\r\n".encode())
            else:
                out.append(f"{t} NOOP\r\n".encode())
        th = threading.Thread(target=ic.send, args=(b"".join(out),))
        th.start()
        order = []
        while len(order) < 400:
            line = ic.resp_str()
            m = re.match(r"(m\d+) (OK|NO|BAD)", line)
            if m:
                assert m.group(2) == "OK", line
                order.append(m.group(1))
        th.join(10)
        assert order == tags
        assert status_items(ic.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 81


def test_search_short_and_odd_strings(server):
    # Substring search must work for strings shorter than a trigram, and survive bytes
    # that are not UTF-8.
    with session(server) as ic:
        append(ic, "INBOX", msg(subject="one", body="alpha zq beta\r\n"))
        append(ic, "INBOX", msg(subject="two", body="caf\xe9 ok\r\n".encode("utf-8"),
                                extra=b"Content-Type: text/plain; charset=utf-8\r\n"))
        append(ic, "INBOX", msg(subject="x", body="nothing here\r\n"))
        ic.select()
        assert search_nums(ic.ok('SEARCH BODY "zq"')) == [1]
        assert search_nums(ic.ok('SEARCH BODY "q"')) == [1]
        assert search_nums(ic.ok("SEARCH CHARSET UTF-8 BODY ", "é".encode())) == [2]
        assert search_nums(ic.ok("SEARCH CHARSET UTF-8 BODY ", "É".encode())) == [2]
        assert search_nums(ic.ok('SEARCH SUBJECT "x"')) == [3]
        assert search_nums(ic.ok('SEARCH BODY ""')) == [1, 2, 3]
        r = ic.cmd("SEARCH CHARSET UTF-8 TEXT ", b"\xff\xfe\x01")
        assert r.status in ("OK", "NO", "BAD"), r
        still = ic.ok("NOOP")
        assert still.ok


def test_recent_claimed_by_one_session(server):
    # RFC 3501 §2.3.2: \Recent - "this session is the first session to have been notified
    # about this message"; EXAMINE does not take it away (RFC 3501 §6.3.2).
    server.deliver(ALICE, msg(subject="fresh"))
    with session(server) as e:
        r = e.ok("EXAMINE INBOX")
        assert "* 1 RECENT" in r.lines(), r
    with session(server) as a:
        r = a.ok("SELECT INBOX")
        assert "* 1 RECENT" in r.lines(), r
        assert "\\Recent" in a.ok("FETCH 1 FLAGS").fetch_map()[1]["FLAGS"]
        assert search_nums(a.ok("SEARCH RECENT")) == [1]
        with session(server) as c:
            r = c.ok("SELECT INBOX")
            assert "* 0 RECENT" in r.lines(), f"\\Recent belongs to the first session: {r!r}"
            assert "\\Recent" not in c.ok("FETCH 1 FLAGS").fetch_map()[1]["FLAGS"]
            assert search_nums(c.ok("SEARCH RECENT")) == []
            assert status_items(c.ok("STATUS INBOX (RECENT)"))["RECENT"] == 0
        # new mail while both are selected goes to exactly one of them
        with session(server, box="INBOX") as d:
            server.deliver(ALICE, msg(subject="second"))
            ra, rd = a.ok("NOOP"), d.ok("NOOP")
            fa = search_nums(a.ok("SEARCH RECENT"))
            fd = search_nums(d.ok("SEARCH RECENT"))
            assert (2 in fa) != (2 in fd), (ra, rd, fa, fd)


def test_rename_inbox_seen_by_selected_session(server):
    with session(server, box="INBOX", fill=2) as a, session(server) as b:
        b.ok('RENAME INBOX "Moved"')
        r = a.cmd("NOOP")
        if r.ok:
            assert len([l for l in r.lines() if l.endswith(" EXPUNGE")]) == 2, r
            assert a.ok("SEARCH ALL").starting("* SEARCH") == ["* SEARCH"]
        else:
            assert r.starting("* BYE") or r.status in ("NO", "BAD"), r
        assert status_items(b.ok('STATUS "Moved" (MESSAGES)'))["MESSAGES"] == 2
