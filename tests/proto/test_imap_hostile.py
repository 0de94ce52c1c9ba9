"""IMAP under hostile input: random and mutated commands from several sessions at once,
names and UIDs that try to reach another account, and a client that reads nothing.

The server must answer every command with a tagged response (or a BYE), stay up, keep its
memory bounded, and leave a store that `sarn check` finds consistent."""
import random
import re
import socket
import time

import pytest

from sarntest import TIMEOUT

ALICE, BOB = "alice@example.com", "bob@example.com"

MSG = (b"From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: secret of %d\r\n"
       b"Message-ID: <%d@x>\r\n\r\nThe password is hunter%d.\r\n")


class Raw:
    """A raw IMAP connection that reads until a tagged reply or BYE."""

    def __init__(self, server):
        self.sock = socket.create_connection((server.host, server.ports["imap"]), timeout=TIMEOUT)
        self.buf = b""
        self.n = 0
        self.readline()

    def readline(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_until_tag(self, tag):
        lines = []
        while True:
            line = self.readline()
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if m and not line.startswith(b"+"):
                need = int(m.group(1))
                while len(self.buf) < need:
                    data = self.sock.recv(65536)
                    if not data:
                        raise EOFError("connection closed in a literal")
                    self.buf += data
                line += b"\r\n" + self.buf[:need]
                self.buf = self.buf[need:]
                line += self.readline()
            lines.append(line)
            if line.startswith(tag + b" ") or line.startswith(b"* BYE"):
                return lines

    def cmd(self, text):
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return self.read_until_tag(tag)

    def close(self):
        self.sock.close()


def login(server, user=ALICE):
    r = Raw(server)
    assert r.cmd(b"LOGIN %s %s" % (user.encode(), server.users[user].encode()))[-1].startswith(b"t1 OK")
    return r


VALID = [
    b"NOOP", b"CAPABILITY", b"SELECT INBOX", b"EXAMINE Archive", b"LIST \"\" *",
    b"LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (CHILDREN STATUS (MESSAGES SIZE))",
    b"LSUB \"\" *", b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE DELETED)",
    b"FETCH 1:* (FLAGS UID RFC822.SIZE ENVELOPE BODYSTRUCTURE)", b"FETCH 1 BODY.PEEK[]",
    b"UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.20> BINARY.SIZE[1])",
    b"FETCH 2 (BODY[1] BINARY[1] RFC822.HEADER)", b"STORE 1:2 +FLAGS (\\Seen $x)",
    b"UID STORE 1:* -FLAGS.SILENT (\\Flagged)", b"SEARCH OR SUBJECT secret TEXT hunter NOT DELETED",
    b"UID SEARCH RETURN (MIN MAX COUNT SAVE) ALL", b"FETCH $ (FLAGS)", b"COPY 1 Archive",
    b"UID MOVE 3 Trash", b"CREATE x/y", b"RENAME x z", b"DELETE z/y", b"DELETE z",
    b"SUBSCRIBE Junk", b"UNSUBSCRIBE Junk", b"EXPUNGE", b"UID EXPUNGE 1:*", b"CHECK",
    b"UNSELECT", b"CLOSE", b"NAMESPACE", b"ID NIL", b"ENABLE IMAP4rev2",
    b"APPEND Drafts (\\Draft) {12+}\r\nSubject: x\r\n", b"IDLE",
]
JUNK = [b"(", b")", b"{", b"}", b"{99999999999}", b"\"", b"\\", b"*", b"%", b"$", b"~{3}", b"[",
        b"]", b"<", b">", b"..", b"/", b"\x00", b"\xff", b"NIL", b"0", b"4294967296", b"-1",
        b"1:*", b"&AGE-", b"&", b"INBOX/../x", b"../bob", b" ", b"  "]


def mutate(rng, cmd):
    parts = cmd.split(b" ")
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        i = rng.randrange(len(parts))
        if op == 0:
            parts.insert(i, rng.choice(JUNK))
        elif op == 1 and len(parts) > 1:
            del parts[i]
        elif op == 2:
            parts[i] = rng.choice(JUNK)
        else:
            parts[i] = parts[i][: rng.randrange(len(parts[i]) + 1)]
    return b" ".join(parts).replace(b"\r\n", b"")


