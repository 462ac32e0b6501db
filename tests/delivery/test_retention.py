"""Retention: finished delivery rows and provider events older than the setting go; promises stay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from delivery.retention import apply_retention, count_expired
from drip.models import Delivery, Event
from scheduler import Worker
from tests.factories import make_subscriber

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def _rows(rt, now: datetime = NOW):
    with rt.sessions.begin() as s:
        sid = make_subscriber(s, "p@example.org").id
        old, new = now - timedelta(days=400), now - timedelta(days=10)
        s.add_all([
            Delivery(subscriber_id=sid, due_at=old, sent_at=old, status="sent"),
            Delivery(subscriber_id=sid, due_at=old, status="failed"),
            Delivery(subscriber_id=sid, due_at=old, status="cancelled"),
            Delivery(subscriber_id=sid, due_at=old, status="scheduled"),  # overdue, still a promise
            Delivery(subscriber_id=sid, due_at=old, status="sending", lease_until=NOW),
            Delivery(subscriber_id=sid, due_at=new, sent_at=new, status="sent"),
            Event(provider="sendgrid", provider_event_id="e-old", type="delivered", email_key="p@example.org",
                  occurred_at=old, raw={}),
            Event(provider="sendgrid", provider_event_id="e-new", type="delivered", email_key="p@example.org",
                  occurred_at=new, raw={}),
        ])


def test_only_finished_old_rows_and_old_events_go(runtime):
    _rows(runtime)
    with runtime.sessions() as s:
        counted = count_expired(s, NOW, 365)
    assert (counted.deliveries, counted.events) == (3, 1)
    result = apply_retention(runtime.sessions, NOW, 365, batch=2)  # several batches
    assert (result.deliveries, result.events) == (3, 1)
    with runtime.sessions() as s:
        assert sorted(s.scalars(select(Delivery.status))) == ["scheduled", "sending", "sent"]
        assert list(s.scalars(select(Event.provider_event_id))) == ["e-new"]
    assert apply_retention(runtime.sessions, NOW, 0).deliveries == 0  # 0 keeps everything


def test_a_failing_chore_never_stops_the_worker():
    ran: list[str] = []
    w = Worker(lambda: None, 60.0)
    w.add_chore("boom", lambda: (_ for _ in ()).throw(RuntimeError("x")), 3600)
    w.add_chore("ok", lambda: ran.append("ok"), 3600)
    w._chore("boom", w.chores[0][1])  # logged, not raised
    w._chore("ok", w.chores[1][1])
    assert ran == ["ok"] and {j.id for j in w.build_scheduler().get_jobs()} >= {"boom", "ok", "dispatch"}


def test_the_hourly_job_uses_the_retention_saved_on_settings(runtime):
    """Read afresh by the job: it does not wait for a tick to have refreshed the process's settings."""
    from drip.clinic_settings import save_retention
    from drip.models import utcnow
    from drip.worker import _retention

    _rows(runtime, utcnow())  # the job runs at the real time
    _retention(runtime)
    with runtime.sessions() as s:
        assert len(list(s.scalars(select(Delivery.id)))) == 6  # DRIP_RETENTION_DAYS unset, nothing saved: kept
    with runtime.sessions.begin() as s:
        save_retention(s, 365)
    assert runtime.settings.retention_days == 0  # this process has not read it
    _retention(runtime)
    with runtime.sessions() as s:
        assert sorted(s.scalars(select(Delivery.status))) == ["scheduled", "sending", "sent"]
