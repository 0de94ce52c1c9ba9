"""LMTP (RFC 2033) on the "lmtp" listener of a real `sarn serve`."""
import re
import socket
import struct
import subprocess
import time

import pytest

from sarntest import HOSTNAME, enhanced, make_message, smtp_stuff, strip_received

ALICE = "alice@example.com"
BOB = "bob@example.com"


def session(server):
    c = server.raw("lmtp")
    code, _ = c.reply()
    assert code == 220
    c.smtp("LHLO client.test", 250)
    return c


def caps(texts):
    return {t.split()[0].upper(): t for t in texts[1:]}


def test_greeting_and_lhlo(server):
    with server.raw("lmtp") as c:
        code, texts = c.reply()
        assert code == 220
        code, texts = c.smtp("LHLO client.test")
        assert code == 250
        assert texts[0].split()[0] == HOSTNAME
        cs = caps(texts)
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"):
            assert ext in cs, f"LHLO lacks {ext}: {texts}"


def test_helo_ehlo_refused(server):
    with server.raw("lmtp") as c:
        c.reply()
        assert c.smtp("HELO client.test")[0] == 500
        assert c.smtp("EHLO client.test")[0] == 500
        code, _ = c.smtp("MAIL FROM:<a@remote.test>")
        assert code == 503, "no transaction before LHLO"
        c.smtp("LHLO client.test", 250)
        c.smtp("MAIL FROM:<a@remote.test>", 250)


def test_one_reply_per_recipient_in_order(server):
    server.add_user("carol@example.com")
    m = make_message("lmtp multi")
    with session(server) as c:
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        code, t = c.smtp(f"RCPT TO:<{ALICE}>")
        assert code == 250 and enhanced(t) == "2.1.5"
        code, t = c.smtp("RCPT TO:<nobody@example.com>")
        assert (code, enhanced(t)) == (550, "5.1.1")
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("RCPT TO:<carol@example.com>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        replies = [c.reply() for _ in range(3)]
        assert [r[0] for r in replies] == [250, 250, 250]
        for r in replies:
            assert enhanced(r[1]).startswith("2.")
        # nothing more: the next reply is our NOOP's
        code, t = c.smtp("NOOP")
        assert code == 250 and enhanced(t) == "2.0.0"
    for u in (ALICE, BOB, "carol@example.com"):
        got = server.messages(u)
        assert len(got) == 1, u
        assert strip_received(got[0]) == m


def test_smtplib_lmtp(server):
    m = make_message("smtplib lmtp")
    l = server.lmtp()  # smtplib.LMTP sends LHLO for ehlo()
    code, _ = l.ehlo("client.test")
    assert code == 250 and l.has_extn("pipelining")
    # (smtplib reads one reply after DATA, so one recipient per transaction)
    assert l.sendmail("a@remote.test", [ALICE], m) == {}
    assert l.sendmail("a@remote.test", [BOB], m) == {}
    l.quit()
    assert strip_received(server.messages(ALICE)[0]) == m
    assert strip_received(server.messages(BOB)[0]) == m


def test_addresses(server):
    assert server.cli("alias", "add", "info@example.com", BOB).returncode == 0
    with session(server) as c:
        c.smtp("MAIL FROM:<>", 250)
        c.smtp("RCPT TO:<alice+lists@example.com>", 250)
        c.smtp("RCPT TO:<info@example.com>", 250)
        c.smtp("RCPT TO:<ALICE@Example.Com>", 250)
        code, t = c.smtp("RCPT TO:<someone@elsewhere.test>")
        assert code == 550, t
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message()) + b".\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    assert len(server.messages(ALICE)) in (1, 2)  # same account twice: once or twice
    assert len(server.messages(BOB)) == 1


def test_catch_all(server):
    assert server.cli("alias", "add", "@example.com", ALICE).returncode == 0
    with session(server) as c:
        c.smtp("MAIL FROM:<>", 250)
        c.smtp("RCPT TO:<random-name@example.com>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message()) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(server.messages(ALICE)) == 1


def test_bytes_preserved_and_received(server):
    body = (b".dot\r\n..dots\r\n.\r\n\r\n8bit \xff\xfe\xe4\r\n" + b"w" * 995 + b"\r\nend\r\n")
    m = make_message("lmtp bytes", body)
    with session(server) as c:
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        assert c.reply()[0] == 250
    got = server.messages(ALICE)[0]
    assert got.startswith(b"Return-Path: <a@remote.test>\r\nReceived: ")
    assert strip_received(got) == m


def test_size_too_big_one_reply_per_recipient(sarn_factory):
    srv = sarn_factory(overrides={"limits": {"max_message_size": 5000}})
    with session(srv) as c:
        code, t = c.smtp("MAIL FROM:<a@remote.test> SIZE=6000")
        assert (code, enhanced(t)) == (552, "5.3.4")
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message("big", b"x" * 70 + b"\r\n") * 100) + b".\r\n")
        r1, r2 = c.reply(), c.reply()
        assert (r1[0], enhanced(r1[1])) == (552, "5.3.4")
        assert (r2[0], enhanced(r2[1])) == (552, "5.3.4")
        c.smtp("NOOP", 250)
    assert srv.messages(ALICE) == [] and srv.messages(BOB) == []


