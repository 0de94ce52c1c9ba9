"""Start a throwaway Dovecot IMAP instance on loopback and fetch reference data.

Used by test_dovecot_mime.py; also runnable by hand:
    python3 tests/interop/dovecot_harness.py CORPUS_DIR OUT.json
writes, per message file name, Dovecot's FETCH answers as JSON.
"""
import hashlib
import imaplib
import json
import os
import pwd
import grp
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
USER = "sarn"
PASSWORD = "sarn-interop"


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _ids():
    """User and group the mail and login processes run as."""
    if os.geteuid() == 0:
        for name in ("nobody", "dovenull"):
            try:
                pw = pwd.getpwnam(name)
                return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, pw.pw_gid
            except KeyError:
                continue
    pw = pwd.getpwuid(os.geteuid())
    return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, pw.pw_gid


class Dovecot:
    def __init__(self, messages):
        """messages: list of (name, bytes)."""
        self.dir = tempfile.mkdtemp(prefix="sarn-dovecot-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.proc = None
        self.messages = messages
        user, group, uid, gid = _ids()
        home = os.path.join(self.dir, "home", USER)
        maildir = os.path.join(home, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        # Names sort by their leading time stamp, so UIDs follow list order.
        base = 1000000000
        for i, (_, data) in enumerate(messages):
            fn = "%d.M%dP1.sarn:2,S" % (base + i, i)
            with open(os.path.join(maildir, "cur", fn), "wb") as f:
                f.write(data)
        for root, dirs, files in os.walk(os.path.join(self.dir, "home")):
            for n in dirs + files:
                os.chown(os.path.join(root, n), uid, gid)
        os.chown(os.path.join(self.dir, "home"), uid, gid)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
        conf = f"""
protocols = imap
listen = 127.0.0.1
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {min(uid, 500)}
first_valid_gid = 0
mail_location = maildir:{maildir}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
"""
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: %s\n%s" % (
                    self.proc.stderr.read().decode(errors="replace"), self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("dovecot did not start:\n" + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def fetch_all(self):
        """Returns a dict name -> {envelope, bodystructure, body, size, header, text}."""
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m._mesg = lambda *a, **k: None
        m.login(USER, PASSWORD)
        typ, data = m.select("INBOX", readonly=True)
        n = int(data[0])
        out = {}
        by_hash = {hashlib.sha256(d).hexdigest(): name for name, d in self.messages}
        for seq in range(1, n + 1):
            typ, data = m.fetch(str(seq), "(BODY.PEEK[] ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE "
                                "BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
            if typ != "OK":
                raise RuntimeError("FETCH %d failed: %r" % (seq, data))
            rec = parse_fetch(data)
            name = by_hash.get(hashlib.sha256(rec.pop("BODY[]")).hexdigest())
            if name is None:
                name = self.messages[seq - 1][0]
            out[name] = rec
        m.logout()
        return out


def parse_fetch(data):
    """imaplib gives a list of tuples (prefix, literal) and trailing bytes. Rebuild the raw
    response and split it into items, keeping the exact text of each value."""
    raw = b""
    for part in data:
        if isinstance(part, tuple):
            raw += part[0] + b"\r\n" + part[1]
        else:
            raw += part
    m = re.match(rb"\d+ \(", raw)
    pos = m.end()
    items = {}
    while pos < len(raw) and raw[pos:pos + 1] != b")":
        if raw[pos:pos + 1] == b" ":
            pos += 1
            continue
        m = re.compile(rb"[A-Z0-9.\[\]]+(?:<\d+>)? ").match(raw, pos)
        key = m.group(0)[:-1].decode()
        pos = m.end()
        end = skip_value(raw, pos)
        items[key] = raw[pos:end]
        pos = end
    rec = {
        "envelope": items["ENVELOPE"].decode("latin-1"),
        "bodystructure": items["BODYSTRUCTURE"].decode("latin-1"),
        "body": items["BODY"].decode("latin-1"),
        "size": int(items["RFC822.SIZE"]),
        "header": literal_value(items["BODY[HEADER]"]),
        "text": literal_value(items["BODY[TEXT]"]),
        "BODY[]": literal_value(items["BODY[]"]),
    }
    return rec


def literal_value(v):
    m = re.match(rb"\{(\d+)\}\r\n", v)
    if m:
        return v[m.end():]
    if v == b"NIL":
        return b""
    assert v[:1] == b'"'
    return re.sub(rb'\\(.)', rb'\1', v[1:-1])


def skip_value(raw, pos):
    """Returns the end of one IMAP value (atom, string, literal, list) starting at pos."""
    c = raw[pos:pos + 1]
    if c == b"(":
        pos += 1
        while raw[pos:pos + 1] != b")":
            if raw[pos:pos + 1] == b" ":
                pos += 1
                continue
            pos = skip_value(raw, pos)
        return pos + 1
    if c == b'"':
        pos += 1
        while raw[pos:pos + 1] != b'"':
            pos += 2 if raw[pos:pos + 1] == b"\\" else 1
        return pos + 1
    if c == b"{":
        m = re.compile(rb"\{(\d+)\}\r\n").match(raw, pos)
        return m.end() + int(m.group(1))
    m = re.compile(rb"[^ ()]+").match(raw, pos)
    return m.end()


def load_corpus(directory):
    msgs = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".eml"):
            with open(os.path.join(directory, name), "rb") as f:
                msgs.append((name, f.read()))
    return msgs


if __name__ == "__main__":
    msgs = load_corpus(sys.argv[1])
    d = Dovecot(msgs)
    try:
        d.start()
        res = d.fetch_all()
    finally:
        print(d.log()[-3000:], file=sys.stderr)
        d.stop()
    for v in res.values():
        v["header"] = v["header"].decode("latin-1")
        v["text"] = hashlib.sha256(v["text"]).hexdigest() + " %d" % len(v["text"])
    with open(sys.argv[2], "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print(len(res), "messages")
