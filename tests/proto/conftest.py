"""Fixtures for the sarn protocol suites.

    server           a running default server (imap, imaps, pop3, pop3s, smtp, lmtp; users alice, bob)
    sarn_factory     sarn_factory(overrides=..., listeners=..., users=..., tls="shared"|"generated",
                                  start=True, listen_host=...) -> SarnServer
    shared_cert      (cert, key) of a session-wide self-signed certificate for localhost/127.0.0.1

Every server lives in its own tmp dir with free ports. At teardown each server gets SIGTERM and
must exit 0 within 15 s; a server that died on its own during the test is an error. On failure
the server's stderr log is attached to the report. Tests get a SIGALRM-based time limit
(default 120 s, `@pytest.mark.timeout(N)` to change).
"""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

import sarntest
from sarntest import SarnServer, ServerError

DEFAULT_TEST_TIMEOUT = 120


_bin_copy_dir = None


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): time limit for one test (SIGALRM)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    # Run a private copy of the binary: a rebuild during the run must not change (or briefly
    # remove) the program under test.
    global _bin_copy_dir
    if os.access(sarntest.SARN_BIN, os.X_OK) and _bin_copy_dir is None:
        sarntest.ORIG_SARN_BIN = sarntest.SARN_BIN
        _bin_copy_dir = tempfile.mkdtemp(prefix="sarn-bin-")
        copy = os.path.join(_bin_copy_dir, "sarn")
        shutil.copy2(sarntest.SARN_BIN, copy)
        sarntest.SARN_BIN = copy


def pytest_unconfigure(config):
    global _bin_copy_dir
    if _bin_copy_dir is not None:
        shutil.rmtree(_bin_copy_dir, ignore_errors=True)
        _bin_copy_dir = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for srv in getattr(item, "_sarn_servers", []):
            rep.sections.append((f"sarn serve stderr ({srv.name}, {srv.log_path})",
                                 srv.log_tail(150)))


class _Timeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    m = request.node.get_closest_marker("timeout")
    secs = int(m.args[0]) if m else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise _Timeout(f"test exceeded its time limit of {secs} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def shared_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "3", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(cert), str(key)


@pytest.fixture
def sarn_factory(request, tmp_path, shared_cert):
    servers = []
    request.node._sarn_servers = servers

    def make(name=None, overrides=None, listeners=None, users=None, tls="shared", start=True,
             **kw):
        name = name or f"sarn{len(servers)}"
        args = {}
        if listeners is not None:
            args["listeners"] = listeners
        if tls == "shared":
            args["tls_cert"], args["tls_key"] = shared_cert
        srv = SarnServer(tmp_path / name, name=name, overrides=overrides, users=users, **args,
                         **kw)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    problems = []
    for srv in servers:
        if srv.proc is None:
            continue
        if srv.running():
            rc = srv.stop()
            if rc != 0:
                problems.append(f"{srv.name}: SIGTERM at teardown gave rc={rc} "
                                f"(None = hung and killed)")
        elif not srv.killed and not getattr(srv, "_stopped", False):
            problems.append(f"{srv.name}: server died during the test (rc={srv.proc.returncode})")
    if problems:
        raise ServerError("\n".join(problems))
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        for srv in servers:
            shutil.rmtree(srv.base, ignore_errors=True)


@pytest.fixture
def server(sarn_factory):
    return sarn_factory()


@pytest.fixture
def client_home(tmp_path, monkeypatch):
    """A HOME for command-line clients (fetchmail, getmail, curl), inside tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env["HOME"] = str(home)
    env.pop("FETCHMAILHOME", None)
    env["LC_ALL"] = "C"
    return home, env


def pytest_report_header(config):
    orig = getattr(sarntest, "ORIG_SARN_BIN", sarntest.SARN_BIN)
    ok = os.access(sarntest.SARN_BIN, os.X_OK)
    return f"sarn binary: {orig} ({'copied to ' + sarntest.SARN_BIN if ok else 'MISSING'})"
