"""Real IMAP clients from Debian against `sarn serve`: curl, mbsync (isync), offlineimap3, neomutt.

Every client runs with its own HOME under tmp_path and a subprocess timeout. Outcomes are
checked on the other side with imaplib (what the server now holds) or on disk (what the client
wrote into its Maildir), so a test fails when the server misbehaves even if the client is happy.
"""
import imaplib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sarntest import make_message, strip_trace

ALICE = "alice@example.com"
DEFAULT_FOLDERS = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
               "Archive": "\\Archive"}


def need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (tools/install-deps.sh --test)")


def run(cmd, env, timeout=60, input=None, cwd=None):
    return subprocess.run(cmd, env=env, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, cwd=cwd)


def out(r):
    return (r.stdout.decode(errors="replace") + "\n" + r.stderr.decode(errors="replace"))[-3000:]


def put(server, n, prefix="client", user=ALICE):
    """Delivers n messages with `sarn deliver`; returns the bytes sent."""
    sent = []
    for i in range(n):
        m = make_message(f"{prefix} {i}", f"unique-body {prefix}-{i}\r\n.dotted line\r\n",
                         msgid=f"<{prefix}-{i}@test>")
        server.deliver(user, m)
        sent.append(m)
    return sent


# ---- imaplib views of the server ----------------------------------------------------------

