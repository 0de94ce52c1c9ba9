"""Message submission (RFC 6409 on "submission" with STARTTLS, RFC 8314 implicit TLS on
"submissions"): AUTH PLAIN/LOGIN (RFC 4954), sender ownership, local and remote recipients,
Received/Date/Message-ID, BDAT (RFC 3030, also on the "smtp" and "lmtp" listeners), SMTPUTF8,
DSN parameters (RFC 3461), [submission] save_sent, DKIM signing of outgoing mail, and the
port-25 listener's refusal to relay (open-relay address tricks).

Remote recipients go through the outbound queue to a capturing SMTP server (outbound.py) set
as the smarthost.
"""
import base64
import email
import email.utils
import re
import subprocess
import time

import pytest

from sarntest import HOSTNAME, _split_first_field, enhanced, make_message, sasl_plain, b64, smtp_stuff, strip_trace
from outbound import (SUBMISSION_LISTENERS, queue_config, queue_list, wait_queue_empty, submit,
                      headers, imap_mailbox)
from outbound import capture_factory, sarn_mail, _accounts_template  # noqa: F401 (fixtures)

ALICE = "alice@example.com"
BOB = "bob@example.com"
REMOTE = "friend@remote.example"


@pytest.fixture
def cap(capture_factory):
    return capture_factory()


@pytest.fixture
def sub(sarn_mail, cap):
    """A server with submission listeners whose queue sends everything to `cap`."""
    return sarn_mail(listeners=SUBMISSION_LISTENERS,
                        overrides={"queue": queue_config(smarthost=cap)})


def ehlo_caps(texts):
    return {t.split()[0].upper(): t for t in texts[1:]}


def open_session(server, listener="submission", starttls=False):
    """Raw session after the greeting and EHLO: (conn, caps)."""
    c = server.raw(listener, tls=(listener == "submissions"))
    code, _ = c.reply()
    assert code == 220
    code, texts = c.smtp("EHLO client.test")
    assert code == 250, texts
    if starttls:
        c.smtp("STARTTLS", 220)
        c.starttls()
        code, texts = c.smtp("EHLO client.test")
        assert code == 250
    return c, ehlo_caps(texts)


def login(c, user=ALICE, password="secret"):
    code, t = c.smtp(f"AUTH PLAIN {sasl_plain(user, password)}")
    assert (code, enhanced(t)) == (235, "2.7.0"), t


def authed(server, user=ALICE, listener="submission", starttls=False):
    c, _ = open_session(server, listener, starttls)
    login(c, user, server.users[user])
    return c


def transaction(c, frm, rcpts, data, mail_params=""):
    """MAIL, RCPTs (all must get 250), DATA; returns the final reply."""
    c.smtp(f"MAIL FROM:<{frm}>{mail_params}", 250)
    for r in rcpts:
        c.smtp(f"RCPT TO:<{r}>", 250)
    c.smtp("DATA", 354)
    c.send(smtp_stuff(data) + b".\r\n")
    return c.reply()


# ---------------------------------------------------------------------------------------
# EHLO and TLS
# ---------------------------------------------------------------------------------------

SUBMISSION_EXTS = ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                   "CHUNKING", "DSN")


def test_ehlo_before_and_after_starttls(sub):
    c, caps = open_session(sub)
    with c:
        for ext in SUBMISSION_EXTS + ("STARTTLS", "AUTH"):
            assert ext in caps, f"EHLO lacks {ext}: {caps}"
        assert re.fullmatch(r"SIZE \d+", caps["SIZE"]), caps["SIZE"]
        assert set(caps["AUTH"].upper().split()[1:]) >= {"PLAIN", "LOGIN"}, caps["AUTH"]
        c.smtp("STARTTLS", 220)
        c.starttls()
        code, texts = c.smtp("EHLO client.test")
        assert code == 250
        caps2 = ehlo_caps(texts)
        assert "STARTTLS" not in caps2, "STARTTLS offered again inside TLS"
        for ext in SUBMISSION_EXTS + ("AUTH",):
            assert ext in caps2, f"EHLO after STARTTLS lacks {ext}"
        login(c)
        assert transaction(c, ALICE, [BOB], make_message("after starttls", frm=ALICE, to=BOB))[0] == 250
    assert len(sub.messages(BOB)) == 1


def test_submissions_implicit_tls(sarn_mail, cap):
    """With the auto-generated self-signed certificate."""
    sub = sarn_mail(listeners=SUBMISSION_LISTENERS, tls="generated",
                       overrides={"queue": queue_config(smarthost=cap)})
    c, caps = open_session(sub, "submissions")
    with c:
        assert c.tls
        assert "STARTTLS" not in caps, "no STARTTLS on an implicit-TLS port"
        for ext in SUBMISSION_EXTS + ("AUTH",):
            assert ext in caps, f"EHLO on submissions lacks {ext}"
        login(c)
        assert transaction(c, ALICE, [BOB], make_message("via 465", frm=ALICE, to=BOB))[0] == 250
    got = sub.messages(BOB)
    assert len(got) == 1 and b"Subject: via 465" in got[0]


def test_submissions_smtplib_ssl(sub):
    assert submit(sub, [BOB], make_message("smtplib ssl", frm=ALICE, to=BOB),
                  listener="submissions") == {}
    assert len(sub.messages(BOB)) == 1