@pytest.mark.timeout(300)
def test_random_and_mutated_commands(server):
    for i in range(1, 6):
        server.deliver(ALICE, MSG % (i, i, i))
    rng = random.Random(20261127)
    sessions = [login(server) for _ in range(4)]
    answered = 0
    for step in range(1500):
        s = rng.randrange(len(sessions))
        r = sessions[s]
        base = rng.choice(VALID)
        text = base if rng.random() < 0.4 else mutate(rng, base)
        if text is not base and re.search(rb"~?\{[0-9+]*\}$", text):
            continue  # a literal announced at the end would swallow the next command
        try:
            if text == b"IDLE":
                r.n += 1
                tag = b"t%d" % r.n
                r.sock.sendall(tag + b" IDLE\r\n")
                assert r.readline().startswith(b"+")
                sessions[(s + 1) % 4].cmd(b"NOOP")
                r.sock.sendall(b"DONE\r\n")
                lines = r.read_until_tag(tag)
            else:
                lines = r.cmd(text)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            # Closed after max_bad_commands: the BYE came after an earlier tagged BAD.
            lines = [b"* BYE (closed)"]
        last = lines[-1]
        assert last.startswith(b"t") or last.startswith(b"* BYE"), (text, lines[-3:])
        answered += 1
        if last.startswith(b"* BYE"):
            r.close()
            sessions[s] = login(server)
    for r in sessions:
        assert r.cmd(b"NOOP")[-1].split(b" ")[1] == b"OK"
        r.close()
    assert answered > 1000
    assert server.running()
    server.stop_ok()
    out = server.cli("check")
    assert out.returncode == 0, out.stdout + out.stderr
    server.start()


HOSTILE_NAMES = [
    b"../bob@example.com", b"../../mail/example.com/bob", b"INBOX/../../bob", b"/bob",
    b"~bob/INBOX", b"#shared/bob", b"\"bob@example.com/INBOX\"", b"%", b"*", b"INBOX/%",
    b"\"..\"", b"\".\"", b"\"a//b\"", b"\"x/\"", b"{3}", b"\"\\\\bob\"", b"&Ll8-bob",
    b"\"bob@example.com\"", b"\"example.com/bob/INBOX\"", b"NIL",
]


def test_one_account_never_reaches_another(server):
    for i in range(1, 4):
        server.deliver(BOB, MSG % (i, i, i))
    alice = login(server, ALICE)
    before = {p.name for p in server.account_dir(ALICE).parent.iterdir()}
    for name in HOSTILE_NAMES:
        if name == b"{3}":
            continue
        for cmd in (b"SELECT %s", b"EXAMINE %s", b"STATUS %s (MESSAGES)", b"CREATE %s",
                    b"DELETE %s", b"RENAME %s y", b"SUBSCRIBE %s"):
            lines = alice.cmd(cmd % name)
            text = b"\n".join(lines)
            assert b"hunter" not in text and b"secret of" not in text, (cmd % name, lines)
        lines = alice.cmd(b"APPEND %s {5+}\r\nhello" % name)
        assert not lines[-1].split(b" ")[1] == b"OK" or b"/" not in name, lines
    # Names like "~bob" may become alice's own folders; none of them holds bob's mail, and
    # no directory appeared beside the accounts.
    listing = alice.cmd(b"LIST \"\" *")
    names = [re.search(rb'"/" (.*)$', l).group(1) for l in listing if l.startswith(b"* LIST")]
    assert len(names) >= 6
    for name in names:
        lines = alice.cmd(b"EXAMINE %s" % name)
        if lines[-1].split(b" ")[1] != b"OK":
            assert b"NONEXISTENT" in lines[-1] or b"\\Noselect" in b"\n".join(listing), lines
            continue
        found = alice.cmd(b"SEARCH TEXT hunter")
        assert found[0] == b"* SEARCH", (name, found)
    assert {p.name for p in server.account_dir(ALICE).parent.iterdir()} == before
    # UIDs beyond alice's mailbox reach nothing.
    alice.cmd(b"SELECT INBOX")
    for set_ in (b"1:4294967295", b"4294967295", b"*"):
        text = b"\n".join(alice.cmd(b"UID FETCH %s (BODY.PEEK[])" % set_))
        assert b"hunter" not in text
    alice.close()
    bob = login(server, BOB)
    lines = bob.cmd(b"STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 3" in lines[0], lines
    bob.close()


@pytest.mark.timeout(180)
def test_client_that_reads_nothing_costs_bounded_memory(server):
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 4000  # ~4 MB
    for _ in range(3):
        server.deliver(ALICE, big)

    def rss_kb():
        with open("/proc/%d/status" % server.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    slow = login(server)
    slow.cmd(b"SELECT INBOX")
    base = rss_kb()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # 50 whole-mailbox fetches (~600 MB of responses) pipelined, and nothing read.
    slow.sock.sendall(b"".join(b"f%d FETCH 1:* BODY.PEEK[]\r\n" % i for i in range(50)))
    time.sleep(2)
    # Others are served meanwhile.
    other = login(server)
    assert other.cmd(b"STATUS INBOX (MESSAGES)")[-1].startswith(b"t2 OK")
    other.close()
    grown = rss_kb() - base
    assert grown < 20 * 1024, "server grew by %d kB for a client that reads nothing" % grown
    slow.close()
    time.sleep(0.5)
    assert server.running()
