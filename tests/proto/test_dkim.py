"""`sarn dkim generate|sign`: keys and DNS records, and signatures that an independent
verifier (python3-dkim, from Debian) accepts, for RSA and Ed25519 over real messages."""
import re
import subprocess
from pathlib import Path

import pytest

import sarntest

dkim = pytest.importorskip("dkim")
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "public"


def run(data, *args, input=None):
    return subprocess.run([sarntest.SARN_BIN, "dkim", *args, "--data", str(data)], input=input,
                          capture_output=True, timeout=60)


def txt_record(stdout):
    """The TXT value from the printed record, its strings joined."""
    return "".join(re.findall(r'"([^"]*)"', stdout.decode())).encode()


def corpus_messages(limit=40):
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())[:limit] if CORPUS.exists() else []
    msgs = []
    for p in files:
        raw = p.read_bytes()
        # sarn stores CRLF lines; sign what it would send.
        raw = re.sub(rb"\r?\n", b"\r\n", raw)
        if re.search(rb"^From:", raw.split(b"\r\n\r\n", 1)[0], re.M | re.I):
            msgs.append(raw)
    return msgs


MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
       b"Subject:  Hello   there \r\n\tfolded\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <1@example.com>\r\n\r\nHi  Bob,   \r\n\r\nbye\t\r\n\r\n\r\n")


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_signatures_verify_independently(tmp_path, alg):
    extra = ["--ed25519"] if alg == "ed25519" else []
    gen = run(tmp_path, "generate", "example.com", "s1", *extra)
    assert gen.returncode == 0, gen.stderr
    assert b"s1._domainkey.example.com. IN TXT" in gen.stdout
    record = txt_record(gen.stdout)
    assert record.startswith(b"v=DKIM1; k=" + alg.encode() + b"; p=")
    key = tmp_path / "dkim" / "example.com" / "s1.pem"
    assert key.stat().st_mode & 0o777 == 0o600

    def dns(name, timeout=5):
        assert name == b"s1._domainkey.example.com."
        return record

    messages = [MSG] + corpus_messages()
    for msg in messages:
        out = run(tmp_path, "sign", "example.com", "s1", input=msg)
        assert out.returncode == 0, out.stderr
        signed = out.stdout
        assert signed.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if alg == "rsa" else b"ed25519"))
        assert signed.endswith(msg)
        assert all(len(l) <= 998 for l in signed[: len(signed) - len(msg)].split(b"\r\n"))
        assert dkim.verify(signed, dnsfunc=dns), msg[:200]
        # Any change to the body or a signed field breaks it.
        assert not dkim.verify(signed + b"tampered\r\n", dnsfunc=dns)
        forged = re.sub(rb"(?im)^From:[^\r]*", b"From: Mallory <m@evil.example>", signed, count=1)
        assert forged != signed and not dkim.verify(forged, dnsfunc=dns)
    assert len(messages) > 10


def test_generate_refuses_to_overwrite_and_bad_names(tmp_path):
    assert run(tmp_path, "generate", "example.com").returncode == 0
    again = run(tmp_path, "generate", "example.com")
    assert again.returncode == 1 and b"exists" in again.stderr
    for bad in ("../etc", "Example.com", "a..b", "-x.com", ""):
        assert run(tmp_path, "generate", bad).returncode == 2
    assert run(tmp_path, "generate", "example.com", "../../x").returncode == 2
    # Signing needs a From field.
    out = run(tmp_path, "sign", "example.com", input=b"Subject: x\r\n\r\nbody\r\n")
    assert out.returncode == 1 and b"From" in out.stderr