def test_plaintext_auth_never_needs_tls(sarn_mail, cap):
    srv = sarn_mail(listeners=SUBMISSION_LISTENERS,
                       overrides={"queue": queue_config(smarthost=cap),
                                  "auth": {"plaintext_auth": "never"}})
    c, caps = open_session(srv)
    with c:
        assert "AUTH" not in caps, f"AUTH advertised before TLS with plaintext_auth=never: {caps}"
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")
        assert (code, enhanced(t)) == (538, "5.7.11"), t
        code, t = c.smtp("AUTH LOGIN")
        assert (code, enhanced(t)) == (538, "5.7.11"), t
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert (code, enhanced(t)) == (530, "5.7.0"), "the refused AUTH did not log in"
        c.smtp("STARTTLS", 220)
        c.starttls()
        code, texts = c.smtp("EHLO client.test")
        assert "AUTH" in ehlo_caps(texts)
        login(c)
        assert transaction(c, ALICE, [BOB], make_message(frm=ALICE, to=BOB))[0] == 250
    # Implicit TLS counts as TLS.
    c, caps = open_session(srv, "submissions")
    with c:
        assert "AUTH" in caps
        login(c)
    m = srv.imap(BOB, mode="starttls")  # plain POP3/IMAP logins are refused here too
    try:
        typ, data = m.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
    finally:
        m.logout()


# ---------------------------------------------------------------------------------------
# AUTH
# ---------------------------------------------------------------------------------------

def test_auth_plain_initial_response(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(BOB, 'bobsecret')}")
        assert (code, enhanced(t)) == (235, "2.7.0"), t
        c.smtp(f"MAIL FROM:<{BOB}>", 250)


def test_auth_plain_prompted(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp("AUTH PLAIN")
        assert code == 334 and t == [""], f"expected an empty '334 ' challenge: {code} {t}"
        code, t = c.smtp(sasl_plain(ALICE, "secret"))
        assert (code, enhanced(t)) == (235, "2.7.0"), t
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)


def test_auth_plain_with_authzid_of_self(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'secret', authz=ALICE)}")
        assert (code, enhanced(t)) == (235, "2.7.0"), t


def test_auth_plain_authzid_of_another_user_refused(sub):
    """alice's password must not let her act as bob (RFC 4616 authorization identity)."""
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'secret', authz=BOB)}")
        assert code != 235 and 500 <= code < 600, f"authzid bob with alice's password: {code} {t}"
        code, t = c.smtp(f"MAIL FROM:<{BOB}>")
        assert code in (530, 553), t
        login(c)
        code, t = c.smtp(f"MAIL FROM:<{BOB}>")
        assert code == 553, t


def test_auth_login(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp("AUTH LOGIN")
        assert code == 334, t
        assert base64.b64decode(t[0]).lower().startswith(b"user"), t
        code, t = c.smtp(b64(ALICE))
        assert code == 334, t
        assert base64.b64decode(t[0]).lower().startswith(b"pass"), t
        code, t = c.smtp(b64("secret"))
        assert (code, enhanced(t)) == (235, "2.7.0"), t
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)


def test_auth_login_with_initial_response(sub):
    """RFC 4954 lets LOGIN carry the user name on the command line."""
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp(f"AUTH LOGIN {b64(ALICE)}")
        assert code == 334, t
        code, t = c.smtp(b64("secret"))
        assert (code, enhanced(t)) == (235, "2.7.0"), t


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_auth_wrong_password(sub, mech):
    c, _ = open_session(sub)
    with c:
        if mech == "plain":
            code, t = c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'Wr0ngPassw0rd')}")
        else:
            c.smtp("AUTH LOGIN", 334)
            c.smtp(b64(ALICE), 334)
            code, t = c.smtp(b64("Wr0ngPassw0rd"))
        assert (code, enhanced(t)) == (535, "5.7.8"), t
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert (code, enhanced(t)) == (530, "5.7.0"), "a failed AUTH must not log in"
        # Unknown user: the same answer.
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain('ghost@example.com', 'secret')}")
        assert (code, enhanced(t)) == (535, "5.7.8"), t
        login(c)
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
    log = sub.log_text()
    for secret in ("Wr0ngPassw0rd", b64("Wr0ngPassw0rd"), sasl_plain(ALICE, "Wr0ngPassw0rd"),
                   sasl_plain(ALICE, "secret")):
        assert secret not in log, f"credentials in the log: {secret}"


def test_auth_twice(sub):
    c, _ = open_session(sub)
    with c:
        login(c)
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(BOB, 'bobsecret')}")
        assert (code, enhanced(t)) == (503, "5.5.1"), t
        # Still alice.
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)


def test_rset_keeps_auth(sub):
    c = authed(sub)
    with c:
        c.smtp("RSET", 250)
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp("RSET", 250)
        c.smtp("EHLO again.test", 250)
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert code == 250, f"RFC 4954: authentication survives RSET and EHLO: {code} {t}"


