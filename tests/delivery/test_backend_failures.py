"""Which failures are the backend's (server-level: hold it, keep the rows) and which are the
recipient's (fail or retry that row; a dead address is a hard bounce), per backend, with real
servers: aiosmtpd on loopback, the SendGrid stand-in, the outbox on disk."""

from __future__ import annotations

import errno
import os
import random

import pytest

from bench.flaky import make_controller
from delivery.backends import outbox
from delivery.backends.outbox import OutboxBackend
from delivery.backends.sendgrid import SendGridBackend
from delivery.backends.smtp import SOFT_STREAK, SMTPBackend, _reply_error
from drip.errors import BackendUnavailable, HardBounce, PermanentSendError, TransientSendError
from tests.delivery.sendgrid_mock import API_KEY, FakeTime, Reply, SendGridMock
from tests.delivery.sendgrid_mock import message as sg_message
from tests.delivery.test_smtp_backend import message


@pytest.mark.parametrize("code, text, stage, kind, bounce", [
    (550, "5.1.1 <gone@example.org>: user unknown", "rcpt", HardBounce, True),
    (550, "mailbox unavailable", "rcpt", HardBounce, True),  # no enhanced code: 550 at RCPT names the address
    (553, "5.1.3 bad address syntax", "rcpt", HardBounce, True),
    (550, "5.7.1 relaying denied", "rcpt", PermanentSendError, False),  # policy, not the address
    (554, "5.7.1 message rejected as spam", "data", PermanentSendError, False),
    (552, "5.3.4 message too big", "data", PermanentSendError, False),
    (550, "5.1.1 user unknown", "data", HardBounce, True),
    (421, "4.3.2 shutting down", "rcpt", BackendUnavailable, False),
    (452, "4.2.2 mailbox full", "rcpt", TransientSendError, False),
])
def test_smtp_reply_classification(code, text, stage, kind, bounce):
    err = _reply_error(code, text, "recipient x refused", stage=stage)
    assert type(err) is kind and err.bounce is bounce and str(code) in str(err) and text in str(err)
    assert err.server is (code == 421)


@pytest.fixture
def smtp_settings(settings, smtp_server):
    return settings.with_(backend="smtp", smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0, smtp_connections=1)


def test_550_user_unknown_is_a_hard_bounce_and_the_rest_still_goes(smtp_settings, smtp_server):
    smtp_server.reject("gone@example.org", 550, "5.1.1 <gone@example.org>: user unknown")
    with SMTPBackend(smtp_settings) as backend:
        bad, good = backend.send_batch([message(1, "gone@example.org"), message(2, "ok@example.org")])
    assert not bad.ok and bad.bounce and not bad.transient and not bad.server
    assert good.ok


def test_a_4xx_for_every_recipient_is_server_level(smtp_settings, smtp_server):
    smtp_server.reject_all(451, "4.7.1 try again later")
    with SMTPBackend(smtp_settings) as backend:
        results = backend.send_batch([message(i, f"p{i}@example.org") for i in range(6)])
    assert all(not r.ok and r.transient and r.server for r in results)
    assert f"4xx for {SOFT_STREAK} recipients in a row" in results[-1].error


def test_one_4xx_among_successes_is_that_recipients_transient_failure(smtp_settings, smtp_server):
    smtp_server.reject("busy@example.org", 451, "4.2.1 mailbox busy")
    with SMTPBackend(smtp_settings) as backend:
        a, busy, b = backend.send_batch([message(1, "a@example.org"), message(2, "busy@example.org"),
                                         message(3, "b@example.org")])
    assert a.ok and b.ok and busy.transient and not busy.server


def test_421_is_server_level_and_the_rest_of_the_batch_is_not_tried(smtp_settings, smtp_server):
    smtp_server.reject_all(421, "4.3.2 service shutting down")
    with SMTPBackend(smtp_settings) as backend:
        results = backend.send_batch([message(i, f"p{i}@example.org") for i in range(4)])
    assert all(r.server and r.transient for r in results)
    assert "421" in results[0].error


def test_server_down_is_server_level(settings, closed_port):
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=closed_port, smtp_timeout=2.0, smtp_connections=1)
    backend = SMTPBackend(s)
    results = backend.send_batch([message(1), message(2)])
    assert all(r.server for r in results)
    assert backend.connect_attempts == 1 and backend.connect_tries == 3  # retried at once, then held


def test_a_refused_connection_is_retried_at_once_not_held():
    """A relay refusing every second connection (421 greeting) and ending each session after two
    messages: every message goes, with reconnects, none held."""
    counts = {"messages": 0, "connections": 0, "refused": 0, "ids": {}}
    controller = make_controller(counts, refuse_every=2, per_connection=2)
    controller.start()
    counts.update(connections=0, refused=0)  # the readiness probe
    try:
        from drip.config import Settings

        s = Settings(smtp_host="127.0.0.1", smtp_port=controller.port, smtp_timeout=5.0, smtp_connections=1)
        with SMTPBackend(s) as backend:
            results = backend.send_batch([message(i, f"p{i}@example.org") for i in range(1, 7)])
    finally:
        controller.stop()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sorted(counts["ids"]) == [1, 2, 3, 4, 5, 6] and set(counts["ids"].values()) == {1}
    assert counts["refused"] >= 2 and backend.connect_tries > backend.connect_attempts


def test_outbox_disk_full_is_server_level_and_stops_the_batch(settings, monkeypatch):
    calls = []

    def full(path, data):
        calls.append(path)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(outbox, "write_atomic", full)
    with OutboxBackend(settings) as backend:
        results = backend.send_batch([message(i, f"p{i}@example.org") for i in range(5)])
    assert all(r.server and r.transient for r in results)
    assert "No space left" in results[0].error and results[1].error.startswith("not attempted")
    assert len(calls) == 1  # the disk was not asked four more times


@pytest.mark.parametrize("reply", [Reply(500, "upstream exploded"), Reply(401, {"errors": [{"message": "bad key"}]})])
def test_sendgrid_5xx_and_401_are_server_level(settings, reply):
    with SendGridMock() as mock:
        fake = FakeTime()
        s = settings.with_(sendgrid_api_key=API_KEY, sendgrid_host=mock.url, sendgrid_timeout=5.0)
        mock.script(*[reply] * 4)
        with SendGridBackend(s, sleep=fake.sleep, clock=fake.monotonic, wall_clock=fake.wall,
                             rng=random.Random(7)) as backend:
            results = backend.send_batch([sg_message(1), sg_message(2)])
    assert all(not r.ok and r.transient and r.server for r in results)


def test_sendgrid_400_for_one_personalization_is_that_recipients_failure(settings):
    from tests.delivery.sendgrid_mock import sendgrid_error

    with SendGridMock() as mock:
        fake = FakeTime()
        s = settings.with_(sendgrid_api_key=API_KEY, sendgrid_host=mock.url, sendgrid_timeout=5.0)
        mock.script(sendgrid_error("Does not contain a valid address.", "personalizations.1.to.0.email"))
        with SendGridBackend(s, sleep=fake.sleep, clock=fake.monotonic, wall_clock=fake.wall) as backend:
            results = {r.delivery_id: r for r in backend.send_batch([sg_message(0), sg_message(1)])}
    assert not results[1001].ok and not results[1001].server and not results[1001].transient
    assert results[1000].ok
