"""Test doubles for sarn's outbound side: a capturing SMTP server (aiosmtpd) and a small
authoritative DNS server (dnslib), plus helpers to read `sarn queue list` and bounces.

    capture_factory   capture_factory(host="127.0.0.1", port=None, tls=False, users=None, ...)
                      -> Capture, started; stopped at teardown
    dns_factory       dns_factory(records, default_a=None) -> DnsServer, started (UDP and TCP)

Import the fixtures into a test module (`from outbound import capture_factory, dns_factory`).

Capture records every accepted message (Received: mail_from, rcpt_tos, content bytes with
CRLF lines, parameters, whether TLS was on, the AUTH login) and can be told to answer some
commands with errors:

    cap.fail_data(2, "451 4.3.0 try later")          the next 2 DATA get that reply
    cap.stall_data(5, "451 4.3.0 stalled")           the next DATA sleeps 5 s, then replies
    cap.fail_rcpt("bad@remote.test", "550 5.1.1 no such user")             always
    cap.fail_rcpt("slow@remote.test", "450 4.2.1 busy", times=1)           once
    cap.data_delay = 0.5                             every DATA (that is accepted) sleeps first
    cap.max_rcpts = 2                                RCPTs beyond 2 in a transaction: 452 4.5.3
    capture_factory(dsn=True)                        advertises DSN, takes RET/ENVID/NOTIFY/ORCPT
    capture_factory(tls_broken=True)                 offers STARTTLS whose handshake fails
"""
import asyncio
import email
import email.policy
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSLabel
from dnslib.server import DNSLogger, DNSServer

import sarntest
from sarntest import TIMEOUT, tls_client_context

HEX_ID = re.compile(r"^([0-9a-f]{16})\b")


def free_port(hosts=("127.0.0.1",), udp=False):
    """A TCP port (and the same UDP port if udp) that is free on every host in hosts."""
    def fam(h):
        return socket.AF_INET6 if ":" in h else socket.AF_INET

    for _ in range(200):
        s = socket.socket(fam(hosts[0]), socket.SOCK_STREAM)
        s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        held = [s]
        ok = True
        try:
            for h in hosts[1:]:
                t = socket.socket(fam(h), socket.SOCK_STREAM)
                held.append(t)
                t.bind((h, port))
            if udp:
                for h in hosts:
                    u = socket.socket(fam(h), socket.SOCK_DGRAM)
                    held.append(u)
                    u.bind((h, port))
        except OSError:
            ok = False
        finally:
            for x in held:
                x.close()
        if ok:
            return port
    raise RuntimeError("no free port")


def make_cert(directory, cn="capture.test"):
    """A self-signed certificate (cert, key) for 127.0.0.1 / localhost."""
    cert, key = f"{directory}/capture-cert.pem", f"{directory}/capture-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "3", "-subj", f"/CN={cn}", "-addext",
                    "subjectAltName=DNS:localhost,DNS:capture.test,IP:127.0.0.1,IP:127.0.0.2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


# ---- the capture SMTP server ----------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    content: bytes
    mail_options: list = field(default_factory=list)
    rcpt_options: list = field(default_factory=list)
    tls: bool = False
    auth: str = None
    helo: str = None
    peer: tuple = None


class _Handler:
    def __init__(self, cap):
        self.cap = cap

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.cap.dsn:
            responses = responses[:-1] + ["250-DSN"] + responses[-1:]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        cap = self.cap
        with cap.lock:
            cap.events.append(("MAIL", address, list(mail_options)))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        cap = self.cap
        with cap.lock:
            cap.events.append(("RCPT", address, list(rcpt_options)))
            cap.rcpt_attempts[address.lower()] = cap.rcpt_attempts.get(address.lower(), 0) + 1
            rule = cap._rcpt_rules.get(address.lower())
            reply = None
            if rule is not None:
                reply, times = rule
                if times is not None:
                    if times <= 1:
                        del cap._rcpt_rules[address.lower()]
                    else:
                        cap._rcpt_rules[address.lower()] = (reply, times - 1)
        if reply:
            return reply
        if cap.max_rcpts and len(envelope.rcpt_tos) >= cap.max_rcpts:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        cap = self.cap
        with cap.lock:
            cap.data_attempts += 1
            action = cap._data_actions.pop(0) if cap._data_actions else None
            cap.active_data += 1
            cap.max_active_data = max(cap.max_active_data, cap.active_data)
            delay = cap.data_delay
        try:
            if action is not None:
                secs, reply = action
                if secs:
                    await asyncio.sleep(secs)
                return reply
            if delay:
                await asyncio.sleep(delay)
            auth = session.auth_data
            login = None
            if auth is not None:
                login = getattr(auth, "login", auth)
                if isinstance(login, bytes):
                    login = login.decode("utf-8", "replace")
            msg = Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos),
                           content=bytes(envelope.original_content or envelope.content),
                           mail_options=list(envelope.mail_options),
                           rcpt_options=list(envelope.rcpt_options),
                           tls=session.ssl is not None, auth=login,
                           helo=getattr(session, "host_name", None), peer=session.peer)
            with cap.lock:
                cap.messages.append(msg)
            return "250 2.0.0 OK queued"
        finally:
            with cap.lock:
                cap.active_data -= 1


