"""SIGKILL at random moments while clients submit mail for remote domains and the queue
carries it to a smarthost (an aiosmtpd capture server that answers slowly, so kills land in
the middle of deliveries too).

Every message whose submission got its 250 must reach the smarthost for each of its
recipients at least once (SMTP's at-least-once rule allows a copy more after a crash in the
middle of a delivery; the count is reported). Messages whose submission was cut by a kill
may arrive or not. At the end the queue must be empty and `sarn check` clean."""
import collections
import itertools
import random
import smtplib
import threading
import time

import pytest

from outbound import Capture
from sarntest import DEFAULT_LISTENERS, DEFAULT_PASSWORD, tls_client_context, wait_for

SENDER = "alice@example.com"
DOMAINS = ("one.example", "two.example")


def relia_mail(mid, rcpts):
    body = "".join(f"line {i} of {mid}\r\n" for i in range(random.randint(1, 200)))
    return (f"From: {SENDER}\r\nTo: {', '.join(rcpts)}\r\nSubject: {mid}\r\n"
            f"X-Relia-Id: {mid}\r\n\r\n{body}").encode()


def submitter(srv, stop, acked, attempted, ids, lock):
    while not stop.is_set():
        mid = f"q{next(ids)}"
        rcpts = [f"r{random.randint(0, 3)}@{d}" for d in random.sample(DOMAINS, random.randint(1, 2))]
        with lock:
            attempted[mid] = rcpts
        try:
            s = smtplib.SMTP(srv.host, srv.ports["submission"], timeout=10)
            s.starttls(context=tls_client_context())
            s.login(SENDER, DEFAULT_PASSWORD)
            s.sendmail(SENDER, rcpts, relia_mail(mid, rcpts))
            with lock:
                acked[mid] = rcpts
            s.quit()
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)


@pytest.mark.timeout(240)
def test_sigkill_during_queue_delivery(sarn_factory):
    cap = Capture().start()
    cap.data_delay = 0.05
    try:
        srv = sarn_factory(listeners=DEFAULT_LISTENERS + ("submission",),
                           overrides={"queue": {"smarthost": cap.address, "retry_min": 1,
                                                "retry_max": 2, "max_per_domain": 4},
                                      "submission": {"max_remote_recipients_per_hour": 0}})
        stop = threading.Event()
        acked, attempted, lock = {}, {}, threading.Lock()
        ids = itertools.count()
        threads = [threading.Thread(target=submitter, args=(srv, stop, acked, attempted, ids, lock))
                   for _ in range(3)]
        for t in threads:
            t.start()
        kills = 0
        t0 = time.monotonic()
        while kills < 12 or time.monotonic() - t0 < 30:
            time.sleep(random.uniform(0.3, 1.5))
            srv.kill()
            kills += 1
            srv.restart()
        stop.set()
        for t in threads:
            t.join(30)

        def queue_empty():
            return "queue is empty" in srv.cli("queue", "list").stdout.decode()
        assert wait_for(queue_empty, 90, 0.5), srv.cli("queue", "list").stdout.decode()

        got = collections.Counter()
        for m in cap.received():
            mid = next((l.split(b":", 1)[1].strip().decode()
                        for l in m.content.split(b"\r\n") if l.startswith(b"X-Relia-Id:")), None)
            for r in m.rcpt_tos:
                got[(mid, r.lower())] += 1
        lost = [(mid, r) for mid, rcpts in acked.items() for r in rcpts if got[(mid, r)] == 0]
        unknown = [k for k in got if k[0] not in attempted]
        dups = sum(n - 1 for n in got.values() if n > 1)
        print(f"\nRESULT queue_kill: {kills} kills, {len(attempted)} submissions tried, "
              f"{len(acked)} acknowledged, {sum(len(r) for r in acked.values())} acknowledged "
              f"recipients, {len(got)} (message, recipient) pairs delivered, {dups} extra copies, "
              f"{len(lost)} lost")
        assert lost == [], f"acknowledged but never delivered: {lost[:10]}"
        assert unknown == [], f"delivered but never submitted: {unknown[:10]}"
        r = srv.cli("check")
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        leftovers = [p.name for p in (srv.data / "queue").iterdir()]
        assert leftovers == [], leftovers
    finally:
        cap.stop()
