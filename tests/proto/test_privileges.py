"""[server] user: started as root, sarn binds its ports, then runs as an unprivileged user;
every file of the store belongs to that user, and the subcommands switch to it too."""
import os
import pwd
import shutil
import tempfile

import pytest

from sarntest import SarnServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")

MSG = b"From: x@y.example\r\nSubject: dropped\r\n\r\nbody\r\n"


def proc_ids(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return fields["Uid"].split(), fields["Gid"].split(), fields["Groups"].split()


def test_serve_and_cli_run_as_the_configured_user():
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="sarn-priv-", dir="/tmp")
    os.chmod(base, 0o755)  # the user must reach its data directory
    server = SarnServer(base, overrides={"server": {"user": "nobody"}},
                        listeners=("imap", "imaps", "pop3", "lmtp"))
    try:
        server.start()
        uids, gids, groups = proc_ids(server.proc.pid)
        assert set(uids) == {str(nobody.pw_uid)}, uids
        assert set(gids) == {str(nobody.pw_gid)}, gids
        assert groups == []
        lm = server.lmtp()
        lm.sendmail("x@y.example", ["alice@example.com"], MSG)
        lm.quit()
        m = server.imap(mode="ssl")
        m.select("INBOX")
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1].endswith(b"body\r\n")
        assert m.append("Sent", None, None, MSG)[0] == "OK"
        m.logout()
        assert server.cli("user", "add", "carol@example.com", input="pw\n").returncode == 0
        server.stop_ok()
        out = server.cli("check")
        assert out.returncode == 0, out.stdout + out.stderr
        # Everything in the data directory, whoever made it, is the user's.
        for root, dirs, files in os.walk(server.data):
            for name in dirs + files:
                st = os.lstat(os.path.join(root, name))
                assert st.st_uid == nobody.pw_uid, os.path.join(root, name)
        server.start()
        server.imap(user="carol@example.com", password="pw").logout()
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_unknown_user_is_refused():
    base = tempfile.mkdtemp(prefix="sarn-priv-", dir="/tmp")
    try:
        server = SarnServer(base, overrides={"server": {"user": "no-such-user-sarn"}},
                            listeners=("pop3",))
        server.write_config()
        out = server.cli("check")
        assert out.returncode != 0 and b"no such user" in out.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