def test_starttls_discards_pipelined_commands(sub):
    """Commands sent in clear after STARTTLS (before the handshake) must not be executed
    inside the TLS session (CVE-2011-0411 style injection)."""
    c, _ = open_session(sub)
    with c:
        c.send(f"STARTTLS\r\nAUTH PLAIN {sasl_plain(ALICE, 'secret')}\r\n".encode())
        code, t = c.reply()
        assert code == 220, t
        c.starttls()
        code, texts = c.smtp("EHLO client.test")
        assert code == 250, texts
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert (code, enhanced(t)) == (530, "5.7.0"), f"injected AUTH was executed: {code} {t}"


@pytest.mark.parametrize("step", ["plain", "login-user", "login-password"])
def test_auth_cancel(sub, step):
    c, _ = open_session(sub)
    with c:
        if step == "plain":
            c.smtp("AUTH PLAIN", 334)
        else:
            c.smtp("AUTH LOGIN", 334)
            if step == "login-password":
                c.smtp(b64(ALICE), 334)
        code, t = c.smtp("*")
        assert code == 501, f"'*' must cancel the exchange with 501: {code} {t}"
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert code == 530, t
        login(c)  # a new exchange works


def test_auth_bad_base64_and_unknown_mechanism(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp("AUTH PLAIN !!!notbase64!!!")
        assert code == 501, t
        code, t = c.smtp("AUTH CRAM-MD5")
        assert code == 504, f"RFC 4954: unsupported mechanism is 504: {code} {t}"
        code, t = c.smtp("AUTH")
        assert code == 501, t
        login(c)


# ---------------------------------------------------------------------------------------
# Transaction rules
# ---------------------------------------------------------------------------------------

def test_mail_needs_auth_and_sequence(sub):
    c, _ = open_session(sub)
    with c:
        code, t = c.smtp(f"MAIL FROM:<{ALICE}>")
        assert (code, enhanced(t)) == (530, "5.7.0"), t
        code, t = c.smtp(f"RCPT TO:<{BOB}>")
        assert code in (503, 530), t
        login(c)
        code, t = c.smtp(f"RCPT TO:<{BOB}>")
        assert code == 503, f"RCPT without MAIL: {code} {t}"
        code, t = c.smtp("DATA")
        assert code == 503, f"DATA without MAIL: {code} {t}"
        # A zero-length chunk: no octets whose fate after the error would be unclear.
        code, t = c.smtp("BDAT 0 LAST")
        assert code == 503, f"BDAT without MAIL: {code} {t}"
        c.smtp("RSET", 250)
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        code, t = c.smtp("DATA")
        assert code in (503, 554), f"DATA without RCPT: {code} {t}"
    assert sub.messages(BOB) == []


def test_mail_from_must_be_owned(sub):
    assert sub.cli("alias", "add", "sales@example.com", ALICE).returncode == 0
    assert sub.cli("alias", "add", "bobby@example.com", BOB).returncode == 0
    c = authed(sub)
    with c:
        for frm in (BOB, "bobby@example.com", "", "alice@remote.example", "bob+alice@example.com",
                    "alice@example.com.remote.example"):
            code, t = c.smtp(f"MAIL FROM:<{frm}>")
            assert (code, enhanced(t)) == (553, "5.7.1"), f"MAIL FROM:<{frm}> as alice: {code} {t}"
        for frm in (ALICE, "alice+lists@example.com", "sales@example.com"):
            code, t = c.smtp(f"MAIL FROM:<{frm}>")
            assert code == 250, f"MAIL FROM:<{frm}> as alice: {code} {t}"
            c.smtp("RSET", 250)
        # A refused sender leaves no transaction behind.
        c.smtp(f"MAIL FROM:<{BOB}>", 553)
        code, _ = c.smtp(f"RCPT TO:<{BOB}>")
        assert code == 503


def test_mail_from_domain_case_insensitive(sub):
    """RFC 5321 2.4: domains are case-insensitive (and sarn matches local parts without case
    for delivery), so the account's own address in other case is still alice's."""
    c = authed(sub)
    with c:
        for frm in ("alice@EXAMPLE.COM", "Alice@Example.com"):
            code, t = c.smtp(f"MAIL FROM:<{frm}>")
            assert code == 250, f"MAIL FROM:<{frm}> as alice: {code} {t}"
            c.smtp("RSET", 250)
        code, t = c.smtp("MAIL FROM:<BOB@EXAMPLE.COM>")
        assert code == 553, t


def test_sent_from_alias_and_tag_delivered(sub):
    assert sub.cli("alias", "add", "sales@example.com", ALICE).returncode == 0
    c = authed(sub)
    with c:
        assert transaction(c, "sales@example.com", [BOB], make_message("from alias"))[0] == 250
        assert transaction(c, "alice+x@example.com", [BOB], make_message("from tag"))[0] == 250
    assert len(sub.messages(BOB)) == 2


# ---------------------------------------------------------------------------------------
# Recipients
# ---------------------------------------------------------------------------------------

def test_local_recipient_goes_to_inbox(sub, cap):
    m = make_message("local via submission", "Hi Bob.\r\n", frm=ALICE, to=BOB)
    assert submit(sub, [BOB], m) == {}
    imap = imap_mailbox(sub, BOB)
    assert imap is not None and len(imap) == 1
    pop = sub.messages(BOB)
    assert len(pop) == 1
    assert pop[0] == imap[0][1], "IMAP and POP3 show the same message"
    got = pop[0]
    assert got.startswith(b"Return-Path: <alice@example.com>\r\nReceived: "), got[:200]
    got = got[got.index(b"Received: "):]
    received, _ = _split_first_field(got)
    assert HOSTNAME.encode() in received, received
    assert b"client.test" in received, "the Received field names the EHLO"
    assert strip_trace(got) == m, "the message itself is kept byte for byte"
    # Nothing went out, nothing is queued.
    time.sleep(1.2)
    assert cap.received() == []
    assert queue_list(sub) == []


def test_unknown_local_recipient(sub):
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        code, t = c.smtp("RCPT TO:<nobody@example.com>")
        assert (code, enhanced(t)) == (550, "5.1.1"), t
        code, t = c.smtp("RCPT TO:<nobody+tag@example.com>")
        assert (code, enhanced(t)) == (550, "5.1.1"), t
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message()) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(sub.messages(BOB)) == 1


