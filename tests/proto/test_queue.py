"""The outbound queue ([queue]): smarthost delivery (AUTH, STARTTLS policies), MX resolution
through a test DNS server (preference, fall-back to the next MX and to A records, null MX),
retries after 4xx and refused connections, bounces (RFC 3464) after 5xx and expiry, DSN
options (NOTIFY=NEVER, RET=HDRS, ENVID, ORCPT), delay warnings, `sarn queue list|flush|delete`,
the per-domain connection limit, and crash safety (SIGKILL during a delivery and right after
the 250).

Mail enters through the submission listener as alice@example.com; remote domains are
*.example (libunbound answers the special-use .test TLD itself, so it cannot be used with the
test DNS server).
"""
import re
import time

import pytest

from sarntest import HOSTNAME, make_message, sasl_plain, smtp_stuff, strip_trace, wait_for
from outbound import (dsn_parts, free_port, is_bounce, queue_config, queue_files, queue_list,
                      submit, wait_queue_empty)
from outbound import (capture_factory, dns_factory, sarn_mail,  # noqa: F401 (fixtures)
                      _accounts_template)

ALICE = "alice@example.com"
BOB = "bob@example.com"
FRIEND = "friend@remote.example"
BAD = "bad@remote.example"

pytestmark = pytest.mark.timeout(60)


def qserver(sarn_mail, **queue):
    return sarn_mail(overrides={"queue": queue_config(**queue)})


def dead_port():
    """A port nothing listens on (for a while)."""
    return free_port(("127.0.0.1",))


def bounces(server, user=ALICE):
    return [m for m in server.messages(user) if is_bounce(m)]


def wait_bounces(server, n=1, timeout=20.0, user=ALICE):
    wait_for(lambda: len(bounces(server, user)) >= n, timeout, 0.2)
    return bounces(server, user)


def session(server):
    """An authenticated raw submission session (alice)."""
    c = server.raw("submission")
    assert c.reply()[0] == 220
    c.smtp("EHLO client.test", 250)
    c.smtp(f"AUTH PLAIN {sasl_plain(ALICE, 'secret')}", 235)
    return c


def send(c, rcpts, data, mail_params="", rcpt_params=None):
    rcpt_params = rcpt_params or {}
    c.smtp(f"MAIL FROM:<{ALICE}>{mail_params}", 250)
    for r in rcpts:
        p = rcpt_params.get(r, "")
        c.smtp(f"RCPT TO:<{r}>{' ' + p if p else ''}", 250)
    c.smtp("DATA", 354)
    c.send(smtp_stuff(data) + b".\r\n")
    code, t = c.reply()
    assert code == 250, t


def norm(v):
    return re.sub(r"\s+", "", v or "").lower()


# ---------------------------------------------------------------------------------------
# The test doubles themselves (no sarn): a failure here is not sarn's
# ---------------------------------------------------------------------------------------

def test_fixture_capture_server(capture_factory):
    import smtplib
    from sarntest import tls_client_context
    cap = capture_factory(tls=True, users={"u": "p"})
    cap.fail_data(1)
    cap.fail_rcpt("bad@y.example", "550 5.1.1 no")
    s = smtplib.SMTP(cap.host, cap.port, timeout=10)
    s.starttls(context=tls_client_context())
    s.login("u", "p")
    with pytest.raises(smtplib.SMTPDataError):
        s.sendmail("a@x.example", ["b@y.example"], b"Subject: 1\r\n\r\n.x\r\n")
    refused = s.sendmail("a@x.example", ["b@y.example", "bad@y.example"],
                         b"Subject: 2\r\n\r\n.x\r\n")
    s.quit()
    assert refused == {"bad@y.example": (550, b"5.1.1 no")}
    got = cap.received()
    assert len(got) == 1 and got[0].content == b"Subject: 2\r\n\r\n.x\r\n"
    assert got[0].tls and got[0].auth == "u" and got[0].rcpt_tos == ["b@y.example"]
    assert cap.data_attempts == 2 and cap.connections == 1


def test_fixture_dns_server(dns_factory):
    from dnslib import DNSRecord
    d = dns_factory({"remote.example": {"MX": [(10, "mx.remote.example")]},
                     "mx.remote.example": {"A": ["127.0.0.2"]}, "null.example": {"MX": [(0, ".")]}})
    for tcp in (False, True):
        r = DNSRecord.parse(DNSRecord.question("remote.example", "MX").send(
            d.host, d.port, tcp=tcp, timeout=5))
        assert [(x.rdata.preference, str(x.rdata.label)) for x in r.rr] == \
            [(10, "mx.remote.example.")]
    r = DNSRecord.parse(DNSRecord.question("mx.remote.example", "MX").send(d.host, d.port, timeout=5))
    assert r.header.rcode == 0 and r.rr == []
    r = DNSRecord.parse(DNSRecord.question("nope.example", "A").send(d.host, d.port, timeout=5))
    assert r.header.rcode == 3
    r = DNSRecord.parse(DNSRecord.question("null.example", "MX").send(d.host, d.port, timeout=5))
    assert str(r.rr[0].rdata.label) == "."


# ---------------------------------------------------------------------------------------
# Smarthost
# ---------------------------------------------------------------------------------------

