"""The bounce mailbox over IMAP against a real dovecot on loopback (tests/delivery/bounces/conftest.py):
every fixture appended, read, matched, flagged \\Seen; a second poll reads nothing; STARTTLS with
a certificate we trust works and one we do not is refused."""

from __future__ import annotations

import ssl

import pytest
from sqlalchemy import func, select

from delivery.bounces.mailbox import ImapSource, sources_for
from delivery.bounces.poll import poll
from drip.models import Event, Suppression
from tests.delivery.bounces.seed import EXPECTED, FIXTURES, T0, seed_deliveries


def imap_settings(settings, dovecot, folder, security="plain"):
    return settings.with_(bounce_imap_host="127.0.0.1", bounce_imap_port=dovecot.port, bounce_imap_user=dovecot.user,
                          bounce_imap_password=dovecot.password, bounce_imap_security=security,
                          bounce_imap_folder=folder)


def test_reports_over_imap_are_matched_and_flagged_seen(sqlite_runtime, dovecot):
    rt = sqlite_runtime
    with rt.sessions.begin() as s:
        seed_deliveries(s)
    dovecot.append("Bounces1", [(FIXTURES / n).read_bytes() for n in sorted(EXPECTED)])
    settings = imap_settings(rt.settings, dovecot, "Bounces1")
    result = poll(rt.sessions, settings, sources_for(settings), lambda: T0)
    assert result.messages == len(EXPECTED)
    assert {(f.address, f.kind, f.status, f.delivery_id, f.via) for f in result.findings} == set(EXPECTED.values())
    conn = dovecot.client()
    try:
        conn.select('"Bounces1"')
        assert conn.search(None, "UNSEEN")[1] == [b""]
        assert len(conn.search(None, "SEEN")[1][0].split()) == len(EXPECTED)
    finally:
        conn.logout()
    assert poll(rt.sessions, settings, sources_for(settings), lambda: T0).messages == 0
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == len(EXPECTED)
        assert s.scalar(select(func.count()).select_from(Suppression)) == 6  # 5 hard + 1 complaint; the soft one waits


def test_starttls_verifies_the_certificate(sqlite_runtime, dovecot, tls_material):
    cert_pem = tls_material[0]
    dovecot.append("Bounces2", [(FIXTURES / "postfix_hard.eml").read_bytes()])
    settings = imap_settings(sqlite_runtime.settings, dovecot, "Bounces2", security="starttls")
    source = ImapSource(settings, ssl_context=ssl.create_default_context(cadata=cert_pem.decode()))
    try:
        assert [key for key, _ in source.messages()] == ["1"]
    finally:
        source.close()
    with pytest.raises(ConnectionError, match="cannot connect"):
        ImapSource(settings)  # the system CAs do not know the test certificate


def test_a_wrong_password_is_one_clear_error(sqlite_runtime, dovecot):
    settings = imap_settings(sqlite_runtime.settings, dovecot, "INBOX").with_(bounce_imap_password="nope")
    with pytest.raises(ConnectionError, match=r"bounce mailbox imap 127\.0\.0\.1:\d+/INBOX: .*AUTHENTICATIONFAILED"):
        ImapSource(settings)