def test_remote_recipient_queued_and_sent(sub, cap):
    m = make_message("to a friend", "Hello friend.\r\n", frm=ALICE, to=REMOTE)
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        code, t = c.smtp(f"RCPT TO:<{REMOTE}>")
        assert code == 250, t
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        code, t = c.reply()
        assert code == 250 and enhanced(t).startswith("2."), t
    got = cap.wait(1)
    assert len(got) == 1, "the remote copy reaches the smarthost"
    out = got[0]
    assert out.mail_from == ALICE
    assert [r.lower() for r in out.rcpt_tos] == [REMOTE], "local recipients are not sent out"
    assert out.content.startswith(b"Received: ") or b"\r\nReceived: " in \
        out.content.split(b"\r\n\r\n")[0], "outgoing copy carries a Received field"
    assert strip_trace(out.content).endswith(m)
    assert b"Return-Path:" not in out.content.split(b"\r\n\r\n")[0], \
        "RFC 5321 4.4: Return-Path is for final delivery, not sent on"
    assert len(sub.messages(BOB)) == 1
    assert wait_queue_empty(sub), queue_list(sub)
    time.sleep(1.2)
    assert len(cap.received()) == 1, "sent exactly once"


def test_date_and_message_id_added(sub, cap):
    m = (f"From: {ALICE}\r\nTo: {BOB}, {REMOTE}\r\nSubject: bare\r\n\r\nNo date here.\r\n").encode()
    assert submit(sub, [BOB, REMOTE], m) == {}
    local = sub.messages(BOB)[0]
    remote = cap.wait(1)[0].content
    for got in (local, remote):
        h = headers(got)
        assert len(h.get_all("Date") or []) == 1, got[:500]
        assert email.utils.parsedate_tz(h["Date"]) is not None, h["Date"]
        assert len(h.get_all("Message-ID") or []) == 1, got[:500]
        assert re.fullmatch(r"\s*<[^<>@\s]+@[^<>@\s]+>\s*", h["Message-ID"]), h["Message-ID"]
        assert got.endswith(b"\r\n\r\nNo date here.\r\n")
    assert headers(local)["Message-ID"] == headers(remote)["Message-ID"], \
        "one Message-ID for all copies of a submission"


def test_date_and_message_id_kept(sub, cap):
    m = make_message("dated", msgid="<original.1@client.test>", frm=ALICE, to=REMOTE)
    assert submit(sub, [BOB, REMOTE], m) == {}
    local = sub.messages(BOB)[0]
    remote = cap.wait(1)[0].content
    for got in (local, remote):
        h = headers(got)
        assert h.get_all("Message-ID") == ["<original.1@client.test>"]
        assert h.get_all("Date") == ["Thu, 01 Jan 2026 00:00:00 +0000"]
    assert strip_trace(local) == m


def test_smtplib_data_dot_stuffing_and_8bit(sub, cap):
    body = ".leading dot\r\n..two dots\r\nUmlaut: \xe4\xf6\xfc\r\n.\r\nend\r\n".encode("utf-8")
    m = make_message("8bit", body, frm=ALICE, to=REMOTE,
                     extra=b"Content-Type: text/plain; charset=utf-8\r\n"
                           b"Content-Transfer-Encoding: 8bit\r\n")
    c = authed(sub)
    with c:
        assert transaction(c, ALICE, [BOB, REMOTE], m, " BODY=8BITMIME")[0] == 250
    assert strip_trace(sub.messages(BOB)[0]) == m
    assert strip_trace(cap.wait(1)[0].content).endswith(m.split(b"\r\n\r\n", 1)[1])


def test_oversized_submission_not_queued(sarn_mail, cap):
    srv = sarn_mail(overrides={"queue": queue_config(smarthost=cap),
                               "limits": {"max_message_size": "20K"}})
    c = authed(srv)
    with c:
        code, t = c.smtp(f"MAIL FROM:<{ALICE}> SIZE=50000")
        assert (code, enhanced(t)) == (552, "5.3.4"), t
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{REMOTE}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message("big", "x" * 70 + "\r\n") * 1)
               + (b"y" * 70 + b"\r\n") * 600 + b".\r\n")
        code, t = c.reply()
        assert code == 552, t
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{REMOTE}>", 250)
        c.send(b"BDAT 30000 LAST\r\n" + b"z" * 30000)
        code, t = c.reply()
        assert code == 552, t
    time.sleep(1.2)
    assert cap.received() == [] and queue_list(srv) == []


