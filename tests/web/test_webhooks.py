"""The signed SendGrid Event Webhook, signed here exactly as SendGrid signs it.

A real P-256 key pair from `cryptography`: ECDSA/SHA-256 over `timestamp + body`, the signature
as base64 DER, the public key as base64 DER SubjectPublicKeyInfo (what the SendGrid dashboard
shows and `EventWebhook` loads).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from drip.models import Event, Subscriber, Suppression
from tests.web.seed import CANCELLED, T0, deliveries, seed, snapshot
from web import webhooks

URL = "/webhooks/sendgrid"
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


def _keypair():
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys():
    return _keypair()


@pytest.fixture
def hook(make_client, keys):
    return make_client(sendgrid_webhook_public_key=keys[1])


def sign(private, body: bytes, ts: str) -> str:
    return base64.b64encode(private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def post(client, private, body, *, at=T0, tamper=None):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    ts = str(int(at.timestamp()))
    headers = {SIG: sign(private, body, ts), TS: ts, "Content-Type": "application/json"}
    if tamper:
        body = tamper(body)
    return client.post(URL, content=body, headers=headers)


def event(kind, n, email="ann@example.org", **extra):
    return {"email": email, "event": kind, "timestamp": int(T0.timestamp()) - 30, "sg_event_id": f"sg-{kind}-{n}",
            "sg_message_id": f"m{n}.filter", **extra}


def count_events(runtime):
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(Event))


def test_valid_batch_is_applied(runtime, hook, keys):
    ids = seed(runtime)
    first = deliveries(runtime, ids.subscriber_id)[0].id
    batch = [event("delivered", 1, delivery_id=str(first)), event("bounce", 2, type="bounce"),
             event("processed", 3, email="bob@example.org")]
    r = post(hook, keys[0], batch)
    assert r.status_code == 200
    assert r.json()["stored"] == 3 and r.json()["suppressed"] == 1
    with runtime.sessions() as s:
        assert s.get(Subscriber, ids.subscriber_id).status == "bounced"
        assert s.get(Suppression, "ann@example.org").reason == "bounce"
    rows = deliveries(runtime, ids.subscriber_id)
    assert rows[0].outcome == "delivered" and {d.status for d in rows} == {CANCELLED}


def test_forged_signature_is_refused(runtime, hook):
    seed(runtime)
    other_private, _ = _keypair()
    before = snapshot(runtime)
    r = post(hook, other_private, [event("bounce", 1)])
    assert r.status_code == 403 and snapshot(runtime) == before


def test_altered_body_is_refused(runtime, hook, keys):
    seed(runtime)
    before = snapshot(runtime)
    r = post(hook, keys[0], [event("delivered", 1)], tamper=lambda b: b.replace(b"delivered", b"spamreport"))
    assert r.status_code == 403 and snapshot(runtime) == before


def test_missing_or_garbage_signature_is_refused(hook, runtime):
    now = str(int(T0.timestamp()))
    for headers in [{}, {SIG: "", TS: now}, {SIG: "!!not base64!!", TS: now},
                    {SIG: base64.b64encode(b"junk").decode(), TS: now}]:
        r = hook.post(URL, content=json.dumps([event("bounce", 1)]), headers=headers)
        assert r.status_code == 403, headers
    assert count_events(runtime) == 0


def test_timestamp_must_be_within_five_minutes(runtime, hook, keys):
    for n, (offset, ok) in enumerate([(timedelta(minutes=-6), False), (timedelta(minutes=6), False),
                                      (timedelta(minutes=-4), True), (timedelta(minutes=4), True)]):
        r = post(hook, keys[0], [event("processed", n)], at=T0 + offset)
        assert r.status_code == (200 if ok else 403), offset
    assert count_events(runtime) == 2


def test_non_numeric_timestamp_is_refused(runtime, hook, keys):
    body = json.dumps([event("processed", 1)]).encode()
    r = hook.post(URL, content=body, headers={SIG: sign(keys[0], body, "soon"), TS: "soon"})
    assert r.status_code == 403 and count_events(runtime) == 0


def test_replayed_event_is_stored_once(runtime, hook, keys):
    seed(runtime)
    batch = [event("bounce", 1)]
    first = post(hook, keys[0], batch).json()
    again = post(hook, keys[0], batch + [event("bounce", 1)], at=T0 + timedelta(seconds=40)).json()
    assert first["stored"] == 1 and first["duplicates"] == 0
    assert again["stored"] == 0 and again["duplicates"] == 2
    assert count_events(runtime) == 1


def test_unknown_event_type_is_kept(runtime, hook, keys):
    r = post(hook, keys[0], [{"event": "ai_summary_ready", "sg_event_id": "u1", "email": "a@example.org"}])
    assert r.status_code == 200 and r.json()["by_type"] == {"unknown": 1}
    with runtime.sessions() as s:
        e = s.scalar(select(Event))
        assert (e.type, e.raw["event"]) == ("unknown", "ai_summary_ready")


def test_malformed_json_after_a_valid_signature_is_400(runtime, hook, keys):
    for body in [b"[{\"event\": ", b"{\"event\": \"bounce\"}", b"[1, 2]", b"\"text\"", b"",
                 b"[" * 100_000 + b"]" * 100_000]:
        r = post(hook, keys[0], body)
        assert r.status_code == 400, body[:20]
    assert count_events(runtime) == 0


def test_empty_batch_is_fine(hook, keys):
    r = post(hook, keys[0], [])
    assert r.status_code == 200 and r.json()["received"] == 0


def test_oversized_body_is_refused(runtime, hook, keys, monkeypatch):
    monkeypatch.setattr(webhooks, "MAX_BODY", 200)
    r = post(hook, keys[0], [event("processed", i) for i in range(5)])
    assert r.status_code == 413 and count_events(runtime) == 0


@pytest.mark.parametrize("key", ["", "   ", "bm90IGEga2V5"])
def test_missing_or_bad_key_answers_503_and_logs(runtime, make_client, keys, key, caplog):
    with caplog.at_level(logging.ERROR, logger="drip.web.webhooks"):
        client = make_client(sendgrid_webhook_public_key=key)
        r = post(client, keys[0], [event("bounce", 1)])
    assert r.status_code == 503
    assert count_events(runtime) == 0
    assert any("configuration error" in rec.getMessage() and "SENDGRID_WEBHOOK_PUBLIC_KEY" in rec.getMessage()
               for rec in caplog.records)


def test_webhook_only_accepts_post(hook):
    assert hook.get(URL).status_code == 405


@pytest.mark.parametrize("backend, logged", [("outbox", False), ("smtp", False), ("sendgrid", True)])
def test_a_missing_key_is_an_error_at_start_only_when_sendgrid_sends(make_client, backend, logged, caplog):
    """`drip serve` on the outbox or SMTP has no SendGrid webhook to configure: no ERROR line for it."""
    with caplog.at_level(logging.INFO, logger="drip.web.webhooks"):
        make_client(backend=backend, sendgrid_webhook_public_key="", sendgrid_api_key="SG.test")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert bool(errors) is logged
    if logged:
        assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in errors[0].getMessage()


def test_an_unreadable_key_is_an_error_whatever_the_backend(make_client, caplog):
    with caplog.at_level(logging.ERROR, logger="drip.web.webhooks"):
        make_client(backend="outbox", sendgrid_webhook_public_key="bm90IGEga2V5")
    assert any("not a base64 DER EC public key" in r.getMessage() for r in caplog.records)