def test_smarthost_delivery(sarn_mail, capture_factory):
    cap = capture_factory()
    srv = qserver(sarn_mail, smarthost=cap)
    m = make_message("via smarthost", frm=ALICE, to=FRIEND)
    assert submit(srv, [FRIEND, "other@remote.example", "x@elsewhere.example"], m) == {}
    wait_for(lambda: sum(len(x.rcpt_tos) for x in cap.received()) >= 3, 20)
    assert wait_queue_empty(srv), queue_list(srv)
    got = cap.received()
    for r in (FRIEND, "other@remote.example", "x@elsewhere.example"):
        assert cap.deliveries_to(r) == 1, (r, got)
    assert all(x.mail_from == ALICE for x in got)
    assert all(strip_trace(x.content).endswith(m.split(b"\r\n\r\n", 1)[1]) for x in got)
    assert all(not x.tls for x in got), "the capture server offers no STARTTLS"
    time.sleep(1)
    assert len(cap.received()) == len(got), "delivered more than once"


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_smarthost_auth(sarn_mail, capture_factory, mech):
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mech]
    cap = capture_factory(users={"relayuser": "relay pass"}, auth_exclude=[other], tls=True,
                          auth_require_tls=True)
    srv = qserver(sarn_mail, smarthost=cap, smarthost_user="relayuser",
                  smarthost_password="relay pass")
    assert submit(srv, [FRIEND], make_message("authed relay")) == {}
    got = cap.wait(1)
    assert len(got) == 1 and got[0].auth == "relayuser" and got[0].tls, got
    assert [a[0] for a in cap.auth_attempts] == [mech], cap.auth_attempts
    assert wait_queue_empty(srv)
    assert "relay pass" not in srv.log_text(), "the smarthost password is in the log"
    assert "relay pass" not in srv.cli("queue", "list").stdout.decode()


def test_smarthost_password_not_sent_in_clear(sarn_mail, capture_factory):
    """sarn's choice (beyond the brief): without STARTTLS at the smarthost the password is
    withheld and the message waits (it is not bounced)."""
    cap = capture_factory(users={"relayuser": "pw"})
    srv = qserver(sarn_mail, smarthost=cap, smarthost_user="relayuser",
                  smarthost_password="pw")
    assert submit(srv, [FRIEND], make_message("no clear password")) == {}
    assert wait_for(lambda: cap.connections >= 1, 10)
    time.sleep(1)
    assert cap.auth_attempts == [] and cap.received() == []
    assert len(queue_list(srv)) == 1
    assert bounces(srv) == []


@pytest.mark.parametrize("policy,offer,tls_expected", [
    ("opportunistic", True, True),
    ("none", True, False),
    ("required", True, True),
])
def test_smarthost_tls_policies(sarn_mail, capture_factory, policy, offer, tls_expected):
    cap = capture_factory(tls=offer)
    over = {} if policy == "opportunistic" else {"smarthost_tls": policy}
    srv = qserver(sarn_mail, smarthost=cap, **over)
    assert submit(srv, [FRIEND], make_message(f"tls {policy}")) == {}
    got = cap.wait(1)
    assert len(got) == 1
    assert got[0].tls is tls_expected, f"smarthost_tls={policy}: tls={got[0].tls}"
    assert wait_queue_empty(srv)


def test_smarthost_tls_required_without_starttls_holds_mail(sarn_mail, capture_factory):
    cap = capture_factory(tls=False)
    srv = qserver(sarn_mail, smarthost=cap, smarthost_tls="required")
    assert submit(srv, [FRIEND], make_message("must not go in clear")) == {}
    assert wait_for(lambda: cap.connections >= 2, 10), "no retry after the missing STARTTLS"
    assert cap.received() == [], "sent without TLS although smarthost_tls=required"
    assert all(e[0] != "MAIL" for e in cap.events), "a transaction began without TLS"
    q = queue_list(srv)
    assert len(q) == 1 and any("pending" in r for r in q[0]["rcpts"]), q
    assert bounces(srv) == [], "a TLS failure is temporary, not a bounce"


@pytest.mark.parametrize("policy", ["opportunistic", "required"])
def test_smarthost_starttls_handshake_fails(sarn_mail, capture_factory, policy):
    """STARTTLS offered but the handshake fails: opportunistic still delivers (in clear, on a
    new connection), required holds the message."""
    cap = capture_factory(tls_broken=True)
    srv = qserver(sarn_mail, smarthost=cap, smarthost_tls=policy)
    assert submit(srv, [FRIEND], make_message(f"broken tls {policy}")) == {}
    if policy == "opportunistic":
        got = cap.wait(1, timeout=20)
        assert len(got) == 1 and not got[0].tls
        assert wait_queue_empty(srv)
    else:
        assert wait_for(lambda: cap.connections >= 2, 10), "not retried"
        assert cap.received() == [] and all(e[0] != "MAIL" for e in cap.events)
        assert len(queue_list(srv)) == 1 and bounces(srv) == []


def test_smarthost_auth_with_starttls(sarn_mail, capture_factory):
    cap = capture_factory(tls=True, users={"relayuser": "pw"}, auth_require_tls=True)
    srv = qserver(sarn_mail, smarthost=cap, smarthost_user="relayuser",
                  smarthost_password="pw")
    assert submit(srv, [FRIEND], make_message("tls + auth")) == {}
    got = cap.wait(1)
    assert len(got) == 1 and got[0].tls and got[0].auth == "relayuser"


# ---------------------------------------------------------------------------------------
# MX resolution
# ---------------------------------------------------------------------------------------

def two_captures(capture_factory):
    port = free_port(("127.0.0.1", "127.0.0.2", "127.0.0.3"))
    a = capture_factory(host="127.0.0.1", port=port)
    b = capture_factory(host="127.0.0.2", port=port)
    return port, a, b


def test_mx_by_preference(sarn_mail, capture_factory, dns_factory):
    port, a, b = two_captures(capture_factory)
    dns = dns_factory({
        "remote.example": {"MX": [(20, "mx-b.remote.example"), (10, "mx-a.remote.example")],
                           "A": ["127.0.0.1"]},
        "mx-a.remote.example": {"A": ["127.0.0.2"]},
        "mx-b.remote.example": {"A": ["127.0.0.1"]},
    })
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, [FRIEND], make_message("mx pref")) == {}
    got = b.wait(1)
    assert len(got) == 1 and got[0].rcpt_tos == [FRIEND], "lowest preference MX first"
    assert a.received() == [] and a.connections == 0
    assert ("remote.example", "MX") in dns.queries()
    assert wait_queue_empty(srv)


