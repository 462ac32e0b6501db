"""Suppression list and cancelling mail that has not gone out, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from drip.models import Delivery, DeliveryStatus, Suppression
from subscribers.suppression import cancel_pending, is_suppressed, suppress, suppressed_keys, unsuppress
from tests.web.seed import CANCELLED, SCHEDULED, T0, campaign_of, deliveries, enrollments, seed


def test_suppress_is_idempotent_and_keeps_the_first_reason(runtime):
    with runtime.sessions.begin() as s:
        assert suppress(s, "Ann@Example.org", "bounce", "sendgrid:bounce", T0) is True
        assert suppress(s, "ann@example.org ", "unsubscribe", "one-click", T0 + timedelta(hours=1)) is False
    with runtime.sessions() as s:
        rows = list(s.scalars(select(Suppression)))
        assert [(r.email_key, r.reason, r.source) for r in rows] == [("ann@example.org", "bounce", "sendgrid:bounce")]
        assert is_suppressed(s, "ANN@example.org")
        assert not is_suppressed(s, "bob@example.org")


def test_suppressed_keys_in_bulk_across_chunks(runtime):
    keys = [f"p{i}@example.org" for i in range(1200)]
    with runtime.sessions.begin() as s:
        for k in keys[::97]:
            suppress(s, k, "bounce", "test", T0)
    with runtime.sessions() as s:
        found = suppressed_keys(s, [k.upper() for k in keys] + ["", "nobody@example.org"])
    assert found == set(keys[::97])


def test_unsuppress_only_for_the_reasons_allowed(runtime):
    with runtime.sessions.begin() as s:
        suppress(s, "a@example.org", "bounce", "test", T0)
        suppress(s, "b@example.org", "unsubscribe", "test", T0)
        assert unsuppress(s, "a@example.org", only_reasons={"unsubscribe"}) is False
        assert unsuppress(s, "b@example.org", only_reasons={"unsubscribe"}) is True
    with runtime.sessions() as s:
        assert suppressed_keys(s, ["a@example.org", "b@example.org"]) == {"a@example.org"}


def test_cancel_pending_everything_leaves_sent_and_sending_rows(runtime):
    ids = seed(runtime)
    rows = deliveries(runtime, ids.subscriber_id)
    sent, sending = rows[0].id, rows[1].id
    with runtime.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.id == sent).values(status=DeliveryStatus.SENT.value))
        s.execute(update(Delivery).where(Delivery.id == sending).values(status=DeliveryStatus.SENDING.value))
    with runtime.sessions.begin() as s:
        n = cancel_pending(s, ids.subscriber_id, reason="test reason")
    after = {d.id: d for d in deliveries(runtime, ids.subscriber_id)}
    assert n == len(rows) - 2
    assert after[sent].status == "sent" and after[sending].status == "sending"
    others = [d for d in after.values() if d.id not in (sent, sending)]
    assert others and all(d.status == CANCELLED and d.last_error == "test reason" for d in others)
    assert set(enrollments(runtime, ids.subscriber_id).values()) == {"cancelled"}
    # Bob is untouched.
    assert {d.status for d in deliveries(runtime, ids.other_id)} == {SCHEDULED}
    assert set(enrollments(runtime, ids.other_id).values()) == {"active"}


def test_cancel_pending_one_campaign_only(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        n = cancel_pending(s, ids.subscriber_id, ids.campaign_id, reason="unsubscribed from this series")
    assert n == 3
    for d in deliveries(runtime, ids.subscriber_id):
        expected = CANCELLED if campaign_of(runtime, d) == ids.campaign_id else SCHEDULED
        assert d.status == expected, (d.id, d.broadcast_id)
    assert enrollments(runtime, ids.subscriber_id) == {ids.campaign_id: "cancelled", ids.other_campaign_id: "active"}
    assert set(enrollments(runtime, ids.other_id).values()) == {"active"}
    with runtime.sessions.begin() as s:  # a second call finds nothing left to cancel
        assert cancel_pending(s, ids.subscriber_id, ids.campaign_id, reason="again") == 0
