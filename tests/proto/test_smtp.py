"""SMTP (RFC 5321, 3463) on the "smtp" listener of a real `sarn serve`."""
import re
import smtplib
import socket
import ssl
import struct
import subprocess
import time

import pytest

from sarntest import HOSTNAME, enhanced, make_message, smtp_stuff, strip_received

ALICE = "alice@example.com"
BOB = "bob@example.com"


def session(server, helo="client.test"):
    c = server.raw("smtp")
    code, texts = c.reply()
    assert code == 220
    c.smtp(f"EHLO {helo}", 250)
    return c


def send_raw(c, rcpts, data, frm="sender@remote.test"):
    """A full transaction on an open session; returns the final reply."""
    c.smtp(f"MAIL FROM:<{frm}>", 250)
    for r in rcpts:
        c.smtp(f"RCPT TO:<{r}>", 250)
    c.smtp("DATA", 354)
    c.send(smtp_stuff(data) + b".\r\n")
    return c.reply()


def inbox(server, user=ALICE):
    return server.messages(user)


def ehlo_caps(texts):
    return {t.split()[0].upper(): t for t in texts[1:]}


# ---------------------------------------------------------------------------------------

def test_greeting_names_host(server):
    with server.raw("smtp") as c:
        code, texts = c.reply()
        assert code == 220
        assert texts[0].split()[0] == HOSTNAME


def test_ehlo_extensions(server):
    with server.raw("smtp") as c:
        c.reply()
        code, texts = c.smtp("EHLO client.test")
    assert code == 250
    assert texts[0].split()[0] == HOSTNAME
    caps = ehlo_caps(texts)
    for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"):
        assert ext in caps, f"EHLO lacks {ext}: {texts}"
    assert caps["SIZE"].upper() == "SIZE 52428800"
    assert "AUTH" not in caps, "the MX port offers no AUTH"


def test_helo(server):
    with server.raw("smtp") as c:
        c.reply()
        code, texts = c.smtp("HELO client.test")
        assert code == 250 and len(texts) == 1
        assert send_raw(c, [ALICE], make_message())[0] == 250
    assert len(inbox(server)) == 1


def test_ehlo_helo_need_argument(server):
    with server.raw("smtp") as c:
        c.reply()
        assert c.smtp("EHLO")[0] == 501
        assert c.smtp("HELO")[0] == 501
        assert c.smtp("EHLO client.test")[0] == 250


def test_smtplib_delivery_and_received_header(server):
    m = make_message("via smtplib", "Hello Alice.\r\n")
    s = server.smtp()
    s.ehlo("client.test")
    assert s.sendmail("sender@remote.test", [ALICE], m) == {}
    s.quit()
    msgs = inbox(server)
    assert len(msgs) == 1
    got = msgs[0]
    # RFC 5321 §4.4: final delivery records the reverse path first.
    assert got.startswith(b"Return-Path: <sender@remote.test>\r\nReceived: ")
    assert strip_received(got) == m
    got = got[got.index(b"Received: "):]
    # unfold the whole Received field
    end = 0
    while True:
        end = got.index(b"\r\n", end) + 2
        if got[end:end + 1] not in (b" ", b"\t"):
            break
    received = got[:end].decode().replace("\r\n", "")
    assert HOSTNAME in received, received
    assert "client.test" in received, "the Received field names the HELO"
    assert ";" in received, "Received ends with '; date'"


def test_per_recipient_results(server):
    with session(server) as c:
        c.smtp("MAIL FROM:<sender@remote.test>", 250)
        code, t = c.smtp(f"RCPT TO:<{ALICE}>")
        assert code == 250 and enhanced(t).startswith("2.1.")
        code, t = c.smtp("RCPT TO:<nobody@example.com>")
        assert (code, enhanced(t)) == (550, "5.1.1"), t
        code, t = c.smtp("RCPT TO:<someone@elsewhere.test>")
        assert (code, enhanced(t)) == (550, "5.7.1"), t
        code, t = c.smtp(f"RCPT TO:<{BOB}>")
        assert code == 250
        c.smtp("DATA", 354)
        m = make_message("two of four")
        c.send(smtp_stuff(m) + b".\r\n")
        code, t = c.reply()
        assert code == 250 and enhanced(t).startswith("2.")
    assert [strip_received(x) for x in inbox(server, ALICE)] == [m]
    assert [strip_received(x) for x in inbox(server, BOB)] == [m]


