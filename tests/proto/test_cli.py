"""The sarn command line: accounts, aliases, deliver, check, start-up recovery."""
import re
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from sarntest import EX_NOUSER, EX_TEMPFAIL, SARN_BIN, make_message, strip_trace

ALICE = "alice@example.com"
BOB = "bob@example.com"


def can_login(server, user, password):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {user}")
        r = c.cmd(f"PASS {password}")
        return r.startswith("+OK")


def user_list(server):
    r = server.cli("user", "list")
    assert r.returncode == 0, r.stderr
    return [l.strip() for l in r.stdout.decode().splitlines() if l.strip()]


def test_version_and_help():
    r = subprocess.run([SARN_BIN, "--version"], stdout=subprocess.PIPE)
    assert r.returncode == 0 and r.stdout.startswith(b"sarn ")
    r = subprocess.run([SARN_BIN, "help"], stdout=subprocess.PIPE)
    assert r.returncode == 0 and b"deliver" in r.stdout
    r = subprocess.run([SARN_BIN, "frobnicate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode != 0 and b"frobnicate" in r.stderr
    r = subprocess.run([SARN_BIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode != 0


def test_user_add_list_del(sarn_factory):
    srv = sarn_factory(start=False, users={})
    assert srv.cli("user", "add", "carol@example.com", input="pw1\n").returncode == 0
    assert srv.cli("user", "add", "dave@example.org", input="pw2\n").returncode == 0
    assert user_list(srv) == ["carol@example.com", "dave@example.org"]
    r = srv.cli("user", "add", "carol@example.com", input="pw3\n")
    assert r.returncode != 0, "duplicate user accepted"
    r = srv.cli("user", "add", "Carol@EXAMPLE.com", input="pw3\n")
    assert r.returncode != 0, "duplicate user (different case) accepted"
    assert srv.cli("user", "del", "carol@example.com").returncode == 0
    assert user_list(srv) == ["dave@example.org"]
    assert srv.cli("user", "del", "carol@example.com").returncode != 0
    assert srv.cli("user", "del", "nobody@example.com").returncode != 0


def test_user_add_domain_is_lowercased(sarn_factory):
    srv = sarn_factory(start=False, users={})
    assert srv.cli("user", "add", "Eve@Example.NET", input="pw\n").returncode == 0
    assert user_list(srv) == ["Eve@example.net"]
    r = srv.cli("domain", "list")
    assert r.returncode == 0 and "example.net" in r.stdout.decode().split()


@pytest.mark.parametrize("addr", ["no-at-sign", "@example.com", "alice@", "a b@example.com",
                                  "../etc@example.com", "a/b@example.com", "alice@exa/mple.com",
                                  "x\x01y@example.com", "a" * 250 + "@example.com",
                                  "alice@@example.com", "alice@example..com", ""])
def test_user_add_invalid_address(sarn_factory, addr):
    srv = sarn_factory(start=False, users={})
    r = srv.cli("user", "add", addr, input="pw\n")
    assert r.returncode != 0, f"accepted invalid address {addr!r}"
    assert user_list(srv) == []
    # nothing outside the data dir was created
    assert not (srv.data.parent / "etc").exists()


def test_user_add_empty_password_refused(sarn_factory):
    srv = sarn_factory(start=False, users={})
    r = srv.cli("user", "add", "carol@example.com", input="\n")
    assert r.returncode != 0
    assert user_list(srv) == []


def test_user_changes_apply_to_running_server(server):
    server.add_user("carol@example.com", "carolpw")
    assert can_login(server, "carol@example.com", "carolpw")
    r = server.cli("user", "passwd", "carol@example.com", input="newpw\n")
    assert r.returncode == 0
    assert not can_login(server, "carol@example.com", "carolpw")
    assert can_login(server, "carol@example.com", "newpw")
    assert server.cli("user", "passwd", "ghost@example.com", input="x\n").returncode != 0
    assert server.cli("user", "del", "carol@example.com").returncode == 0
    assert not can_login(server, "carol@example.com", "newpw")
    r = server.deliver("carol@example.com", make_message(), check=False)
    assert r.returncode == EX_NOUSER


def test_data_option_instead_of_config(server):
    r = subprocess.run([SARN_BIN, "user", "add", "frank@example.com", "--data", str(server.data)],
                       input=b"frankpw\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([SARN_BIN, "user", "list", "--data", str(server.data)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert "frank@example.com" in r.stdout.decode().split()
    assert can_login(server, "frank@example.com", "frankpw")


def test_alias_commands(server):
    assert server.cli("alias", "add", "postmaster@example.com", ALICE).returncode == 0
    assert server.cli("alias", "add", "@example.com", BOB).returncode == 0
    r = server.cli("alias", "list")
    out = r.stdout.decode()
    assert r.returncode == 0
    assert "postmaster@example.com" in out and "@example.com" in out
    assert server.cli("alias", "add", "postmaster@example.com", BOB).returncode != 0, \
        "duplicate alias accepted"
    assert server.cli("alias", "add", "x@example.com", "ghost@example.com").returncode != 0, \
        "alias to a non-existent account accepted"
    assert server.cli("alias", "add", "bad alias@example.com", ALICE).returncode != 0
    # delivery through them
    server.deliver("postmaster@example.com", make_message("to postmaster"))
    server.deliver("whoever@example.com", make_message("to catch-all"))
    server.deliver("alice+tag@example.com", make_message("to tag"))
    assert len(server.messages(ALICE)) == 2
    assert len(server.messages(BOB)) == 1
    assert server.cli("alias", "del", "@example.com").returncode == 0
    assert server.deliver("whoever@example.com", make_message(), check=False).returncode == EX_NOUSER
    assert server.cli("alias", "del", "@example.com").returncode != 0


def test_deliver_exit_codes(server):
    m = make_message("deliver")
    r = server.deliver(ALICE, m, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    assert server.deliver("ghost@example.com", m, check=False).returncode == EX_NOUSER
    assert server.deliver("alice@not-local.test", m, check=False).returncode == EX_NOUSER
    r = server.deliver("not an address", m, check=False)
    assert r.returncode not in (0, EX_TEMPFAIL)
    msgs = server.messages(ALICE)
    assert [strip_trace(x) for x in msgs] == [m]


def test_deliver_without_recipient_is_usage_error(server):
    r = subprocess.run([SARN_BIN, "deliver", "-c", str(server.config_path)], input=b"x\r\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode not in (0, EX_NOUSER, EX_TEMPFAIL)
    assert server.messages(ALICE) == []


def test_deliver_to_mailbox_not_visible_in_pop3(server):
    r = server.cli("deliver", "-m", "Junk", ALICE, input=make_message("junk"))
    assert r.returncode == 0, r.stderr
    assert server.messages(ALICE) == [], "POP3 shows only INBOX"
    r = server.cli("deliver", "-m", "NoSuchFolder", ALICE, input=make_message("junk"))
    assert r.returncode != 0


@pytest.mark.timeout(180)
def test_deliver_tempfail_when_store_busy(server):
    server.deliver(ALICE, make_message("first"))  # creates the index
    db = sqlite3.connect(str(server.index_db(ALICE)), timeout=1, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        t = time.monotonic()
        r = server.deliver(ALICE, make_message("blocked"), check=False)
        assert r.returncode == EX_TEMPFAIL, (r.returncode, r.stderr)
        assert time.monotonic() - t < 150
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert len(server.messages(ALICE)) == 1
    assert server.cli("check").returncode == 0


def test_deliver_lf_input_and_large(server):
    body = b"".join(b"line %d\n" % i for i in range(200000))
    m = b"From: a@b.test\nSubject: big lf\n\n" + body
    server.deliver(ALICE, m)
    got = server.messages(ALICE)
    assert strip_trace(got[0]) == m.replace(b"\n", b"\r\n")


def test_concurrent_deliveries(server):
    errors = []

    def worker(k):
        for i in range(10):
            r = server.deliver(ALICE, make_message(f"c{k}-{i}"), check=False)
            if r.returncode != 0:
                errors.append((k, i, r.returncode, r.stderr))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    with server.raw("pop3") as c:
        c.expect_ok()
        c.pop3_login(ALICE, "secret")
        uidls = c.pop3_uidl_all()
    assert len(uidls) == 40
    assert len({u for _, u in uidls}) == 40


# ---------------------------------------------------------------------------------------
# check / repair / recovery
# ---------------------------------------------------------------------------------------

def populate(server):
    for i in range(3):
        server.deliver(ALICE, make_message(f"a{i}", f"alice body {i}\r\n"))
    server.deliver(BOB, make_message("b0"))


def test_check_good_store(server):
    populate(server)
    r = server.cli("check")
    assert r.returncode == 0, r.stdout + r.stderr
    server.stop_ok()
    r = server.cli("check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_empty_store(sarn_factory):
    srv = sarn_factory(start=False)
    assert srv.cli("check").returncode == 0


def test_check_missing_blob_and_repair(server):
    populate(server)
    server.stop_ok()
    blobs = server.blob_files(ALICE)
    assert len(blobs) == 3, f"expected 3 message files under blobs/: {blobs}"
    blobs[1].unlink()
    r = server.cli("check")
    assert r.returncode != 0, "a missing message file was not detected"
    lines = [l for l in (r.stdout + r.stderr).decode().splitlines() if l.strip()]
    assert len(lines) >= 1
    server.cli("check", "--repair")
    r = server.cli("check")
    assert r.returncode == 0, f"check still fails after --repair: {r.stdout + r.stderr}"
    server.start()
    msgs = server.messages(ALICE)
    assert len(msgs) == 2, "the message without a file is gone, the others stay"
    assert len(server.messages(BOB)) == 1


def test_check_truncated_blob(server):
    populate(server)
    server.stop_ok()
    blob = server.blob_files(ALICE)[0]
    data = blob.read_bytes()
    blob.write_bytes(data[:len(data) // 2])
    r = server.cli("check")
    assert r.returncode != 0, "a truncated message file (size differs from index) not detected"


def test_check_reports_orphan_blob_and_repair_removes_it(server):
    populate(server)
    server.stop_ok()
    blobdir = server.blob_files(ALICE)[0].parent
    orphan = blobdir / "orphan-0123456789abcdef"
    orphan.write_bytes(b"Subject: orphan\r\n\r\nnot in the index\r\n")
    r = server.cli("check")
    assert r.returncode != 0, "an orphan message file was not reported"
    server.cli("check", "--repair")
    assert server.cli("check").returncode == 0
    assert not orphan.exists()
    server.start()
    assert len(server.messages(ALICE)) == 3


def test_check_corrupt_index(server):
    populate(server)
    server.stop_ok()
    db = server.index_db(ALICE)
    with open(db, "r+b") as f:
        f.seek(100)
        f.write(b"\xde\xad\xbe\xef" * 256)
    r = server.cli("check")
    assert r.returncode != 0, "a corrupt index.db was not detected"


def test_startup_recovery_removes_temp_and_orphans(server):
    populate(server)
    server.kill()
    spool = server.data / "spool" / "tmp"
    assert spool.is_dir(), "DATA/spool/tmp should exist"
    stray = spool / "0123456789abcdef0123456789abcdef"
    stray.write_bytes(b"Subject: half\r\n\r\nhalf a message")
    blobdir = server.blob_files(ALICE)[0].parent
    orphan = blobdir / "orphan-feedface"
    orphan.write_bytes(b"Subject: orphan\r\n\r\nx\r\n")
    server.start()
    assert len(server.messages(ALICE)) == 3
    assert not stray.exists(), "temp file in the spool survived start-up recovery"
    assert not orphan.exists(), "orphan blob survived start-up recovery"
    server.stop_ok()
    r = server.cli("check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_user_del_removes_mail_and_check_passes(server):
    populate(server)
    assert server.cli("user", "del", ALICE).returncode == 0
    server.stop_ok()
    assert server.cli("check").returncode == 0
    server.cli("user", "add", ALICE, input="secret\n", check=True)
    server.start()
    assert server.messages(ALICE) == [], "a re-created account must not see old mail"


def test_user_retention_command(server):
    assert server.cli("user", "retention", ALICE, "7").returncode == 0
    assert server.cli("user", "retention", ALICE, "-1").returncode != 0
    assert server.cli("user", "retention", ALICE, "abc").returncode != 0
    assert server.cli("user", "retention", "ghost@example.com", "3").returncode != 0
    with server.raw("pop3") as c:
        c.expect_ok()
        c.pop3_login(ALICE, "secret")
        c.cmd_ok("CAPA")
        assert "EXPIRE 7" in [l.upper() for l in c.multiline_lines()]


# ---------------------------------------------------------------------------------------
# serve: configuration errors and signals
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("section,key,value", [
    ("limits", "max_line_length", "abc"),
    ("limits", "no_such_key", "1"),
    ("auth", "plaintext_auth", "sometimes"),
    ("listen", "pop3", "not-a-host-port"),
    ("tls", "cert", "/nonexistent/cert.pem"),
    ("server", "log_level", "chatty"),
])
def test_serve_bad_config(sarn_factory, section, key, value):
    srv = sarn_factory(start=False, overrides={section: {key: value}})
    srv.write_config()
    r = subprocess.run([SARN_BIN, "serve", "-c", str(srv.config_path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode != 0
    err = r.stderr.decode(errors="replace")
    assert key in err or value in err, f"the error should name the bad key: {err}"


def _serve_must_fail(srv):
    p = subprocess.Popen([SARN_BIN, "serve", "-c", str(srv.config_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    return rc


def test_serve_port_in_use_by_other_program(sarn_factory):
    import socket
    b = sarn_factory(start=False)
    b.write_config()
    with socket.socket() as s:
        s.bind(("127.0.0.1", b.ports["pop3"]))
        s.listen()
        rc = _serve_must_fail(b)
    assert rc not in (0, None), "serve must fail when it cannot listen"


def test_serve_port_in_use_by_other_sarn(sarn_factory):
    """A second instance must not silently share the ports (SO_REUSEPORT) with the first."""
    a = sarn_factory()
    b = sarn_factory(start=False)
    b._fixed_ports = True
    b.ports = dict(a.ports)
    b.write_config()
    rc = _serve_must_fail(b)
    assert rc not in (0, None), "a second sarn serve started on ports already in use"
    assert a.running()


def test_log_lines_are_key_value_and_hide_passwords(server):
    secret_pw = "Pw-Never-In-Logs-7731"
    server.add_user("carol@example.com", secret_pw)
    import base64
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok("USER carol@example.com")
        c.cmd("PASS Wrong-Pw-Also-Hidden-1234")
        plain = base64.b64encode(f"\0carol@example.com\0{secret_pw}".encode()).decode()
        c.cmd_ok(f"AUTH PLAIN {plain}")
        c.cmd_ok("QUIT")
    server.stop_ok()
    log = server.log_path.read_text(errors="replace")
    for s in (secret_pw, "Wrong-Pw-Also-Hidden-1234", plain):
        assert s not in log, f"password material in the log: {s}"
    lines = [l for l in log.splitlines() if l and not l.startswith("====")]
    assert lines
    for l in lines:
        assert re.match(r"^\S+ +(error|warn|info|debug) +\w+=", l), f"not a key=value line: {l!r}"
    assert re.search(r"user=\"?carol@example\.com\"?.*result=fail", log), "failed login not logged"


def test_log_level_error_is_quiet(sarn_factory):
    srv = sarn_factory(overrides={"server": {"log_level": "error"}})
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.pop3_login(ALICE, "secret")
        c.cmd_ok("QUIT")
    srv.stop_ok()
    lines = [l for l in srv.log_path.read_text().splitlines() if l and not l.startswith("====")]
    assert not [l for l in lines if re.search(r" (info|debug|warn) ", l)], lines


def test_sigterm_idle(server):
    t = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t < 5


# ---------------------------------------------------------------------------------------
# SIGHUP: settings reload without a restart
# ---------------------------------------------------------------------------------------

def _ehlo_size(srv):
    with srv.raw("smtp") as c:
        c.reply()
        code, lines = c.smtp("EHLO client.test")
        assert code == 250
        return [l for l in lines if l.upper().startswith("SIZE")][0]


def test_sighup_reloads_limits_and_keeps_serving(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_message_size": "1M"}})
    assert _ehlo_size(srv) == f"SIZE {1024 * 1024}"
    with srv.raw("pop3") as idle:  # a session open across the reload keeps working
        idle.expect_ok()
        srv.overrides["limits"]["max_message_size"] = "2M"
        srv.overrides["limits"]["max_recipients"] = "1"
        srv.write_config()
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "event=reload result=ok" not in srv.log_text():
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.05)
        assert _ehlo_size(srv) == f"SIZE {2 * 1024 * 1024}"
        with srv.raw("smtp") as c:
            c.reply()
            c.smtp("EHLO client.test", 250)
            c.smtp("MAIL FROM:<>", 250)
            c.smtp("RCPT TO:<alice@example.com>", 250)
            code, t = c.smtp("RCPT TO:<bob@example.com>")
            assert code == 452, t
        idle.pop3_login("alice@example.com", "secret")
    assert srv.running()


def test_sighup_with_broken_config_keeps_old_settings(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_message_size": "1M"}})
    srv.config_path.write_text("[limits]\nmax_message_size = lots\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "event=reload result=failed" not in srv.log_text():
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.05)
    assert _ehlo_size(srv) == f"SIZE {1024 * 1024}"
    srv.write_config()  # leave a valid file for the teardown
