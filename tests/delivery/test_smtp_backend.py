"""SMTPBackend against a real aiosmtpd server on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import socket

import pytest

from drip.errors import ConfigurationError
from delivery.backends import get_backend
from delivery.backends.smtp import SMTPBackend
from delivery.types import OutgoingMessage

FROM = "care@riverside-clinic.example"


def message(delivery_id: int, to: str = "ana@example.org", **changes) -> OutgoingMessage:
    values = dict(
        delivery_id=delivery_id,
        to_email=to,
        to_name="Ana Pérez",
        subject="Acupuntura — alivio del dolor",
        html="<p>Hola Ana</p>",
        text="Hola Ana\n",
        from_email=FROM,
        from_name="Riverside Acupuncture",
        reply_to="frontdesk@riverside-clinic.example",
        unsubscribe_url=f"https://clinic.test/u/tok{delivery_id}",
    )
    values.update(changes)
    return OutgoingMessage(**values)


@pytest.fixture
def smtp_settings(settings, smtp_server):
    return settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0, smtp_connections=1)


def test_get_backend_returns_smtp(smtp_settings):
    assert isinstance(get_backend(smtp_settings), SMTPBackend)


def test_delivers_a_multipart_message_with_headers(smtp_settings, smtp_server):
    with SMTPBackend(smtp_settings) as backend:
        (result,) = backend.send_batch([message(7)])
    assert result.ok and result.delivery_id == 7 and not result.error
    (env,) = smtp_server.envelopes
    assert env.mail_from == FROM and env.rcpt_tos == ["ana@example.org"]
    (msg,) = smtp_server.messages
    assert msg["Message-ID"] == result.message_id
    assert msg["Subject"] == "Acupuntura — alivio del dolor"
    assert msg["To"].addresses[0].display_name == "Ana Pérez"
    assert msg["List-Unsubscribe"] == "<https://clinic.test/u/tok7>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["X-Drip-Delivery-Id"] == "7"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_one_connection_is_reused_across_batches_and_closed_with_quit(smtp_settings, smtp_server):
    backend = SMTPBackend(smtp_settings)
    first = backend.send_batch([message(i, f"p{i}@example.org") for i in range(3)])
    second = backend.send_batch([message(i, f"p{i}@example.org") for i in range(3, 5)])
    assert all(r.ok for r in first + second)
    assert len(smtp_server.messages) == 5
    assert smtp_server.connections == 1 and backend.connect_attempts == 1
    assert smtp_server.quits == 0
    backend.close()
    assert smtp_server.quits == 1


def test_reconnects_once_when_the_server_closed_the_idle_connection(smtp_settings, smtp_server):
    with SMTPBackend(smtp_settings) as backend:
        assert backend.send_batch([message(1)])[0].ok
        smtp_server.drop_connections()
        (result,) = backend.send_batch([message(2)])
    assert result.ok
    assert [m["X-Drip-Delivery-Id"] for m in smtp_server.messages] == ["1", "2"]
    assert smtp_server.connections == 2


def test_a_connection_dropped_twice_is_transient(smtp_settings, smtp_server):
    smtp_server.drop_on_mail(times=2)  # the first try and the one reconnect
    with SMTPBackend(smtp_settings) as backend:
        (result,) = backend.send_batch([message(1)])
    assert not result.ok and result.transient
    assert "closed the connection" in result.error
    assert smtp_server.messages == []


def test_550_recipient_is_a_permanent_failure_with_the_server_text(smtp_settings, smtp_server):
    smtp_server.reject("gone@example.org", 550, "5.1.1 <gone@example.org>: user unknown")
    with SMTPBackend(smtp_settings) as backend:
        bad, good = backend.send_batch([message(1, "gone@example.org"), message(2, "ok@example.org")])
    assert not bad.ok and not bad.transient
    assert "550" in bad.error and "user unknown" in bad.error
    assert good.ok  # the connection survives a refused recipient
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ok@example.org"]]
    assert smtp_server.connections == 1


def test_451_recipient_is_transient(smtp_settings, smtp_server):
    smtp_server.reject("busy@example.org", 451, "4.7.1 try again later")
    with SMTPBackend(smtp_settings) as backend:
        (result,) = backend.send_batch([message(1, "busy@example.org")])
    assert not result.ok and result.transient and "451" in result.error and "try again later" in result.error


def test_server_down_is_transient_and_the_batch_does_not_retry_per_message(settings, closed_port):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=closed_port, smtp_timeout=2.0, smtp_connections=1)
    backend = SMTPBackend(s)
    results = backend.send_batch([message(i) for i in range(3)])
    assert [r.transient for r in results] == [True, True, True]
    assert all("unreachable" in r.error for r in results)
    assert backend.connect_attempts == 1
    backend.send_batch([message(4)])  # a new batch tries again
    assert backend.connect_attempts == 2


def test_a_server_that_never_answers_times_out_as_transient(settings):
    with socket.socket() as listener:  # accepts TCP (backlog) but never says 220
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        s = settings.with_(smtp_host="127.0.0.1", smtp_port=listener.getsockname()[1], smtp_timeout=0.3, smtp_connections=1)
        (result,) = SMTPBackend(s).send_batch([message(1)])
    assert not result.ok and result.transient and "timed out" in result.error


def test_envelope_sender_refused_is_a_configuration_error(smtp_settings, smtp_server):
    smtp_server.reject(FROM, 553, "5.7.1 sender not allowed")
    with SMTPBackend(smtp_settings) as backend, pytest.raises(ConfigurationError, match="5.7.1 sender not allowed"):
        backend.send_batch([message(1)])


def test_unsafe_address_fails_permanently_without_touching_the_server(smtp_settings, smtp_server):
    with SMTPBackend(smtp_settings) as backend:
        (result,) = backend.send_batch([message(1, "ana@example.org\r\nRCPT TO:<x@evil.example>")])
    assert not result.ok and not result.transient and "to_email" in result.error
    assert smtp_server.connections == 0


def test_starttls_with_a_trusted_certificate(settings, smtp_tls_server):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_tls_server.port, smtp_starttls=True, smtp_timeout=5.0, smtp_connections=1)
    with SMTPBackend(s, ssl_context=smtp_tls_server.client_context()) as backend:
        results = backend.send_batch([message(1), message(2)])
    assert all(r.ok for r in results)
    assert [e.tls for e in smtp_tls_server.envelopes] == [True, True]
    assert smtp_tls_server.connections == 1


def test_starttls_with_an_untrusted_certificate_is_a_configuration_error(settings, smtp_tls_server):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_tls_server.port, smtp_starttls=True, smtp_timeout=5.0, smtp_connections=1)
    with SMTPBackend(s) as backend, pytest.raises(ConfigurationError, match="certificate not trusted"):
        backend.send_batch([message(1)])  # default context: system CAs only
    assert smtp_tls_server.messages == []


def test_starttls_required_but_not_offered_is_a_configuration_error(smtp_settings, smtp_server):
    with SMTPBackend(smtp_settings.with_(smtp_starttls=True)) as backend:
        with pytest.raises(ConfigurationError, match="does not offer STARTTLS"):
            backend.send_batch([message(1)])
    assert smtp_server.messages == []


def test_auth_login(settings, smtp_auth_server):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_auth_server.port, smtp_timeout=5.0, smtp_connections=1,
                       smtp_username="clinic", smtp_password="s3cret-pass")
    with SMTPBackend(s) as backend:
        assert backend.send_batch([message(1)])[0].ok
    assert [e.login for e in smtp_auth_server.envelopes] == ["clinic"]


def test_auth_refused_is_a_configuration_error(settings, smtp_auth_server):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_auth_server.port, smtp_timeout=5.0, smtp_connections=1,
                       smtp_username="clinic", smtp_password="wrong")
    with SMTPBackend(s) as backend, pytest.raises(ConfigurationError, match="refused the login as 'clinic'"):
        backend.send_batch([message(1)])
    assert smtp_auth_server.messages == []


def test_without_credentials_an_auth_server_refuses_the_sender(settings, smtp_auth_server):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_auth_server.port, smtp_timeout=5.0, smtp_connections=1)
    with SMTPBackend(s) as backend, pytest.raises(ConfigurationError, match="530"):
        backend.send_batch([message(1)])


def test_config_error_after_messages_were_sent_keeps_their_results(settings, smtp_auth_server):
    """Raising mid-batch would lose the results of accepted messages (and resend them later)."""
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_auth_server.port, smtp_timeout=5.0, smtp_connections=1,
                       smtp_username="clinic", smtp_password="s3cret-pass")
    backend = SMTPBackend(s)
    assert backend.send_batch([message(1)])[0].ok  # connected and logged in
    smtp_auth_server.password = "rotated"  # only new logins see it
    smtp_auth_server.close_after_data(1)
    sent, stuck = backend.send_batch([message(2), message(3)])
    assert sent.ok  # went over the logged-in connection, which the server then closed
    assert not stuck.ok and stuck.transient and "refused the login" in stuck.error
    with pytest.raises(ConfigurationError, match="refused the login"):
        backend.send_batch([message(3)])  # a fresh batch: the error surfaces
    assert [m["X-Drip-Delivery-Id"] for m in smtp_auth_server.messages] == ["1", "2"]


def test_refuses_to_send_a_password_in_clear_text_to_a_remote_host(settings):
    s = settings.with_(smtp_host="smtp.example.invalid", smtp_username="clinic", smtp_password="x")
    backend = SMTPBackend(s)
    with pytest.raises(ConfigurationError, match="unencrypted"):
        backend.send_batch([message(1)])
    assert backend.connect_attempts == 0


def test_the_connection_sends_without_nagle_delay(smtp_settings, smtp_server):
    """TCP_NODELAY: without it a message over one TLS record waited ~40 ms for a delayed ACK."""
    backend = SMTPBackend(smtp_settings)
    try:
        (result,) = backend.send_batch([message(1)])
        assert result.ok
        assert backend._conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        backend.close()
