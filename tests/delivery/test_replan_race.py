"""A row a worker has already claimed is re-checked before it is sent: if, between the claim and
the send, the patient's visit date moved (the anchored step is re-planned later, or its time has
now passed), the patient exited on an event, or staff stopped the series, the email does not go
out; the ledger says why. SQLite and PostgreSQL, a real dispatcher and database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.anchors import set_anchor
from campaigns.enrollment import enroll
from campaigns.exits import add_exit, record_event, stop_in_campaign
from delivery.dispatcher import Dispatcher
from drip.models import Campaign, Delivery, Step, SubscriberAttribute
from subscribers.attributes import define_attribute, set_attributes
from tests.delivery.test_dispatcher import Clock, ScriptedBackend
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)  # the worker's clock
ENROLLED = T0 - timedelta(days=3)
VISIT = "2026-12-01"  # "1 day before" it: 30 Nov 09:00 UTC, due at T0


def _setup(runtime) -> tuple[int, dict[str, int]]:
    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date")
        c = make_campaign(s, "visit", n_items=0, window="daily 09:00-17:00")
        (step,) = s.scalars(select(Step).where(Step.campaign_id == c.id)).all()
        set_anchor(s, step, "first_visit", -1440, ENROLLED, clinic_tz="UTC")
        add_exit(s, c, "event", "appointment_booked", ENROLLED)
        subs = {}
        for name in ("control", "moved", "passed", "booked", "stopped"):
            sub = make_subscriber(s, f"{name}@example.org", tz="UTC")
            set_attributes(s, sub.id, {"first_visit": VISIT}, ENROLLED, clinic_tz="UTC")
            enroll(s, sub, c, ENROLLED, clinic_tz="UTC")
            subs[name] = sub.id
        return c.id, subs


def _between_claim_and_send(runtime, campaign_id: int, subs: dict[str, int]) -> None:
    with runtime.sessions.begin() as s:
        set_attributes(s, subs["moved"], {"first_visit": "2026-12-20"}, T0, clinic_tz="UTC")
        set_attributes(s, subs["passed"], {"first_visit": "2026-11-25"}, T0, clinic_tz="UTC")
        record_event(s, subs["booked"], "appointment_booked", T0)
        stop_in_campaign(s, subs["stopped"], s.get(Campaign, campaign_id), "booked by phone", T0)


def _rows(runtime) -> dict[int, tuple[str, datetime, str]]:
    with runtime.sessions() as s:
        return {r.subscriber_id: (r.status, r.due_at, r.last_error) for r in s.scalars(select(Delivery))}


def test_claimed_rows_are_rechecked_for_replan_exit_and_stop(runtime):
    campaign_id, subs = _setup(runtime)
    backend = ScriptedBackend(runtime.settings)
    clock = Clock(T0)
    d = Dispatcher(runtime, backend, clock=clock, worker_id="w1")
    load = d.store.load
    claimed: list[str] = []

    def loading(ids):
        rows = load(ids)
        with runtime.sessions() as s:
            claimed.extend(s.scalars(select(Delivery.status).where(Delivery.id.in_(ids))))
        _between_claim_and_send(runtime, campaign_id, subs)
        return rows

    d.store.load = loading
    d.tick()
    assert claimed == ["sending"] * 5, "all five rows were claimed before anything changed"
    assert [m.to_email for m in backend.sent] == ["control@example.org"]

    by_sub = _rows(runtime)
    assert by_sub[subs["control"]][0] == "sent"
    assert by_sub[subs["moved"]][:2] == ("scheduled", datetime(2026, 12, 19, 9, 0, tzinfo=timezone.utc))
    assert by_sub[subs["passed"]][0] == "cancelled"
    assert by_sub[subs["passed"]][2] == "skipped: 1 day before first_visit (2026-11-25) had passed"
    assert by_sub[subs["booked"]][0] == "cancelled" and "appointment_booked" in by_sub[subs["booked"]][2]
    assert by_sub[subs["stopped"]][0] == "cancelled" and "booked by phone" in by_sub[subs["stopped"]][2]
    with runtime.sessions() as s:  # given back as it was: the attempt does not count
        assert s.scalar(select(Delivery.attempts).where(Delivery.subscriber_id == subs["moved"])) == 0

    d.store.load = load
    clock.now = datetime(2026, 12, 19, 9, 0, tzinfo=timezone.utc)
    d.tick()
    assert [m.to_email for m in backend.sent] == ["control@example.org", "moved@example.org"]
    assert _rows(runtime)[subs["moved"]][0] == "sent"


@pytest.mark.postgres
@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)
def test_a_replan_does_not_undo_a_send_recorded_meanwhile(runtime):
    """The re-plan writes only rows still re-plannable when it writes: a row the worker claimed,
    sent and recorded between the re-plan's read and its write stays sent (not scheduled again:
    that would send it twice). PostgreSQL only: on SQLite the re-plan's transaction takes the
    write lock at BEGIN (IMMEDIATE), so no worker can record in between."""
    from campaigns import anchors

    campaign_id, subs = _setup(runtime)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(T0), worker_id="w1")
    real_execute = None

    def send_then_write(session, *args, **kwargs):
        # The worker claims, sends and records everything just before the re-plan writes.
        if args and getattr(args[0], "is_dml", False) and not sent_first:
            sent_first.append(True)
            d.tick()
        return real_execute(session, *args, **kwargs)

    sent_first: list[bool] = []
    from sqlalchemy.orm import Session

    real_execute = Session.execute
    with runtime.sessions.begin() as s:  # the visit moves (written without re-planning, to re-plan below)
        s.execute(SubscriberAttribute.__table__.update()
                  .where(SubscriberAttribute.subscriber_id == subs["moved"]).values(value="2026-12-20"))
    with runtime.sessions.begin() as s:
        s.execute = send_then_write.__get__(s)  # type: ignore[method-assign]
        counts = anchors.plan_anchored(s, T0, clinic_tz="UTC", subscriber_ids=[subs["moved"]])
    assert sent_first and counts["planned"] == 1, "the re-plan read the row as scheduled and wrote"
    by_sub = _rows(runtime)
    assert all(status == "sent" for status, _, _ in by_sub.values()), by_sub
    d.clock.now = datetime(2026, 12, 19, 9, 0, tzinfo=timezone.utc)
    d.tick()
    assert len(backend.sent) == 5 and len({m.delivery_id for m in backend.sent}) == 5