def q(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


LIST_RE = re.compile(rb'\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.*)$')


def unquote(b):
    b = b.strip()
    if b.startswith(b'"') and b.endswith(b'"'):
        b = re.sub(rb'\\(.)', rb'\1', b[1:-1])
    return b.decode()


def mailboxes(server, user=ALICE):
    """{name: set of attributes} from LIST "" "*"."""
    m = server.imap(user)
    try:
        typ, data = m.list('""', "*")
        assert typ == "OK", data
        res = {}
        for line in data:
            if isinstance(line, tuple):  # name sent as a literal
                head, lit = line
                mm = re.match(rb'\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") ', head)
                res[lit.decode()] = set(mm.group(1).decode().split())
                continue
            if line is None:
                continue
            mm = LIST_RE.match(line)
            assert mm, f"unparsable LIST line {line!r}"
            if mm.group(2) != b"NIL":
                assert mm.group(2) == b'"/"', f"delimiter is not / : {line!r}"
            res[unquote(mm.group(3))] = set(mm.group(1).decode().split())
        return res
    finally:
        m.logout()


def contents(server, mailbox="INBOX", user=ALICE):
    """{uid: (set of flags, message bytes)} of a mailbox, read without setting \\Seen."""
    m = server.imap(user)
    try:
        typ, data = m.select(q(mailbox), readonly=True)
        assert typ == "OK", (mailbox, data)
        if int(data[0]) == 0:
            return {}
        typ, data = m.uid("FETCH", "1:*", "(UID FLAGS)")
        assert typ == "OK", data
        flags = {}
        for line in data:
            mm = re.search(rb"UID (\d+)", line)
            fl = re.search(rb"FLAGS \(([^)]*)\)", line)
            flags[int(mm.group(1))] = set(fl.group(1).decode().split())
        res = {}
        for uid, fl in flags.items():
            typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert typ == "OK", data
            lits = [p[1] for p in data if isinstance(p, tuple)]
            assert len(lits) == 1, data
            res[uid] = (fl, lits[0])
        return res
    finally:
        m.logout()


def by_msgid(msgs):
    """{Message-ID: (flags, bytes)} of contents() output."""
    res = {}
    for fl, data in msgs.values():
        mm = re.search(rb"(?im)^Message-ID:\s*(<[^>]*>)", data)
        assert mm, data[:300]
        res[mm.group(1).decode()] = (fl, data)
    return res


def msgid_of(data):
    mm = re.search(rb"(?im)^Message-ID:\s*(<[^>]*>)", data)
    return mm.group(1).decode() if mm else None


def imap_append(server, mailbox, data, flags="", user=ALICE):
    m = server.imap(user)
    try:
        typ, resp = m.append(q(mailbox), flags or None, None, data)
        assert typ == "OK", resp
    finally:
        m.logout()


# ---- Maildir views of the client side ------------------------------------------------------

def maildir_msgs(d):
    """{Message-ID: (maildir flag letters, bytes, path)} of a Maildir folder (cur + new)."""
    d = Path(d)
    res = {}
    for sub in ("cur", "new"):
        if not (d / sub).is_dir():
            continue
        for p in sorted((d / sub).iterdir()):
            if not p.is_file():
                continue
            data = p.read_bytes()
            flags = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
            mid = msgid_of(data)
            assert mid not in res, f"message {mid} twice in {d}"
            res[mid] = (flags, data, p)
    return res


def write_maildir_msg(d, data, flags=None, name=None):
    """Puts a message into Maildir d: into new/ (flags None) or cur/ with the given flags."""
    d = Path(d)
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    name = name or f"{int(time.time())}.P{os.getpid()}Q{time.monotonic_ns()}.testhost"
    if flags is None:
        p = d / "new" / name
    else:
        p = d / "cur" / f"{name}:2,{flags}"
    p.write_bytes(data)
    return p


def set_maildir_flags(path, flags):
    path = Path(path)
    base = path.name.split(":2,", 1)[0]
    new = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
    os.rename(path, new)
    return new


def crlf(data):
    """Maildir clients may store messages with LF line ends; sarn serves CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def norm(data):
    """CRLF, without a leading trace header and without the X-TUID field mbsync adds to the
    messages it uploads (it finds them again by it)."""
    data = strip_trace(crlf(data))
    return re.sub(rb"(?im)^X-TUID: [^\r\n]*\r\n", b"", data, count=1)


def same_msg(a, b):
    return norm(a) == norm(b)


# ===========================================================================================
# curl
# ===========================================================================================

def curl(server, env, path="", scheme="imap", user=ALICE, password="secret", extra=(),
         timeout=40):
    need("curl")
    port = server.ports["imaps" if scheme == "imaps" else "imap"]
    return run(["curl", "-sS", "--max-time", "30", "-u", f"{user}:{password}", *extra,
                f"{scheme}://127.0.0.1:{port}/{path}"], env, timeout=timeout)


def test_curl_imap_list_mailboxes(server, client_home):
    _, env = client_home
    r = curl(server, env)
    assert r.returncode == 0, out(r)
    lines = r.stdout.decode().split("\r\n")
    assert lines[-1] == "", "listing does not end in CRLF"
    got = {}
    for l in lines[:-1]:
        mm = re.match(r'\* LIST \(([^)]*)\) "/" (.*)$', l)
        assert mm, f"unexpected LIST line from curl: {l!r}"
        got[mm.group(2).strip('"')] = set(mm.group(1).split())
    assert set(got) == DEFAULT_FOLDERS
    for name, flag in SPECIAL_USE.items():
        assert flag in got[name], (name, got[name])


def test_curl_imap_fetch_by_uid(server, client_home):
    _, env = client_home
    sent = put(server, 3)
    before = contents(server)
    uids = sorted(before)
    assert len(uids) == 3
    for i, uid in enumerate(uids):
        assert "\\Seen" not in before[uid][0]
        r = curl(server, env, f"INBOX;UID={uid}")
        assert r.returncode == 0, out(r)
        assert r.stdout == before[uid][1], "curl got other bytes than BODY.PEEK[] gives"
        assert strip_trace(r.stdout) == sent[i]
    # Sections: header only, and text only
    r = curl(server, env, f"INBOX;UID={uids[1]};SECTION=HEADER")
    assert r.returncode == 0, out(r)
    assert b"Subject: client 1\r\n" in r.stdout and r.stdout.endswith(b"\r\n\r\n")
    assert b"unique-body" not in r.stdout
    r = curl(server, env, f"INBOX;UID={uids[2]};SECTION=TEXT")
    assert r.returncode == 0, out(r)
    assert r.stdout == b"unique-body client-2\r\n.dotted line\r\n"
    # curl fetches BODY[] (not PEEK): the messages it read are \Seen now
    after = contents(server)
    assert all("\\Seen" in after[u][0] for u in uids), after
    # A message by sequence number
    r = curl(server, env, "INBOX/;MAILINDEX=2")
    assert r.returncode == 0, out(r)
    assert r.stdout == before[uids[1]][1]
    # A UID that does not exist: curl reports an error and prints no message
    r = curl(server, env, f"INBOX;UID={uids[-1] + 100}")
    assert r.returncode != 0 or r.stdout == b"", out(r)


def test_curl_imap_examine_status_search(server, client_home):
    _, env = client_home
    put(server, 4, prefix="srch")
    m = server.imap()
    m.select("INBOX")
    typ, data = m.uid("SEARCH", "ALL")
    uids = [int(x) for x in data[0].split()]
    m.uid("STORE", str(uids[2]), "+FLAGS", "(\\Flagged)")
    typ, st = m.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)")
    m.logout()
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", st[0]).group(1))
    uidnext = int(re.search(rb"UIDNEXT (\d+)", st[0]).group(1))

    r = curl(server, env, "INBOX", extra=["-X", "EXAMINE INBOX"])
    assert r.returncode == 0, out(r)
    t = r.stdout.decode()
    assert "* 4 EXISTS\r\n" in t, t
    assert f"[UIDVALIDITY {uidvalidity}]" in t, t
    assert f"[UIDNEXT {uidnext}]" in t, t
    assert re.search(r"\* FLAGS \([^)]*\\Flagged", t), t

    r = curl(server, env, "INBOX", extra=["-X", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)"])
    assert r.returncode == 0, out(r)
    mm = re.search(r"\* STATUS \"?INBOX\"? \(([^)]*)\)", r.stdout.decode())
    assert mm, r.stdout
    items = dict(zip(mm.group(1).split()[::2], mm.group(1).split()[1::2]))
    assert items == {"MESSAGES": "4", "UIDNEXT": str(uidnext), "UNSEEN": "4"}

    # URL search (curl sends SEARCH with sequence numbers) and -X UID SEARCH
    r = curl(server, env, "INBOX?SUBJECT%20%22srch%202%22")
    assert r.returncode == 0, out(r)
    assert r.stdout.decode().split() == ["*", "SEARCH", "3"], r.stdout
    r = curl(server, env, "INBOX", extra=["-X", "UID SEARCH FLAGGED"])
    assert r.returncode == 0, out(r)
    assert r.stdout.decode().split() == ["*", "SEARCH", str(uids[2])], r.stdout
    r = curl(server, env, "INBOX", extra=["-X", "UID SEARCH BODY srch-1"])
    assert r.returncode == 0, out(r)
    assert r.stdout.decode().split() == ["*", "SEARCH", str(uids[1])], r.stdout
    r = curl(server, env, "INBOX", extra=["-X", "UID SEARCH RETURN (COUNT MIN) ALL"])
    assert r.returncode == 0, out(r)
    assert re.search(r"\* ESEARCH .*COUNT 4", r.stdout.decode(), re.I), r.stdout
    assert re.search(rf"MIN {uids[0]}\b", r.stdout.decode(), re.I), r.stdout


def test_curl_imap_append(server, client_home, tmp_path):
    _, env = client_home
    msg = make_message("uploaded by curl", "body of the upload\r\n..two dots\r\n",
                       msgid="<curl-upload@test>")
    f = tmp_path / "up.eml"
    f.write_bytes(msg)
    r = curl(server, env, "Archive", extra=["-T", str(f)])
    assert r.returncode == 0, out(r)
    arch = contents(server, "Archive")
    assert len(arch) == 1, arch
    (flags, data), = arch.values()
    assert data == msg, "APPENDed bytes differ from what curl uploaded"
    assert "\\Seen" in flags, flags  # curl appends with (\Seen)
    # Upload into a mailbox that does not exist fails (no implicit create)
    r = curl(server, env, "NoSuchFolder", extra=["-T", str(f)])
    assert r.returncode != 0, out(r)
    assert "NoSuchFolder" not in mailboxes(server)
    # A custom CREATE followed by an upload into it
    r = curl(server, env, "", extra=["-X", "CREATE Projects/curl"])
    assert r.returncode == 0, out(r)
    r = curl(server, env, "Projects/curl", extra=["-T", str(f)])
    assert r.returncode == 0, out(r)
    boxes = mailboxes(server)
    assert "Projects/curl" in boxes, boxes
    assert [d for _, d in contents(server, "Projects/curl").values()] == [msg]


@pytest.mark.parametrize("mode", ["imaps-verify", "starttls-verify", "imaps-insecure"])
def test_curl_imap_tls(server, client_home, mode):
    _, env = client_home
    sent = put(server, 1, prefix="tls")
    uid = next(iter(contents(server)))
    if mode == "imaps-verify":
        scheme, extra = "imaps", ["--cacert", str(server.cert_path)]
    elif mode == "starttls-verify":
        scheme, extra = "imap", ["--ssl-reqd", "--cacert", str(server.cert_path)]
    else:
        scheme, extra = "imaps", ["--insecure"]
    r = curl(server, env, "", scheme=scheme, extra=extra)
    assert r.returncode == 0, out(r)
    assert "INBOX" in r.stdout.decode() and "Archive" in r.stdout.decode()
    r = curl(server, env, f"INBOX;UID={uid}", scheme=scheme, extra=extra + ["-v"])
    assert r.returncode == 0, out(r)
    assert strip_trace(r.stdout) == sent[0]
    if mode == "starttls-verify":
        assert b"STARTTLS" in r.stderr, out(r)


@pytest.mark.parametrize("opts", [["--login-options", "AUTH=PLAIN"],
                                  ["--login-options", "AUTH=LOGIN"],
                                  ["--login-options", "AUTH=PLAIN", "--sasl-ir"],
                                  ["--login-options", "AUTH=*"]])
def test_curl_imap_auth_mechanisms(server, client_home, opts):
    _, env = client_home
    r = curl(server, env, "INBOX", extra=opts + ["-X", "EXAMINE INBOX"])
    assert r.returncode == 0, out(r)
    assert "EXISTS" in r.stdout.decode()


def test_curl_imap_wrong_password(server, client_home):
    _, env = client_home
    r = curl(server, env, password="wrong")
    assert r.returncode == 67, out(r)  # CURLE_LOGIN_DENIED
    r = curl(server, env, user="nobody@example.com")
    assert r.returncode == 67, out(r)
    r = curl(server, env, user="bob@example.com", password="bobsecret")
    assert r.returncode == 0, out(r)


# ===========================================================================================
# mbsync (isync)
# ===========================================================================================

def mbsync_config(server, tmp_path, ssl="None", user=ALICE, password="secret"):
    maildir = tmp_path / "mbsync-mail"
    maildir.mkdir(exist_ok=True)
    port = server.ports["imaps" if ssl == "IMAPS" else "imap"]
    cert = f"CertificateFile {server.cert_path}\n" if ssl != "None" else ""
    rc = tmp_path / "mbsyncrc"
    # "localhost": the test certificate names it (mbsync does not match IP addresses)
    rc.write_text(f"""IMAPAccount sarn
Host localhost
Port {port}
User {user}
Pass {password}
SSLType {ssl}
{cert}Timeout 20
PipelineDepth 8

IMAPStore sarn-far
Account sarn

MaildirStore sarn-near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sarn
Far :sarn-far:
Near :sarn-near:
Patterns *
Create Both
Remove None
Expunge Both
CopyArrivalDate yes
SyncState *
""")
    return rc, maildir


def mbsync(rc, env):
    need("mbsync")
    r = run(["mbsync", "-c", str(rc), "-V", "-a"], env, timeout=90)
    assert r.returncode == 0, f"mbsync failed:\n{out(r)}"
    return r


def test_mbsync_initial_pull(server, client_home, tmp_path):
    _, env = client_home
    sent = put(server, 3, prefix="pull")
    arch = make_message("archived", "archived body\r\n", msgid="<pull-archived@test>")
    imap_append(server, "Archive", arch, flags="(\\Flagged \\Seen)")
    rc, maildir = mbsync_config(server, tmp_path)
    mbsync(rc, env)
    for name in DEFAULT_FOLDERS:
        assert (maildir / name / "cur").is_dir(), f"folder {name} not created near: " \
                                                  f"{sorted(os.listdir(maildir))}"
    near = maildir_msgs(maildir / "INBOX")
    assert set(near) == {f"<pull-{i}@test>" for i in range(3)}
    for i, m in enumerate(sent):
        flags, data, _ = near[f"<pull-{i}@test>"]
        assert norm(data) == m
        assert flags == "", flags
    a = maildir_msgs(maildir / "Archive")
    assert list(a) == ["<pull-archived@test>"]
    assert a["<pull-archived@test>"][0] == "FS"
    assert same_msg(a["<pull-archived@test>"][1], arch)
    # A second run changes nothing on either side
    far_before = contents(server)
    mbsync(rc, env)
    assert maildir_msgs(maildir / "INBOX").keys() == near.keys()
    assert contents(server) == far_before


@pytest.mark.timeout(180)
def test_mbsync_two_way(server, client_home, tmp_path):
    _, env = client_home
    put(server, 5, prefix="tw")
    rc, maildir = mbsync_config(server, tmp_path)
    mbsync(rc, env)
    near = maildir_msgs(maildir / "INBOX")
    assert len(near) == 5

    # --- far side changes (another IMAP client)
    far_new = make_message("far new", "arrived on the server\r\n", msgid="<tw-far-new@test>")
    server.deliver(ALICE, far_new)
    m = server.imap()
    m.select("INBOX")
    uid_of = {msgid_of(d): u for u, (_, d) in contents(server).items()}
    m.uid("STORE", str(uid_of["<tw-0@test>"]), "+FLAGS", "(\\Flagged)")
    m.uid("STORE", str(uid_of["<tw-1@test>"]), "+FLAGS", "(\\Deleted)")
    m.expunge()
    assert m.create("Projects/far")[0] == "OK"
    far_folder_msg = make_message("in far folder", "x\r\n", msgid="<tw-far-folder@test>")
    m.append("Projects/far", "(\\Seen)", None, far_folder_msg)
    m.logout()

    # --- near side changes (the local Maildir)
    near_new = make_message("near new", "written locally\r\n", msgid="<tw-near-new@test>")
    write_maildir_msg(maildir / "INBOX", near_new)
    set_maildir_flags(near["<tw-2@test>"][2], "S")        # read locally
    set_maildir_flags(near["<tw-3@test>"][2], "FR")       # flagged + answered locally
    os.unlink(near["<tw-4@test>"][2])                      # deleted locally
    near_folder_msg = make_message("in near folder", "y\r\n", msgid="<tw-near-folder@test>")
    write_maildir_msg(maildir / "NearFolder", near_folder_msg, flags="S")

    mbsync(rc, env)

    # --- far side now
    boxes = mailboxes(server)
    assert "NearFolder" in boxes, boxes
    far = by_msgid(contents(server))
    assert set(far) == {"<tw-0@test>", "<tw-2@test>", "<tw-3@test>", "<tw-far-new@test>",
                        "<tw-near-new@test>"}, sorted(far)
    assert same_msg(far["<tw-near-new@test>"][1], near_new)
    assert "\\Seen" in far["<tw-2@test>"][0], far["<tw-2@test>"]
    assert {"\\Flagged", "\\Answered"} <= far["<tw-3@test>"][0], far["<tw-3@test>"]
    assert "\\Flagged" in far["<tw-0@test>"][0]
    nf = by_msgid(contents(server, "NearFolder"))
    assert list(nf) == ["<tw-near-folder@test>"]
    assert "\\Seen" in nf["<tw-near-folder@test>"][0]
    assert same_msg(nf["<tw-near-folder@test>"][1], near_folder_msg)

    # --- near side now
    near = maildir_msgs(maildir / "INBOX")
    assert set(near) == set(far), (sorted(near), sorted(far))
    assert "F" in near["<tw-0@test>"][0]
    assert norm(near["<tw-far-new@test>"][1]) == far_new
    pf = maildir_msgs(maildir / "Projects" / "far")
    assert list(pf) == ["<tw-far-folder@test>"] and pf["<tw-far-folder@test>"][0] == "S"
    assert same_msg(pf["<tw-far-folder@test>"][1], far_folder_msg)

    # --- a flag removed on the far side, a message trashed on the near side
    m = server.imap()
    m.select("INBOX")
    uid_of = {msgid_of(d): u for u, (_, d) in contents(server).items()}
    m.uid("STORE", str(uid_of["<tw-0@test>"]), "-FLAGS", "(\\Flagged)")
    m.logout()
    set_maildir_flags(near["<tw-3@test>"][2], "FRT")
    mbsync(rc, env)
    far = by_msgid(contents(server))
    assert "<tw-3@test>" not in far, sorted(far)
    assert "\\Flagged" not in far["<tw-0@test>"][0]
    near = maildir_msgs(maildir / "INBOX")
    assert "F" not in near["<tw-0@test>"][0]
    assert "<tw-3@test>" not in near


@pytest.mark.parametrize("ssl", ["IMAPS", "STARTTLS"])
def test_mbsync_tls(server, client_home, tmp_path, ssl):
    _, env = client_home
    sent = put(server, 2, prefix="tls")
    rc, maildir = mbsync_config(server, tmp_path, ssl=ssl)
    mbsync(rc, env)
    near = maildir_msgs(maildir / "INBOX")
    assert set(near) == {"<tls-0@test>", "<tls-1@test>"}
    assert norm(near["<tls-1@test>"][1]) == sent[1]
    upload = make_message("up over tls", "z\r\n", msgid="<tls-up@test>")
    write_maildir_msg(maildir / "Drafts", upload, flags="D")
    mbsync(rc, env)
    d = by_msgid(contents(server, "Drafts"))
    assert list(d) == ["<tls-up@test>"] and "\\Draft" in d["<tls-up@test>"][0]


def test_mbsync_wrong_password(server, client_home, tmp_path):
    _, env = client_home
    need("mbsync")
    rc, maildir = mbsync_config(server, tmp_path, password="wrong")
    r = run(["mbsync", "-c", str(rc), "-a"], env, timeout=60)
    assert r.returncode != 0, out(r)
    assert not (maildir / "INBOX").exists()


# ===========================================================================================
# offlineimap3
# ===========================================================================================

def offlineimap_config(server, tmp_path, ssl=False):
    maildir = tmp_path / "oimap-mail"
    maildir.mkdir(exist_ok=True)
    meta = tmp_path / "oimap-meta"
    if ssl:
        tls = f"ssl = yes\nsslcacertfile = {server.cert_path}\nremoteport = {server.ports['imaps']}\n"
    else:
        tls = f"ssl = no\nstarttls = no\nremoteport = {server.ports['imap']}\n"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(f"""[general]
accounts = sarn
metadata = {meta}
ui = basic
maxsyncaccounts = 1

[Account sarn]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {maildir}
sep = /

[Repository far]
type = IMAP
remotehost = localhost
remoteuser = {ALICE}
remotepass = secret
{tls}maxconnections = 2
holdconnectionopen = no
""")
    return rc, maildir


def offlineimap(rc, env):
    need("offlineimap")
    r = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], env, timeout=120)
    text = out(r)
    assert r.returncode == 0, f"offlineimap failed:\n{text}"
    assert "ERROR" not in text and "Traceback" not in text, text
    return r


@pytest.mark.timeout(240)
@pytest.mark.parametrize("ssl", [False, True])
def test_offlineimap_sync_and_resync(server, client_home, tmp_path, ssl):
    _, env = client_home
    sent = put(server, 4, prefix="oi")
    rc, maildir = offlineimap_config(server, tmp_path, ssl=ssl)
    offlineimap(rc, env)
    for name in DEFAULT_FOLDERS:
        assert (maildir / name / "cur").is_dir(), sorted(os.listdir(maildir))
    near = maildir_msgs(maildir / "INBOX")
    assert set(near) == {f"<oi-{i}@test>" for i in range(4)}
    for i in range(4):
        assert norm(near[f"<oi-{i}@test>"][1]) == sent[i]
        assert near[f"<oi-{i}@test>"][0] == ""

    # far side: new message, a flag, an expunge, a new folder with a message
    far_new = make_message("far new", "server side\r\n", msgid="<oi-far-new@test>")
    server.deliver(ALICE, far_new)
    m = server.imap()
    m.select("INBOX")
    uid_of = {msgid_of(d): u for u, (_, d) in contents(server).items()}
    m.uid("STORE", str(uid_of["<oi-0@test>"]), "+FLAGS", "(\\Flagged)")
    m.uid("STORE", str(uid_of["<oi-1@test>"]), "+FLAGS", "(\\Deleted)")
    m.expunge()
    assert m.create("FarFolder")[0] == "OK"
    far_folder_msg = make_message("far folder", "f\r\n", msgid="<oi-far-folder@test>")
    m.append("FarFolder", None, None, far_folder_msg)
    m.logout()
    # near side: new message, flags, a deletion, a new folder with a message
    near_new = make_message("near new", "local side\r\n", msgid="<oi-near-new@test>")
    write_maildir_msg(maildir / "INBOX", near_new, flags="S")
    set_maildir_flags(near["<oi-2@test>"][2], "RS")
    os.unlink(near["<oi-3@test>"][2])
    near_folder_msg = make_message("near folder", "n\r\n", msgid="<oi-near-folder@test>")
    write_maildir_msg(maildir / "LocalFolder", near_folder_msg)

    offlineimap(rc, env)

    far = by_msgid(contents(server))
    assert set(far) == {"<oi-0@test>", "<oi-2@test>", "<oi-far-new@test>",
                        "<oi-near-new@test>"}, sorted(far)
    assert {"\\Answered", "\\Seen"} <= far["<oi-2@test>"][0], far["<oi-2@test>"][0]
    assert "\\Seen" in far["<oi-near-new@test>"][0]
    assert same_msg(far["<oi-near-new@test>"][1], near_new)
    assert "LocalFolder" in mailboxes(server)
    lfm = by_msgid(contents(server, "LocalFolder"))
    assert list(lfm) == ["<oi-near-folder@test>"]
    assert same_msg(lfm["<oi-near-folder@test>"][1], near_folder_msg)

    near = maildir_msgs(maildir / "INBOX")
    assert set(near) == set(far), (sorted(near), sorted(far))
    assert "F" in near["<oi-0@test>"][0]
    assert norm(near["<oi-far-new@test>"][1]) == far_new
    ff = maildir_msgs(maildir / "FarFolder")
    assert list(ff) == ["<oi-far-folder@test>"]
    assert same_msg(ff["<oi-far-folder@test>"][1], far_folder_msg)

    # third run: nothing to do, nothing changes
    far_before = contents(server)
    offlineimap(rc, env)
    assert contents(server) == far_before
    assert maildir_msgs(maildir / "INBOX").keys() == near.keys()


# ===========================================================================================
# neomutt (driven through `push` in its rc file, on a pseudo terminal made by `script`)
# ===========================================================================================

def neomutt(server, env, tmp_path, push, url_mailbox="INBOX", tls=False, timeout=60, extra="",
            debug=False):
    need("neomutt")
    need("script")
    if tls:
        url = f"imaps://127.0.0.1:{server.ports['imaps']}/"
        tlsconf = (f'set ssl_force_tls = yes\nset ssl_ca_certificates_file = "{server.cert_path}"\n'
                   f'set ssl_verify_host = yes\n')
    else:
        url = f"imap://127.0.0.1:{server.ports['imap']}/"
        tlsconf = "set ssl_starttls = no\nset ssl_force_tls = no\n"
    rc = tmp_path / "neomuttrc"
    rc.write_text(f"""set imap_user = "{ALICE}"
set imap_pass = "secret"
set folder = "{url}"
set spoolfile = "+INBOX"
{tlsconf}set confirmappend = no
set confirmcreate = no
set delete = yes
set move = no
set mark_old = no
set quit = yes
set wait_key = no
set sort = mailbox-order
set header_cache = ""
set message_cachedir = ""
set certificate_file = "{tmp_path}/neomutt-certs"
set imap_check_subscribed = no
{extra}push "{push}"
""")
    dbg = f"-d 5 -l {tmp_path}/neomutt.log " if debug else ""
    cmd = f"neomutt {dbg}-n -F {rc} -f {url}{url_mailbox}"
    env = dict(env, TERM="xterm", COLUMNS="120", LINES="40")
    r = run(["script", "-qfec", cmd, "/dev/null"], env, timeout=timeout, input=b"")
    screen = r.stdout.decode(errors="replace")
    assert r.returncode == 0, f"neomutt failed rc={r.returncode}:\n{screen[-2000:]}"
    return screen


def neomutt_imap_trace(tmp_path, n=40):
    """The IMAP lines of a neomutt debug log (run with debug=True)."""
    lines = []
    for p in sorted(tmp_path.glob("neomutt.log*")):
        for l in p.read_text(errors="replace").splitlines():
            mm = re.search(r"mutt_socket_(?:write|readln)_d\(\) \d+([<>] .*)", l)
            if mm:
                lines.append(mm.group(1)[:160])
            elif re.match(r"a\d{4} [A-Z]", l):  # a command logged on a line of its own
                lines.append("> " + l[:158])
    return "\n".join(lines[-n:])


def test_neomutt_copy_save_flag_delete(server, client_home, tmp_path):
    _, env = client_home
    sent = put(server, 4, prefix="nm")
    push = ("<tag-pattern>~s 'nm 0'<enter><tag-prefix><copy-message>=Archive<enter>"
            "<untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nm 1'<enter><tag-prefix><save-message>=NeoFolder<enter>"
            "<untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nm 2'<enter><tag-prefix><flag-message>"
            "<untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nm 3'<enter><tag-prefix><delete-message>"
            "<untag-pattern>~A<enter>"
            "<sync-mailbox><quit>")
    neomutt(server, env, tmp_path, push)
    boxes = mailboxes(server)
    assert "NeoFolder" in boxes, boxes
    inbox = by_msgid(contents(server))
    assert set(inbox) == {"<nm-0@test>", "<nm-2@test>"}, sorted(inbox)
    assert "\\Flagged" in inbox["<nm-2@test>"][0], inbox["<nm-2@test>"][0]
    assert "\\Flagged" not in inbox["<nm-0@test>"][0]
    arch = by_msgid(contents(server, "Archive"))
    assert list(arch) == ["<nm-0@test>"]
    assert arch["<nm-0@test>"][1] == inbox["<nm-0@test>"][1]
    assert strip_trace(arch["<nm-0@test>"][1]) == sent[0]
    nf = by_msgid(contents(server, "NeoFolder"))
    assert list(nf) == ["<nm-1@test>"]
    assert strip_trace(nf["<nm-1@test>"][1]) == sent[1]


def test_neomutt_folder_browser(server, client_home, tmp_path):
    """neomutt reads the folder list (LIST), finds Junk in its browser and opens it."""
    _, env = client_home
    junk = make_message("junk one", "spam\r\n", msgid="<nm-junk@test>")
    imap_append(server, "Junk", junk)
    put(server, 1, prefix="nmb")
    # "?" at the folder prompt shows the (empty) `mailboxes` list; <toggle-mailboxes> switches
    # to the browser of $folder, which is filled by LIST.
    push = ("<change-folder>?<toggle-mailboxes><search>Junk<enter><select-entry>"
            "<tag-pattern>~A<enter><tag-prefix><flag-message><sync-mailbox><quit>")
    neomutt(server, env, tmp_path, push)
    j = by_msgid(contents(server, "Junk"))
    assert list(j) == ["<nm-junk@test>"]
    assert "\\Flagged" in j["<nm-junk@test>"][0], j
    inbox = by_msgid(contents(server))
    assert "\\Flagged" not in inbox["<nmb-0@test>"][0]


def test_neomutt_imaps_read_and_move(server, client_home, tmp_path):
    _, env = client_home
    sent = put(server, 2, prefix="nms")
    # Display message 1 in the pager (a real BODY[] fetch: \Seen), then move message 2 to Trash
    push = ("<tag-pattern>~s 'nms 0'<enter><tag-prefix><display-message><exit>"
            "<untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nms 1'<enter><tag-prefix><save-message>=Trash<enter>"
            "<sync-mailbox><quit>")
    screen = neomutt(server, env, tmp_path, push, tls=True)
    inbox = by_msgid(contents(server))
    assert list(inbox) == ["<nms-0@test>"], sorted(inbox)
    assert "\\Seen" in inbox["<nms-0@test>"][0], (inbox, screen[-1500:])
    t = by_msgid(contents(server, "Trash"))
    assert list(t) == ["<nms-1@test>"]
    assert strip_trace(t["<nms-1@test>"][1]) == sent[1]


# ===========================================================================================
# bigger messages, dates, names
# ===========================================================================================

def big_message(tag, size):
    """A message of about `size` bytes: text lines, some long, some starting with a dot."""
    lines = []
    n = 0
    total = 0
    while total < size:
        if n % 7 == 0:
            l = f".line {n} of {tag} " + "z" * 900
        else:
            l = f"line {n} of {tag} " + "abcdefghij" * (n % 12)
        lines.append(l)
        total += len(l) + 2
        n += 1
    return make_message(f"big {tag}", "\r\n".join(lines) + "\r\n", msgid=f"<big-{tag}@test>")


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
def test_curl_imap_big_upload_and_download(server, client_home, tmp_path, scheme):
    _, env = client_home
    msg = big_message(f"curl-{scheme}", 6 << 20)
    f = tmp_path / "big.eml"
    f.write_bytes(msg)
    extra = ["--insecure"] if scheme == "imaps" else []
    r = curl(server, env, "Drafts", scheme=scheme, extra=extra + ["-T", str(f)])
    assert r.returncode == 0, out(r)
    d = contents(server, "Drafts")
    assert [data for _, data in d.values()] == [msg]
    uid = next(iter(d))
    r = curl(server, env, f"Drafts;UID={uid}", scheme=scheme, extra=extra)
    assert r.returncode == 0, out(r)
    assert r.stdout == msg


def internaldates(server, mailbox="INBOX", user=ALICE):
    """{Message-ID: INTERNALDATE as a Unix time}."""
    m = server.imap(user)
    try:
        typ, data = m.select(q(mailbox), readonly=True)
        assert typ == "OK", data
        typ, data = m.fetch("1:*", "(INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK", data
        res = {}
        for part in data:
            if isinstance(part, tuple):
                t = imaplib.Internaldate2tuple(part[0])
                assert t is not None, part[0]
                res[msgid_of(part[1])] = time.mktime(t)
        return res
    finally:
        m.logout()


@pytest.mark.timeout(180)
def test_mbsync_big_messages_dates_and_many_flags(server, client_home, tmp_path):
    _, env = client_home
    far_big = big_message("mbsync-far", 3 << 20)
    imap_append(server, "INBOX", far_big)
    m = server.imap()
    m.append("Archive", None, '"02-Mar-2021 10:20:30 +0000"',
             make_message("dated", "d\r\n", msgid="<dated@test>"))
    m.logout()
    sent = put(server, 150, prefix="many")
    rc, maildir = mbsync_config(server, tmp_path)
    mbsync(rc, env)
    near = maildir_msgs(maildir / "INBOX")
    assert len(near) == 151
    assert all(norm(near[f"<many-{i}@test>"][1]) == sent[i] for i in range(150))
    assert norm(near["<big-mbsync-far@test>"][1]) == far_big
    # CopyArrivalDate: the near file's mtime is the INTERNALDATE
    arch = maildir_msgs(maildir / "Archive")
    want = time.mktime(time.strptime("2021-03-02 10:20:30", "%Y-%m-%d %H:%M:%S")) - time.timezone
    assert abs(arch["<dated@test>"][2].stat().st_mtime - want) < 2, \
        (arch["<dated@test>"][2].stat().st_mtime, want)

    # near: a big new message with an old mtime, and flags on 150 messages at once
    near_big = big_message("mbsync-near", 3 << 20)
    p = write_maildir_msg(maildir / "INBOX", near_big, flags="S")
    when = 1500000000  # 2017-07-14T02:40:00Z
    os.utime(p, (when, when))
    for i in range(150):
        set_maildir_flags(near[f"<many-{i}@test>"][2], "S" if i % 2 else "FS")
    mbsync(rc, env)
    far = by_msgid(contents(server))
    assert len(far) == 152
    assert norm(far["<big-mbsync-near@test>"][1]) == near_big
    for i in range(150):
        want_flags = {"\\Seen"} if i % 2 else {"\\Seen", "\\Flagged"}
        assert far[f"<many-{i}@test>"][0] == want_flags, (i, far[f"<many-{i}@test>"][0])
    dates = internaldates(server)
    assert abs(dates["<big-mbsync-near@test>"] - when) < 2, (dates["<big-mbsync-near@test>"],
                                                               when)


@pytest.mark.timeout(180)
def test_mbsync_folder_removal_and_hierarchy(server, client_home, tmp_path):
    _, env = client_home
    m = server.imap()
    for name in ("Lists", "Lists/sarn", "Lists/sarn/old", "Gone"):
        assert m.create(name)[0] == "OK", name
    m.append("Lists/sarn/old", None, None, make_message("deep", "d\r\n", msgid="<deep@test>"))
    m.logout()
    rc, maildir = mbsync_config(server, tmp_path)
    rc.write_text(rc.read_text().replace("Remove None", "Remove Both"))
    mbsync(rc, env)
    assert list(maildir_msgs(maildir / "Lists" / "sarn" / "old")) == ["<deep@test>"]
    assert (maildir / "Gone" / "cur").is_dir()
    # near: a new nested folder; far: the empty folder "Gone" is deleted
    write_maildir_msg(maildir / "Lists" / "near" / "deeper", make_message(
        "nested", "n\r\n", msgid="<nested@test>"), flags="")
    m = server.imap()
    assert m.delete("Gone")[0] == "OK"
    m.logout()
    mbsync(rc, env)
    boxes = mailboxes(server)
    assert "Lists/near/deeper" in boxes, sorted(boxes)
    assert list(by_msgid(contents(server, "Lists/near/deeper"))) == ["<nested@test>"]
    assert "\\HasChildren" in boxes["Lists"], boxes["Lists"]
    assert "\\HasNoChildren" in boxes["Lists/sarn/old"], boxes["Lists/sarn/old"]
    assert not (maildir / "Gone").exists(), "far DELETE not propagated to the near side"


@pytest.mark.timeout(180)
def test_offlineimap_utf8_folder_names(server, client_home, tmp_path):
    """offlineimap's utf8foldernames: the server's modified UTF-7 names become UTF-8 Maildir
    folders and back."""
    _, env = client_home
    m = server.imap()
    assert m.create('"Entw&APw-rfe"')[0] == "OK"          # Entwürfe
    assert m.create('"&AMQ-rger/Gr&APYA3w-e"')[0] == "OK"  # Ärger/Größe
    m.append('"&AMQ-rger/Gr&APYA3w-e"', None, None,
             make_message("umlaut", "u\r\n", msgid="<umlaut@test>"))
    m.logout()
    rc, maildir = offlineimap_config(server, tmp_path)
    rc.write_text(rc.read_text().replace("remoterepository = far\n",
                                         "remoterepository = far\nutf8foldernames = yes\n"))
    offlineimap(rc, env)
    assert (maildir / "Entwürfe" / "cur").is_dir(), sorted(os.listdir(maildir))
    assert list(maildir_msgs(maildir / "Ärger" / "Größe")) == ["<umlaut@test>"]
    write_maildir_msg(maildir / "Café", make_message("cafe", "c\r\n", msgid="<cafe@test>"))
    write_maildir_msg(maildir / "Tom & Jerry", make_message("tj", "t\r\n", msgid="<tj@test>"))
    offlineimap(rc, env)
    boxes = mailboxes(server)
    assert "Caf&AOk-" in boxes, sorted(boxes)
    assert "Tom &- Jerry" in boxes, sorted(boxes)
    assert list(by_msgid(contents(server, "Caf&AOk-"))) == ["<cafe@test>"]
    assert list(by_msgid(contents(server, "Tom &- Jerry"))) == ["<tj@test>"]
    # and once more: nothing new, nothing duplicated
    offlineimap(rc, env)
    assert len(contents(server, "Caf&AOk-")) == 1
    assert list(maildir_msgs(maildir / "Tom & Jerry")) == ["<tj@test>"]


def test_neomutt_reply_marks_answered_and_saves_to_sent(server, client_home, tmp_path):
    """A reply: the original gets \\Answered on the server and a copy of the reply is
    APPENDed to Sent (record); a postponed message goes to Drafts."""
    _, env = client_home
    put(server, 2, prefix="nmr")
    sent_file = tmp_path / "sendmail-out.eml"
    sendmail = tmp_path / "fake-sendmail"
    sendmail.write_text(f"#!/bin/sh\ncat > {sent_file}\n")
    sendmail.chmod(0o755)
    extra = f"""set sendmail = "{sendmail}"
set editor = "/bin/true"
set abort_unmodified = no
set fast_reply = yes
set include = yes
set edit_headers = no
set autoedit = no
set copy = yes
set record = "+Sent"
set postponed = "+Drafts"
set from = "alice@example.com"
set use_from = yes
set crypt_autosign = no
set crypt_opportunistic_encrypt = no
"""
    push = ("<search>~s 'nmr 1'<enter><reply><send-message>"
            "<search>~s 'nmr 0'<enter><reply><postpone-message>"
            "<sync-mailbox><quit>")
    screen = neomutt(server, env, tmp_path, push, extra=extra)
    assert sent_file.exists(), f"neomutt did not send: {screen[-1500:]}"
    reply = sent_file.read_bytes()
    assert b"Subject: Re: nmr 1" in reply, reply[:500]
    inbox = by_msgid(contents(server))
    assert "\\Answered" in inbox["<nmr-1@test>"][0], inbox
    assert "\\Answered" not in inbox["<nmr-0@test>"][0], inbox
    sent_box = contents(server, "Sent")
    assert len(sent_box) == 1, sent_box
    (flags, data), = sent_box.values()
    assert b"Subject: Re: nmr 1" in data and b"In-Reply-To: <nmr-1@test>" in data, data[:600]
    assert "\\Seen" in flags
    drafts = contents(server, "Drafts")
    assert len(drafts) == 1, drafts
    (flags, data), = drafts.values()
    assert b"Subject: Re: nmr 0" in data, data[:600]
    assert "\\Draft" in flags, flags


def test_neomutt_sees_changes_of_another_session(server, client_home, tmp_path):
    """While neomutt has INBOX open, another session delivers, flags and expunges (run from
    neomutt's <shell-escape>); neomutt's next poll must bring the new message in, learn the
    flag and drop the expunged one, so its pattern actions hit the right messages."""
    _, env = client_home
    put(server, 4, prefix="nmx")
    other = tmp_path / "other-session.py"
    other.write_text(f"""import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", {server.ports['imap']}, timeout=15)
m.login("{ALICE}", "secret")
m.select("INBOX")
msg = (b"From: x@remote.test\\r\\nSubject: nmx new\\r\\nMessage-ID: <nmx-new@test>\\r\\n"
       b"\\r\\narrived while neomutt was open\\r\\n")
assert m.append("INBOX", None, None, msg)[0] == "OK"
def uid(mid):
    typ, d = m.uid("SEARCH", "HEADER", "Message-ID", mid)
    return d[0].decode()
assert m.uid("STORE", uid("<nmx-0@test>"), "+FLAGS", "(\\\\Flagged)")[0] == "OK"
assert m.uid("STORE", uid("<nmx-1@test>"), "+FLAGS", "(\\\\Deleted)")[0] == "OK"
assert m.expunge()[0] == "OK"
m.logout()
open("{tmp_path}/other-done", "w").write("ok")
""")
    push = (f"<shell-escape>/usr/bin/python3 {other}<enter>"
            "<imap-fetch-mail><check-new>"
            "<tag-pattern>~F<enter><tag-prefix><copy-message>=Junk<enter><untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nmx new'<enter><tag-prefix><copy-message>=Archive<enter>"
            "<untag-pattern>~A<enter>"
            "<tag-pattern>~s 'nmx 2'<enter><tag-prefix><delete-message>"
            "<sync-mailbox><quit>")
    screen = neomutt(server, env, tmp_path, push, extra="set imap_idle = yes\n", debug=True)
    assert (tmp_path / "other-done").exists(), f"the other session failed: {screen[-1500:]}"
    trace = neomutt_imap_trace(tmp_path, 60)
    inbox = by_msgid(contents(server))
    assert set(inbox) == {"<nmx-0@test>", "<nmx-3@test>", "<nmx-new@test>"}, \
        (sorted(inbox), trace)
    assert list(by_msgid(contents(server, "Junk"))) == ["<nmx-0@test>"], trace
    assert list(by_msgid(contents(server, "Archive"))) == ["<nmx-new@test>"], \
        f"neomutt lost track of the mailbox after the other session's changes:\n{trace}"


def test_neomutt_browser_create_rename_delete(server, client_home, tmp_path):
    """Folder management from neomutt's browser: CREATE, RENAME of a folder with children
    (they move along), DELETE."""
    _, env = client_home
    m = server.imap()
    for name in ("Clubs", "Clubs/chess", "Doomed"):
        assert m.create(name)[0] == "OK", name
    m.append("Clubs/chess", None, None, make_message("chess", "c\r\n", msgid="<chess@test>"))
    m.logout()
    push = ("<change-folder>?<toggle-mailboxes>"
            "<create-mailbox>NeoCreated<enter>"
            "<search>Clubs<enter><rename-mailbox><kill-line>Vereine<enter>"
            "<search>Doomed<enter><delete-mailbox>y"
            "<exit><quit>")
    screen = neomutt(server, env, tmp_path, push)
    boxes = mailboxes(server)
    assert "NeoCreated" in boxes, (sorted(boxes), screen[-1500:])
    assert "Doomed" not in boxes, sorted(boxes)
    assert "Clubs" not in boxes and "Clubs/chess" not in boxes, sorted(boxes)
    assert {"Vereine", "Vereine/chess"} <= set(boxes), sorted(boxes)
    assert list(by_msgid(contents(server, "Vereine/chess"))) == ["<chess@test>"]


@pytest.mark.parametrize("mech", ["LOGIN", "PLAIN"])
def test_mbsync_auth_mechs(server, client_home, tmp_path, mech):
    """AuthMechs LOGIN is the IMAP LOGIN command; PLAIN is AUTHENTICATE PLAIN (over STARTTLS,
    since mbsync will not send a password in the clear by SASL)."""
    _, env = client_home
    put(server, 1, prefix="auth")
    rc, maildir = mbsync_config(server, tmp_path, ssl="STARTTLS")
    rc.write_text(rc.read_text().replace("Timeout 20\n", f"Timeout 20\nAuthMechs {mech}\n"))
    mbsync(rc, env)
    assert list(maildir_msgs(maildir / "INBOX")) == ["<auth-0@test>"]


def test_neomutt_starttls_and_header_cache(server, client_home, tmp_path):
    """neomutt over STARTTLS with a header cache: the second run takes the cached headers,
    asks the server only for flags, and still acts on a flag set by another session."""
    _, env = client_home
    put(server, 3, prefix="hc")
    cache = tmp_path / "hcache"
    cache.mkdir()
    extra = (f'set header_cache = "{cache}"\nset ssl_starttls = yes\nset ssl_force_tls = yes\n'
             f'set ssl_ca_certificates_file = "{server.cert_path}"\n')
    neomutt(server, env, tmp_path, "<quit>", extra=extra)
    assert any(cache.rglob("*")), "neomutt wrote no header cache"
    m = server.imap()
    m.select("INBOX")
    typ, d = m.uid("SEARCH", "HEADER", "Message-ID", "<hc-1@test>")
    m.uid("STORE", d[0].decode(), "+FLAGS", "(\\Flagged)")
    m.logout()
    push = "<tag-pattern>~F<enter><tag-prefix><copy-message>=Archive<enter><quit>"
    neomutt(server, env, tmp_path, push, extra=extra)
    assert list(by_msgid(contents(server, "Archive"))) == ["<hc-1@test>"]


@pytest.mark.timeout(120)
def test_offlineimap_idle_picks_up_new_mail(server, client_home, tmp_path):
    """offlineimap left running with idlefolders: a delivery wakes its IDLE and the message
    lands in the Maildir within seconds, without a periodic refresh."""
    _, env = client_home
    need("offlineimap")
    put(server, 1, prefix="idle-old")
    rc, maildir = offlineimap_config(server, tmp_path)
    rc.write_text(rc.read_text().replace(
        "remoterepository = far\n",
        "remoterepository = far\nautorefresh = 30\nquick = 10\n").replace(
        "holdconnectionopen = no\n", "holdconnectionopen = yes\nkeepalive = 60\n"
        "idlefolders = ['INBOX']\n"))
    log = open(tmp_path / "offlineimap.log", "wb")
    proc = subprocess.Popen(["offlineimap", "-c", str(rc), "-u", "basic"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def have(mid):
            return (maildir / "INBOX").is_dir() and mid in maildir_msgs(maildir / "INBOX")
        deadline = time.monotonic() + 40
        while not have("<idle-old-0@test>") and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "offlineimap.log").read_text()
            time.sleep(0.2)
        assert have("<idle-old-0@test>"), (tmp_path / "offlineimap.log").read_text()
        time.sleep(2)  # let it enter IDLE
        new = make_message("while idle", "woken\r\n", msgid="<idle-new@test>")
        server.deliver(ALICE, new)
        t0 = time.monotonic()
        while not have("<idle-new@test>") and time.monotonic() - t0 < 15:
            assert proc.poll() is None, (tmp_path / "offlineimap.log").read_text()
            time.sleep(0.1)
        assert have("<idle-new@test>"), ("new mail not synced within 15 s of delivery:\n" +
                                         (tmp_path / "offlineimap.log").read_text()[-2000:])
        assert norm(maildir_msgs(maildir / "INBOX")["<idle-new@test>"][1]) == new
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


@pytest.mark.timeout(180)
def test_mbsync_server_restart_keeps_uids(server, client_home, tmp_path):
    """UIDVALIDITY and UIDs survive a server restart: mbsync's next run neither complains nor
    downloads or uploads anything twice; a folder name with spaces works both ways."""
    _, env = client_home
    put(server, 3, prefix="rs")
    m = server.imap()
    assert m.create('"Old Stuff"')[0] == "OK"
    m.append('"Old Stuff"', None, None, make_message("old", "o\r\n", msgid="<rs-old@test>"))
    m.logout()
    rc, maildir = mbsync_config(server, tmp_path)
    mbsync(rc, env)
    assert list(maildir_msgs(maildir / "Old Stuff")) == ["<rs-old@test>"]
    before = {name: contents(server, name) for name in ("INBOX", "Old Stuff")}
    server.restart()
    assert {name: contents(server, name) for name in ("INBOX", "Old Stuff")} == before, \
        "UIDs or messages changed over a restart"
    write_maildir_msg(maildir / "Old Stuff", make_message("older", "p\r\n",
                                                          msgid="<rs-older@test>"))
    put(server, 1, prefix="rs-after")
    r = mbsync(rc, env)
    assert "UIDVALIDITY" not in out(r), out(r)
    inbox = maildir_msgs(maildir / "INBOX")
    assert set(inbox) == {"<rs-0@test>", "<rs-1@test>", "<rs-2@test>", "<rs-after-0@test>"}
    assert set(by_msgid(contents(server, "Old Stuff"))) == {"<rs-old@test>", "<rs-older@test>"}
    assert len(contents(server, "Old Stuff")) == 2


MULTIPART = (b"From: sender@remote.test\r\nTo: alice@example.com\r\nSubject: parts\r\n"
             b"Message-ID: <parts@test>\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n"
             b"preamble\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe aus dem Text.\r\n"
             b"--XYZ\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n"
             b"Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\n"
             b"AAECAwQFBgcICQoLDA0ODxAREhM=\r\n--XYZ--\r\nepilogue\r\n")


def test_curl_imap_mime_sections(server, client_home):
    _, env = client_home
    imap_append(server, "INBOX", MULTIPART)
    uid = next(iter(contents(server)))
    want = {
        "1": b"Gr\xc3\xbc\xc3\x9fe aus dem Text.",
        "2": b"AAECAwQFBgcICQoLDA0ODxAREhM=",
        "1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Transfer-Encoding: 8bit\r\n\r\n",
        "HEADER.FIELDS%20(SUBJECT)": b"Subject: parts\r\n\r\n",
    }
    for section, body in want.items():
        r = curl(server, env, f"INBOX;UID={uid};SECTION={section}")
        assert r.returncode == 0, (section, out(r))
        assert r.stdout == body, (section, r.stdout)
    # PARTIAL: curl's ;PARTIAL=offset.length is BODY[]<offset.length>
    r = curl(server, env, f"INBOX;UID={uid};SECTION=TEXT;PARTIAL=0.8")
    assert r.returncode == 0, out(r)
    assert r.stdout == b"preamble", r.stdout


def test_mbsync_uploads_8bit_and_lf_messages(server, client_home, tmp_path):
    """Messages written by a local MUA: LF line ends, raw UTF-8 and Latin-1 bytes, no final
    newline. mbsync uploads them as CRLF literals; the server keeps every byte."""
    _, env = client_home
    rc, maildir = mbsync_config(server, tmp_path)
    mbsync(rc, env)
    raw = {
        "<utf8@test>": "From: Jürgen <j@remote.test>\nSubject: Grüße\nMessage-ID: <utf8@test>\n"
                       "\nÄrger über Größe\n".encode(),
        "<latin1@test>": b"From: x@remote.test\nSubject: latin1\nMessage-ID: <latin1@test>\n"
                         b"\nCaf\xe9 cr\xe8me\n",
        "<nonl@test>": b"From: x@remote.test\nSubject: no final newline\n"
                       b"Message-ID: <nonl@test>\n\nlast line without newline",
    }
    for data in raw.values():
        write_maildir_msg(maildir / "INBOX", data, flags="S")
    mbsync(rc, env)
    far = by_msgid(contents(server))
    assert set(far) == set(raw), sorted(far)
    for mid, data in raw.items():
        got = norm(far[mid][1])
        assert got in (crlf(data), crlf(data) + b"\r\n"), (mid, got)
    # and back into a fresh near side: identical to what was uploaded
    (tmp_path / "second").mkdir()
    rc2, maildir2 = mbsync_config(server, tmp_path / "second")
    mbsync(rc2, env)
    again = maildir_msgs(maildir2 / "INBOX")
    for mid in raw:
        assert norm(again[mid][1]) == norm(far[mid][1]), mid


@pytest.mark.timeout(240)
def test_mbsync_and_offlineimap_at_the_same_time(server, client_home, tmp_path):
    """Two sync clients of one account running at once (a laptop and a desktop): each uploads
    its own new messages and sets flags while the other does the same; both succeed and end
    up with the union."""
    _, env = client_home
    need("mbsync")
    need("offlineimap")
    put(server, 60, prefix="both")
    rc_mb, md_mb = mbsync_config(server, tmp_path)
    rc_oi, md_oi = offlineimap_config(server, tmp_path)
    mbsync(rc_mb, env)
    offlineimap(rc_oi, env)
    near_mb = maildir_msgs(md_mb / "INBOX")
    near_oi = maildir_msgs(md_oi / "INBOX")
    for i in range(60):
        if i % 3 == 0:
            set_maildir_flags(near_mb[f"<both-{i}@test>"][2], "F")
        if i % 3 == 1:
            set_maildir_flags(near_oi[f"<both-{i}@test>"][2], "S")
    for i in range(80):
        write_maildir_msg(md_mb / "INBOX", make_message(f"mb {i}", f"mb {i}\r\n",
                                                        msgid=f"<mb-{i}@test>"), flags="S")
        write_maildir_msg(md_oi / "INBOX", make_message(f"oi {i}", f"oi {i}\r\n",
                                                        msgid=f"<oi-{i}@test>"), flags="S")
    p1 = subprocess.Popen(["mbsync", "-c", str(rc_mb), "-a"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    p2 = subprocess.Popen(["offlineimap", "-c", str(rc_oi), "-o", "-u", "basic"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    o1, _ = p1.communicate(timeout=150)
    o2, _ = p2.communicate(timeout=150)
    assert p1.returncode == 0, o1.decode(errors="replace")[-2000:]
    assert p2.returncode == 0 and b"ERROR" not in o2, o2.decode(errors="replace")[-2000:]
    mbsync(rc_mb, env)
    offlineimap(rc_oi, env)
    want = ({f"<both-{i}@test>" for i in range(60)} | {f"<mb-{i}@test>" for i in range(80)} |
            {f"<oi-{i}@test>" for i in range(80)})
    far = by_msgid(contents(server))
    assert set(far) == want and len(contents(server)) == len(want), \
        (len(far), sorted(set(far) ^ want)[:10])
    for i in range(60):
        fl = far[f"<both-{i}@test>"][0]
        assert ("\\Flagged" in fl) == (i % 3 == 0) and ("\\Seen" in fl) == (i % 3 == 1), (i, fl)
    assert set(maildir_msgs(md_mb / "INBOX")) == want
    assert set(maildir_msgs(md_oi / "INBOX")) == want