def test_mx_next_host_when_refused(sarn_mail, capture_factory, dns_factory):
    port = free_port(("127.0.0.1", "127.0.0.3"))
    cap = capture_factory(host="127.0.0.1", port=port)
    dns = dns_factory({
        "remote.example": {"MX": [(5, "nx.remote.example"), (10, "dead.remote.example"),
                                  (20, "live.remote.example")]},  # nx.: NXDOMAIN
        "dead.remote.example": {"A": ["127.0.0.3"]},  # nothing listens there
        "live.remote.example": {"A": ["127.0.0.1"]},
    })
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, [FRIEND], make_message("second mx")) == {}
    got = cap.wait(1, timeout=20)
    assert len(got) == 1, "not delivered to the second MX"
    assert wait_queue_empty(srv)
    assert bounces(srv) == []


def test_a_records_tried_in_turn(sarn_mail, capture_factory, dns_factory):
    port = free_port(("127.0.0.1", "127.0.0.3"))
    cap = capture_factory(host="127.0.0.1", port=port)
    dns = dns_factory({"remote.example": {"A": ["127.0.0.3", "127.0.0.1"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, [FRIEND], make_message("second address")) == {}
    assert len(cap.wait(1)) == 1
    assert wait_queue_empty(srv)


def test_dns_servfail_is_temporary(sarn_mail, capture_factory, dns_factory):
    port = free_port(("127.0.0.1",))
    cap = capture_factory(port=port)
    dns = dns_factory({"remote.example": "SERVFAIL", "mx.remote.example": {"A": ["127.0.0.1"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, [FRIEND], make_message("dns trouble")) == {}
    assert wait_for(lambda: ("remote.example", "MX") in dns.queries(), 10)
    time.sleep(1)
    assert bounces(srv) == [], "SERVFAIL bounced the message"
    q = queue_list(srv)
    assert len(q) == 1 and any("pending" in r for r in q[0]["rcpts"]), q
    dns.set("remote.example", {"MX": [(10, "mx.remote.example")]})
    got = cap.wait(1, timeout=25)
    assert len(got) == 1, "not delivered once DNS answered"
    assert wait_queue_empty(srv)


def test_a_record_when_no_mx(sarn_mail, capture_factory, dns_factory):
    port, a, b = two_captures(capture_factory)
    dns = dns_factory({"remote.example": {"A": ["127.0.0.2"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, [FRIEND], make_message("implicit mx")) == {}
    got = b.wait(1)
    assert len(got) == 1 and got[0].rcpt_tos == [FRIEND]
    assert a.received() == []
    qs = dns.queries()
    assert ("remote.example", "MX") in qs and ("remote.example", "A") in qs, qs


def test_aaaa_record_when_no_mx(sarn_mail, capture_factory, dns_factory):
    port = free_port(("::1",))
    cap = capture_factory(host="::1", port=port)
    dns = dns_factory({"v6.example": {"AAAA": ["::1"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    assert submit(srv, ["six@v6.example"], make_message("over ipv6")) == {}
    got = cap.wait(1)
    assert len(got) == 1 and got[0].rcpt_tos == ["six@v6.example"]
    assert wait_queue_empty(srv)


def test_recipients_split_by_domain(sarn_mail, capture_factory, dns_factory):
    port, a, b = two_captures(capture_factory)
    dns = dns_factory({
        "one.example": {"MX": [(10, "mx.one.example")]},
        "mx.one.example": {"A": ["127.0.0.1"]},
        "two.example": {"MX": [(10, "mx.two.example")]},
        "mx.two.example": {"A": ["127.0.0.2"]},
    })
    srv = qserver(sarn_mail, dns=dns, remote_port=port)
    rcpts = ["x@one.example", "y@one.example", "z@two.example"]
    assert submit(srv, rcpts, make_message("two domains")) == {}
    a.wait(1)
    b.wait(1)
    assert wait_queue_empty(srv)
    assert sorted(r for m in a.received() for r in m.rcpt_tos) == ["x@one.example",
                                                                   "y@one.example"]
    assert [r for m in b.received() for r in m.rcpt_tos] == ["z@two.example"]


def test_null_mx_bounces_at_once(sarn_mail, capture_factory, dns_factory):
    port = free_port(("127.0.0.1",))
    cap = capture_factory(port=port)
    dns = dns_factory({"nomail.example": {"MX": [(0, ".")], "A": ["127.0.0.1"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port, retry_min=300, retry_max=600)
    assert submit(srv, ["who@nomail.example"], make_message("to a null mx")) == {}
    got = wait_bounces(srv, 1, timeout=15)
    assert len(got) == 1, "a null MX bounces at once, not after retries"
    d = dsn_parts(got[0])
    assert norm(d["recipients"][0]["final-recipient"]) == "rfc822;who@nomail.example"
    assert d["recipients"][0]["action"] == "failed"
    assert d["recipients"][0]["status"].startswith("5."), d["recipients"]
    assert cap.connections == 0, "connected to the A record of a null-MX domain"
    assert wait_queue_empty(srv, 5)


# ---------------------------------------------------------------------------------------
# Temporary failures
# ---------------------------------------------------------------------------------------

def test_4xx_at_data_retried_delivered_once(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_data(1, "451 4.3.0 try later")
    srv = qserver(sarn_mail, smarthost=cap)
    assert submit(srv, [FRIEND], make_message("retry me")) == {}
    got = cap.wait(1, timeout=20)
    assert len(got) == 1
    assert wait_queue_empty(srv)
    time.sleep(1)
    assert len(cap.received()) == 1, "delivered exactly once"
    assert cap.data_attempts == 2
    assert bounces(srv) == []


def test_4xx_at_rcpt_retries_only_that_recipient(sarn_mail, capture_factory):
    cap = capture_factory()
    slow = "slow@remote.example"
    cap.fail_rcpt(slow, "450 4.2.1 mailbox busy", times=1)
    srv = qserver(sarn_mail, smarthost=cap)
    assert submit(srv, [FRIEND, slow], make_message("partial")) == {}
    wait_for(lambda: cap.deliveries_to(slow) >= 1, 20)
    assert wait_queue_empty(srv)
    time.sleep(1)
    assert cap.deliveries_to(FRIEND) == 1, f"the accepted recipient got it again: {cap.received()}"
    assert cap.deliveries_to(slow) == 1
    assert cap.rcpt_attempts[slow] == 2
    assert bounces(srv) == []


def test_refused_connection_retried(sarn_mail, capture_factory):
    port = dead_port()
    srv = qserver(sarn_mail, smarthost=f"127.0.0.1:{port}")
    assert submit(srv, [FRIEND], make_message("later")) == {}
    time.sleep(1)
    assert len(queue_list(srv)) == 1
    cap = capture_factory(port=port)
    got = cap.wait(1, timeout=20)
    assert len(got) == 1
    assert wait_queue_empty(srv)
    assert bounces(srv) == []


def test_expiry_bounces_with_447(sarn_mail, capture_factory):
    """Only the recipient that never got through is reported; the other one got its copy."""
    cap = capture_factory()
    cap.fail_rcpt(FRIEND, "451 4.2.0 always later")
    ok = "ok@remote.example"
    srv = qserver(sarn_mail, smarthost=cap, expire=2)
    m = make_message("never gets through", "expiry body\r\n")
    assert submit(srv, [FRIEND, ok], m) == {}
    got = wait_bounces(srv, 1, timeout=20)
    assert len(got) == 1
    d = dsn_parts(got[0])
    r = d["recipients"]
    assert len(r) == 1 and norm(r[0]["final-recipient"]) == f"rfc822;{FRIEND}", r
    assert r[0]["action"] == "failed" and r[0]["status"] == "4.4.7", r
    assert cap.deliveries_to(FRIEND) == 0 and cap.rcpt_attempts[FRIEND.lower()] >= 2
    assert cap.deliveries_to(ok) == 1
    assert wait_queue_empty(srv, 5)
    time.sleep(1)
    assert len(bounces(srv)) == 1, "one bounce only"


def test_delay_warning(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_data(1000, "451 4.3.0 slow down")
    srv = qserver(sarn_mail, smarthost=cap, delay_warning=1, expire=120)
    assert submit(srv, [FRIEND], make_message("delayed")) == {}
    got = wait_bounces(srv, 1, timeout=20)
    assert len(got) == 1, "a delay warning (DSN Action: delayed)"
    d = dsn_parts(got[0])
    r = d["recipients"]
    assert r[0]["action"] == "delayed" and r[0]["status"].startswith("4."), r
    q = queue_list(srv)
    assert len(q) == 1, "still queued after the warning"
    time.sleep(1.2)
    assert len(bounces(srv)) == 1, "the warning is sent once"


# ---------------------------------------------------------------------------------------
# Bounces
# ---------------------------------------------------------------------------------------

def test_5xx_at_rcpt_bounces(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_rcpt(BAD, "550 5.1.1 no such user")
    srv = qserver(sarn_mail, smarthost=cap)
    m = make_message("partly undeliverable", "The original body.\r\n", frm=ALICE,
                     to=f"{FRIEND}, {BAD}")
    assert submit(srv, [FRIEND, BAD], m) == {}
    got = wait_bounces(srv, 1)
    assert len(got) == 1
    raw = got[0]
    d = dsn_parts(raw)
    msg = d["msg"]
    assert d["report_type"] == "delivery-status"
    assert re.search(rf"MAILER-DAEMON@{re.escape(HOSTNAME)}", msg["From"], re.I), msg["From"]
    assert msg["To"] and ALICE in msg["To"]
    assert msg["Date"] and msg["Message-ID"]
    assert msg["Subject"]
    assert d["per_message"].get("reporting-mta", "").lower().startswith("dns;"), d["per_message"]
    assert len(d["recipients"]) == 1, "only the failed recipient is reported"
    r = d["recipients"][0]
    assert norm(r["final-recipient"]) == f"rfc822;{BAD}"
    assert r["action"] == "failed"
    assert r["status"] == "5.1.1"
    assert norm(r["diagnostic-code"]) == norm("smtp; 550 5.1.1 no such user"), r
    assert d["original_type"] == "message/rfc822", d["parts"]
    orig = d["original"].get_payload()[0]
    assert orig["Subject"] == "partly undeliverable"
    assert b"The original body." in raw
    # The other recipient got it, once; the queue is empty.
    assert cap.deliveries_to(FRIEND) == 1
    assert wait_queue_empty(srv)
    # A bounce is a new message: it is not sent out anywhere.
    time.sleep(1)
    assert len(cap.received()) == 1


def test_bounce_goes_to_the_envelope_sender(sarn_mail, capture_factory):
    """MAIL FROM a +tag address of alice: the bounce still reaches alice's INBOX; bob, who
    also got a copy of the message, gets no bounce."""
    cap = capture_factory()
    cap.fail_rcpt(BAD, "550 5.1.1 no such user")
    srv = qserver(sarn_mail, smarthost=cap)
    with session(srv) as c:
        c.smtp("MAIL FROM:<alice+lists@example.com>", 250)
        c.smtp(f"RCPT TO:<{BAD}>", 250)
        c.smtp(f"RCPT TO:<{BOB}>", 250)
        c.smtp("DATA", 354)
        c.send(smtp_stuff(make_message("tagged sender", frm="alice+lists@example.com")) + b".\r\n")
        assert c.reply()[0] == 250
    got = wait_bounces(srv, 1)
    assert len(got) == 1
    assert norm(dsn_parts(got[0])["recipients"][0]["final-recipient"]) == f"rfc822;{BAD}"
    assert bounces(srv, BOB) == [] and len(srv.messages(BOB)) == 1


def test_multiline_remote_reply_in_bounce(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_rcpt(BAD, "550-5.1.1 first line of the reason\r\n550 5.1.1 second line")
    srv = qserver(sarn_mail, smarthost=cap)
    assert submit(srv, [BAD], make_message("multi-line reply")) == {}
    got = wait_bounces(srv, 1)
    d = dsn_parts(got[0])  # still a well-formed report
    assert len(d["recipients"]) == 1
    r = d["recipients"][0]
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    assert "first line of the reason" in r["diagnostic-code"], r
    assert "second line" in r["diagnostic-code"], r
    assert d["original_type"] == "message/rfc822"


def test_too_many_recipients_at_remote(sarn_mail, capture_factory):
    """452 4.5.3 at RCPT (RFC 5321 4.5.3.1.10): the remaining recipients are sent in another
    transaction; everyone gets exactly one copy."""
    cap = capture_factory()
    cap.max_rcpts = 2
    srv = qserver(sarn_mail, smarthost=cap)
    rcpts = [f"r{i}@remote.example" for i in range(5)]
    assert submit(srv, rcpts, make_message("many rcpts")) == {}
    wait_for(lambda: all(cap.deliveries_to(r) for r in rcpts), 25)
    assert wait_queue_empty(srv)
    assert {r: cap.deliveries_to(r) for r in rcpts} == {r: 1 for r in rcpts}
    assert all(len(m.rcpt_tos) <= 2 for m in cap.received())
    assert bounces(srv) == []


def test_5xx_at_data_bounces_every_recipient(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_data(1, "554 5.6.0 content rejected")
    srv = qserver(sarn_mail, smarthost=cap)
    assert submit(srv, [FRIEND, "other@remote.example"], make_message("rejected")) == {}
    got = wait_bounces(srv, 1)
    d = dsn_parts(got[0])
    finals = sorted(norm(r["final-recipient"]) for r in d["recipients"])
    assert finals == [f"rfc822;{FRIEND}", "rfc822;other@remote.example"], d["recipients"]
    for r in d["recipients"]:
        assert r["action"] == "failed" and r["status"] == "5.6.0"
        assert norm(r["diagnostic-code"]) == norm("smtp; 554 5.6.0 content rejected"), r
    assert wait_queue_empty(srv)
    time.sleep(1.5)
    assert cap.received() == [] and cap.data_attempts == 1, "a 5xx is not retried"
    assert len(bounces(srv)) == 1


def test_notify_never_suppresses_bounce(sarn_mail, capture_factory):
    cap = capture_factory()
    quiet, loud = "quiet@remote.example", "loud@remote.example"
    cap.fail_rcpt(quiet, "550 5.1.1 no such user")
    cap.fail_rcpt(loud, "550 5.1.1 no such user")
    srv = qserver(sarn_mail, smarthost=cap)
    with session(srv) as c:
        send(c, [quiet, loud], make_message("notify test"),
             rcpt_params={quiet: "NOTIFY=NEVER", loud: "NOTIFY=FAILURE"})
    assert wait_queue_empty(srv)
    got = wait_bounces(srv, 1)
    time.sleep(1)
    got = bounces(srv)
    assert len(got) == 1, f"{len(got)} bounces"
    d = dsn_parts(got[0])
    assert [norm(r["final-recipient"]) for r in d["recipients"]] == [f"rfc822;{loud}"], \
        "NOTIFY=NEVER recipient reported"


def test_ret_hdrs_envid_orcpt(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_rcpt(BAD, "550 5.1.1 no such user")
    srv = qserver(sarn_mail, smarthost=cap)
    m = make_message("headers only please", "SECRET BODY TEXT\r\n")
    with session(srv) as c:
        send(c, [BAD], m, mail_params=" RET=HDRS ENVID=env-42",
             rcpt_params={BAD: "NOTIFY=FAILURE ORCPT=rfc822;orig@remote.example"})
    got = wait_bounces(srv, 1)
    raw = got[0]
    d = dsn_parts(raw)
    assert d["original_type"] == "text/rfc822-headers", d["parts"]
    assert b"Subject: headers only please" in raw
    assert b"SECRET BODY TEXT" not in raw, "RET=HDRS: the body must not come back"
    assert d["per_message"].get("original-envelope-id") == "env-42", d["per_message"]
    r = d["recipients"][0]
    assert norm(r.get("original-recipient")) == "rfc822;orig@remote.example", r
    assert norm(r["final-recipient"]) == f"rfc822;{BAD}"


def test_delay_warning_only_when_requested(sarn_mail, capture_factory):
    """RFC 3461: a "delayed" DSN only for recipients whose NOTIFY includes DELAY (or has no
    NOTIFY); NOTIFY=FAILURE alone asks for none."""
    cap = capture_factory()
    a, b = "a@remote.example", "b@remote.example"
    cap.fail_rcpt(a, "451 4.2.0 later")
    cap.fail_rcpt(b, "451 4.2.0 later")
    srv = qserver(sarn_mail, smarthost=cap, delay_warning=1, expire=120)
    with session(srv) as c:
        send(c, [a, b], make_message("delay semantics"),
             rcpt_params={a: "NOTIFY=FAILURE", b: "NOTIFY=DELAY,FAILURE"})
    got = wait_bounces(srv, 1, timeout=15)
    time.sleep(1.2)
    got = bounces(srv)
    assert len(got) == 1, f"{len(got)} notices"
    d = dsn_parts(got[0])
    assert [norm(r["final-recipient"]) for r in d["recipients"]] == [f"rfc822;{b}"], d["recipients"]
    assert d["recipients"][0]["action"] == "delayed"


def test_success_dsn_for_local_delivery(sarn_mail):
    """RFC 3461 6.2: NOTIFY=SUCCESS on a recipient delivered into a local mailbox asks for a
    "delivered" DSN."""
    srv = sarn_mail(overrides={"queue": queue_config()})
    with session(srv) as c:
        send(c, [BOB], make_message("tell me"), mail_params=" ENVID=ok-1",
             rcpt_params={BOB: "NOTIFY=SUCCESS"})
        send(c, [BOB], make_message("do not tell"), rcpt_params={BOB: "NOTIFY=FAILURE"})
    assert len(srv.messages(BOB)) == 2
    got = wait_bounces(srv, 1, timeout=10)
    time.sleep(1)
    got = bounces(srv)
    assert len(got) == 1, f"{len(got)} DSNs"
    d = dsn_parts(got[0])
    assert [r["action"] for r in d["recipients"]] == ["delivered"], d["recipients"]
    assert norm(d["recipients"][0]["final-recipient"]) == f"rfc822;{BOB}"
    assert d["recipients"][0]["status"].startswith("2.")
    assert d["per_message"].get("original-envelope-id") == "ok-1"


def test_dsn_parameters_passed_to_a_dsn_server(sarn_mail, capture_factory):
    """A next hop that offers DSN gets RET/ENVID/NOTIFY/ORCPT, and takes over: no "relayed"
    notice from sarn."""
    cap = capture_factory(dsn=True)
    srv = qserver(sarn_mail, smarthost=cap)
    with session(srv) as c:
        send(c, [FRIEND], make_message("dsn passthrough"), mail_params=" RET=HDRS ENVID=env-7",
             rcpt_params={FRIEND: "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend@remote.example"})
    got = cap.wait(1)
    assert len(got) == 1
    mo = [o.upper() for o in got[0].mail_options]
    ro = [o.upper() for o in got[0].rcpt_options]
    assert "RET=HDRS" in mo and "ENVID=ENV-7" in mo, mo
    assert any(o.startswith("NOTIFY=") and set(o[7:].split(",")) == {"SUCCESS", "FAILURE"}
               for o in ro), ro
    assert "ORCPT=RFC822;FRIEND@REMOTE.EXAMPLE" in ro, ro
    assert wait_queue_empty(srv)
    time.sleep(1)
    assert bounces(srv) == [], "relayed notice although the next hop does DSN"


def test_dsn_options_not_passed_to_a_server_without_dsn(sarn_mail, capture_factory):
    """The capture server (aiosmtpd) has no DSN extension and refuses unknown parameters
    with 555: NOTIFY/ORCPT/RET/ENVID must not be sent to it. NOTIFY=SUCCESS then gets a
    "relayed" notice (RFC 3461 5.2.2)."""
    cap = capture_factory()
    srv = qserver(sarn_mail, smarthost=cap)
    with session(srv) as c:
        send(c, [FRIEND], make_message("dsn params"), mail_params=" RET=FULL ENVID=abc",
             rcpt_params={FRIEND: "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend@remote.example"})
    got = cap.wait(1)
    assert len(got) == 1
    assert not any("NOTIFY" in o or "ORCPT" in o for o in got[0].rcpt_options)
    notices = wait_bounces(srv, 1, timeout=10)
    assert len(notices) == 1
    d = dsn_parts(notices[0])
    assert [r["action"] for r in d["recipients"]] == ["relayed"], d["recipients"]
    assert d["per_message"].get("original-envelope-id") == "abc", d["per_message"]
    # Without NOTIFY=SUCCESS: no notice.
    with session(srv) as c:
        send(c, [FRIEND], make_message("no notice"), rcpt_params={FRIEND: "NOTIFY=FAILURE"})
    cap.wait(2)
    assert wait_queue_empty(srv)
    time.sleep(1)
    assert len(bounces(srv)) == 1


# ---------------------------------------------------------------------------------------
# sarn queue list | flush | delete
# ---------------------------------------------------------------------------------------

def test_queue_list_and_delete(sarn_mail, capture_factory):
    port = dead_port()
    srv = qserver(sarn_mail, smarthost=f"127.0.0.1:{port}", retry_min=300, retry_max=600)
    assert queue_list(srv) == []
    m = make_message("to be deleted", "x" * 1000 + "\r\n")
    assert submit(srv, [FRIEND, "second@remote.example"], m) == {}
    assert queue_files(srv), "the message is in DATA/queue/ once accepted"
    q = queue_list(srv)
    assert len(q) == 1, q
    entry = q[0]
    assert ALICE in entry["line"], entry
    sizes = [int(x) for x in re.findall(r"\b(\d+)\b", entry["line"][16:])]
    assert any(len(m) <= s <= len(m) + 4096 for s in sizes), f"no plausible size: {entry}"
    assert len(entry["rcpts"]) == 2, entry
    for r, line in zip(sorted([FRIEND, "second@remote.example"]), sorted(entry["rcpts"])):
        assert r in line and re.search(r"\bpending\b", line), line
    assert srv.cli("queue", "delete", "0123456789abcdef").returncode != 0
    r = srv.cli("queue", "delete", entry["id"])
    assert r.returncode == 0, r.stderr
    assert queue_list(srv) == []
    assert srv.cli("queue", "delete", entry["id"]).returncode != 0, "deleted twice"
    # A deleted message is never sent, even when the host comes back and the queue is flushed.
    cap = capture_factory(port=port)
    assert srv.cli("queue", "flush").returncode == 0
    time.sleep(1.2)
    assert cap.received() == [] and cap.connections == 0
    assert bounces(srv) == [], "deleting is not bouncing"


def test_queue_list_recipient_states(sarn_mail, capture_factory):
    cap = capture_factory()
    later, bad = "later@remote.example", "gone@remote.example"
    cap.fail_rcpt(later, "451 4.2.0 greylisted")
    cap.fail_rcpt(bad, "550 5.1.1 gone")
    srv = qserver(sarn_mail, smarthost=cap, retry_min=300, retry_max=600)
    assert submit(srv, [FRIEND, later, bad], make_message("states")) == {}
    cap.wait(1)

    def states():
        q = queue_list(srv)
        return q[0]["rcpts"] if q else []

    assert wait_for(lambda: any(re.search(r"\bsent\b", x) for x in states())
                    and any(re.search(r"\bfailed\b", x) for x in states()), 10), states()
    lines = {r: next((x for x in states() if r in x), "") for r in (FRIEND, later, bad)}
    assert re.search(r"\bsent\b", lines[FRIEND]), lines
    assert re.search(r"\bpending\b", lines[later]) and "451" in lines[later], lines
    assert re.search(r"\bfailed\b", lines[bad]) and "550" in lines[bad], lines


def test_queue_flush(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_data(1, "451 4.3.0 not now")
    srv = qserver(sarn_mail, smarthost=cap, retry_min=300, retry_max=600)
    assert submit(srv, [FRIEND], make_message("flush me")) == {}
    assert wait_for(lambda: cap.data_attempts >= 1, 10)
    time.sleep(1.5)
    assert cap.received() == [] and cap.data_attempts == 1, "retried before retry_min"
    r = srv.cli("queue", "flush")
    assert r.returncode == 0, r.stderr
    got = cap.wait(1, timeout=10)
    assert len(got) == 1, "flush did not retry the deferred message"
    assert wait_queue_empty(srv)


def test_big_message_intact(sarn_mail, capture_factory):
    import hashlib
    import random
    cap = capture_factory()
    srv = qserver(sarn_mail, smarthost=cap)
    rnd = random.Random(7)
    lines = []
    for i in range(40000):
        n = rnd.randrange(0, 120)
        line = "".join(rnd.choice("abc .xyz-=") for _ in range(n))
        lines.append(line)
    body = ("\r\n".join(lines) + "\r\n").encode()
    m = make_message("big one", body)
    assert submit(srv, [FRIEND], m) == {}
    got = cap.wait(1, timeout=30)
    assert len(got) == 1
    out = strip_trace(got[0].content)
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(m).hexdigest(), \
        "the message changed on its way out (dot-stuffing?)"


def test_concurrent_submissions_each_delivered_once(sarn_mail, capture_factory):
    import threading
    cap = capture_factory()
    srv = qserver(sarn_mail, smarthost=cap)
    errors = []

    def worker(k):
        try:
            for i in range(4):
                r = f"t{k}m{i}@remote.example"
                assert submit(srv, [r], make_message(f"conc {k} {i}")) == {}
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    want = {f"t{k}m{i}@remote.example" for k in range(5) for i in range(4)}
    wait_for(lambda: {r for m in cap.received() for r in m.rcpt_tos} >= want, 25)
    assert wait_queue_empty(srv)
    got = [r for m in cap.received() for r in m.rcpt_tos]
    assert sorted(got) == sorted(want), "each message exactly once"


# ---------------------------------------------------------------------------------------
# Limits and crash safety
# ---------------------------------------------------------------------------------------

def test_max_per_domain(sarn_mail, capture_factory, dns_factory):
    port = free_port(("127.0.0.1",))
    cap = capture_factory(port=port)
    cap.data_delay = 0.3
    dns = dns_factory({"remote.example": {"MX": [(10, "mx.remote.example")]},
                       "mx.remote.example": {"A": ["127.0.0.1"]}})
    srv = qserver(sarn_mail, dns=dns, remote_port=port, max_per_domain=1)
    with session(srv) as c:
        for i in range(3):
            send(c, [f"r{i}@remote.example"], make_message(f"parallel {i}"))
    wait_for(lambda: len(cap.received()) >= 3, 25)
    assert len(cap.received()) == 3
    assert cap.max_active_connections == 1, \
        f"{cap.max_active_connections} connections at once with max_per_domain=1"
    assert wait_queue_empty(srv)


def test_sigkill_during_delivery_loses_nothing(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.stall_data(8, "451 4.3.0 stalled")
    srv = qserver(sarn_mail, smarthost=cap)
    m = make_message("survives a crash", "crash body\r\n")
    assert submit(srv, [FRIEND], m) == {}
    assert wait_for(lambda: cap.data_attempts >= 1, 10), "delivery never started"
    srv.kill()
    assert cap.received() == []
    srv.start()
    got = cap.wait(1, timeout=25)
    assert len(got) >= 1, "the message was lost"
    assert all(strip_trace(g.content).endswith(m.split(b"\r\n\r\n", 1)[1]) for g in got)
    assert wait_queue_empty(srv)


def test_sigkill_right_after_250_loses_nothing(sarn_mail, capture_factory):
    port = dead_port()
    srv = qserver(sarn_mail, smarthost=f"127.0.0.1:{port}")
    for i in range(3):
        assert submit(srv, [f"r{i}@remote.example"], make_message(f"durable {i}")) == {}
    srv.kill()
    cap = capture_factory(port=port)
    srv.start()
    wait_for(lambda: len({r for g in cap.received() for r in g.rcpt_tos}) >= 3, 25)
    assert {r for g in cap.received() for r in g.rcpt_tos} == {f"r{i}@remote.example"
                                                              for i in range(3)}
    assert wait_queue_empty(srv)


def test_queue_survives_clean_restart(sarn_mail, capture_factory):
    cap = capture_factory()
    cap.fail_data(1, "451 4.3.0 later")
    srv = qserver(sarn_mail, smarthost=cap, retry_min=2, retry_max=2)
    assert submit(srv, [FRIEND], make_message("restart")) == {}
    assert wait_for(lambda: cap.data_attempts >= 1, 10)
    srv.stop_ok()
    assert queue_files(srv), "the deferred message is still in DATA/queue/ while stopped"
    srv.start()
    assert len(cap.wait(1, timeout=20)) == 1
    assert wait_queue_empty(srv)


def test_null_sender_message_never_bounces(sarn_mail, capture_factory):
    """A notice (null reverse path) that the next hop refuses is dropped, not returned: RFC
    5321 §6.1/§4.5.5. Such entries come from notices to remote senders; here one is put in
    the queue directory by hand while the server runs (its scan picks it up)."""
    cap = capture_factory()
    cap.fail_rcpt("gone@remote.example", "550 5.1.1 no such user")
    srv = qserver(sarn_mail, smarthost=cap)
    qid = "00000000deadbeef"
    qdir = srv.data / "queue"
    (qdir / f"{qid}.msg").write_bytes(make_message("a notice", frm="MAILER-DAEMON@mx.sarn.test",
                                                   to="gone@remote.example"))
    (qdir / f"{qid}.env.tmp").write_text(
        "sarn-queue 1\nfrom\t\ncreated\t%d\nnext\t0\nrcpt\tpending\t0\t0\t-\tgone@remote.example\t-\t-\n"
        % int(time.time()))
    (qdir / f"{qid}.env.tmp").rename(qdir / f"{qid}.env")
    assert wait_for(lambda: cap.rcpt_attempts.get("gone@remote.example", 0) >= 1, 20), \
        "the hand-made entry was never tried"
    assert wait_queue_empty(srv), queue_list(srv)
    time.sleep(0.5)
    assert bounces(srv) == [] and all(not is_bounce(m) for m in srv.messages("bob@example.com"))
    assert "event=notice" not in srv.log_text()


@pytest.mark.parametrize("flood,why", [(b"220-endless greeting\r\n", "more than 200 lines"),
                                       (b"x" * 65536, "longer than 65536 octets")])
def test_hostile_smarthost_endless_reply(sarn_mail, flood, why):
    """A next hop that never ends its greeting (endless continuation lines, or one line
    without an end) is cut off: the message stays queued as a temporary failure, and the
    delivery thread is free again."""
    import socket
    import threading
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    stop = threading.Event()

    def serve():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(0.5)
                while not stop.is_set():  # for ever: only sarn's limit can end it
                    conn.sendall(flood)
            except OSError:
                pass
            finally:
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        srv = qserver(sarn_mail, smarthost=f"127.0.0.1:{lsock.getsockname()[1]}",
                      retry_min=300, retry_max=600)
        assert submit(srv, [FRIEND], make_message("to a hostile relay")) == {}

        def deferred():
            q = queue_list(srv)
            return q and any("pending" in r and why in r for r in q[0]["rcpts"])
        assert wait_for(deferred, 20, 0.2), queue_list(srv)
        assert bounces(srv) == []
    finally:
        stop.set()
        t.join(5)
        lsock.close()


def test_sarn_check_reports_broken_queue_entries(sarn_mail):
    """`sarn check` covers the queue: an envelope that does not parse, or one whose message
    file is gone, is a problem (exit 1); a healthy queue is not."""
    port = dead_port()
    srv = qserver(sarn_mail, smarthost=f"127.0.0.1:{port}", retry_min=300, retry_max=600)
    assert submit(srv, [FRIEND], make_message("one")) == {}
    assert submit(srv, [FRIEND], make_message("two")) == {}
    r = srv.cli("check")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    a, b = [q["id"] for q in queue_list(srv)]
    qdir = srv.data / "queue"
    (qdir / f"{a}.env").write_text("not a queue file\n")
    (qdir / f"{b}.msg").unlink()
    r = srv.cli("check")
    out = r.stdout.decode()
    assert r.returncode == 1, out
    assert f"queue: {a}: unreadable envelope" in out and f"queue: {b}: message file missing" in out, out


@pytest.mark.parametrize("trusted", [False, True])
def test_smarthost_tls_verify(sarn_mail, capture_factory, tmp_path, trusted):
    """smarthost_tls = verify: the smarthost's certificate must chain to a trusted CA
    (smarthost_ca, else the system's) and name the host: the capture server's self-signed
    certificate is refused (the message waits, no bounce, and no password is ever sent), and
    accepted once it is the configured CA."""
    cap = capture_factory(tls=True, users={"relayuser": "pw"}, auth_require_tls=True)
    cert = str(tmp_path / "capture-cert.pem")
    over = {"smarthost_tls": "verify", "smarthost_user": "relayuser", "smarthost_password": "pw"}
    if trusted:
        over["smarthost_ca"] = cert
    srv = qserver(sarn_mail, smarthost=cap, retry_min=300, retry_max=600, **over)
    assert submit(srv, [FRIEND], make_message(f"verify {trusted}")) == {}
    if trusted:
        got = cap.wait(1)
        assert len(got) == 1 and got[0].tls and got[0].auth == "relayuser"
        assert wait_queue_empty(srv)
    else:
        def waiting():
            q = queue_list(srv)
            return q and any("pending" in r and "certificate" in r for r in q[0]["rcpts"])
        assert wait_for(waiting, 20, 0.2), queue_list(srv)
        assert cap.received() == [] and cap.auth_attempts == []
        assert bounces(srv) == []
