"""Compares what sarn's MIME parser stores with what Dovecot answers over IMAP.

For every message of the shared corpus (../shared/corpus/public/*.eml) and of
tests/interop/cases/*.eml, a throwaway Dovecot instance on 127.0.0.1 is asked for
ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE, BODY.PEEK[HEADER] and BODY.PEEK[TEXT], and
the answers are compared with the output of sarn's mime-dump tool (the header and text
are cut out of the file with the offsets sarn computed). The differences that remain are
listed in ALLOWED, each explained in docs/MIME.md ("Differences from Dovecot").

Needs: /usr/sbin/dovecot (Debian package dovecot-imapd) and a built mime-dump
(build/tests/unit/mime/mime-dump, or $SARN_MIME_DUMP). Skips otherwise.
Run: /usr/bin/python3 -m pytest tests/interop/test_dovecot_mime.py
"""
import hashlib
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from dovecot_harness import DOVECOT, Dovecot, load_corpus  # noqa: E402
from sarn_dump import run_dump  # noqa: E402

CORPUS = os.environ.get("SARN_MIME_CORPUS",
                        os.path.join(ROOT, "..", "shared", "corpus", "public"))
CASES = os.path.join(HERE, "cases")

# (message, item) -> reason; each is described in docs/MIME.md.
ALLOWED = {
    # Dovecot writes NUL bytes of BODY[] as 0x80; sarn's offsets are of the stored
    # bytes, and the IMAP layer decides how to send a NUL (RFC 3501 §4.3, RFC 3516).
    ("synthetic--nul-bytes.eml", "header"): "nul-in-body-section",
    ("synthetic--nul-bytes.eml", "text"): "nul-in-body-section",
    # Bare LF line ends: Dovecot counts and sends them as CRLF; sarn counts stored bytes.
    ("probe-s.eml", "size"): "bare-lf",
    ("probe-s.eml", "header"): "bare-lf",
    ("probe-s.eml", "text"): "bare-lf",
    ("probe4-m2.eml", "size"): "bare-lf",
    ("probe4-m2.eml", "header"): "bare-lf",
    ("probe4-m2.eml", "text"): "bare-lf",
    # "x*=..." after "name*1=...": Dovecot reuses the previous continuation index and
    # sends "x*1*"; RFC 2231 §4 makes "x*" a single extended value.
    ("probe-w.eml", "bodystructure"): "rfc2231-stale-index",
    ("probe-w.eml", "body"): "rfc2231-stale-index",
}


def find_dumper():
    env = os.environ.get("SARN_MIME_DUMP")
    if env:
        return env
    for build in ("build", "builddir"):
        p = os.path.join(ROOT, build, "tests", "unit", "mime", "mime-dump")
        if os.access(p, os.X_OK):
            return p
    return None


def load_messages():
    msgs = []
    if os.path.isdir(CORPUS):
        msgs += load_corpus(CORPUS)
    if os.path.isdir(CASES):
        msgs += load_corpus(CASES)
    return msgs


@pytest.fixture(scope="module")
def dovecot_answers():
    if not os.access(DOVECOT, os.X_OK):
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    msgs = load_messages()
    if not msgs:
        pytest.skip("no corpus")
    d = Dovecot(msgs)
    try:
        d.start()
        answers = d.fetch_all()
    except Exception as e:  # a broken local Dovecot is not sarn's failure
        pytest.skip("could not run dovecot: %s\n%s" % (e, d.log()[-2000:]))
    finally:
        d.stop()
    return msgs, answers


def test_dovecot_mime(dovecot_answers):
    dumper = find_dumper()
    if dumper is None:
        pytest.skip("mime-dump not built")
    msgs, answers = dovecot_answers
    paths = []
    for name, _ in msgs:
        p = os.path.join(CORPUS, name)
        paths.append(p if os.path.exists(p) else os.path.join(CASES, name))
    dumps = run_dump(dumper, paths)
    assert len(dumps) == len(msgs)

    identical = 0
    unexpected = []
    seen_allowed = set()
    for (name, data), dump in zip(msgs, dumps):
        ref = answers[name]
        root = dump["parts"][0]
        mine = {
            "envelope": dump["envelope"].decode("latin-1"),
            "bodystructure": dump["bodystructure"].decode("latin-1"),
            "body": dump["body"].decode("latin-1"),
            "size": dump["size"],
            "header": data[root["hoff"]:root["hoff"] + root["hsize"]],
            "text": data[root["boff"]:root["boff"] + root["bsize"]],
        }
        same = True
        for item, value in mine.items():
            if value == ref[item]:
                continue
            same = False
            if (name, item) in ALLOWED:
                seen_allowed.add((name, item))
                continue
            show = value if not isinstance(value, bytes) else hashlib.sha256(value).hexdigest()
            want = ref[item] if not isinstance(ref[item], bytes) else \
                hashlib.sha256(ref[item]).hexdigest()
            unexpected.append("%s %s\n  dovecot: %s\n  sarn:    %s" % (name, item, want, show))
        identical += same
    print("\ndovecot comparison: %d messages, %d identical, %d with allowed differences, "
          "%d unexpected differences" % (len(msgs), identical, len(msgs) - identical -
                                         len({u.split(" ")[0] for u in unexpected}),
                                         len(unexpected)))
    assert not unexpected, "\n".join(unexpected[:20])
    # an allow-list entry that no longer differs should be removed
    stale = set(k for k in ALLOWED if k[0] in answers) - seen_allowed
    assert not stale, "allowed differences no longer seen: %r" % sorted(stale)
