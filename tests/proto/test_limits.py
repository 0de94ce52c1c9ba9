"""Per-account session limit ([limits] max_connections_per_user), shared by IMAP and POP3."""
import imaplib
import poplib

import pytest


def test_sessions_per_user_are_limited_across_imap_and_pop3(sarn_factory):
    server = sarn_factory(overrides={"limits": {"max_connections_per_user": "2"}})
    a = server.imap()
    p = server.pop3()
    with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
        server.imap()
    c = server.raw("pop3")
    c.expect_ok()
    c.sendline("USER alice@example.com")
    c.expect_ok()
    c.sendline("PASS secret")
    assert c.readstr().startswith("-ERR [SYS/TEMP]")
    c.close()
    # Another account is not affected.
    server.imap(user="bob@example.com").logout()
    # A session that ends frees its place, whichever protocol it was.
    p.quit()
    b = server.imap()
    assert b.select("INBOX")[0] == "OK"
    a.logout()
    b.logout()
    for _ in range(3):  # and places do not leak
        server.imap().logout()
        server.pop3().quit()
