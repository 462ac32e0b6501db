"""VERP return paths: the SMTP backend's MAIL FROM names the delivery, signed with the secret key;
anything altered or signed with another key is not ours."""

from __future__ import annotations

import pytest

from delivery.backends.smtp import SMTPBackend
from delivery.bounces.verp import find_verp, parse_verp, verp_address
from drip.errors import ConfigurationError
from tests.delivery.test_smtp_backend import message

KEY = "k1"


def test_round_trip_and_tampering():
    addr = verp_address(42, "bounce.clinic.example", KEY)
    assert addr.startswith("bounces+d42-") and addr.endswith("@bounce.clinic.example")
    assert parse_verp(addr, KEY) == 42 and parse_verp(f"<{addr.upper()}>", KEY) == 42
    assert parse_verp(addr, "another key") is None
    assert parse_verp(addr.replace("d42-", "d43-"), KEY) is None
    assert parse_verp(addr, KEY, domain="other.example") is None
    assert parse_verp("care@clinic.example", KEY) is None
    assert find_verp(f"Bounce <{addr}>, care@clinic.example", KEY) == 42


def test_smtp_envelope_sender_is_the_signed_verp_address(settings, smtp_server):
    s = settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0,
                       bounce_domain="bounce.riverside-clinic.example")
    with SMTPBackend(s) as backend:
        results = backend.send_batch([message(7), message(8, to="bo@example.org")])
    assert all(r.ok for r in results)
    # sorted: the SMTP pool sends the two over parallel connections, in either order
    froms = sorted(e.mail_from for e in smtp_server.envelopes)
    assert froms == sorted([verp_address(7, "bounce.riverside-clinic.example", s.secret_key),
                            verp_address(8, "bounce.riverside-clinic.example", s.secret_key)])
    assert sorted(parse_verp(f, s.secret_key) for f in froms) == [7, 8]
    assert all(str(m["From"]).endswith("<care@riverside-clinic.example>") for m in smtp_server.messages)


def test_verp_on_uses_the_from_domain_and_off_keeps_the_from_address(settings, smtp_server):
    base = settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0)
    assert SMTPBackend(base.with_(verp=True)).envelope_for(5) == verp_address(5, "riverside-clinic.example",
                                                                               base.secret_key)
    assert SMTPBackend(base).envelope_for(5) == "care@riverside-clinic.example"
    with pytest.raises(ConfigurationError, match="DRIP_BOUNCE_DOMAIN"):
        SMTPBackend(base.with_(bounce_domain="bad domain\r\nX: y"))


def test_bounce_settings_are_checked_at_start(tmp_path):
    from drip.config import load_settings

    none = tmp_path / "none.toml"
    s = load_settings({"DRIP_CONFIG": str(none), "DRIP_BOUNCE_IMAP_HOST": "imap.clinic.example",
                       "DRIP_BOUNCE_IMAP_PASSWORD": "pw", "DRIP_BOUNCE_SOFT_LIMIT": "5"})
    assert (s.bounce_imap_host, s.bounce_imap_password, s.bounce_soft_limit) == ("imap.clinic.example", "pw", 5)
    assert "pw" not in repr(s)
    with pytest.raises(ConfigurationError, match="DRIP_BOUNCE_IMAP_SECURITY: unknown value 'tls'"):
        load_settings({"DRIP_CONFIG": str(none), "DRIP_BOUNCE_IMAP_SECURITY": "tls"})
    toml = tmp_path / "drip.toml"
    toml.write_text('bounce_imap_password = "pw"\n')
    with pytest.raises(ConfigurationError, match="must come from the environment"):
        load_settings({"DRIP_CONFIG": str(toml)})


def test_plain_imap_is_refused_off_loopback(settings):
    from delivery.bounces.mailbox import ImapSource

    s = settings.with_(bounce_imap_host="imap.clinic.example", bounce_imap_user="u", bounce_imap_password="p",
                       bounce_imap_security="plain")
    with pytest.raises(ConfigurationError, match="refusing to send the IMAP password unencrypted"):
        ImapSource(s)