class _CountingSMTP(SMTP):
    """Counts concurrent connections on the Capture (STARTTLS calls connection_made twice)."""

    cap = None

    def _getparams(self, params):
        # With cap.dsn the RFC 3461 parameters are accepted (aiosmtpd refuses unknown ones
        # with 555); the hooks still see them in mail_options / rcpt_options.
        result = super()._getparams(params)
        if result is not None and self.cap is not None and self.cap.dsn:
            for k in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                result.pop(k, None)
        return result

    def connection_made(self, transport):
        if not getattr(self, "_counted", False) and self.cap is not None:
            self._counted = True
            with self.cap.lock:
                self.cap.connections += 1
                self.cap.active_connections += 1
                self.cap.max_active_connections = max(self.cap.max_active_connections,
                                                      self.cap.active_connections)
        super().connection_made(transport)

    def connection_lost(self, error):
        if getattr(self, "_counted", False) and self.cap is not None:
            self._counted = False
            with self.cap.lock:
                self.cap.active_connections -= 1
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, cap, handler, **kw):
        self._cap = cap
        super().__init__(handler, **kw)

    def factory(self):
        s = _CountingSMTP(self.handler, **self.SMTP_kwargs)
        s.cap = self._cap
        return s


class Capture:
    """An SMTP server (aiosmtpd) that records what it is sent."""

    def __init__(self, host="127.0.0.1", port=None, tls_cert=None, require_starttls=False,
                 users=None, auth_require_tls=False, auth_exclude=(), name="capture.test",
                 dsn=False, tls_broken=False):
        self.host = host
        self.port = port or free_port((host,))
        self.lock = threading.Lock()
        self.messages = []
        self.events = []
        self.rcpt_attempts = {}
        self.data_attempts = 0
        self.data_delay = 0
        self.max_rcpts = 0
        self.active_data = self.max_active_data = 0
        self.connections = self.active_connections = self.max_active_connections = 0
        self.auth_attempts = []
        self._rcpt_rules = {}
        self._data_actions = []
        self.users = dict(users or {})
        self.dsn = dsn
        kw = {"server_hostname": name}
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls_cert)
            if tls_broken:
                # STARTTLS is offered, but no TLS 1.2+ client can complete a handshake.
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.set_ciphers("ALL:@SECLEVEL=0")
                    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                    ctx.maximum_version = ssl.TLSVersion.TLSv1
            kw["tls_context"] = ctx
            kw["require_starttls"] = require_starttls
        if users is not None:
            kw["authenticator"] = self._authenticate
            kw["auth_required"] = True
            kw["auth_require_tls"] = auth_require_tls
            kw["auth_exclude_mechanism"] = list(auth_exclude)
        if users is not None and not auth_require_tls:
            import warnings
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
        self.controller = _Controller(self, _Handler(self), hostname=host, port=self.port, **kw)
        self.started = False

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"")
        password = getattr(auth_data, "password", b"")
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        ok = self.users.get(login) == password
        with self.lock:
            self.auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self):
        self.controller.start()
        self.started = True
        # The controller's own start-up probe connection is not a client.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self.lock:
                if self.active_connections == 0:
                    self.connections = 0
                    self.max_active_connections = 0
                    break
            time.sleep(0.01)
        return self

    def stop(self):
        if self.started:
            self.started = False
            self.controller.stop()

    # ---- behaviour ----
    def fail_data(self, n, reply="451 4.3.0 try later"):
        with self.lock:
            self._data_actions.extend([(0, reply)] * n)

    def stall_data(self, seconds, reply="451 4.3.0 stalled"):
        with self.lock:
            self._data_actions.append((seconds, reply))

    def fail_rcpt(self, address, reply="550 5.1.1 no such user", times=None):
        with self.lock:
            self._rcpt_rules[address.lower()] = (reply, times)

    # ---- inspection ----
    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def received(self):
        with self.lock:
            return list(self.messages)

    def deliveries_to(self, rcpt):
        """Number of accepted messages that had rcpt among their recipients."""
        return sum(1 for m in self.received() if rcpt.lower() in (r.lower() for r in m.rcpt_tos))

    def wait(self, n=1, timeout=20.0):
        """Waits until at least n messages were accepted; returns the list."""
        sarntest.wait_for(lambda: len(self.received()) >= n, timeout, 0.05)
        return self.received()


