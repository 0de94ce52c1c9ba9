"""POP3 (RFC 1939, 2449, 2595, 5034) against a real `sarn serve`."""
import re
import socket
import sqlite3
import struct
import time

import pytest

from sarntest import (ProtocolError, b64, make_message, pop3_unstuff, sasl_plain,
                      strip_trace, tls_client_context, wait_for)

ALICE = "alice@example.com"
BOB = "bob@example.com"


def put(server, user, count=1, prefix="msg", body=None):
    """Delivers count messages with `sarn deliver`; returns the list of bytes sent."""
    sent = []
    for i in range(count):
        m = make_message(subject=f"{prefix} {i}",
                         body=body if body is not None else f"Body of {prefix} {i}.\r\n" * (i + 1))
        server.deliver(user, m)
        sent.append(m)
    return sent


def login(server, user=ALICE, **kw):
    c = server.raw("pop3", **kw)
    c.expect_ok()
    c.pop3_login(user, server.users[user])
    return c


def capa(c):
    c.cmd_ok("CAPA")
    return c.multiline_lines()


def capa_names(lines):
    return {l.split()[0].upper() for l in lines}


def stat(c):
    m = re.match(r"\+OK (\d+) (\d+)", c.cmd_ok("STAT"))
    assert m, "STAT reply must be '+OK nn mm'"
    return int(m.group(1)), int(m.group(2))


def count(server, user=ALICE):
    """Messages in the maildrop, by STAT (which does not mark anything as downloaded)."""
    with login(server, user) as c:
        n = stat(c)[0]
        c.cmd_ok("QUIT")
        return n


def downloaded_times(server, user=ALICE):
    db = sqlite3.connect(f"file:{server.index_db(user)}?mode=ro", uri=True, timeout=30)
    try:
        return dict(db.execute("SELECT uid, downloaded FROM message ORDER BY uid").fetchall())
    finally:
        db.close()


# ---------------------------------------------------------------------------------------
# Greeting, CAPA
# ---------------------------------------------------------------------------------------

def test_greeting(server):
    with server.raw("pop3") as c:
        assert c.readstr().startswith("+OK")


def test_capa_before_login(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        lines = capa(c)
    names = capa_names(lines)
    for cap in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING", "STLS", "EXPIRE",
                "LOGIN-DELAY", "IMPLEMENTATION"):
        assert cap in names, f"CAPA lacks {cap}: {lines}"
    sasl = next(l for l in lines if l.upper().startswith("SASL"))
    assert {"PLAIN", "LOGIN"} <= set(sasl.upper().split()[1:])
    expire = next(l for l in lines if l.upper().startswith("EXPIRE"))
    assert re.fullmatch(r"EXPIRE (NEVER|\d+)( USER)?", expire, re.I), expire
    assert any(re.fullmatch(r"LOGIN-DELAY 0( USER)?", l, re.I) for l in lines)
    impl = next(l for l in lines if l.upper().startswith("IMPLEMENTATION"))
    assert "sarn" in impl.lower()


def test_capa_after_login(server):
    with login(server) as c:
        lines = capa(c)
    names = capa_names(lines)
    for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "EXPIRE"):
        assert cap in names, f"CAPA lacks {cap} after login: {lines}"
    assert "STLS" not in names, "STLS is only valid in AUTHORIZATION state"
    # after login the value is the user's own, without the USER suffix
    assert "EXPIRE NEVER" in [l.upper() for l in lines], lines


def test_capa_expire_shows_user_retention(server):
    assert server.cli("user", "retention", ALICE, "5").returncode == 0
    with login(server) as c:
        lines = [l.upper() for l in capa(c)]
    assert "EXPIRE 5" in lines, lines
    with login(server, BOB) as c:
        assert "EXPIRE NEVER" in [l.upper() for l in capa(c)]


def test_capa_on_pop3s_has_no_stls(server):
    with server.raw("pop3s", tls=True) as c:
        c.expect_ok()
        names = capa_names(capa(c))
    assert "STLS" not in names
    assert "USER" in names and "SASL" in names


def test_poplib_capa(server):
    p = server.pop3(login=False)
    caps = p.capa()
    assert "UIDL" in caps and "TOP" in caps and "STLS" in caps
    p.quit()


# ---------------------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------------------

def test_user_pass_login_empty_maildrop(server):
    p = server.pop3()
    assert p.stat() == (0, 0)
    resp, lst, _ = p.list()
    assert resp.startswith(b"+OK") and lst == []
    assert p.uidl()[1] == []
    assert p.quit().startswith(b"+OK")