@pytest.mark.parametrize("how", ["data", "bdat"])
def test_disconnect_mid_message_queues_nothing(sub, cap, how):
    c = authed(sub)
    c.smtp(f"MAIL FROM:<{ALICE}>", 250)
    c.smtp(f"RCPT TO:<{REMOTE}>", 250)
    c.smtp(f"RCPT TO:<{BOB}>", 250)
    if how == "data":
        c.smtp("DATA", 354)
        c.send(make_message("cut off", "half a message\r\n"))
    else:
        c.send(b"BDAT 100 LAST\r\n" + b"From: alice@example.com\r\n\r\nonly part")
    time.sleep(0.2)
    c.close()
    time.sleep(1.2)
    assert cap.received() == [] and queue_list(sub) == []
    assert sub.messages(BOB) == []
    # and the server still works
    assert submit(sub, [REMOTE], make_message("after the cut")) == {}
    assert len(cap.wait(1)) == 1


# ---------------------------------------------------------------------------------------
# BDAT (RFC 3030)
# ---------------------------------------------------------------------------------------

def bdat_chunks(c, chunks):
    """Sends BDAT chunks (the last one with LAST); returns the replies."""
    replies = []
    for i, chunk in enumerate(chunks):
        last = " LAST" if i == len(chunks) - 1 else ""
        c.send(f"BDAT {len(chunk)}{last}\r\n".encode() + chunk)
        replies.append(c.reply())
    return replies


BDAT_MSG = (b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: chunked\r\n"
            b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <bdat.1@client.test>\r\n\r\n"
            b".a line with a leading dot\r\n.\r\n..\r\nnot the end\r\n")


def test_bdat_submission(sub):
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        chunks = [BDAT_MSG[:30], BDAT_MSG[30:31], BDAT_MSG[31:120], BDAT_MSG[120:]]
        replies = bdat_chunks(c, chunks)
        for code, t in replies:
            assert code == 250, replies
        # Nothing is delivered before LAST: check with a second transaction whose first chunk
        # is followed by a look into the mailbox.
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.send(b"BDAT 10\r\n" + BDAT_MSG[:10])
        assert c.reply()[0] == 250
        assert len(sub.messages(BOB)) == 1, "a chunk without LAST delivered something"
        c.send(f"BDAT {len(BDAT_MSG) - 10} LAST\r\n".encode() + BDAT_MSG[10:])
        assert c.reply()[0] == 250
    got = sub.messages(BOB)
    assert len(got) == 2
    assert all(strip_trace(g) == BDAT_MSG for g in got), "BDAT data is taken raw (no dot-stuffing)"


def test_bdat_pipelined_and_zero_last(sub):
    c = authed(sub)
    with c:
        c.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n".encode()
               + f"BDAT {len(BDAT_MSG)}\r\n".encode() + BDAT_MSG + b"BDAT 0 LAST\r\n")
        codes = [c.reply()[0] for _ in range(4)]
        assert codes == [250, 250, 250, 250], codes
    got = sub.messages(BOB)
    assert len(got) == 1 and strip_trace(got[0]) == BDAT_MSG


def test_bdat_then_data_refused(sub):
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.send(b"BDAT 5\r\nFrom:")
        assert c.reply()[0] == 250
        code, t = c.smtp("DATA")
        assert code == 503, f"RFC 3030: DATA after BDAT in one transaction is 503: {code} {t}"
        c.smtp("RSET", 250)
        assert transaction(c, ALICE, [BOB], make_message("after rset"))[0] == 250
    got = sub.messages(BOB)
    assert len(got) == 1 and b"after rset" in got[0]


def test_bdat_remote_recipient(sub, cap):
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{REMOTE}>", 250)
        replies = bdat_chunks(c, [BDAT_MSG[:50], BDAT_MSG[50:]])
        assert [r[0] for r in replies] == [250, 250]
    got = cap.wait(1)
    assert len(got) == 1
    assert strip_trace(got[0].content) == BDAT_MSG


def test_bdat_without_final_crlf_relayed(sub, cap):
    """A BDAT message need not end in CRLF; sent on with DATA it must still end cleanly."""
    m = BDAT_MSG + b"last line without CRLF"
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{REMOTE}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        assert [r[0] for r in bdat_chunks(c, [m])] == [250]
        c.smtp("NOOP", 250)
    got = cap.wait(1)
    assert len(got) == 1
    assert strip_trace(got[0].content) in (m, m + b"\r\n"), got[0].content[-80:]
    local = strip_trace(sub.messages(BOB)[0])
    assert local in (m, m + b"\r\n")


SMUGGLE = (b"From: alice@example.com\r\nTo: friend@remote.example\r\nSubject: smuggle\r\n"
           b"Message-ID: <sm.1@client.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
           b"one\n.\nMAIL FROM:<alice@example.com>\nRCPT TO:<victim@remote.example>\nDATA\n"
           b"smuggled A\n.\r\nRSET\r\nMAIL FROM:<alice@example.com>\r\n"
           b"RCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled B\r.\r\nend\r\n")


