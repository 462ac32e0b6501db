"""Our own DATA and PIPELINING (delivery/smtp_wire.py) against a real server (aiosmtpd): the bytes
that arrive, refusals inside a pipeline, a server without PIPELINING."""

from __future__ import annotations

import smtplib

import pytest
from hypothesis import given, strategies as st

from delivery.backends.smtp import SMTPBackend
from delivery.smtp_wire import dot_stuff, send_message
from tests.delivery.test_smtp_backend import message


def smtplib_payload(data: bytes) -> bytes:
    """What smtplib's `data()` sends for `data` given as text (its regular expressions: line breaks
    made CRLF, then dots quoted). Given bytes, smtplib skips the first step and would pass a bare LF
    (and so "\n.\n", the SMTP smuggling pattern) through; we never do."""
    q = smtplib._quote_periods(smtplib._fix_eols(data.decode("latin-1")).encode("latin-1"))
    if q[-2:] != b"\r\n":
        q += b"\r\n"
    return q + b".\r\n"


@given(st.lists(st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"a", b" ", b"\xc3\xa9"]), max_size=30))
def test_dot_stuffing_matches_smtplib_byte_for_byte(parts):
    data = b"".join(parts)
    assert dot_stuff(data) == smtplib_payload(data)


@pytest.mark.parametrize("data, sent", [
    (b"", b"\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b".x\n..y\r.z\r\n", b"..x\r\n...y\r\n..z\r\n.\r\n"),
    (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
])
def test_dot_stuffing_cases(data, sent):
    assert dot_stuff(data) == sent


RAW = (b"Subject: dots\r\nX-Drip-Delivery-Id: 1\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
       b"bare LF\nbare CR\rend of line.\r\n. spaced\r\nlast line without break")


@pytest.fixture
def conn(smtp_server):
    c = smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5)
    c.ehlo()
    yield c
    c.close()


@pytest.mark.parametrize("pipelining", [True, False])
def test_delivered_bytes_are_exact(smtp_server, pipelining):
    smtp_server.pipelining = pipelining
    c = smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=5)
    c.ehlo()
    assert c.has_extn("pipelining") is pipelining
    send_message(c, "care@clinic.example", "p@example.org", RAW)
    c.quit()
    (env,) = smtp_server.envelopes
    # the server un-stuffs the dots: what arrives is the message with every line break CRLF
    expected = (b"Subject: dots\r\nX-Drip-Delivery-Id: 1\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\n"
                b"bare LF\r\nbare CR\r\nend of line.\r\n. spaced\r\nlast line without break\r\n")
    assert env.raw == expected
    assert env.rcpt_tos == ["p@example.org"] and env.mail_from == "care@clinic.example"


def writes(monkeypatch) -> list[bytes]:
    sent: list[bytes] = []
    real = smtplib.SMTP.send

    def spy(self, s):
        sent.append(s if isinstance(s, bytes) else s.encode())
        return real(self, s)

    monkeypatch.setattr(smtplib.SMTP, "send", spy)
    return sent


def backend_for(settings, server, **changes) -> SMTPBackend:
    return SMTPBackend(settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=server.port,
                                      smtp_timeout=5.0, **{"smtp_connections": 1, **changes}))


def test_pipelined_envelope_goes_in_one_write_and_a_refused_recipient_mid_pipeline_is_classified(
        settings, smtp_server, monkeypatch):
    smtp_server.pipelining = True
    smtp_server.reject("gone@example.org", 550, "5.1.1 no such mailbox")
    smtp_server.reject("busy@example.org", 451, "4.2.1 mailbox busy")
    sent = writes(monkeypatch)
    with backend_for(settings, smtp_server) as backend:
        results = backend.send_batch([message(1, "a@example.org"), message(2, "gone@example.org"),
                                      message(3, "busy@example.org"), message(4, "b@example.org")])
    ok, gone, busy, ok2 = results
    assert ok.ok and ok2.ok
    assert not gone.ok and gone.bounce and not gone.transient and not gone.server and "550" in gone.error
    assert not busy.ok and busy.transient and not busy.server and "451" in busy.error
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["a@example.org"], ["b@example.org"]]
    assert smtp_server.connections == 1  # the refusals left the connection usable (RSET)
    envelopes = [w for w in sent if w.lower().startswith(b"mail from:")]
    assert len(envelopes) == 4 and all(b"\r\nrcpt TO:" in w and w.endswith(b"data\r\n") for w in envelopes)


def test_without_pipelining_offered_each_command_waits_for_its_reply(settings, smtp_server, monkeypatch):
    smtp_server.reject("gone@example.org", 550, "5.1.1 no such mailbox")
    sent = writes(monkeypatch)
    with backend_for(settings, smtp_server) as backend:
        ok, gone = backend.send_batch([message(1, "a@example.org"), message(2, "gone@example.org")])
    assert ok.ok and gone.bounce
    assert not any(b"rcpt" in w.lower() and b"mail from" in w.lower() for w in sent)
    assert len(smtp_server.envelopes) == 1


def test_pipelining_off_by_setting_sends_lock_step(settings, smtp_server, monkeypatch):
    smtp_server.pipelining = True
    sent = writes(monkeypatch)
    with backend_for(settings, smtp_server, smtp_pipelining=False) as backend:
        (r,) = backend.send_batch([message(1, "a@example.org")])
    assert r.ok and not any(b"rcpt" in w.lower() and b"mail from" in w.lower() for w in sent)


def test_421_at_rcpt_mid_pipeline_is_server_level(settings, smtp_server):
    smtp_server.pipelining = True
    smtp_server.reject("b@example.org", 421, "4.3.2 shutting down")
    with backend_for(settings, smtp_server) as backend:
        a, b, c = backend.send_batch([message(1, "a@example.org"), message(2, "b@example.org"),
                                      message(3, "c@example.org")])
    assert a.ok and b.server and not b.ok and b.transient and "421" in b.error
    assert c.ok and smtp_server.connections == 2  # the closed connection was dropped, a new one opened
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["a@example.org"], ["c@example.org"]]
