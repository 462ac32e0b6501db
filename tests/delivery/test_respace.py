"""Minimum spacing after a deferral at send time (campaigns/respace.py), on SQLite and PostgreSQL:
a step the frequency cap or an outage moves later pushes its enrollment's later steps, so no two
emails of a series go closer than their gap (at least 20 h); nothing is lost or doubled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from campaigns import service
from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.models import Delivery, Step
from tests.delivery.test_dispatcher import Clock, ScriptedBackend
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)  # a Tuesday


def _rows(runtime, campaign_id):
    with runtime.sessions() as s:
        return s.execute(select(Delivery.status, Delivery.due_at, Delivery.sent_at, Step.delay_minutes)
                         .join(Step, Step.id == Delivery.step_id).where(Step.campaign_id == campaign_id)
                         .order_by(Step.position)).all()


def _run_until_sent(runtime, clock, backend, campaign_id, n):
    """Tick at each next due time of any row (a worker that is up again) until every row of the
    campaign is sent."""
    for _ in range(40):
        rows = _rows(runtime, campaign_id)
        if all(r.status == "sent" for r in rows):
            return rows
        with runtime.sessions() as s:
            due = s.scalar(select(func.min(Delivery.due_at)).where(Delivery.status == "scheduled"))
        clock.now = max(clock.now, due)
        Dispatcher(runtime, backend, clock=clock, worker_id="w").tick()
    raise AssertionError(f"not all {n} sent: {rows}")


def test_after_an_outage_the_series_keeps_its_daily_gap(runtime):
    """Every day, worker down for three days: all four steps are due at once. One goes (the cap is
    1/day), the rest are deferred; each later email then goes a full day after the one before."""
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "daily", n_items=3, every=timedelta(days=1))
        enroll(s, make_subscriber(s, "p@example.org", tz="UTC"), c, T0, clinic_tz="UTC")
        cid = c.id
    clock, backend = Clock(T0 + timedelta(days=3, hours=1)), ScriptedBackend(runtime.settings)
    rows = _run_until_sent(runtime, clock, backend, cid, 4)
    sent = [r.sent_at for r in rows]
    assert len(backend.sent) == 4  # none lost, none doubled
    assert all(b - a >= timedelta(days=1) for a, b in zip(sent, sent[1:])), sent


def test_a_step_deferred_by_the_cap_pushes_the_next_by_its_gap(runtime):
    """Two campaigns start the same day: the cap defers one's first email to the next day; its
    second email, two days on in the plan, goes two days after that, not one."""
    with runtime.sessions.begin() as s:
        a = make_campaign(s, "a", n_items=1, every=timedelta(days=2), window="daily 09:00-17:00")
        b = make_campaign(s, "b", n_items=1, every=timedelta(days=2), window="daily 09:00-17:00")
        sub = make_subscriber(s, "p@example.org", tz="UTC")
        enroll(s, sub, a, T0, clinic_tz="UTC")
        enroll(s, sub, b, T0, clinic_tz="UTC")
        ids = (a.id, b.id)
    clock, backend = Clock(T0 + timedelta(minutes=1)), ScriptedBackend(runtime.settings)
    Dispatcher(runtime, backend, clock=clock, worker_id="w").tick()
    firsts = {cid: _rows(runtime, cid)[0] for cid in ids}
    deferred = next(cid for cid, r in firsts.items() if r.status == "scheduled")
    first, second = _rows(runtime, deferred)
    assert first.due_at == datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)  # the next day's opening
    assert second.due_at - first.due_at >= timedelta(days=2)
    sent = [r.sent_at for r in _run_until_sent(runtime, clock, backend, deferred, 2)]
    assert sent[1] - sent[0] >= timedelta(days=2)


def test_a_fixed_send_time_and_business_days_hold_after_a_deferral(runtime):
    """Business days at 09:30: a first email the cap moves from Friday goes Monday 09:30 (not at the
    window's 09:00 opening), and the next, two business days on, Wednesday 09:30 (not Tuesday)."""
    fri = datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)  # Friday 08:00 UTC
    with runtime.sessions.begin() as s:
        other = make_campaign(s, "other", n_items=1, every=timedelta(days=2), window="mon-fri 09:00-17:00")
        c = make_campaign(s, "cadenced", n_items=1, every=timedelta(days=2), window="mon-fri 09:00-17:00")
        service.set_cadence(s, c, business_days=True, send_time="09:30")
        service.set_cadence(s, other, business_days=True, send_time="09:30")
        sub = make_subscriber(s, "p@example.org", tz="UTC")
        enroll(s, sub, other, fri, clinic_tz="UTC")
        enroll(s, sub, c, fri, clinic_tz="UTC")
        cid = c.id
        other_id = other.id
    clock, backend = Clock(datetime(2026, 12, 4, 9, 31, tzinfo=timezone.utc)), ScriptedBackend(runtime.settings)
    Dispatcher(runtime, backend, clock=clock, worker_id="w").tick()
    deferred = cid if _rows(runtime, cid)[0].status == "scheduled" else other_id
    first, second = _rows(runtime, deferred)
    utc = ZoneInfo("UTC")
    assert first.status == "scheduled" and first.due_at.astimezone(utc).strftime("%a") == "Mon"
    sent = [r.sent_at for r in _run_until_sent(runtime, clock, backend, deferred, 2)]
    local = [x.astimezone(utc) for x in sent]
    assert [x.strftime("%a %H:%M") for x in local] == ["Mon 09:30", "Wed 09:30"]
