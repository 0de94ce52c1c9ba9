"""Real command-line clients against `sarn serve`: curl, fetchmail, getmail6, openssl s_client."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sarntest import make_message, strip_received, strip_trace

ALICE = "alice@example.com"


def need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (apt-get install -y {tool})")


def put(server, user, n, prefix="client"):
    sent = []
    for i in range(n):
        m = make_message(f"{prefix} {i}", f"unique-body {prefix}-{i}\r\n.dotted line\r\n")
        server.deliver(user, m)
        sent.append(m)
    return sent


def run(cmd, env, timeout=60, input=None):
    return subprocess.run(cmd, env=env, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


# ---------------------------------------------------------------------------------------
# curl
# ---------------------------------------------------------------------------------------

def curl(server, env, path="", scheme="pop3", user=ALICE, password="secret", extra=()):
    need("curl")
    port = server.ports["pop3s" if scheme == "pop3s" else "pop3"]
    return run(["curl", "-sS", "--max-time", "30", "-u", f"{user}:{password}", *extra,
                f"{scheme}://127.0.0.1:{port}/{path}"], env)


def test_curl_list_and_retrieve(server, client_home):
    _, env = client_home
    sent = put(server, ALICE, 3)
    r = curl(server, env)
    assert r.returncode == 0, r.stderr
    listing = r.stdout.decode().split("\r\n")
    assert listing[-1] == ""
    entries = [l.split() for l in listing[:-1]]
    assert [e[0] for e in entries] == ["1", "2", "3"]
    for i, (n, size) in enumerate(entries):
        r = curl(server, env, n)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == int(size), "curl got a different size than LIST said"
        assert strip_trace(r.stdout) == sent[i]


def test_curl_uidl_top_and_dele(server, client_home):
    _, env = client_home
    put(server, ALICE, 2)
    r = curl(server, env, extra=["-X", "UIDL"])
    assert r.returncode == 0, r.stderr
    uidls = [l.split() for l in r.stdout.decode().split("\r\n") if l]
    assert [u[0] for u in uidls] == ["1", "2"]
    assert all(re.fullmatch(r"[0-9a-fA-F]+", u[1]) for u in uidls)
    r = curl(server, env, extra=["-X", "TOP 2 0"])
    assert r.returncode == 0, r.stderr
    assert b"Subject: client 1" in r.stdout and b"unique-body" not in r.stdout
    r = curl(server, env, "1", extra=["-X", "DELE", "-I"])
    assert r.returncode == 0, r.stderr
    msgs = server.messages(ALICE)
    assert len(msgs) == 1 and b"Subject: client 1" in msgs[0]
    r = curl(server, env, extra=["-X", "UIDL"])
    assert [l.split()[1] for l in r.stdout.decode().split("\r\n") if l] == [uidls[1][1]]


@pytest.mark.parametrize("opts", [["--login-options", "AUTH=PLAIN"],
                                  ["--login-options", "AUTH=PLAIN", "--sasl-ir"],
                                  ["--login-options", "AUTH=LOGIN"],
                                  ["--login-options", "AUTH=LOGIN", "--sasl-ir"],
                                  []])
def test_curl_auth_mechanisms(server, client_home, opts):
    _, env = client_home
    sent = put(server, ALICE, 1)
    r = curl(server, env, "1", extra=opts)
    assert r.returncode == 0, r.stderr
    assert strip_trace(r.stdout) == sent[0]


def test_curl_wrong_password(server, client_home):
    _, env = client_home
    r = curl(server, env, password="wrong")
    assert r.returncode == 67, (r.returncode, r.stderr)  # CURLE_LOGIN_DENIED


def test_curl_pop3s_and_stls(server, client_home):
    _, env = client_home
    sent = put(server, ALICE, 1)
    r = curl(server, env, "1", scheme="pop3s", extra=["-k"])
    assert r.returncode == 0, r.stderr
    assert strip_trace(r.stdout) == sent[0]
    r = curl(server, env, "1", extra=["-k", "--ssl-reqd"])
    assert r.returncode == 0, r.stderr
    assert strip_trace(r.stdout) == sent[0]
    # with verification against the certificate for "localhost"
    port = server.ports["pop3s"]
    r = run(["curl", "-sS", "--max-time", "30", "-u", f"{ALICE}:secret", "--cacert",
             str(server.cert_path), "--resolve", f"localhost:{port}:127.0.0.1",
             f"pop3s://localhost:{port}/1"], env)
    assert r.returncode == 0, r.stderr
    assert strip_trace(r.stdout) == sent[0]


def test_curl_generated_cert_verifies(sarn_factory, client_home):
    _, env = client_home
    srv = sarn_factory(tls="generated")
    put(srv, ALICE, 1)
    port = srv.ports["pop3s"]
    for name in ("localhost", "127.0.0.1"):
        extra = ["--resolve", f"localhost:{port}:127.0.0.1"] if name == "localhost" else []
        r = run(["curl", "-sS", "--max-time", "30", "-u", f"{ALICE}:secret", "--cacert",
                 str(srv.data / "tls" / "cert.pem"), *extra, f"pop3s://{name}:{port}/"], env)
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout.startswith(b"1 ")


def test_curl_smtp(server, client_home, tmp_path):
    _, env = client_home
    m = make_message("curl smtp", "sent by curl\r\n.leading dot\r\n")
    f = tmp_path / "msg.eml"
    f.write_bytes(m)
    for extra in ([], ["--ssl-reqd", "-k"]):
        r = run(["curl", "-sS", "--max-time", "30", *extra, f"smtp://127.0.0.1:{server.ports['smtp']}",
                 "--mail-from", "curl@remote.test", "--mail-rcpt", ALICE, "-T", str(f)], env)
        assert r.returncode == 0, r.stderr
    msgs = server.messages(ALICE)
    assert len(msgs) == 2
    assert all(strip_received(x) == m for x in msgs)


def test_curl_smtp_unknown_rcpt(server, client_home, tmp_path):
    _, env = client_home
    f = tmp_path / "msg.eml"
    f.write_bytes(make_message())
    r = run(["curl", "-sS", "--max-time", "30", f"smtp://127.0.0.1:{server.ports['smtp']}",
             "--mail-from", "curl@remote.test", "--mail-rcpt", "ghost@example.com", "-T", str(f)],
            env)
    assert r.returncode != 0
    assert b"550" in r.stderr


def test_openssl_s_client(server):
    need("openssl")
    for args in (["-connect", f"127.0.0.1:{server.ports['pop3s']}"],
                 ["-connect", f"127.0.0.1:{server.ports['pop3']}", "-starttls", "pop3"],
                 ["-connect", f"127.0.0.1:{server.ports['smtp']}", "-starttls", "smtp"],
                 ["-connect", f"127.0.0.1:{server.ports['lmtp']}", "-starttls", "lmtp"]):
        r = subprocess.run(["openssl", "s_client", "-quiet", "-verify_return_error",
                            "-CAfile", str(server.cert_path), "-verify_hostname", "localhost",
                            *args], input=b"QUIT\r\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        # -verify_return_error: a certificate that does not verify for "localhost" aborts
        # before any protocol output
        assert "verify error" not in err, (args, err)
        assert re.search(r"^(\+OK|221)", out, re.M), (args, out, err)


# ---------------------------------------------------------------------------------------
# fetchmail
# ---------------------------------------------------------------------------------------

class Fetchmail:
    def __init__(self, server, home, env, tmp):
        need("fetchmail")
        self.server, self.home, self.env = server, home, env
        self.out = tmp / "fetched"
        self.out.mkdir()
        self.mda = tmp / "mda.sh"
        self.mda.write_text(f'#!/bin/sh\nf=$(mktemp "{self.out}/msg.XXXXXXXX") && cat > "$f"\n')
        self.mda.chmod(0o755)
        self.rc = home / ".fetchmailrc"

    def run(self, mode="plain", keep=True, user=ALICE, password="secret"):
        if mode == "plain":
            port, tls = self.server.ports["pop3"], 'sslproto ""'
        elif mode == "stls":
            port = self.server.ports["pop3"]
            tls = (f'sslproto "auto" sslcertck sslcertfile "{self.server.cert_path}" '
                   f'sslcommonname "localhost"')
        elif mode == "stls-nocheck":
            port, tls = self.server.ports["pop3"], 'sslproto "auto" no sslcertck'
        elif mode == "ssl":
            port, tls = self.server.ports["pop3s"], "ssl no sslcertck"
        elif mode == "ssl-verify":
            port = self.server.ports["pop3s"]
            tls = f'ssl sslcertck sslcertfile "{self.server.cert_path}" sslcommonname "localhost"'
        else:
            raise ValueError(mode)
        self.rc.write_text(
            f'set no syslog\nset idfile "{self.home}/.fetchids"\n'
            f'poll 127.0.0.1 port {port} proto pop3 {"uidl" if keep else ""} timeout 30\n'
            f'  user "{user}" there with password "{password}"\n'
            f'  {"keep" if keep else "nokeep"}\n'
            f'  {tls}\n'
            f'  mda "{self.mda}"\n')
        self.rc.chmod(0o600)
        r = run(["fetchmail", "-f", str(self.rc), "--nodetach", "-v"], self.env)
        self.last = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        assert "not the expected length" not in self.last, self.last
        return r.returncode

    def fetched(self):
        return sorted(p.read_bytes() for p in self.out.iterdir())

    def clear(self):
        for p in self.out.iterdir():
            p.unlink()


def subjects(msgs):
    return sorted(re.search(rb"^Subject: (.*)$", m, re.M).group(1).decode().strip() for m in msgs)


@pytest.mark.parametrize("mode", ["plain", "ssl", "stls"])
def test_fetchmail_keep_uidl_fetches_only_new(server, client_home, tmp_path, mode):
    home, env = client_home
    fm = Fetchmail(server, home, env, tmp_path)
    put(server, ALICE, 2, prefix="first")
    assert fm.run(mode) == 0, fm.last
    assert subjects(fm.fetched()) == ["first 0", "first 1"], fm.last
    for m in fm.fetched():
        assert b"unique-body" in m and b"\n.dotted line" in m
    fm.clear()
    rc = fm.run(mode)
    assert rc == 1, f"second run should find no new mail (rc {rc})\n{fm.last}"
    assert fm.fetched() == []
    put(server, ALICE, 1, prefix="second")
    assert fm.run(mode) == 0, fm.last
    assert subjects(fm.fetched()) == ["second 0"]
    assert len(server.messages(ALICE)) == 3, "keep mode must leave mail on the server"


@pytest.mark.parametrize("mode", ["plain", "ssl-verify", "stls-nocheck"])
def test_fetchmail_delete_mode(server, client_home, tmp_path, mode):
    home, env = client_home
    fm = Fetchmail(server, home, env, tmp_path)
    sent = put(server, ALICE, 3)
    assert fm.run(mode, keep=False) == 0, fm.last
    got = fm.fetched()
    assert subjects(got) == ["client 0", "client 1", "client 2"]
    for m in got:
        # fetchmail prepends its own Received:; the original message follows unchanged
        assert any(m.replace(b"\r\n", b"\n").endswith(s.replace(b"\r\n", b"\n")) for s in sent)
    assert server.messages(ALICE) == []
    fm.clear()
    assert fm.run(mode, keep=False) == 1, fm.last


def test_fetchmail_wrong_password(server, client_home, tmp_path):
    home, env = client_home
    fm = Fetchmail(server, home, env, tmp_path)
    put(server, ALICE, 1)
    rc = fm.run("plain", password="wrong")
    assert rc == 3, f"fetchmail exit {rc} (3 = authentication failed)\n{fm.last}"
    assert fm.fetched() == []
    assert len(server.messages(ALICE)) == 1


# ---------------------------------------------------------------------------------------
# getmail
# ---------------------------------------------------------------------------------------

class Getmail:
    """getmail6 with a Maildir destination. getmail refuses to deliver to a Maildir as root, so
    as root it runs as nobody in a private directory under /tmp (removed by the fixture)."""

    def __init__(self, server, tmp):
        need("getmail")
        self.server = server
        self.prefix = []
        if os.geteuid() == 0:
            base = Path(tempfile.mkdtemp(prefix="sarn-getmail-"))
            self.cleanup = base
            self.prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        else:
            base = tmp
            self.cleanup = None
        self.dir = base / "getmail"
        self.maildir = base / "Maildir"
        self.home = base / "home"
        for d in (self.dir, self.home, *(self.maildir / sub for sub in ("cur", "new", "tmp"))):
            d.mkdir(parents=True)
        self.cert = base / "cert.pem"
        shutil.copy(server.cert_path, self.cert)
        if self.prefix:
            for p in [base, *base.rglob("*")]:
                os.chown(p, 65534, 65534)
        self.env = dict(os.environ, HOME=str(self.home), LC_ALL="C")

    def run(self, ssl=False, delete=False, verify=False, password="secret"):
        if ssl:
            rtype, port = "SimplePOP3SSLRetriever", self.server.ports["pop3s"]
        else:
            rtype, port = "SimplePOP3Retriever", self.server.ports["pop3"]
        extra = ""
        if verify:
            extra = f"ca_certs = {self.cert}\nssl_cert_hostname = localhost\n"
        rc = self.dir / "getmailrc"
        rc.write_text(f"[retriever]\ntype = {rtype}\nserver = 127.0.0.1\nport = {port}\n"
                      f"username = {ALICE}\npassword = {password}\n{extra}\n"
                      f"[destination]\ntype = Maildir\npath = {self.maildir}/\n\n"
                      f"[options]\ndelete = {'true' if delete else 'false'}\nread_all = false\n"
                      f"verbose = 2\n")
        if self.prefix:
            os.chown(rc, 65534, 65534)
        r = run([*self.prefix, "getmail", f"--getmaildir={self.dir}", f"--rcfile={rc}"],
                self.env)
        self.last = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        return r.returncode

    def fetched(self):
        return [p.read_bytes() for p in sorted((self.maildir / "new").iterdir())]

    def clear(self):
        for p in (self.maildir / "new").iterdir():
            p.unlink()


@pytest.fixture
def getmail(server, tmp_path):
    gm = Getmail(server, tmp_path)
    yield gm
    if gm.cleanup is not None:
        shutil.rmtree(gm.cleanup, ignore_errors=True)


@pytest.mark.parametrize("ssl", [False, True])
def test_getmail_keep_only_new(server, getmail, ssl):
    gm = getmail
    put(server, ALICE, 2, prefix="gm-first")
    assert gm.run(ssl=ssl) == 0, gm.last
    assert subjects(gm.fetched()) == ["gm-first 0", "gm-first 1"], gm.last
    gm.clear()
    assert gm.run(ssl=ssl) == 0, gm.last
    assert gm.fetched() == [], "getmail fetched old mail again: UIDLs changed?"
    put(server, ALICE, 1, prefix="gm-second")
    server.restart()  # UIDLs survive a restart
    assert gm.run(ssl=ssl) == 0, gm.last
    assert subjects(gm.fetched()) == ["gm-second 0"], gm.last
    assert len(server.messages(ALICE)) == 3


@pytest.mark.parametrize("ssl,verify", [(False, False), (True, False), (True, True)])
def test_getmail_delete(server, getmail, ssl, verify):
    gm = getmail
    sent = put(server, ALICE, 3, prefix="gm")
    assert gm.run(ssl=ssl, delete=True, verify=verify) == 0, gm.last
    got = gm.fetched()
    assert subjects(got) == ["gm 0", "gm 1", "gm 2"], gm.last
    for m in got:
        # getmail adds Delivered-To/Return-Path/Received; the original follows unchanged
        assert any(m.replace(b"\r\n", b"\n").endswith(s.replace(b"\r\n", b"\n")) for s in sent)
    assert server.messages(ALICE) == []


def test_getmail_wrong_password(server, getmail):
    gm = getmail
    put(server, ALICE, 1)
    gm.run(password="wrong")
    assert gm.fetched() == []
    assert re.search(r"(?i)(login|auth|password).*(fail|error|denied|refused)|\[AUTH\]", gm.last), \
        gm.last