def test_bdat_bare_line_endings_not_sent_raw(sub, cap):
    """BDAT takes octets raw, but what goes out must not carry bare LF / bare CR: a lenient
    next hop could read "\n.\n" or "\r\n.\n" as the end of the data (SMTP smuggling)."""
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.smtp(f"RCPT TO:<{REMOTE}>", 250)
        assert [r[0] for r in bdat_chunks(c, [SMUGGLE])] == [250]
    got = cap.wait(1)
    time.sleep(1)
    got = cap.received()
    assert len(got) == 1 and got[0].rcpt_tos == [REMOTE], got
    body = got[0].content
    assert not re.search(rb"(?<!\r)\n", body), "bare LF sent to the next hop"
    assert not re.search(rb"\r(?!\n)", body), "bare CR sent to the next hop"
    assert b"smuggled A" in body and b"smuggled B" in body and body.rstrip().endswith(b"end")


def test_bdat_on_smtp_listener(sub):
    with sub.raw("smtp") as c:
        c.reply()
        code, texts = c.smtp("EHLO client.test")
        assert "CHUNKING" in ehlo_caps(texts), texts
        c.smtp("MAIL FROM:<sender@remote.example>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        replies = bdat_chunks(c, [BDAT_MSG[:7], BDAT_MSG[7:]])
        assert [r[0] for r in replies] == [250, 250], replies
    got = sub.messages(ALICE)
    assert len(got) == 1 and strip_trace(got[0]) == BDAT_MSG


def test_bdat_on_lmtp(sub):
    with sub.raw("lmtp") as c:
        c.reply()
        code, texts = c.smtp("LHLO client.test")
        assert "CHUNKING" in ehlo_caps(texts), texts
        c.smtp("MAIL FROM:<sender@remote.example>", 250)
        c.smtp(f"RCPT TO:<{ALICE}>", 250)
        code, _ = c.smtp("RCPT TO:<nobody@example.com>")
        assert code == 550
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.send(b"BDAT 20\r\n" + BDAT_MSG[:20])
        assert c.reply()[0] == 250, "an intermediate chunk has one reply"
        c.send(f"BDAT {len(BDAT_MSG) - 20} LAST\r\n".encode() + BDAT_MSG[20:])
        r1 = c.reply()
        r2 = c.reply()
        assert (r1[0], r2[0]) == (250, 250), "LMTP: one reply per accepted recipient after LAST"
        c.smtp("NOOP", 250)  # and no more replies queued
    for u in (ALICE, BOB):
        got = sub.messages(u)
        assert len(got) == 1 and strip_trace(got[0]) == BDAT_MSG


# ---------------------------------------------------------------------------------------
# SMTPUTF8 and DSN parameters
# ---------------------------------------------------------------------------------------

def test_smtputf8(sub, cap):
    rcpt = "jörg@remote.example"
    m = ("From: alice@example.com\r\nTo: jörg@remote.example\r\nSubject: grüße\r\n"
         "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <u8.1@client.test>\r\n\r\n"
         "Grüße!\r\n").encode()
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        c.sendline(f"RCPT TO:<{rcpt}>".encode())
        code, t = c.reply()
        assert 500 <= code < 600, f"UTF-8 address without SMTPUTF8 must be refused: {code} {t}"
        c.smtp("RSET", 250)
        c.smtp(f"MAIL FROM:<{ALICE}> SMTPUTF8", 250)
        c.sendline(f"RCPT TO:<{rcpt}>".encode())
        code, t = c.reply()
        assert code == 250, f"SMTPUTF8 transaction: {code} {t}"
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(m) + b".\r\n")
        assert c.reply()[0] == 250
    assert strip_trace(sub.messages(BOB)[0]) == m
    got = cap.wait(1)
    assert len(got) == 1
    assert got[0].rcpt_tos == [rcpt]
    assert "SMTPUTF8" in [o.upper() for o in got[0].mail_options], \
        "SMTPUTF8 passed on to the next hop"
    assert strip_trace(got[0].content) == m


def test_dsn_parameters(sub):
    c = authed(sub)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}> RET=HDRS ENVID=QQ314159", 250)
        for p in ("NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;bob@example.com", "NOTIFY=NEVER",
                  "NOTIFY=FAILURE", "ORCPT=rfc822;orig@remote.example"):
            r = BOB if "bob@" in p else REMOTE
            code, t = c.smtp(f"RCPT TO:<{r}> {p}")
            assert code == 250, f"RCPT {p}: {code} {t}"
        c.smtp("RSET", 250)
        c.smtp(f"MAIL FROM:<{ALICE}> RET=FULL", 250)
        for p in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=BOGUS", "NOTIFY="):
            code, t = c.smtp(f"RCPT TO:<{BOB}> {p}")
            assert code == 501, f"RFC 3461 bad NOTIFY {p!r}: {code} {t}"
        c.smtp("RSET", 250)
        code, t = c.smtp(f"MAIL FROM:<{ALICE}> RET=BOGUS")
        assert code == 501, f"RFC 3461 bad RET: {code} {t}"


# ---------------------------------------------------------------------------------------
# [submission] save_sent
# ---------------------------------------------------------------------------------------

