"""Stopping enrollments: staff/API/CLI stop with a reason, exit conditions, and the worker's re-check
of rows it already claimed. On SQLite and PostgreSQL (the cancelling is SQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.enrollment import enroll
from campaigns.exits import add_exit, apply_exits, record_event, stop_in_campaign
from delivery.dispatcher import Dispatcher
from drip.errors import InputError, NotFoundError
from drip.models import Delivery, Enrollment
from subscribers.service import tag_subscribers, untag_subscribers
from tests.delivery.test_dispatcher import Clock, ScriptedBackend
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def enrolled(runtime, n=1, *, slug="onboarding"):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, slug, n_items=3, every=timedelta(days=1))
        ids = []
        for i in range(n):
            sub = make_subscriber(s, f"p{i}@example.org", name=f"P{i}")
            enroll(s, sub, c, T0, clinic_tz="UTC")
            ids.append(sub.id)
        return c.id, ids


def statuses(runtime, sid):
    with runtime.sessions() as s:
        return [(d.status, d.last_error) for d in s.scalars(
            select(Delivery).where(Delivery.subscriber_id == sid).order_by(Delivery.due_at))]


def enrollment(runtime, sid):
    with runtime.sessions() as s:
        return s.scalar(select(Enrollment).where(Enrollment.subscriber_id == sid))


def test_stop_cancels_the_scheduled_rows_and_records_the_reason(runtime):
    cid, (sid,) = enrolled(runtime)
    with runtime.sessions.begin() as s:
        s.execute(Delivery.__table__.update().where(Delivery.subscriber_id == sid, Delivery.due_at == T0)
                  .values(status="sent"))  # the first one already went out
    with runtime.sessions.begin() as s:
        from drip.models import Campaign
        done = stop_in_campaign(s, sid, s.get(Campaign, cid), "  booked   by phone ", T0 + timedelta(hours=1))
    assert done.cancelled == 3 and done.reason == "booked by phone"
    got = statuses(runtime, sid)
    assert got[0][0] == "sent" and {st for st, _ in got[1:]} == {"cancelled"}
    assert got[1][1] == "enrollment exited: booked by phone"
    e = enrollment(runtime, sid)
    assert e.state == "exited" and e.exit_reason == "booked by phone" and e.exited_at == T0 + timedelta(hours=1)
    with runtime.sessions.begin() as s, pytest.raises(NotFoundError):
        stop_in_campaign(s, sid, s.get(Campaign, cid), "again", T0)
    with runtime.sessions.begin() as s, pytest.raises(InputError, match="reason"):
        stop_in_campaign(s, sid, s.get(Campaign, cid), "   ", T0)


def test_exit_conditions_tag_added_tag_removed_and_event(runtime):
    cid, (a, b, c) = enrolled(runtime, 3)
    with runtime.sessions.begin() as s:
        from drip.models import Campaign
        camp = s.get(Campaign, cid)
        add_exit(s, camp, "tag-added", "booked", T0)
        add_exit(s, camp, "tag_removed", "interested", T0)  # spelling with _ is accepted
        add_exit(s, camp, "event", "appointment_booked", T0)
        tag_subscribers(s, [b], ["interested"], T0)
    with runtime.sessions.begin() as s:
        tag_subscribers(s, [a], ["booked", "unrelated"], T0)
        assert untag_subscribers(s, b, ["interested"], T0) == ["interested"]
        _, exited = record_event(s, c, "appointment_booked", T0)
        assert [e.campaign_slug for e in exited] == ["onboarding"]
        assert record_event(s, c, "appointment_booked", T0)[1] == []  # already out: nothing more
    reasons = {sid: enrollment(runtime, sid).exit_reason for sid in (a, b, c)}
    assert reasons == {a: "exit condition: tag “booked” added", b: "exit condition: tag “interested” removed",
                       c: "exit condition: event “appointment_booked”"}
    for sid in (a, b, c):
        assert {st for st, _ in statuses(runtime, sid)} == {"cancelled"}


def test_an_unrelated_change_stops_nothing(runtime):
    cid, (a,) = enrolled(runtime)
    with runtime.sessions.begin() as s:
        from drip.models import Campaign
        add_exit(s, s.get(Campaign, cid), "event", "appointment_booked", T0)
        record_event(s, a, "newsletter_opened", T0)
        tag_subscribers(s, [a], ["vip"], T0)
        assert apply_exits(s, [a], "event", ["appointment_cancelled"], T0) == []
    assert enrollment(runtime, a).state == "active"
    assert {st for st, _ in statuses(runtime, a)} == {"scheduled"}


def test_a_claimed_row_of_an_exited_patient_is_not_sent(runtime):
    """The worker claimed and checked the rows; then the booking system says the patient booked."""
    cid, ids = enrolled(runtime, 3)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(T0), worker_id="w1")
    loaded = d.store.load

    def load_then_exit(claimed):
        rows = loaded(claimed)  # enrollment still active in what the worker read
        with runtime.sessions.begin() as s:  # another transaction, as the API would
            from drip.models import Campaign
            stop_in_campaign(s, ids[1], s.get(Campaign, cid), "booked", T0)
        return rows

    d.store.load = load_then_exit
    report = d.run_batch()
    assert sorted(m.to_email for m in backend.sent) == ["p0@example.org", "p2@example.org"]
    assert report.sent == 2 and report.cancelled == 1
    first = statuses(runtime, ids[1])[0]
    assert first == ("cancelled", "enrollment exited: booked")