def test_smtplib_refused_recipients(server):
    s = server.smtp()
    refused = s.sendmail("sender@remote.test", [ALICE, "ghost@example.com", "x@other.test"],
                         make_message())
    s.quit()
    assert set(refused) == {"ghost@example.com", "x@other.test"}
    assert refused["ghost@example.com"][0] == 550
    assert refused["x@other.test"][0] == 550
    assert len(inbox(server)) == 1


def test_all_recipients_refused(server):
    s = server.smtp()
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        s.sendmail("a@remote.test", ["ghost@example.com"], make_message())
    s.quit()
    assert inbox(server) == []


def test_relaying_denied(server):
    with session(server) as c:
        c.smtp("MAIL FROM:<alice@example.com>", 250)  # even with a local sender
        for rcpt in ("victim@gmail.test", "alice@example.com.evil.test", "alice@sub.example.com",
                     "alice@[127.0.0.1]"):
            code, t = c.smtp(f"RCPT TO:<{rcpt}>")
            assert code == 550, f"{rcpt}: {code} {t}"
        code, t = c.smtp("RCPT TO:<victim@gmail.test>")
        assert enhanced(t) == "5.7.1"
        code, _ = c.smtp("DATA")
        assert code in (503, 554)
    assert inbox(server) == []


def test_address_variants(server):
    assert server.cli("alias", "add", "postmaster@example.com", ALICE).returncode == 0
    m = make_message("variants")
    s = server.smtp()
    for rcpt in ("postmaster@example.com", "alice+news@example.com", "ALICE@EXAMPLE.COM",
                 "Alice@example.com", "alice+@example.com"):
        assert s.sendmail("sender@remote.test", [rcpt], m) == {}, rcpt
    s.quit()
    got = inbox(server)
    assert len(got) == 5
    assert all(strip_received(x) == m for x in got)
    assert inbox(server, BOB) == []


def test_rcpt_postmaster_without_domain(server):
    """RFC 5321 4.5.1: "Postmaster" without a domain MUST be accepted."""
    assert server.cli("alias", "add", "postmaster@example.com", ALICE).returncode == 0
    with session(server) as c:
        c.smtp("MAIL FROM:<>", 250)
        code, t = c.smtp("RCPT TO:<Postmaster>")
        assert code == 250, t
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message("to postmaster")) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(inbox(server)) == 1


def test_plus_tag_of_unknown_user(server):
    with session(server) as c:
        c.smtp("MAIL FROM:<>", 250)
        code, t = c.smtp("RCPT TO:<nobody+tag@example.com>")
        assert (code, enhanced(t)) == (550, "5.1.1")


def test_catch_all(server):
    assert server.cli("alias", "add", "@example.com", BOB).returncode == 0
    s = server.smtp()
    assert s.sendmail("a@remote.test", ["whoever@example.com", ALICE], make_message()) == {}
    s.quit()
    assert len(inbox(server, BOB)) == 1, "catch-all gets unknown local parts"
    assert len(inbox(server, ALICE)) == 1, "existing accounts still get their own mail"


def test_alias_to_other_account(server):
    assert server.cli("alias", "add", "sales@example.com", BOB).returncode == 0
    s = server.smtp()
    s.sendmail("a@remote.test", ["sales@example.com"], make_message())
    s.quit()
    assert len(inbox(server, BOB)) == 1
    assert inbox(server, ALICE) == []