def test_save_sent(sarn_mail, cap):
    srv = sarn_mail(listeners=SUBMISSION_LISTENERS,
                       overrides={"queue": queue_config(smarthost=cap),
                                  "submission": {"save_sent": "yes"}})
    m = make_message("keep a copy", frm=ALICE, to=f"{BOB}, {REMOTE}")
    assert submit(srv, [BOB, REMOTE], m) == {}
    sent = sarn_wait(lambda: imap_mailbox(srv, ALICE, "Sent"))
    assert sent is not None and len(sent) == 1, f"exactly one copy in Sent: {sent}"
    flags, body = sent[0]
    assert b"\\Seen" in flags, flags
    assert strip_trace(body) == m or body.endswith(m.split(b"\r\n\r\n", 1)[1])
    assert b"Subject: keep a copy" in body
    assert imap_mailbox(srv, ALICE) == [], "the copy goes to Sent, not INBOX"
    assert len(srv.messages(BOB)) == 1
    assert len(cap.wait(1)) == 1


def sarn_wait(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def test_save_sent_off_by_default(sub, cap):
    assert submit(sub, [BOB, REMOTE], make_message("no copy", frm=ALICE, to=BOB)) == {}
    cap.wait(1)
    sent = imap_mailbox(sub, ALICE, "Sent")
    assert not sent, f"Sent must stay empty by default: {sent}"
    assert imap_mailbox(sub, ALICE) == []


# ---------------------------------------------------------------------------------------
# DKIM
# ---------------------------------------------------------------------------------------

def dkim_txt(stdout):
    return "".join(re.findall(r'"([^"]*)"', stdout.decode())).encode()


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_outgoing_mail_is_dkim_signed(sarn_mail, cap, alg):
    dkim = pytest.importorskip("dkim")
    srv = sarn_mail(listeners=SUBMISSION_LISTENERS, start=False,
                       overrides={"queue": queue_config(smarthost=cap)})
    srv.write_config()
    gen = srv.cli("dkim", "generate", "example.com", "s1", *(["--ed25519"] if alg == "ed25519" else []))
    assert gen.returncode == 0, gen.stderr
    record = dkim_txt(gen.stdout)
    assert (srv.data / "dkim" / "example.com" / "s1.pem").exists()
    srv.start()

    def dns(name, timeout=5):
        return record if name == b"s1._domainkey.example.com." else None

    m = make_message("signed", "Body to be signed.\r\n", frm="Alice <alice@example.com>", to=REMOTE)
    assert submit(srv, [REMOTE], m) == {}
    got = cap.wait(1)
    assert len(got) == 1
    content = got[0].content
    assert b"DKIM-Signature:" in content.split(b"\r\n\r\n")[0]
    sig = re.search(rb"DKIM-Signature:(.*?)\r\n(?! |\t)", content, re.S).group(1)
    assert re.search(rb"d=example\.com", sig) and re.search(rb"s=s1", sig), sig
    assert dkim.verify(content, dnsfunc=dns), "python3-dkim rejects the outgoing signature"
    # Tampering breaks it (the check is not vacuous).
    assert not dkim.verify(content.replace(b"Body to be signed.", b"Body was changed."),
                           dnsfunc=dns)


def test_no_dkim_key_no_signature(sub, cap):
    assert submit(sub, [REMOTE], make_message("unsigned", frm=ALICE, to=REMOTE)) == {}
    got = cap.wait(1)
    assert len(got) == 1 and b"DKIM-Signature:" not in got[0].content


# ---------------------------------------------------------------------------------------
# swaks
# ---------------------------------------------------------------------------------------

def swaks(server, port, *args):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "swaks.test",
           "--timeout", "15", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def test_swaks_587_starttls_auth_plain(sub):
    r = swaks(sub, sub.ports["submission"], "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
              "--auth-password", "secret", "--from", ALICE, "--to", BOB,
              "--header", "Subject: swaks 587", "--body", "hello over 587")
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    assert re.search(r"<~\s+235 2\.7\.0", out), out
    got = sub.messages(BOB)
    assert len(got) == 1 and b"Subject: swaks 587" in got[0] and b"hello over 587" in got[0]


def test_swaks_465_tlsc_auth_login(sub, cap):
    r = swaks(sub, sub.ports["submissions"], "--tlsc", "--auth", "LOGIN", "--auth-user", BOB,
              "--auth-password", "bobsecret", "--from", BOB, "--to", REMOTE,
              "--header", "Subject: swaks 465", "--body", "hello over 465")
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    got = cap.wait(1)
    assert len(got) == 1 and got[0].mail_from == BOB and got[0].rcpt_tos == [REMOTE]
    assert b"Subject: swaks 465" in got[0].content


def test_swaks_wrong_password(sub):
    r = swaks(sub, sub.ports["submission"], "--tls", "--auth", "PLAIN", "--auth-user", ALICE,
              "--auth-password", "nope", "--from", ALICE, "--to", BOB)
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0
    assert re.search(r"<~\*\s+535 5\.7\.8", out), out
    assert sub.messages(BOB) == []


# ---------------------------------------------------------------------------------------
# The port-25 listener does not relay
# ---------------------------------------------------------------------------------------

def test_port25_no_auth_and_relaying_denied(sub, cap):
    with sub.raw("smtp") as c:
        c.reply()
        code, texts = c.smtp("EHLO client.test")
        assert "AUTH" not in ehlo_caps(texts), texts
        code, t = c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}")
        assert 500 <= code < 600, f"AUTH on the MX port: {code} {t}"
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        code, t = c.smtp(f"RCPT TO:<{REMOTE}>")
        assert (code, enhanced(t)) == (550, "5.7.1"), t
        assert "relaying denied" in " ".join(t).lower(), t
    time.sleep(1.2)
    assert cap.received() == [] and queue_list(sub) == []