def test_bad_sequence_and_syntax(server):
    with session(server) as c:
        assert c.smtp(f"RCPT TO:<{ALICE}>")[0] == 503
        assert c.smtp("DATA")[0] == 503
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        assert c.smtp("MAIL FROM:<a@remote.test>")[0] == 503
        assert c.smtp("DATA")[0] in (503, 554)
        assert c.smtp("RCPT TO:alice")[0] == 501
        code, t = c.smtp("WHATEVER")
        assert code == 500 and enhanced(t).startswith("5.5.")
        c.smtp("RSET", 250)
        code, _ = c.smtp("QUIT")
        assert code == 221


def test_pipelining(server):
    m = make_message("pipelined lmtp")
    with session(server) as c:
        c.send(f"MAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<ghost@example.com>\r\n"
               f"RCPT TO:<{BOB}>\r\nDATA\r\n".encode())
        assert [c.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
        c.send(smtp_stuff(m) + b".\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<" + BOB.encode()
               + b">\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(5)] == [250, 250, 250, 250, 354]
        c.send(smtp_stuff(m) + b".\r\nQUIT\r\n")
        assert [c.reply()[0] for _ in range(2)] == [250, 221]
    assert len(server.messages(ALICE)) == 1
    assert len(server.messages(BOB)) == 2


def test_starttls(server):
    m = make_message("lmtp tls")
    with session(server) as c:
        c.smtp("STARTTLS", 220)
        c.starttls()
        code, texts = c.smtp("LHLO client.test")
        assert code == 250 and "STARTTLS" not in caps(texts)
        c.smtp("MAIL FROM:<a@remote.test>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        assert c.reply()[0] == 250
    assert strip_received(server.messages(ALICE)[0]) == m


def test_starttls_discards_injection(server):
    with session(server) as c:
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")
        assert c.reply()[0] == 220
        c.starttls()
        c.smtp("LHLO client.test", 250)
        # if the injected MAIL had run, this would be a nested MAIL (503)
        c.smtp("MAIL FROM:<a@remote.test>", 250)


@pytest.mark.parametrize("rst", [False, True])
def test_disconnect_mid_data_stores_nothing(server, rst):
    c = session(server)
    c.smtp("MAIL FROM:<a@remote.test>", 250)
    c.smtp(f"RCPT TO:<{ALICE}>", 250)
    c.smtp(f"RCPT TO:<{BOB}>", 250)
    c.smtp("DATA", 354)
    c.send(b"Subject: partial\r\n\r\n" + b"partial\r\n" * 20000)
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    time.sleep(1)
    assert server.messages(ALICE) == [] and server.messages(BOB) == []


def test_many_recipients_and_messages(server):
    users = [f"user{i}@example.com" for i in range(8)]
    for u in users:
        server.add_user(u)
    with session(server) as c:
        for j in range(5):
            c.smtp("MAIL FROM:<a@remote.test>", 250)
            for u in users:
                c.smtp(f"RCPT TO:<{u}>", 250)
            c.smtp("DATA", 354)
            c.send(smtp_stuff(make_message(f"m{j}")) + b".\r\n")
            assert [c.reply()[0] for _ in users] == [250] * len(users)
    for u in users:
        got = server.messages(u)
        assert [re.search(rb"Subject: (m\d)", g).group(1) for g in got] == \
            [f"m{j}".encode() for j in range(5)]


# ---------------------------------------------------------------------------------------
# swaks
# ---------------------------------------------------------------------------------------

def swaks_lmtp(server, *args):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(server.ports["lmtp"]),
           "--protocol", "LMTP", "--helo", "swaks.test", "--from", "swaks@remote.test",
           "--timeout", "15", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def test_swaks_lmtp(server):
    r = swaks_lmtp(server, "--to", f"{ALICE},{BOB}", "--header", "Subject: swaks lmtp",
                   "--body", "lmtp body")
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    after_data = out.split("<-  354", 1)[1].split(" -> QUIT", 1)[0]
    assert len(re.findall(r"^<-  250 ", after_data, re.M)) == 2, out
    for u in (ALICE, BOB):
        got = server.messages(u)
        assert len(got) == 1 and b"Subject: swaks lmtp" in got[0] and b"lmtp body" in got[0]


def test_swaks_lmtp_tls(server):
    r = swaks_lmtp(server, "--to", ALICE, "--tls", "--body", "tls")
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert len(server.messages(ALICE)) == 1


def test_swaks_lmtp_unknown_recipient(server):
    r = swaks_lmtp(server, "--to", "ghost@example.com")
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0
    assert re.search(r"<\*\* 550 5\.1\.1", out), out