def test_null_sender_and_8bitmime(server):
    m = make_message("8bit", b"gr\xc3\xbc\xc3\x9fe \xe2\x82\xac\r\n")
    with session(server) as c:
        c.smtp("MAIL FROM:<> BODY=8BITMIME", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        assert c.reply()[0] == 250
    assert strip_received(inbox(server)[0]) == m


def test_message_bytes_preserved(server):
    body = (b"line 1\r\n"
            b".starts with a dot\r\n"
            b"..two dots\r\n"
            b".\r\n"
            b"\r\n"
            b"   leading and trailing spaces   \r\n"
            b"\ttab\r\n"
            b"8bit \xe4\xf6\xfc \xc3\xa4\r\n"
            b"x" * 990 + b"\r\n"
            b"From the start of a line\r\n"
            b"last\r\n")
    m = make_message("bytes", body, extra=b"X-Folded: a\r\n\tb\r\n")
    with session(server) as c:
        assert send_raw(c, [ALICE], m)[0] == 250
    got = inbox(server)
    assert len(got) == 1
    assert strip_received(got[0]) == m


def test_several_transactions_one_session(server):
    msgs = [make_message(f"tx {i}") for i in range(3)]
    with session(server) as c:
        for m in msgs:
            assert send_raw(c, [ALICE], m)[0] == 250
        c.smtp("QUIT", 221)
        assert c.closed_by_server(5)
    assert [strip_received(x) for x in inbox(server)] == msgs


@pytest.mark.timeout(120)
def test_big_message(server):
    body = b"".join(b"%07d " % i + b"z" * 90 + b"\r\n" for i in range(50000))  # ~5 MB
    m = make_message("big", body)
    s = server.smtp()
    assert s.sendmail("a@remote.test", [ALICE], m) == {}
    s.quit()
    assert strip_received(inbox(server)[0]) == m


# ---------------------------------------------------------------------------------------
# SIZE
# ---------------------------------------------------------------------------------------

def test_size_limits(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_message_size": 10000}})
    with srv.raw("smtp") as c:
        c.reply()
        code, texts = c.smtp("EHLO client.test")
        assert ehlo_caps(texts)["SIZE"].upper() == "SIZE 10000"
        code, t = c.smtp("MAIL FROM:<a@remote.test> SIZE=20000")
        assert (code, enhanced(t)) == (552, "5.3.4"), t
        c.smtp("MAIL FROM:<a@remote.test> SIZE=5000", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        big = make_message("too big", b"0123456789abcdef" * 1300 + b"\r\n")  # > 20000
        c.send(smtp_stuff(big) + b".\r\n")
        code, t = c.reply()
        assert (code, enhanced(t)) == (552, "5.3.4"), t
        # the session goes on; a small message passes
        c.smtp("RSET", 250)
        small = make_message("small", b"ok\r\n" * 100)
        assert send_raw(c, [ALICE], small)[0] == 250
        # a message without SIZE= that is too big
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(big) + b".\r\n")
        assert c.reply()[0] == 552
        c.smtp("NOOP", 250)
    assert [strip_received(x) for x in srv.messages(ALICE)] == [small]


def test_size_parameter_syntax(server):
    with session(server) as c:
        code, _ = c.smtp("MAIL FROM:<a@remote.test> SIZE=abc")
        assert code == 501
        code, _ = c.smtp("MAIL FROM:<a@remote.test> SIZE=99999999999999999999999")
        assert code in (501, 552)
        c.smtp("MAIL FROM:<a@remote.test> SIZE=100", 250)


# ---------------------------------------------------------------------------------------
# Syntax and sequence errors
# ---------------------------------------------------------------------------------------

def test_unknown_command(server):
    with session(server) as c:
        code, t = c.smtp("FROBNICATE now")
        assert code == 500 and enhanced(t).startswith("5.5."), t
        c.smtp("NOOP", 250)


@pytest.mark.parametrize("line", [
    "MAIL FROM:",
    "MAIL FROM:<unterminated@remote.test",
    "MAIL FROM:alice@example.com <>",
    "MAIL TO:<a@remote.test>",
    "MAIL",
    "MAIL FROM:<a@b@c>",
    "MAIL FROM:<a b@remote.test>",
])
def test_malformed_mail(server, line):
    with session(server) as c:
        code, t = c.smtp(line)
        assert code == 501 or code == 500, f"{line!r}: {code} {t}"
        assert enhanced(t).startswith("5."), t
        # no transaction was started
        code, _ = c.smtp(f"RCPT TO:<{ALICE}>")
        assert code == 503


@pytest.mark.parametrize("line", [
    "RCPT TO:",
    "RCPT TO:<>",
    "RCPT TO:<alice@example.com",
    "RCPT FROM:<alice@example.com>",
    "RCPT TO:<@example.com>",
    "RCPT",
])
def test_malformed_rcpt(server, line):
    with session(server) as c:
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        code, t = c.smtp(line)
        assert code in (500, 501, 550, 553), f"{line!r}: {code} {t}"
        code, _ = c.smtp("DATA")
        assert code in (503, 554), "no valid recipient, DATA must be refused"


def test_unknown_mail_parameter(server):
    with session(server) as c:
        code, t = c.smtp("MAIL FROM:<a@remote.test> FOO=BAR")
        assert code in (501, 555), t


def test_bad_sequence(server):
    with server.raw("smtp") as c:
        c.reply()
        code, t = c.smtp("MAIL FROM:<a@remote.test>")
        assert (code, enhanced(t)) == (503, "5.5.1"), "MAIL before EHLO"
        c.smtp("EHLO client.test", 250)
        code, t = c.smtp(f"RCPT TO:<{ALICE}>")
        assert (code, enhanced(t)) == (503, "5.5.1"), "RCPT before MAIL"
        code, t = c.smtp("DATA")
        assert (code, enhanced(t)) == (503, "5.5.1"), "DATA before MAIL"
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        code, t = c.smtp("MAIL FROM:<b@remote.test>")
        assert (code, enhanced(t)) == (503, "5.5.1"), "nested MAIL"
        code, t = c.smtp("DATA")
        assert code in (503, 554), "DATA before RCPT"
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("RSET", 250)
        code, _ = c.smtp("DATA")
        assert code == 503, "RSET ends the transaction"
        c.smtp("MAIL FROM:<b@remote.test>", 250)
    assert inbox(server) == []


def test_commands_case_insensitive_and_lenient_space(server):
    with server.raw("smtp") as c:
        c.reply()
        c.smtp("ehlo client.test", 250)
        c.smtp("mail from:<a@remote.test> size=100 body=8bitmime", 250)
        c.smtp("Rcpt To:<alice@example.com>", 250)
        c.smtp("RSET", 250)
        c.smtp("MAIL FROM: <a@remote.test>", 250)  # common client quirk
        c.smtp(f"RCPT TO: <{BOB}>", 250)
        c.smtp("data", 354)
        c.send(smtp_stuff(make_message()) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(inbox(server, BOB)) == 1


def test_noop_vrfy_rset_quit(server):
    with session(server) as c:
        c.smtp("NOOP", 250)
        code, _ = c.smtp(f"VRFY {ALICE}")
        assert code == 252
        c.smtp("RSET", 250)
        code, t = c.smtp("QUIT")
        assert code == 221
        assert c.closed_by_server(5)


def test_overlong_command_line(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_line_length": 1024}})
    with session(srv) as c:
        c.send(b"MAIL FROM:<" + b"a" * 5000 + b"@remote.test>\r\n")
        code, t = c.reply()
        assert code == 500 and enhanced(t).startswith("5.5."), t
        # the tail of the long line is not another command
        c.smtp("NOOP", 250)
        assert send_raw(c, [ALICE], make_message())[0] == 250
    assert len(srv.messages(ALICE)) == 1


def test_too_many_bad_commands(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_bad_commands": 3}})
    with session(srv) as c:
        closed = False
        for i in range(6):
            try:
                c.sendline("BOGUS")
                code, _ = c.reply()
                if code == 421:
                    closed = c.closed_by_server(5)
                    break
                assert code == 500
            except (EOFError, ConnectionError):
                closed = True
                break
        assert closed or c.closed_by_server(3)


def test_too_many_recipients(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_recipients": 3}})
    srv.add_user("carol@example.com")
    srv.add_user("dave@example.com")
    with session(srv) as c:
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        for r in (ALICE, BOB, "carol@example.com"):
            c.smtp(f"RCPT TO:<{r}>", 250)
        code, t = c.smtp("RCPT TO:<dave@example.com>")
        assert code in (452, 552) and enhanced(t).endswith(".5.3"), t
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message()) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(srv.messages("carol@example.com")) == 1
    assert srv.messages("dave@example.com") == []


def test_idle_timeout(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"smtp_idle_timeout": 2}})
    with session(srv) as c:
        t = time.monotonic()
        assert c.closed_by_server(8), "idle SMTP session not closed"
        assert time.monotonic() - t >= 1.5


# ---------------------------------------------------------------------------------------
# DATA robustness
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rst", [False, True])
def test_disconnect_mid_data_stores_nothing(server, rst):
    c = session(server)
    c.smtp("MAIL FROM:<a@remote.test>", 250)
    c.smtp(f"RCPT TO:<{ALICE}>", 250)
    c.smtp("DATA", 354)
    c.send(b"Subject: partial\r\n\r\n" + b"partial body line\r\n" * 5000)
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    time.sleep(1)
    assert inbox(server) == [], "a message without the final dot was stored"
    # the server is still healthy
    s = server.smtp()
    s.sendmail("a@remote.test", [ALICE], make_message())
    s.quit()
    assert len(inbox(server)) == 1


def test_disconnect_after_last_line_without_dot(server):
    c = session(server)
    send = make_message("no dot")
    c.smtp("MAIL FROM:<a@remote.test>", 250)
    c.smtp(f"RCPT TO:<{ALICE}>", 250)
    c.smtp("DATA", 354)
    c.send(smtp_stuff(send) + b".")  # a dot but no CRLF after it
    c.sock.shutdown(socket.SHUT_WR)
    try:
        c.reply()
    except (EOFError, ConnectionError):
        pass
    c.close()
    time.sleep(0.5)
    assert inbox(server) == []


@pytest.mark.parametrize("listener", ["smtp", "lmtp"])
def test_bare_lf_and_cr_in_data(server, listener):
    """Bare LF/CR in DATA: either refused, or stored so that POP3 sends only CRLF lines with
    LIST sizes that match (RFC 1939 multi-line responses are CRLF-terminated lines)."""
    with server.raw(listener) as c:
        c.reply()
        c.smtp(("LHLO" if listener == "lmtp" else "EHLO") + " client.test", 250)
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(b"Subject: bare\r\n\r\nline1\nline2\r\nline3\rstill3\r\nend\r\n.\r\n")
        code, t = c.reply()
    if code != 250:
        assert code // 100 == 5, t
        assert inbox(server) == []
        return
    with server.raw("pop3") as c:
        c.expect_ok()
        c.pop3_login(ALICE, "secret")
        size = int(c.cmd_ok("LIST 1").split()[2])
        c.cmd_ok("RETR 1")
        raw = c.multiline()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None, f"bare LF/CR in RETR: {raw[-60:]!r}"
    assert size == len(raw)


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"])
def test_no_smtp_smuggling(server, smuggle):
    """Only CRLF.CRLF ends DATA: a bare-LF/CR dot must not start a new transaction."""
    with session(server) as c:
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(b"Subject: first\r\n\r\nbody" + smuggle +
               b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
               b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
        code, _ = c.reply()
        assert code in (250, 500, 501, 550, 554)
        code, _ = c.smtp("NOOP")
        assert code == 250, "extra replies: the smuggled commands were executed"
    assert inbox(server, BOB) == [], "smuggled message delivered"
    assert len(inbox(server, ALICE)) <= 1


# ---------------------------------------------------------------------------------------
# Pipelining and STARTTLS
# ---------------------------------------------------------------------------------------

def test_pipelining(server):
    m = make_message("pipelined")
    with server.raw("smtp") as c:
        c.reply()
        c.smtp("EHLO client.test", 250)
        c.send(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.com>\r\n"
               f"RCPT TO:<{BOB}>\r\nDATA\r\n".encode())
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.reply()[0] == 550
        assert c.reply()[0] == 250
        assert c.reply()[0] == 354
        c.send(smtp_stuff(m) + b".\r\nRSET\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<"
               + ALICE.encode() + b">\r\nDATA\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.reply()[0] == 354
        c.send(smtp_stuff(m) + b".\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    assert len(inbox(server, ALICE)) == 2
    assert len(inbox(server, BOB)) == 1


def test_starttls(server):
    m = make_message("over tls")
    s = server.smtp()
    s.ehlo("client.test")
    assert s.has_extn("starttls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    code, _ = s.starttls(context=ctx)
    assert code == 220
    s.ehlo("client.test")
    assert not s.has_extn("starttls"), "STARTTLS offered again inside TLS"
    assert s.has_extn("size") and s.has_extn("pipelining")
    assert s.sendmail("a@remote.test", [ALICE], m) == {}
    s.quit()
    got = inbox(server)[0]
    assert strip_received(got) == m


def test_starttls_resets_state_and_discards_injection(server):
    with server.raw("smtp") as c:
        c.reply()
        c.smtp("EHLO client.test", 250)
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.send(f"STARTTLS\r\nRCPT TO:<{ALICE}>\r\n".encode())
        code, _ = c.reply()
        assert code == 220
        c.starttls()
        # nothing may answer the injected RCPT; the first reply inside TLS is our EHLO's
        code, texts = c.smtp("EHLO client.test")
        assert code == 250 and texts[0].split()[0] == HOSTNAME
        code, _ = c.smtp(f"RCPT TO:<{ALICE}>")
        assert code == 503, "STARTTLS must reset the transaction"
        code, _ = c.smtp("STARTTLS")
        assert code == 503


def test_starttls_with_argument(server):
    with session(server) as c:
        code, _ = c.smtp("STARTTLS now")
        assert code == 501
        c.smtp("NOOP", 250)


# ---------------------------------------------------------------------------------------
# swaks
# ---------------------------------------------------------------------------------------

def swaks(server, *args, port=None):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port or server.ports["smtp"]),
           "--helo", "swaks.test", "--from", "swaks@remote.test", "--timeout", "15", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def test_swaks(server):
    r = swaks(server, "--to", ALICE, "--header", "Subject: swaks test",
              "--body", "hello from swaks")
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    got = inbox(server)
    assert len(got) == 1
    assert b"Subject: swaks test" in got[0] and b"hello from swaks" in got[0]
    assert got[0].startswith(b"Return-Path: <")
    assert b"\r\nReceived: from swaks.test" in got[0].split(b"\r\n\r\n")[0]


def test_swaks_starttls_pipelining(server):
    r = swaks(server, "--to", f"{ALICE},{BOB}", "--tls", "--pipeline", "--body", "tls body")
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert len(inbox(server, ALICE)) == 1 and len(inbox(server, BOB)) == 1


def test_swaks_unknown_recipient(server):
    r = swaks(server, "--to", "ghost@example.com")
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0
    assert re.search(r"<\*\* 550 5\.1\.1", out), out


def test_helo_with_control_characters_refused(server):
    """The HELO name is copied into Received:, so it must not smuggle in header lines."""
    with session(server) as c:
        for bad in ("EHLO a\rX-Injected: yes", "EHLO a\x00b", "HELO a\x7fb"):
            c.send(bad.encode("latin-1") + b"\r\n")
            code, t = c.reply()
            assert code in (500, 501), (bad, code, t)
        c.smtp("EHLO good.example", 250)