# ---- the DNS server -----------------------------------------------------------------------

class _Resolver:
    def __init__(self, records, default_a=None):
        self.records = {}
        self.default_a = default_a
        self.queries = []
        self.lock = threading.Lock()
        for name, rrs in records.items():
            self.records[name.lower().rstrip(".")] = rrs

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        name = str(qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
        with self.lock:
            rrs = self.records.get(name)
        if rrs == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if rrs is None:
            if self.default_a is not None:
                rrs = {"A": [self.default_a]}
            else:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
        for value in rrs.get(qtype, []) if qtype in ("MX", "A", "AAAA") else []:
            if qtype == "MX":
                pref, host = value
                rdata = MX(DNSLabel(host if host != "." else ""), pref)
            elif qtype == "A":
                rdata = A(value)
            else:
                rdata = AAAA(value)
            reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


class DnsServer:
    """dnslib on 127.0.0.1, UDP and TCP on the same free port.

    records: {"remote.test": {"MX": [(10, "mx1.remote.test")], "A": ["127.0.0.1"],
              "AAAA": ["::1"]}}; a null MX is (0, "."); the value "SERVFAIL" answers SERVFAIL.
    Names not listed: NXDOMAIN (or an A record default_a if given); a listed name without the
    asked type: an empty answer.
    """

    def __init__(self, records, default_a=None, host="127.0.0.1"):
        self.host = host
        self.resolver = _Resolver(records, default_a)
        logger = DNSLogger(prefix=False, logf=lambda s: None)
        last = None
        for _ in range(20):
            self.port = free_port((host,), udp=True)
            try:
                self.udp = DNSServer(self.resolver, address=host, port=self.port, logger=logger)
                try:
                    self.tcp = DNSServer(self.resolver, address=host, port=self.port, tcp=True,
                                         logger=logger)
                except OSError:
                    self.udp.server.server_close()
                    raise
                break
            except OSError as e:
                last = e
        else:
            raise RuntimeError(f"no free DNS port: {last}")

    @property
    def address(self):
        """For [queue] dns_server."""
        return f"{self.host}@{self.port}"

    def queries(self):
        with self.resolver.lock:
            return list(self.resolver.queries)

    def set(self, name, rrs):
        """Changes (or with None removes) a name's records; "SERVFAIL" makes it fail."""
        with self.resolver.lock:
            if rrs is None:
                self.resolver.records.pop(name.lower().rstrip("."), None)
            else:
                self.resolver.records[name.lower().rstrip(".")] = rrs

    def start(self):
        self.threads = []
        for s in (self.udp, self.tcp):
            t = threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.05},
                                 daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        for s in (self.udp, self.tcp):
            try:
                s.server.shutdown()
                s.server.server_close()
            except Exception:
                pass


# ---- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def capture_factory(tmp_path):
    caps = []
    cert = []

    def make(host="127.0.0.1", port=None, tls=False, start=True, **kw):
        tls = tls or kw.get("tls_broken", False)
        if tls and not cert:
            cert.append(make_cert(str(tmp_path)))
        cap = Capture(host=host, port=port, tls_cert=cert[0] if tls else None, **kw)
        caps.append(cap)
        if start:
            cap.start()
        return cap

    yield make
    for cap in caps:
        cap.stop()


@pytest.fixture
def dns_factory():
    servers = []

    def make(records, default_a=None):
        d = DnsServer(records, default_a=default_a).start()
        servers.append(d)
        return d

    yield make
    for d in servers:
        d.stop()


# ---- sarn servers ----------------------------------------------------------------------------

SUBMISSION_LISTENERS = ("smtp", "submission", "submissions", "imap", "pop3", "lmtp")


@pytest.fixture(scope="session")
def _accounts_template(tmp_path_factory):
    """A data directory with the default users, made once: `sarn user add` hashes with
    yescrypt (~0.4 s a user), which would otherwise dominate these suites."""
    s = sarntest.SarnServer(tmp_path_factory.mktemp("accounts-template"))
    s.write_config()
    for addr, pw in s.users.items():
        s.cli("user", "add", addr, input=pw + "\n", check=True)
    return s.data


