"""Dispatcher logic against a real database, with a scriptable backend standing in for the provider.

End-to-end runs through the real outbox and a real SMTP server are in test_crash_safety.py and
test_end_to_end.py; here the point is what the dispatcher does with each kind of result.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll
from delivery.backends.base import BaseBackend
from delivery.dispatcher import Dispatcher, backoff
from delivery.types import SendResult
from drip.models import Campaign, Delivery, Subscriber, Suppression
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class ScriptedBackend(BaseBackend):
    """Answers each message by a rule: ok, transient or permanent. Records what it was asked to send."""

    name = "scripted"

    def __init__(self, settings, rule=lambda m: "ok"):
        super().__init__(settings)
        self.rule = rule
        self.sent: list = []

    def send_group(self, group):
        out = []
        for m in group:
            r = self.rule(m)
            if r == "ok":
                self.sent.append(m)
                out.append(SendResult(m.delivery_id, ok=True, message_id=f"<{m.delivery_id}@test>"))
            elif r == "transient":
                out.append(SendResult(m.delivery_id, ok=False, error="451 try later", transient=True))
            else:
                out.append(SendResult(m.delivery_id, ok=False, error="550 no such user"))
        return out


def setup(runtime, n_subs=3, n_items=2, window="daily 00:00-23:59", tz=None):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=n_items, window=window, every=timedelta(days=1))
        for i in range(n_subs):
            sub = make_subscriber(s, f"p{i}@example.org", name=f"P{i}", tz=tz)
            enroll(s, sub, c, T0, clinic_tz="UTC")
        return c.id


def run_until_done(d: Dispatcher, clock: Clock, limit=1000):
    for _ in range(limit):
        due = d.store.next_due_at()
        if due is None:
            return
        clock.now = max(clock.now, due)
        d.tick()
    raise AssertionError("did not finish")


def statuses(runtime):
    with runtime.sessions() as s:
        return [r for r in s.execute(select(Delivery.id, Delivery.status, Delivery.attempts, Delivery.last_error)).all()]


def test_every_due_email_sent_once_in_order(runtime):
    setup(runtime, n_subs=3, n_items=2)
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=clock)
    run_until_done(d, clock)
    assert {st for _, st, _, _ in statuses(runtime)} == {"sent"}
    ids = [m.delivery_id for m in backend.sent]
    assert len(ids) == len(set(ids)) == 9
    per_sub: dict[str, list[str]] = {}
    for m in backend.sent:
        per_sub.setdefault(m.to_email, []).append(m.subject)
        assert m.unsubscribe_url.startswith("https://clinic.test/u/")
        assert "P" in m.html and m.text
    assert all(len(v) == 3 for v in per_sub.values())
    assert all(v[0].startswith("Welcome") for v in per_sub.values())


def test_nothing_sent_before_due(runtime):
    setup(runtime, n_subs=1, n_items=2)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(T0 - timedelta(minutes=1)))
    assert d.tick().claimed == 0 and backend.sent == []


def test_permanent_failure_fails_row_with_reason(runtime):
    setup(runtime, n_subs=2, n_items=0)
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings, rule=lambda m: "permanent" if m.to_email == "p0@example.org" else "ok")
    d = Dispatcher(runtime, backend, clock=clock)
    report = d.tick()
    assert report.sent == 1 and report.failed == 1
    rows = {st: err for _, st, _, err in statuses(runtime)}
    assert "550 no such user" in rows["failed"]


def test_transient_failure_retries_with_backoff_then_sends(runtime):
    setup(runtime, n_subs=1, n_items=0)
    clock = Clock(T0)
    calls = {"n": 0}

    def rule(m):
        calls["n"] += 1
        return "transient" if calls["n"] <= 2 else "ok"

    backend = ScriptedBackend(runtime.settings, rule=rule)
    d = Dispatcher(runtime, backend, clock=clock, rng=random.Random(1))
    r1 = d.tick()
    assert r1.retried == 1 and r1.sent == 0
    with runtime.sessions() as s:
        row = s.scalar(select(Delivery))
        assert row.status == "scheduled" and row.due_at > T0 and "451" in row.last_error
    assert d.tick().claimed == 0  # not before the backoff
    run_until_done(d, clock)
    assert [st for _, st, _, _ in statuses(runtime)] == ["sent"]
    assert len(backend.sent) == 1


def test_transient_failures_give_up_after_max_attempts(runtime):
    runtime.settings = runtime.settings.with_(max_attempts=3)
    setup(runtime, n_subs=1, n_items=0)
    clock = Clock(T0)
    d = Dispatcher(runtime, ScriptedBackend(runtime.settings, rule=lambda m: "transient"), clock=clock)
    run_until_done(d, clock)
    [(_, st, attempts, err)] = statuses(runtime)
    assert st == "failed" and attempts == 3 and err.startswith("gave up after 3 attempts")


def test_backoff_grows_and_is_jittered():
    rng = random.Random(7)
    waits = [backoff(a, rng=rng) for a in range(1, 12)]
    assert all(30 <= w <= 3600 for w in waits)
    assert max(waits[:2]) <= 120 and max(waits[6:]) > 120
    assert len(set(round(w, 3) for w in waits)) == len(waits)


def test_auto_pause_after_consecutive_errors(runtime):
    runtime.settings = runtime.settings.with_(pause_after_errors=3)
    cid = setup(runtime, n_subs=5, n_items=0)
    d = Dispatcher(runtime, ScriptedBackend(runtime.settings, rule=lambda m: "permanent"), clock=Clock(T0))
    report = d.tick()
    assert report.paused_campaigns == ["onboarding"]
    with runtime.sessions() as s:
        c = s.get(Campaign, cid)
        assert c.status == "paused" and "consecutive" in c.paused_reason


def test_unsubscribed_and_suppressed_are_cancelled_not_sent(runtime):
    setup(runtime, n_subs=3, n_items=0)
    with runtime.sessions.begin() as s:
        s.scalar(select(Subscriber).where(Subscriber.email_key == "p0@example.org")).status = "unsubscribed"
        s.add(Suppression(email_key="p1@example.org", reason="bounce"))
    backend = ScriptedBackend(runtime.settings)
    report = Dispatcher(runtime, backend, clock=Clock(T0)).tick()
    assert report.cancelled == 2 and [m.to_email for m in backend.sent] == ["p2@example.org"]


def test_paused_campaign_holds_rows_until_published(runtime):
    cid = setup(runtime, n_subs=1, n_items=0)
    with runtime.sessions.begin() as s:
        s.get(Campaign, cid).status = "paused"
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(T0 + timedelta(days=3)))
    assert d.tick().claimed == 0
    with runtime.sessions.begin() as s:
        s.get(Campaign, cid).status = "published"
    assert d.tick().sent == 1


def test_frequency_cap_defers_never_drops(runtime):
    # two campaigns whose first steps are due at the same moment: cap 1/day defers the second
    with runtime.sessions.begin() as s:
        a = make_campaign(s, "a", n_items=0)
        b = make_campaign(s, "b", n_items=0)
        sub = make_subscriber(s, "x@example.org", tz="Europe/Berlin")
        enroll(s, sub, a, T0, clinic_tz="UTC")
        enroll(s, sub, b, T0, clinic_tz="UTC")
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=clock)
    r = d.tick()
    assert r.sent == 1 and r.deferred == 1
    run_until_done(d, clock)
    assert len(backend.sent) == 2
    from zoneinfo import ZoneInfo

    with runtime.sessions() as s:
        sent_at = sorted(s.scalars(select(Delivery.sent_at)))
    tz = ZoneInfo("Europe/Berlin")
    assert sent_at[0].astimezone(tz).date() != sent_at[1].astimezone(tz).date()


def test_outside_window_is_deferred_to_window(runtime):
    # worker was down: a row due Friday 16:00 New York gets picked up Saturday -> waits for Monday 09:00
    setup(runtime, n_subs=1, n_items=0, window="mon-fri 09:00-17:00", tz="America/New_York")
    saturday = datetime(2026, 12, 5, 17, 0, tzinfo=timezone.utc)
    backend = ScriptedBackend(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(saturday))
    r = d.tick()
    assert r.deferred == 1 and backend.sent == []
    with runtime.sessions() as s:
        due = s.scalar(select(Delivery.due_at))
    from zoneinfo import ZoneInfo

    local = due.astimezone(ZoneInfo("America/New_York"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


def test_edited_step_sends_latest_version_and_records_it(runtime):
    from campaigns import service

    setup(runtime, n_subs=1, n_items=1)
    with runtime.sessions.begin() as s:
        c = service.get_campaign(s, "onboarding")
        v2 = service.edit_step(s, c, 2, service.StepEdit(subject="Corrected subject"))
        v2_id = v2.id
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings)
    run_until_done(Dispatcher(runtime, backend, clock=clock), clock)
    assert "Corrected subject" in [m.subject for m in backend.sent]
    with runtime.sessions() as s:
        assert v2_id in set(s.scalars(select(Delivery.step_version_id)))


def test_expired_lease_is_reclaimed(runtime):
    setup(runtime, n_subs=1, n_items=0)
    clock = Clock(T0)
    d = Dispatcher(runtime, ScriptedBackend(runtime.settings), clock=clock, worker_id="dead")
    ids = d.store.claim(T0, 10, timedelta(minutes=5))  # claimed, then the worker "dies"
    assert len(ids) == 1
    backend = ScriptedBackend(runtime.settings)
    other = Dispatcher(runtime, backend, clock=clock, worker_id="alive")
    assert other.tick().sent == 0  # still leased
    clock.now = T0 + timedelta(minutes=6)
    r = other.tick()
    assert r.reclaimed == 1 and r.sent == 1


def test_outcomes_are_recorded_chunk_by_chunk(runtime):
    """A claim of 10 with record_every=3: after the backend dies on the 8th message, the first 6
    are already recorded as sent (only the last, unrecorded chunk could be sent again)."""
    runtime.settings = runtime.settings.with_(batch_size=10, record_every=3)
    setup(runtime, n_subs=10, n_items=0)

    class Dies(ScriptedBackend):
        def send_group(self, group):
            if len(self.sent) == 7:
                raise KeyboardInterrupt("worker killed")
            return super().send_group(group)

    with pytest.raises(KeyboardInterrupt):
        Dispatcher(runtime, Dies(runtime.settings), clock=Clock(T0)).tick()
    with runtime.sessions() as s:
        counts = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    assert counts == {"sent": 6, "sending": 4}