def test_wrong_password(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        r = c.cmd_err("PASS wrong")
        assert r.startswith("-ERR [AUTH]"), r
        # back in AUTHORIZATION state: a correct login now works
        c.cmd_ok(f"USER {ALICE}")
        c.cmd_ok("PASS secret")
        assert stat(c) == (0, 0)


def test_unknown_user_gets_same_auth_error(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd("USER nobody@example.com")
        if r.startswith("+OK"):
            r = c.cmd("PASS secret")
        assert r.startswith("-ERR [AUTH]"), r


def test_password_of_other_user_fails(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        assert c.cmd_err(f"PASS {server.users[BOB]}").startswith("-ERR [AUTH]")


def test_pass_without_user(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err("PASS secret")
        # and the session is still in AUTHORIZATION state
        c.cmd_err("STAT")
        c.pop3_login(ALICE, "secret")
        assert stat(c) == (0, 0)


def test_user_without_argument(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err("USER")
        c.cmd_err("PASS secret")


def test_login_address_case_insensitive(server):
    put(server, ALICE, 1)
    with server.raw("pop3") as c:
        c.expect_ok()
        c.pop3_login("Alice@EXAMPLE.com", "secret")
        assert stat(c)[0] == 1


@pytest.mark.parametrize("password", ["correct horse battery", " leading space",
                                      "p\u00e4ssw\u00f6rd\u20ac", "semi;colon\"quote'"])
def test_passwords_with_spaces_and_utf8(sarn_factory, password):
    srv = sarn_factory(users={ALICE: password})
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        c.cmd_ok(f"PASS {password}")
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, password)}")
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        assert c.cmd_err(f"PASS {password.strip()}x").startswith("-ERR [AUTH]")


def test_password_is_case_sensitive(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        assert c.cmd_err("PASS SECRET").startswith("-ERR [AUTH]")


def test_commands_before_login_are_rejected(server):
    put(server, ALICE, 1)
    with server.raw("pop3") as c:
        c.expect_ok()
        for cmd in ("STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "UIDL", "UIDL 1", "TOP 1 0",
                    "RSET", "NOOP"):
            c.cmd_err(cmd)
        c.pop3_login(ALICE, "secret")
        assert stat(c)[0] == 1, "nothing was deleted by the rejected DELE"


def test_commands_after_login_are_rejected(server):
    with login(server) as c:
        c.cmd_err(f"USER {ALICE}")
        c.cmd_err("PASS secret")
        c.cmd_err(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")
        c.cmd_err("STLS")
        c.cmd_ok("NOOP")


def test_unknown_command(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err("FOOBAR")
        c.cmd_err("XYZZY 1 2 3")
        c.pop3_login(ALICE, "secret")
        c.cmd_err("FOOBAR")
        c.cmd_err("APOP alice 0123456789abcdef0123456789abcdef")  # not offered
        assert stat(c) == (0, 0)


def test_commands_are_case_insensitive(server):
    put(server, ALICE, 1)
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"user {ALICE}")
        c.cmd_ok("pass secret")
        assert c.cmd_ok("stat").startswith("+OK 1 ")
        c.cmd_ok("Noop")


def test_overlong_line_rejected_and_session_continues(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_line_length": 1024}})
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.send(b"USER " + b"a" * 5000 + b"\r\n")
        assert c.readstr().startswith("-ERR")
        # the rest of the long line must not be taken as a command
        c.cmd_ok("CAPA")
        c.multiline()
        c.pop3_login(ALICE, "secret")
        c.send(b"LIST " + b"1" * 5000 + b"\r\n")
        assert c.readstr().startswith("-ERR")
        c.cmd_ok("NOOP")


def test_overlong_line_default_limit(server):
    with login(server) as c:
        c.send(b"NOOP " + b"x" * 20000 + b"\r\n")
        assert c.readstr().startswith("-ERR")
        c.cmd_ok("NOOP")


def test_too_many_bad_commands_closes_connection(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_bad_commands": 3}})
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err("BOGUS")
        c.cmd_err("BOGUS")
        closed = False
        for _ in range(3):
            try:
                c.sendline("BOGUS")
                line = c.readstr()
                assert line.startswith("-ERR")
            except (EOFError, ConnectionError):
                closed = True
                break
        assert closed or c.closed_by_server(3), "connection stays open after too many bad commands"


def test_quit_in_authorization_state(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok("QUIT")
        assert c.closed_by_server(5)


# ---------------------------------------------------------------------------------------
# SASL (RFC 5034)
# ---------------------------------------------------------------------------------------

def test_auth_without_argument_lists_mechanisms(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok("AUTH")
        mechs = {l.upper() for l in c.multiline_lines()}
        assert {"PLAIN", "LOGIN"} <= mechs


def test_auth_plain_initial_response(server):
    put(server, ALICE, 2)
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")
        assert stat(c)[0] == 2


def test_auth_plain_with_authzid_equal_to_user(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, 'secret', authz=ALICE)}")


def test_auth_plain_with_authzid_of_other_user_refused(server):
    put(server, BOB, 1)
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err(f"AUTH PLAIN {sasl_plain(ALICE, 'secret', authz=BOB)}")
        c.cmd_err("STAT")


def test_auth_plain_continuation(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd("AUTH PLAIN")
        assert r.startswith("+"), r
        assert not r.startswith("+OK")
        c.cmd_ok(sasl_plain(ALICE, "secret"))
        assert stat(c) == (0, 0)


def test_auth_login_continuation(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("+ ") or r == "+"
        r = c.cmd(b64(ALICE))
        assert r.startswith("+ ") or r == "+", r
        c.cmd_ok(b64("secret"))
        assert stat(c) == (0, 0)


def test_auth_login_initial_response(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd(f"AUTH LOGIN {b64(ALICE)}")
        assert r.startswith("+") and not r.startswith("+OK"), r
        c.cmd_ok(b64("secret"))
        assert stat(c) == (0, 0)


def test_auth_plain_empty_initial_response(server):
    """RFC 5034 4: "=" is a zero-length initial response, not a request for a challenge."""
    with server.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd("AUTH PLAIN =")
        assert r.startswith("-ERR"), r
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")


def test_auth_mechanism_case_insensitive(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"auth plain {sasl_plain(ALICE, 'secret')}")


def test_auth_wrong_password(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        assert c.cmd_err(f"AUTH PLAIN {sasl_plain(ALICE, 'nope')}").startswith("-ERR [AUTH]")
        assert c.cmd("AUTH LOGIN").startswith("+ ")
        c.cmd(b64(ALICE))
        assert c.cmd_err(b64("nope")).startswith("-ERR [AUTH]")
        c.cmd_err("STAT")


def test_auth_cancel(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd("AUTH PLAIN")
        c.cmd_err("*")
        c.cmd("AUTH LOGIN")
        c.cmd_err("*")
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")


def test_auth_bad_base64_and_unknown_mechanism(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_err("AUTH PLAIN ###not-base64###")
        c.cmd_err("AUTH CRAM-MD5")
        c.cmd_err("AUTH GSSAPI")
        c.cmd_err(f"AUTH PLAIN {b64('no-nul-separators')}")
        c.cmd_ok(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")


# ---------------------------------------------------------------------------------------
# STAT, LIST, UIDL, RETR, TOP
# ---------------------------------------------------------------------------------------

def test_stat_and_list_sizes_match_retr(server):
    sent = put(server, ALICE, 4)
    p = server.pop3()
    count, total = p.stat()
    assert count == 4
    resp, listing, _ = p.list()
    sizes = {int(n): int(s) for n, s in (l.split() for l in listing)}
    assert sorted(sizes) == [1, 2, 3, 4]
    assert total == sum(sizes.values())
    for n in range(1, 5):
        resp, lines, octets = p.retr(n)
        data = b"\r\n".join(lines) + b"\r\n"
        assert sizes[n] == len(data), f"LIST size of {n} differs from the octets RETR sends"
        assert strip_trace(data) == sent[n - 1]
        r = p.list(n)
        assert r == f"+OK {n} {sizes[n]}".encode(), r
    p.quit()


def test_list_and_uidl_single_argument_errors(server):
    put(server, ALICE, 2)
    with login(server) as c:
        for bad in ("0", "3", "99", "-1", "abc", "1a", "4294967297"):
            c.cmd_err(f"LIST {bad}")
            c.cmd_err(f"UIDL {bad}")
        assert re.fullmatch(r"\+OK 2 \d+", c.cmd_ok("LIST 2"))
        assert re.fullmatch(r"\+OK 2 [0-9a-fA-F]+", c.cmd_ok("UIDL 2"))


def test_uidl(server):
    put(server, ALICE, 3)
    with login(server) as c:
        uidls = c.pop3_uidl_all()
        assert [n for n, _ in uidls] == [1, 2, 3]
        ids = [u for _, u in uidls]
        assert len(set(ids)) == 3, "UIDLs must be unique"
        for u in ids:
            assert re.fullmatch(r"[0-9a-fA-F]{1,70}", u), f"UIDL {u!r} is not plain hex"
        for n, u in uidls:
            assert c.cmd_ok(f"UIDL {n}") == f"+OK {n} {u}"


def test_uidl_stable_across_sessions_and_restart(server):
    put(server, ALICE, 3)
    with login(server) as c:
        first = c.pop3_uidl_all()
        c.cmd_ok("QUIT")
    with login(server) as c:
        assert c.pop3_uidl_all() == first
        c.cmd_ok("QUIT")
    server.restart()
    with login(server) as c:
        assert c.pop3_uidl_all() == first


def test_uidl_never_reused_after_deletion(server):
    put(server, ALICE, 2)
    seen = set()
    with login(server) as c:
        for _, u in c.pop3_uidl_all():
            seen.add(u)
        c.cmd_ok("DELE 2")  # the highest one
        c.cmd_ok("QUIT")
    put(server, ALICE, 1, prefix="new1")
    with login(server) as c:
        uidls = dict(c.pop3_uidl_all())
        assert len(uidls) == 2
        assert uidls[2] not in seen, "a deleted message's UIDL was given to a new message"
        seen |= set(uidls.values())
        c.cmd_ok("DELE 2")
        c.cmd_ok("QUIT")
    # after a restart the next UID must still not reuse the deleted one
    server.restart()
    put(server, ALICE, 1, prefix="new2")
    with login(server) as c:
        uidls = dict(c.pop3_uidl_all())
        assert uidls[2] not in seen, "UIDL reused after restart"


def test_uidl_not_reused_when_account_recreated(server):
    put(server, ALICE, 1)
    with login(server) as c:
        old = set(u for _, u in c.pop3_uidl_all())
        c.cmd_ok("QUIT")
    assert server.cli("user", "del", ALICE).returncode == 0
    assert server.cli("user", "add", ALICE, input="secret\n").returncode == 0
    put(server, ALICE, 1, prefix="after-recreate")
    with login(server) as c:
        new = set(u for _, u in c.pop3_uidl_all())
    assert len(new) == 1
    assert not (new & old), "a re-created account reuses the UIDLs of the old one"


def test_retr_content_byte_identical_binary(server):
    body = (b"plain line\r\n"
            b"8-bit: \xc3\xa4\xc3\xb6\xc3\xbc \xe2\x82\xac \xff\xfe\x80\r\n"
            b"NUL bytes: a\x00b\x00\x00c\r\n"
            b"trailing spaces   \r\n"
            b"\ttab-led line\r\n"
            b"\r\n\r\n"
            b"long: " + b"x" * 3000 + b"\r\n"
            b"last line\r\n")
    m = make_message("binary", body)
    server.deliver(ALICE, m)
    with login(server) as c:
        got = c.pop3_retr(1)
        size = int(c.cmd_ok("LIST 1").split()[2])
    assert strip_trace(got) == m
    assert size == len(got)


def test_retr_lf_only_message_is_sent_with_crlf(server):
    m = b"From: a@b.test\nTo: alice@example.com\nSubject: lf\n\nline one\nline two\n.dot\n"
    server.deliver(ALICE, m)
    with login(server) as c:
        c.cmd_ok("RETR 1")
        raw = c.multiline()
        size = int(c.cmd_ok("LIST 1").split()[2])
    got = pop3_unstuff(raw)
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in RETR output"
    assert strip_trace(got) == m.replace(b"\n", b"\r\n")
    assert size == len(got)


def test_retr_bare_cr_is_not_sent(server):
    """RFC 1939/5322: lines end in CRLF; a bare CR from the input must not reach the client."""
    server.deliver(ALICE, b"From: a@b.test\r\nSubject: cr\r\n\r\nline3\rstill3\r\nmixed\nend\r\n")
    with login(server) as c:
        size = int(c.cmd_ok("LIST 1").split()[2])
        c.cmd_ok("RETR 1")
        raw = c.multiline()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None, f"bare CR/LF in RETR: {raw!r}"
    assert size == len(pop3_unstuff(raw))


def test_retr_message_without_final_newline(server):
    m = b"From: a@b.test\r\nSubject: no eol\r\n\r\nno newline at the end"
    server.deliver(ALICE, m)
    with login(server) as c:
        c.cmd_ok("RETR 1")
        raw = c.multiline()  # must be terminated by CRLF . CRLF
        size = int(c.cmd_ok("LIST 1").split()[2])
    got = pop3_unstuff(raw)
    assert strip_trace(got) == m + b"\r\n"
    assert size == len(got), "LIST size must count the CRLF RETR adds"


def test_dot_stuffing(server):
    body = (b"first\r\n"
            b".leading dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"after lone dot\r\n"
            b". space\r\n"
            b".\r\n")
    m = make_message("dots", body)
    server.deliver(ALICE, m)
    with login(server) as c:
        c.cmd_ok("RETR 1")
        raw = c.multiline()
        assert b"\r\n..leading dot\r\n" in raw
        assert b"\r\n...two dots\r\n" in raw
        assert b"\r\n..\r\nafter lone dot\r\n" in raw
        assert raw.endswith(b"\r\n.. space\r\n..\r\n")
        size = int(c.cmd_ok("LIST 1").split()[2])
        assert strip_trace(pop3_unstuff(raw)) == m
        assert size == len(pop3_unstuff(raw)), "LIST size is before dot-stuffing"
        # TOP stuffs too
        c.cmd_ok("TOP 1 4")
        top = c.multiline()
        assert top.endswith(b"\r\n..leading dot\r\n...two dots\r\n..\r\n")
    # poplib undoes the stuffing: the message is identical
    p = server.pop3()
    _, lines, _ = p.retr(1)
    assert strip_trace(b"\r\n".join(lines) + b"\r\n") == m
    p.quit()


def test_top(server):
    hdr = b"From: a@b.test\r\nSubject: top\r\nX-Long: folded\r\n continuation\r\n"
    body = b"".join(b"body line %d\r\n" % i for i in range(1, 11))
    m = hdr + b"\r\n" + body
    server.deliver(ALICE, m)
    with login(server) as c:
        c.cmd_ok("TOP 1 0")
        t0 = pop3_unstuff(c.multiline())
        assert strip_trace(t0) == hdr + b"\r\n"
        c.cmd_ok("TOP 1 3")
        t3 = pop3_unstuff(c.multiline())
        assert strip_trace(t3) == hdr + b"\r\nbody line 1\r\nbody line 2\r\nbody line 3\r\n"
        c.cmd_ok("TOP 1 1000")
        tall = pop3_unstuff(c.multiline())
        assert strip_trace(tall) == m
        for bad in ("TOP", "TOP 1", "TOP 2 0", "TOP 0 0", "TOP 1 -1", "TOP x 1", "TOP 1 x"):
            c.cmd_err(bad)
        c.cmd_ok("DELE 1")
        c.cmd_err("TOP 1 0")


def test_top_message_without_body_separator(server):
    m = b"From: a@b.test\r\nSubject: header only\r\n"
    server.deliver(ALICE, m)
    with login(server) as c:
        c.cmd_ok("TOP 1 0")
        t = pop3_unstuff(c.multiline())
        assert strip_trace(t).startswith(m)
        c.cmd_ok("RETR 1")
        assert strip_trace(pop3_unstuff(c.multiline())) == m


def test_noop_and_rset(server):
    put(server, ALICE, 3)
    with login(server) as c:
        c.cmd_ok("NOOP")
        c.cmd_ok("DELE 1")
        c.cmd_ok("DELE 3")
        assert stat(c)[0] == 1
        c.cmd_ok("RSET")
        assert stat(c)[0] == 3
        assert [n for n, _ in c.pop3_list_all()] == [1, 2, 3]
        c.cmd_ok("RETR 1")
        c.multiline()


def test_dele_semantics(server):
    put(server, ALICE, 3)
    with login(server) as c:
        before = dict(c.pop3_uidl_all())
        sizes = dict(c.pop3_list_all())
        c.cmd_ok("DELE 2")
        assert stat(c) == (2, sizes[1] + sizes[3])
        assert [n for n, _ in c.pop3_list_all()] == [1, 3], "numbers don't shift after DELE"
        assert [n for n, _ in c.pop3_uidl_all()] == [1, 3]
        c.cmd_err("LIST 2")
        c.cmd_err("UIDL 2")
        c.cmd_err("RETR 2")
        c.cmd_err("TOP 2 0")
        c.cmd_err("DELE 2")
        c.cmd_ok("QUIT")
        assert c.closed_by_server(5)
    with login(server) as c:
        after = c.pop3_uidl_all()
    assert [u for _, u in after] == [before[1], before[3]]


BAD_NUMBERS = ["0", "4", "-1", "+1", "abc", "1a", "1.5", "0x1", "99999999999999999999",
               "4294967297", "1 2"]


@pytest.mark.parametrize("cmd", ["RETR", "DELE", "LIST", "UIDL", "TOP"])
def test_bad_message_number(server, cmd):
    put(server, ALICE, 3)
    with login(server) as c:
        for arg in BAD_NUMBERS:
            if cmd == "TOP":
                arg += " 0"
            r = c.cmd(f"{cmd} {arg}")
            assert r.startswith("-ERR"), f"{cmd} {arg}: {r}"
        assert stat(c)[0] == 3
        c.cmd_ok("QUIT")
    with login(server) as c:
        assert stat(c)[0] == 3


def test_retr_dele_without_argument(server):
    put(server, ALICE, 1)
    with login(server) as c:
        c.cmd_err("RETR")
        c.cmd_err("DELE")
        assert stat(c)[0] == 1


def test_quit_deletes_and_survives_restart(server):
    sent = put(server, ALICE, 3)
    p = server.pop3()
    p.dele(1)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    server.restart()
    msgs = server.messages(ALICE)
    assert [strip_trace(m) for m in msgs] == [sent[1]]


def test_dropped_connection_deletes_nothing(server):
    put(server, ALICE, 3)
    c = login(server)
    c.cmd_ok("DELE 1")
    c.cmd_ok("DELE 2")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST, no QUIT
    # the lock is released once the server notices; then everything is still there
    def try_login():
        with server.raw("pop3") as c2:
            c2.expect_ok()
            c2.cmd_ok(f"USER {ALICE}")
            r = c2.cmd("PASS secret")
            if not r.startswith("+OK"):
                return None
            return stat(c2)[0]
    assert wait_for(try_login, 10) == 3


def test_dropped_connection_without_rst_deletes_nothing(server):
    put(server, ALICE, 2)
    c = login(server)
    c.cmd_ok("DELE 1")
    c.sock.shutdown(socket.SHUT_WR)  # EOF instead of QUIT
    assert c.closed_by_server(5)
    c.close()
    def count():
        try:
            with login(server) as c2:
                return stat(c2)[0]
        except ProtocolError:
            return None
    assert wait_for(count, 10) == 2


@pytest.mark.timeout(120)
def test_disconnect_mid_retr_of_big_message_loses_nothing(server):
    chunk = b"".join(b"%08d the quick brown fox jumps over the lazy dog .....\r\n" % i
                     for i in range(100000))  # ~6 MB
    m = make_message("big", chunk)
    server.deliver(ALICE, m)
    put(server, ALICE, 1, prefix="small")
    for _ in range(2):
        c = login(server)
        c.sendline("RETR 1")
        got = b""
        while len(got) < 200000:
            got += c.sock.recv(65536)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    def full():
        try:
            msgs = server.messages(ALICE)
        except ProtocolError:
            return None
        return msgs
    msgs = wait_for(full, 15)
    assert msgs is not None, "could not log in again after the dropped RETR"
    assert len(msgs) == 2
    assert strip_trace(msgs[0]) == m
    with login(server) as c:
        assert int(c.cmd_ok("LIST 1").split()[2]) == len(msgs[0])


@pytest.mark.timeout(120)
def test_big_message_retr_via_poplib(server):
    body = b"".join(b"line %d " % i + b"y" * 70 + b"\r\n" for i in range(60000))  # ~5 MB
    m = make_message("big", body)
    server.deliver(ALICE, m)
    p = server.pop3()
    n, total = p.stat()
    resp, lines, octets = p.retr(1)
    data = b"\r\n".join(lines) + b"\r\n"
    assert total == len(data)
    assert strip_trace(data) == m
    p.quit()


def test_new_mail_during_session_is_not_visible(server):
    put(server, ALICE, 1)
    with login(server) as c:
        uid1 = c.pop3_uidl_all()
        c.cmd_ok("DELE 1")
        put(server, ALICE, 1, prefix="arrived-during-session")
        assert stat(c)[0] == 0, "the maildrop is fixed for the session"
        assert c.pop3_uidl_all() == []
        c.cmd_ok("QUIT")
    with login(server) as c:
        uids = c.pop3_uidl_all()
        assert len(uids) == 1, "the new message must survive the QUIT of the older session"
        assert uids[0][1] != uid1[0][1]
        assert b"arrived-during-session" in c.pop3_retr(1)


def test_two_users_are_isolated(server):
    a = put(server, ALICE, 2, prefix="for-alice")
    b = put(server, BOB, 1, prefix="for-bob")
    assert [strip_trace(m) for m in server.messages(ALICE)] == a
    assert [strip_trace(m) for m in server.messages(BOB)] == b
    with login(server, BOB) as c:
        c.cmd_err("RETR 2")
        c.cmd_ok("DELE 1")
        c.cmd_ok("QUIT")
    assert len(server.messages(ALICE)) == 2


def test_pipelining(server):
    sent = put(server, ALICE, 2)
    with server.raw("pop3") as c:
        c.expect_ok()
        c.send(f"USER {ALICE}\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\n"
               f"BOGUS\r\nTOP 2 0\r\nNOOP\r\nQUIT\r\n".encode())
        c.expect_ok()
        c.expect_ok()
        assert c.expect_ok().startswith("+OK 2 ")
        c.expect_ok()
        assert len(pop3_unstuff(c.multiline()).split(b"\r\n")) == 3
        assert c.expect_ok().startswith("+OK 2 ")
        c.expect_ok()
        assert strip_trace(pop3_unstuff(c.multiline())) == sent[0]
        assert c.readstr().startswith("-ERR")
        c.expect_ok()
        assert b"Subject: msg 1" in c.multiline()
        c.expect_ok()
        c.expect_ok()
        assert c.closed_by_server(5)


# ---------------------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------------------

def test_pop3s(server):
    sent = put(server, ALICE, 1)
    p = server.pop3(mode="ssl")
    assert p.stat()[0] == 1
    _, lines, _ = p.retr(1)
    assert strip_trace(b"\r\n".join(lines) + b"\r\n") == sent[0]
    p.quit()


def test_stls(server):
    sent = put(server, ALICE, 1)
    p = server.pop3(mode="stls")
    assert isinstance(p.sock, __import__("ssl").SSLSocket)
    _, lines, _ = p.retr(1)
    assert strip_trace(b"\r\n".join(lines) + b"\r\n") == sent[0]
    p.quit()


def test_pop3s_quit_sends_close_notify(server):
    """OpenSSL 3 clients report 'unexpected eof' when the server closes without close_notify."""
    import ssl as _ssl
    for listener in ("pop3s", "pop3"):
        raw = socket.create_connection(("127.0.0.1", server.ports[listener]), timeout=10)
        if listener == "pop3":
            raw.recv(1000)
            raw.sendall(b"STLS\r\n")
            assert raw.recv(1000).startswith(b"+OK")
        t = tls_client_context().wrap_socket(raw, suppress_ragged_eofs=False)
        buf = b""
        try:
            if listener == "pop3s":
                while not buf.endswith(b"\r\n"):
                    buf += t.recv(1000)
            t.sendall(b"QUIT\r\n")
            buf = b""
            while not buf.endswith(b"\r\n"):
                buf += t.recv(1000)
            assert buf.startswith(b"+OK")
            try:
                assert t.recv(1000) == b""
            except _ssl.SSLEOFError:
                pytest.fail(f"{listener}: connection closed without a TLS close_notify")
        finally:
            t.close()


def test_stls_twice_and_after_login_rejected(server):
    with server.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok("STLS")
        c.starttls()
        c.cmd_err("STLS")
        names = capa_names(capa(c))
        assert "STLS" not in names
        c.pop3_login(ALICE, "secret")
    with login(server) as c:
        c.cmd_err("STLS")
    with server.raw("pop3s", tls=True) as c:
        c.expect_ok()
        c.cmd_err("STLS")


def test_stls_discards_pipelined_plaintext(server):
    """Commands sent in the clear after STLS must not be executed inside TLS (CVE-2011-0411)."""
    with server.raw("pop3") as c:
        c.expect_ok()
        c.send(f"STLS\r\nUSER {ALICE}\r\n".encode())
        assert c.readstr().startswith("+OK")
        c.starttls()
        # if the injected USER had been run, PASS would now succeed
        c.cmd_err("PASS secret")


def test_generated_certificate(sarn_factory):
    srv = sarn_factory(tls="generated")
    cert = srv.data / "tls" / "cert.pem"
    key = srv.data / "tls" / "key.pem"
    assert cert.exists() and key.exists()
    ctx = tls_client_context(cafile=cert, check_hostname=True)
    for name in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", srv.ports["pop3s"]), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                assert t.recv(100).startswith(b"+OK"), f"cert must be valid for {name}"
    before = cert.read_bytes()
    srv.restart()
    assert cert.read_bytes() == before, "the generated certificate must be kept across restarts"
    with socket.create_connection(("127.0.0.1", srv.ports["pop3s"]), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            assert t.recv(100).startswith(b"+OK")


# ---------------------------------------------------------------------------------------
# plaintext_auth
# ---------------------------------------------------------------------------------------

def test_plaintext_never_requires_stls(sarn_factory):
    srv = sarn_factory(overrides={"auth": {"plaintext_auth": "never"}})
    with srv.raw("pop3") as c:
        c.expect_ok()
        r = c.cmd(f"USER {ALICE}")
        if r.startswith("+OK"):
            r = c.cmd("PASS secret")
        assert r.startswith("-ERR [AUTH]"), r
        r = c.cmd(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")
        assert r.startswith("-ERR"), r
        c.cmd_err("STAT")
        c.cmd_ok("STLS")
        c.starttls()
        c.pop3_login(ALICE, "secret")
        assert stat(c) == (0, 0)
    p = srv.pop3(mode="ssl")
    assert p.stat() == (0, 0)
    p.quit()


def _non_loopback_ip():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("192.0.2.1", 9))
        ip = s.getsockname()[0]
        s.close()
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


@pytest.mark.parametrize("mode", ["loopback", "always"])
def test_plaintext_auth_from_non_loopback(sarn_factory, mode):
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback IPv4 address")
    srv = sarn_factory(listen_host="0.0.0.0", overrides={"auth": {"plaintext_auth": mode}})
    with srv.raw("pop3", host=ip) as c:
        c.expect_ok()
        r = c.cmd(f"USER {ALICE}")
        if r.startswith("+OK"):
            r = c.cmd("PASS secret")
        if mode == "loopback":
            assert r.startswith("-ERR [AUTH]"), r
            c.cmd_ok("STLS")
            c.starttls()
            c.pop3_login(ALICE, "secret")
        else:
            assert r.startswith("+OK"), r
        assert stat(c) == (0, 0)
    with srv.raw("pop3") as c:  # loopback is always fine
        c.expect_ok()
        c.pop3_login(ALICE, "secret")


# ---------------------------------------------------------------------------------------
# Throttling
# ---------------------------------------------------------------------------------------

def _try_pass(srv, user, password, source=None):
    with srv.raw("pop3", source=source) as c:
        c.expect_ok()
        r = c.cmd(f"USER {user}")
        if not r.startswith("+OK"):
            return r
        return c.cmd(f"PASS {password}")


def test_throttling_after_repeated_failures(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"auth_max_failures": 3, "auth_fail_delay_ms": 0}})
    assert _try_pass(srv, ALICE, "secret").startswith("+OK")
    for _ in range(3):
        assert _try_pass(srv, ALICE, "wrong").startswith("-ERR [AUTH]")
    r = _try_pass(srv, ALICE, "secret")
    assert r.startswith("-ERR [AUTH]"), f"correct password accepted after too many failures: {r}"
    r = _try_pass(srv, BOB, "bobsecret")
    assert r.startswith("-ERR [AUTH]"), "the client IP must be throttled too"
    # AUTH PLAIN is throttled as well
    with srv.raw("pop3") as c:
        c.expect_ok()
        assert c.cmd(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}").startswith("-ERR")


def test_throttling_per_account_and_per_ip(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"auth_max_failures": 3, "auth_fail_delay_ms": 0}})
    for _ in range(3):
        assert _try_pass(srv, ALICE, "wrong", source="127.0.0.2").startswith("-ERR")
    # account throttled from anywhere
    assert _try_pass(srv, ALICE, "secret", source="127.0.0.3").startswith("-ERR [AUTH]")
    # IP throttled for any account
    assert _try_pass(srv, BOB, "bobsecret", source="127.0.0.2").startswith("-ERR [AUTH]")
    # another account from another IP is not affected
    assert _try_pass(srv, BOB, "bobsecret", source="127.0.0.4").startswith("+OK")


def test_throttling_counts_unknown_users_per_ip(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"auth_max_failures": 3, "auth_fail_delay_ms": 0}})
    for i in range(3):
        _try_pass(srv, f"nobody{i}@example.com", "x", source="127.0.0.5")
    assert _try_pass(srv, ALICE, "secret", source="127.0.0.5").startswith("-ERR [AUTH]")
    assert _try_pass(srv, ALICE, "secret", source="127.0.0.6").startswith("+OK")


def test_failed_login_is_delayed(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"auth_fail_delay_ms": 600}})
    with srv.raw("pop3") as c:
        c.expect_ok()
        c.cmd_ok(f"USER {ALICE}")
        t = time.monotonic()
        assert c.cmd("PASS wrong").startswith("-ERR")
        assert time.monotonic() - t >= 0.5, "failed login answered without delay"


def test_failed_login_delay_does_not_block_other_sessions(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"auth_fail_delay_ms": 3000}})
    with srv.raw("pop3") as slow:
        slow.expect_ok()
        slow.cmd_ok(f"USER {ALICE}")
        slow.sendline("PASS wrong")
        time.sleep(0.2)
        t = time.monotonic()
        with srv.raw("pop3") as c:
            c.expect_ok()
            c.pop3_login(BOB, "bobsecret")
            assert stat(c) == (0, 0)
        assert time.monotonic() - t < 2.5, "a delayed failure blocks the whole server"
        assert slow.readstr().startswith("-ERR")


# ---------------------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------------------

def test_second_session_in_use(server):
    put(server, ALICE, 1)
    c1 = login(server)
    with server.raw("pop3") as c2:
        c2.expect_ok()
        c2.cmd_ok(f"USER {ALICE}")
        r = c2.cmd("PASS secret")
        assert r.startswith("-ERR [IN-USE]"), r
        c2.cmd_err("STAT")
    # other users are unaffected
    with login(server, BOB) as c3:
        assert stat(c3) == (0, 0)
    c1.cmd_ok("QUIT")
    c1.close()
    with login(server) as c2:
        assert stat(c2)[0] == 1


def test_in_use_with_auth_plain(server):
    c1 = login(server)
    with server.raw("pop3") as c2:
        c2.expect_ok()
        assert c2.cmd(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}").startswith("-ERR [IN-USE]")
    c1.close()


def test_lock_released_when_client_vanishes(server):
    c1 = login(server)
    c1.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c1.close()
    def ok():
        return _try_pass(server, ALICE, "secret").startswith("+OK")
    assert wait_for(ok, 10), "maildrop stays locked after the client disconnected"


def test_lock_disabled(sarn_factory):
    srv = sarn_factory(overrides={"pop3": {"lock": "no"}})
    put(srv, ALICE, 1)
    c1 = login(srv)
    c2 = login(srv)
    assert stat(c1)[0] == 1 and stat(c2)[0] == 1
    c1.close()
    c2.close()


# ---------------------------------------------------------------------------------------
# Retention (EXPIRE)
# ---------------------------------------------------------------------------------------

def _backdate(server, user, days):
    db = sqlite3.connect(str(server.index_db(user)), timeout=30)
    try:
        n = db.execute("UPDATE message SET downloaded = downloaded - ? WHERE downloaded > 0",
                       (days * 86400,)).rowcount
        db.commit()
    finally:
        db.close()
    return n


def test_retr_marks_downloaded_top_0_does_not(server):
    put(server, ALICE, 3)
    with login(server) as c:
        c.cmd_ok("TOP 1 0")
        c.multiline()
        c.pop3_retr(2)
        c.cmd_ok("TOP 3 1000")  # whole message
        c.multiline()
        c.cmd_ok("QUIT")
    d = downloaded_times(server)
    uids = sorted(d)
    now = time.time()
    assert not d[uids[0]], "TOP n 0 is not a download"
    assert abs(d[uids[1]] - now) < 120, "RETR must record the download time"
    assert d[uids[2]] and abs(d[uids[2]] - now) < 120, "TOP of the whole message is a download"


def test_download_time_kept_on_second_retr(server):
    put(server, ALICE, 1)
    with login(server) as c:
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    _backdate(server, ALICE, 1)
    first = downloaded_times(server)
    with login(server) as c:
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    assert downloaded_times(server) == first


def test_retention_deletes_old_downloads_at_login(server):
    assert server.cli("user", "retention", ALICE, "2").returncode == 0
    sent = put(server, ALICE, 4)
    with login(server) as c:
        c.pop3_retr(1)
        c.pop3_retr(2)
        c.cmd_ok("QUIT")
    assert count(server) == 4, "nothing is old enough yet"
    assert _backdate(server, ALICE, 3) == 2
    with login(server) as c:
        assert stat(c)[0] == 2, "the two old downloads are deleted at login"
        assert strip_trace(c.pop3_retr(1)) == sent[2]  # downloaded now: must stay
        c.cmd_ok("QUIT")
    msgs = server.messages(ALICE)
    assert [strip_trace(m) for m in msgs] == sent[2:], "old downloads must be deleted at login"


def test_retention_not_past_limit_keeps(server):
    assert server.cli("user", "retention", ALICE, "5").returncode == 0
    put(server, ALICE, 1)
    with login(server) as c:
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    _backdate(server, ALICE, 4)
    assert count(server) == 1


def test_retention_zero_keeps_forever(server):
    put(server, ALICE, 1)
    with login(server) as c:
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    _backdate(server, ALICE, 10000)
    assert count(server) == 1


def test_retention_default_from_config(sarn_factory):
    srv = sarn_factory(overrides={"pop3": {"retention_days": 1}})
    put(srv, ALICE, 2)
    put(srv, BOB, 1)
    assert srv.cli("user", "retention", BOB, "0").returncode == 0  # account overrides default
    with login(srv) as c:
        assert "EXPIRE 1" in [l.upper() for l in capa(c)]
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    with login(srv, BOB) as c:
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    _backdate(srv, ALICE, 2)
    _backdate(srv, BOB, 2)
    assert count(srv, ALICE) == 1
    assert count(srv, BOB) == 1


def test_domain_retention(server):
    assert server.cli("domain", "retention", "example.com", "1").returncode == 0
    put(server, BOB, 1)
    with login(server, BOB) as c:
        assert "EXPIRE 1" in [l.upper() for l in capa(c)]
        c.pop3_retr(1)
        c.cmd_ok("QUIT")
    _backdate(server, BOB, 2)
    assert count(server, BOB) == 0


# ---------------------------------------------------------------------------------------
# Timeouts and shutdown
# ---------------------------------------------------------------------------------------

def test_idle_timeout(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"pop3_idle_timeout": 2}})
    with login(srv) as c:
        t = time.monotonic()
        assert c.closed_by_server(8), "idle session not closed"
        assert time.monotonic() - t >= 1.5


def test_idle_timeout_is_not_commit(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"pop3_idle_timeout": 2}})
    put(srv, ALICE, 1)
    with login(srv) as c:
        c.cmd_ok("DELE 1")
        assert c.closed_by_server(8)
    assert len(srv.messages(ALICE)) == 1, "an auto-logout must not enter UPDATE state"


def test_sigterm_with_open_sessions(server):
    put(server, ALICE, 1)
    c = login(server)
    c.cmd_ok("DELE 1")
    c2 = server.raw("pop3")
    c2.expect_ok()
    t = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t < 10
    c.close()
    c2.close()
    server.start()
    assert len(server.messages(ALICE)) == 1, "shutdown must not commit a session's DELE"


@pytest.mark.timeout(180)
def test_many_messages(server):
    """A maildrop of 400 messages: numbering, sizes, unique UIDLs, UIDL n and DELE of all."""
    n = 400
    with server.raw("lmtp") as c:
        c.reply()
        c.smtp("LHLO client.test", 250)
        for i in range(n):
            m = make_message(f"many {i}", b"x" * (i % 50) + b"\r\n")
            c.send(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode())
            assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
            c.send(m.replace(b"\r\n.", b"\r\n..") + b".\r\n")
            assert c.reply()[0] == 250
    with login(server) as c:
        count_, total = stat(c)
        assert count_ == n
        sizes = c.pop3_list_all()
        assert [k for k, _ in sizes] == list(range(1, n + 1))
        assert sum(s for _, s in sizes) == total
        uidls = c.pop3_uidl_all()
        assert len({u for _, u in uidls}) == n
        for k in (1, 137, n):
            assert c.cmd_ok(f"UIDL {k}") == f"+OK {k} {uidls[k - 1][1]}"
        got = c.pop3_retr(n)
        assert len(got) == dict(sizes)[n] and b"Subject: many 399" in got
        c.send("".join(f"DELE {k}\r\n" for k in range(1, n + 1)).encode())
        for _ in range(n):
            c.expect_ok()
        assert stat(c) == (0, 0)
        c.cmd_ok("QUIT")
    assert count(server) == 0