@pytest.fixture
def sarn_mail(sarn_factory, _accounts_template):
    """Like sarn_factory (conftest.py), with the submission listeners by default and the
    default users copied from a template instead of created one by one."""

    def make(listeners=SUBMISSION_LISTENERS, start=True, **kw):
        srv = sarn_factory(listeners=listeners, users={}, start=False, **kw)
        shutil.copytree(_accounts_template, srv.data)
        srv.users = dict(sarntest.DEFAULT_USERS)
        srv._users_created = True
        if start:
            srv.start()
        return srv

    return make


# ---- sarn configuration and inspection helpers ----------------------------------------------


def queue_config(smarthost=None, dns=None, remote_port=None, **kw):
    """[queue] overrides: fast retries, a short expiry unless given."""
    q = {"retry_min": 1, "retry_max": 1}
    if smarthost is not None:
        q["smarthost"] = smarthost.address if isinstance(smarthost, Capture) else smarthost
    if dns is not None:
        q["dns_server"] = dns.address if isinstance(dns, DnsServer) else dns
    if remote_port is not None:
        q["remote_port"] = remote_port
    q.update(kw)
    return q


def queue_list(server):
    """`sarn queue list` parsed: [{"id", "line", "rcpts": [line, ...]}]. Asserts exit 0."""
    r = server.cli("queue", "list")
    assert r.returncode == 0, f"sarn queue list exited {r.returncode}: {r.stderr!r}"
    out = []
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        if not line.strip() or line.strip().lower() == "queue is empty":
            continue
        m = HEX_ID.match(line)
        if m:
            out.append({"id": m.group(1), "line": line, "rcpts": []})
        elif line[:1] in (" ", "\t") and out:
            out[-1]["rcpts"].append(line.strip())
        else:
            raise AssertionError(f"unexpected `sarn queue list` line: {line!r}\n{r.stdout!r}")
    return out


def wait_queue_empty(server, timeout=20.0):
    """True once `sarn queue list` shows no message (polled)."""
    return sarntest.wait_for(lambda: queue_list(server) == [], timeout, 0.2)


def queue_files(server):
    d = server.data / "queue"
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def is_bounce(raw):
    m = parse(raw)
    return m.get_content_type() == "multipart/report"


def dsn_parts(raw):
    """A delivery status notification split up:
    {"msg", "report_type", "per_message": {field: value}, "recipients": [{field: value}],
     "original": Message part (message/rfc822 or text/rfc822-headers) or None,
     "original_type": its content type}. Field names are lower-case."""
    m = parse(raw)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    parts = m.get_payload()
    status = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1, [p.get_content_type() for p in parts]
    blocks = status[0].get_payload()
    if isinstance(blocks, str):
        text = blocks.replace("\r\n", "\n").strip("\n")
        blocks = [email.message_from_string(b) for b in re.split(r"\n\s*\n", text)]

    def fields(b):
        return {k.lower(): " ".join(str(v).split()) for k, v in b.items()}

    originals = [p for p in parts if p.get_content_type() in ("message/rfc822",
                                                              "text/rfc822-headers")]
    return {"msg": m, "report_type": m.get_param("report-type"),
            "per_message": fields(blocks[0]),
            "recipients": [fields(b) for b in blocks[1:]],
            "original": originals[0] if originals else None,
            "original_type": originals[0].get_content_type() if originals else None,
            "parts": [p.get_content_type() for p in parts]}


# ---- clients -----------------------------------------------------------------------------

def submit(server, rcpts, msg, frm="alice@example.com", user="alice@example.com",
           listener="submission"):
    """smtplib submission with AUTH; returns sendmail's refused dict."""
    if listener == "submissions":
        s = smtplib.SMTP_SSL(server.host, server.ports[listener], timeout=TIMEOUT,
                             context=tls_client_context())
    else:
        s = smtplib.SMTP(server.host, server.ports[listener], timeout=TIMEOUT)
    try:
        s.ehlo("client.test")
        s.login(user, server.users[user])
        return s.sendmail(frm, rcpts, msg)
    finally:
        s.quit()


def headers(raw):
    """A message parsed (compat32), for its header fields."""
    return parse(raw)


def imap_mailbox(server, user, mailbox="INBOX"):
    """[(flags bytes, message bytes)] of a mailbox; None if it cannot be selected."""
    m = server.imap(user)
    try:
        typ, data = m.select(mailbox)
        if typ != "OK":
            return None
        n = int(data[0])
        out = []
        if n:
            typ, data = m.fetch(f"1:{n}", "(FLAGS BODY.PEEK[])")
            assert typ == "OK"
            for item in data:
                if isinstance(item, tuple):
                    out.append((item[0], item[1]))
        return out
    finally:
        try:
            m.logout()
        except Exception:
            pass
