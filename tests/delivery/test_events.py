"""SendGrid events: normalising (hypothesis), storing once, and what each event does to the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from delivery.events import EventType, apply_events, normalize_sendgrid
from drip.models import Delivery, Event, Subscriber, Suppression
from tests.web.seed import CANCELLED, SCHEDULED, T0, deliveries, seed


def ev(event: str, n: int = 1, email: str = "ann@example.org", **extra) -> dict:
    return {"email": email, "timestamp": 1764597600 + n, "event": event, "sg_event_id": f"{event}-{n}",
            "sg_message_id": "msg.filter0001", **extra}


def apply(runtime, raws, now=T0, **settings_changes):
    settings = runtime.settings.with_(**settings_changes)
    with runtime.sessions.begin() as s:
        return apply_events(s, [normalize_sendgrid(r, now=now) for r in raws], settings, now)


def stored(runtime) -> list[tuple[str, str]]:
    with runtime.sessions() as s:
        return [(e.provider_event_id, e.type) for e in s.scalars(select(Event).order_by(Event.id))]


def status(runtime, sid):
    with runtime.sessions() as s:
        return s.get(Subscriber, sid).status


def suppression(runtime, key="ann@example.org"):
    with runtime.sessions() as s:
        row = s.get(Suppression, key)
        return row.reason if row else None


# -- normalising

def test_normalize_reads_sendgrid_fields():
    e = normalize_sendgrid(ev("bounce", 5, email=" Ann@Example.ORG", delivery_id="42", type="bounce"))
    assert e.type is EventType.BOUNCE
    assert e.provider_event_id == "bounce-5"
    assert e.email_key == "ann@example.org"
    assert e.delivery_id == 42  # custom_args arrive flattened into the event, as strings
    assert e.occurred_at == datetime.fromtimestamp(1764597605, tz=timezone.utc)
    assert e.raw["sg_message_id"] == "msg.filter0001"


def test_normalize_keeps_unknown_and_odd_events():
    e = normalize_sendgrid({"event": "machine_learning_magic", "email": 5, "delivery_id": "x1", "timestamp": "soon"},
                           now=T0)
    assert e.type is EventType.UNKNOWN and e.email_key == "" and e.delivery_id is None and e.occurred_at == T0
    # No sg_event_id: a stable synthetic id so a replay still dedupes.
    assert e.provider_event_id.startswith("sha256:")
    assert normalize_sendgrid(dict(reversed(list(e.raw.items()))), now=T0).provider_event_id == e.provider_event_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
event_dicts = st.dictionaries(
    st.sampled_from(["event", "email", "timestamp", "sg_event_id", "delivery_id", "type", "reason", "x"]),
    json_values | st.sampled_from(["bounce", "open", "delivered", "1764597600", "17"]),
)


@given(event_dicts)
@hsettings(max_examples=300, deadline=None)
def test_normalize_never_raises_and_is_deterministic(raw):
    a = normalize_sendgrid(raw, now=T0)
    b = normalize_sendgrid(dict(raw), now=T0)
    assert a == b
    assert isinstance(a.type, EventType) and a.provider_event_id and len(a.provider_event_id) <= 200
    assert a.delivery_id is None or a.delivery_id > 0
    assert a.occurred_at.tzinfo is not None


@given(st.integers(min_value=1, max_value=2**62))
def test_delivery_id_round_trips_as_string_or_int(n):
    assert normalize_sendgrid({"delivery_id": str(n)}).delivery_id == n
    assert normalize_sendgrid({"delivery_id": n}).delivery_id == n


# -- applying

def test_hard_bounce_suppresses_and_cancels(runtime):
    ids = seed(runtime)
    first = deliveries(runtime, ids.subscriber_id)[0]
    counts = apply(runtime, [ev("bounce", type="bounce", reason="550 no such user", delivery_id=str(first.id))])
    assert counts.stored == 1 and counts.suppressed == 1 and counts.cancelled == 7
    assert status(runtime, ids.subscriber_id) == "bounced"
    assert suppression(runtime) == "bounce"
    rows = deliveries(runtime, ids.subscriber_id)
    assert {d.status for d in rows} == {CANCELLED}
    assert rows[0].outcome == "bounced"
    assert {d.status for d in deliveries(runtime, ids.other_id)} == {SCHEDULED}


def test_blocked_bounce_is_not_the_address_fault(runtime):
    ids = seed(runtime)
    counts = apply(runtime, [ev("bounce", type="blocked", reason="421 try later")])
    assert counts.stored == 1 and counts.suppressed == 0
    assert status(runtime, ids.subscriber_id) == "active" and suppression(runtime) is None


def test_dropped_suppresses_only_for_address_reasons(runtime):
    ids = seed(runtime)
    apply(runtime, [ev("dropped", 1, reason="Spam Content (if spam checker app enabled)")])
    assert suppression(runtime) is None and status(runtime, ids.subscriber_id) == "active"
    apply(runtime, [ev("dropped", 2, reason="Spam Reporting Address")])
    assert suppression(runtime) == "complaint" and status(runtime, ids.subscriber_id) == "complained"
    apply(runtime, [ev("dropped", 3, email="bob@example.org", reason="Bounced Address")])
    assert suppression(runtime, "bob@example.org") == "bounce" and status(runtime, ids.other_id) == "bounced"


def test_spamreport_and_unsubscribe_events(runtime):
    ids = seed(runtime)
    apply(runtime, [ev("group_unsubscribe", 1, email="bob@example.org", asm_group_id=3)])
    assert status(runtime, ids.other_id) == "unsubscribed" and suppression(runtime, "bob@example.org") == "unsubscribe"
    apply(runtime, [ev("spamreport", 2)])
    assert status(runtime, ids.subscriber_id) == "complained" and suppression(runtime) == "complaint"
    # A later, milder event never downgrades the status.
    apply(runtime, [ev("unsubscribe", 3)])
    assert status(runtime, ids.subscriber_id) == "complained"
    # group_resubscribe is recorded but does not undo our suppression list.
    apply(runtime, [ev("group_resubscribe", 4, email="bob@example.org")])
    assert suppression(runtime, "bob@example.org") == "unsubscribe"
    assert ("group_resubscribe-4", "group_resubscribe") in stored(runtime)


def test_suppression_for_an_address_we_do_not_know(runtime):
    counts = apply(runtime, [ev("bounce", email="stranger@example.org")])
    assert counts.suppressed == 1 and suppression(runtime, "stranger@example.org") == "bounce"


def test_delivered_sets_outcome_but_never_over_a_bounce(runtime):
    ids = seed(runtime)
    d1, d2 = [d.id for d in deliveries(runtime, ids.subscriber_id)[:2]]
    apply(runtime, [ev("delivered", 1, delivery_id=str(d1))])
    apply(runtime, [ev("bounce", 2, delivery_id=str(d2)), ev("delivered", 3, delivery_id=str(d2))])
    with runtime.sessions() as s:
        assert s.get(Delivery, d1).outcome == "delivered"
        assert s.get(Delivery, d2).outcome == "bounced"


def test_delivery_id_of_another_address_is_not_touched(runtime):
    ids = seed(runtime)
    bobs = deliveries(runtime, ids.other_id)[0].id
    apply(runtime, [ev("delivered", 1, email="ann@example.org", delivery_id=str(bobs))])
    with runtime.sessions() as s:
        assert s.get(Delivery, bobs).outcome is None


def test_duplicates_are_stored_once_within_and_across_batches(runtime):
    seed(runtime)
    counts = apply(runtime, [ev("delivered", 1), ev("delivered", 1), ev("processed", 2)])
    assert (counts.received, counts.stored, counts.duplicates) == (3, 2, 1)
    again = apply(runtime, [ev("delivered", 1), ev("bounce", 9)])
    assert (again.stored, again.duplicates) == (1, 1)
    assert stored(runtime) == [("delivered-1", "delivered"), ("processed-2", "processed"), ("bounce-9", "bounce")]


def test_opens_and_clicks_only_with_tracking_on(runtime):
    seed(runtime)
    off = apply(runtime, [ev("open", 1), ev("click", 2, url="https://clinic.example/a")])
    assert off.ignored == 2 and off.stored == 0 and stored(runtime) == []
    on = apply(runtime, [ev("open", 1), ev("click", 2)], tracking=True)
    assert on.stored == 2 and [t for _, t in stored(runtime)] == ["open", "click"]


def test_unknown_events_are_kept_with_their_payload(runtime):
    counts = apply(runtime, [{"event": "brand_new_thing", "email": "a@example.org", "sg_event_id": "n1", "k": [1, 2]}])
    assert counts.stored == 1 and counts.by_type == {"unknown": 1}
    with runtime.sessions() as s:
        e = s.scalar(select(Event))
        assert e.type == "unknown" and e.raw["event"] == "brand_new_thing" and e.raw["k"] == [1, 2]
        assert s.scalar(select(func.count()).select_from(Suppression)) == 0


def test_events_store_received_time_and_occurred_time(runtime):
    apply(runtime, [ev("processed", 1)], now=T0 + timedelta(hours=1))
    with runtime.sessions() as s:
        e = s.scalar(select(Event))
        assert e.received_at == T0 + timedelta(hours=1)
        assert e.occurred_at == datetime.fromtimestamp(1764597601, tz=timezone.utc)
        assert e.provider == "sendgrid"