RELAY_TRICKS = [
    "user%{r}@example.com",
    "<@example.com:user@{r}>",
    '"user@{r}"@example.com',
    "user@{r}.",
    "user@example.com.",
    "user@[127.0.0.2]",
    "{r}!user@example.com",
    "<@example.com,@{r}:user@{r}>",
    "user@{r}@example.com",
    "user@{r}%example.com",
]


@pytest.mark.parametrize("catch_all", [False, True], ids=["no-catch-all", "catch-all"])
def test_open_relay_tricks(sarn_mail, capture_factory, catch_all):
    from outbound import free_port
    port = free_port(("127.0.0.1", "127.0.0.2"))
    cap = capture_factory(host="127.0.0.1", port=port)
    cap2 = capture_factory(host="127.0.0.2", port=port)
    srv = sarn_mail(listeners=SUBMISSION_LISTENERS,
                       overrides={"queue": queue_config(smarthost=cap),
                                  "limits": {"max_bad_commands": 1000}})
    if catch_all:
        assert srv.cli("alias", "add", "@example.com", BOB).returncode == 0
    accepted = []
    with srv.raw("smtp") as c:
        c.reply()
        c.smtp("EHLO client.test", 250)
        for dom in ("remote.test", "remote.example"):
            for trick in RELAY_TRICKS:
                rcpt = trick.format(r=dom)
                rcpt_arg = rcpt if rcpt.startswith("<") else f"<{rcpt}>"
                c.smtp("MAIL FROM:<attacker@evil.example>", 250)
                code, t = c.smtp(f"RCPT TO:{rcpt_arg}")
                assert code == 250 or 500 <= code < 600, f"{rcpt}: {code} {t}"
                if code == 250:
                    c.smtp("DATA", 354)
                    c.send(smtp_stuff(make_message(f"trick {rcpt}", frm="attacker@evil.example",
                                                   to=rcpt)) + b".\r\n")
                    code, t = c.reply()
                    if code == 250:
                        accepted.append(rcpt)
                else:
                    c.smtp("RSET", 250)
    # Whatever was accepted was delivered locally (one copy per transaction).
    local = len(srv.messages(ALICE)) + len(srv.messages(BOB))
    assert local == len(accepted), f"accepted {accepted} but {local} local deliveries"
    if not catch_all:
        assert accepted == [], f"accepted without any matching local account: {accepted}"
    time.sleep(1.2)  # the queue is scanned every second
    assert cap.received() == [] and cap2.received() == [], "relayed!"
    assert cap.connections == 0 and cap2.connections == 0, "something connected out"
    assert queue_list(srv) == []


def test_mail_auth_parameter_accepted(sub):
    """RFC 4954 §5: a server that offers AUTH takes MAIL FROM:<...> AUTH=<mailbox or <>>;
    the sender rule stays that of the authenticated account. Old Outlook versions look for the
    "AUTH=" form of the EHLO keyword, which is offered too."""
    c, caps = open_session(sub)
    with c:
        assert "AUTH=PLAIN" in caps, caps
        login(c)
        code, t = c.smtp(f"MAIL FROM:<{ALICE}> AUTH=<>")
        assert code == 250, t
        c.smtp("RSET", 250)
        code, t = c.smtp(f"MAIL FROM:<{ALICE}> AUTH=alice+40example.com")
        assert code == 250, t
        c.smtp("RSET", 250)
        code, t = c.smtp(f"MAIL FROM:<{ALICE}> AUTH=bad+zz")
        assert code == 501, t
        code, t = c.smtp(f"MAIL FROM:<{BOB}> AUTH=<>")
        assert (code, enhanced(t)) == (553, "5.7.1"), "AUTH= does not change whose sender it is"


def test_remote_recipients_per_hour_limit(sarn_mail, cap):
    """[submission] max_remote_recipients_per_hour caps what one account sends out (a stolen
    password should not make the server a spam source): the recipient past the limit gets
    450 4.7.1, local recipients and other accounts are not affected."""
    srv = sarn_mail(listeners=SUBMISSION_LISTENERS,
                    overrides={"queue": queue_config(smarthost=cap),
                               "submission": {"max_remote_recipients_per_hour": 3}})
    c = authed(srv)
    with c:
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        for i in range(3):
            c.smtp(f"RCPT TO:<r{i}@remote.example>", 250)
        code, t = c.smtp("RCPT TO:<r3@remote.example>")
        assert (code, enhanced(t)) == (450, "4.7.1"), t
        code, t = c.smtp(f"RCPT TO:<{BOB}>")
        assert code == 250, "local recipients are not counted"
        c.smtp("RSET", 250)
        c.smtp(f"MAIL FROM:<{ALICE}>", 250)
        code, t = c.smtp("RCPT TO:<r4@remote.example>")
        assert code == 450, "the count holds across transactions"
    c = authed(srv, BOB)
    with c:
        c.smtp(f"MAIL FROM:<{BOB}>", 250)
        code, t = c.smtp("RCPT TO:<r0@remote.example>")
        assert code == 250, "another account has its own count"
