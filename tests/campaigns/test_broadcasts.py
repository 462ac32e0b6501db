from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaigns import broadcasts
from delivery.dispatcher import Dispatcher
from drip.errors import InputError, NotFoundError
from drip.models import Broadcast, Delivery, SubscriberTag, Suppression, Tag
from tests.delivery.test_dispatcher import Clock, ScriptedBackend, run_until_done
from tests.factories import make_subscriber

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", None]


def with_list(s, n=4, status="active"):
    tag = Tag(name="newsletter")
    s.add(tag)
    s.flush()
    subs = []
    for i in range(n):
        sub = make_subscriber(s, f"n{i}@example.org", tz=ZONES[i % len(ZONES)], status=status)
        s.add(SubscriberTag(subscriber_id=sub.id, tag_id=tag.id))
        subs.append(sub)
    s.flush()
    return tag, subs


def make(s, slug="dec-news"):
    return broadcasts.create_broadcast(s, slug, title="December news", subject="December at the clinic",
                                       body="Hello.\n\nNews.", list_name="newsletter")


def test_schedule_local_time_in_each_zone(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        n = broadcasts.schedule(s, b, at="2026-12-01 09:00", local=True, clinic_tz="America/Chicago", now=NOW)
        assert n == 4
        rows = s.execute(select(Delivery.due_at, Delivery.subscriber_id)).all()
    locals_ = sorted(
        due.astimezone(ZoneInfo(z or "America/Chicago")).strftime("%H:%M") for (due, _), z in zip(sorted(rows, key=lambda r: r[1]), ZONES)
    )
    assert locals_ == ["09:00"] * 4
    assert len({due for due, _ in rows}) == 4  # four zones, four instants


def test_schedule_absolute_is_one_instant_in_clinic_zone(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="America/Chicago", now=NOW)
        dues = set(s.scalars(select(Delivery.due_at)))
    assert dues == {datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)}


def test_exactly_once_per_subscriber_even_if_scheduled_twice(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="UTC", now=NOW)
        assert broadcasts.materialize(s, b, datetime(2026, 12, 1, 9), False, "UTC") == 0
    clock = Clock(NOW)
    backend = ScriptedBackend(runtime.settings)
    run_until_done(Dispatcher(runtime, backend, clock=clock), clock)
    assert sorted(m.to_email for m in backend.sent) == [f"n{i}@example.org" for i in range(4)]
    with runtime.sessions.begin() as s:
        broadcasts.run_due(s, clock.now, "UTC")
        assert s.scalar(select(Broadcast.status)) == "sent"


def test_suppressed_and_unsubscribed_excluded(runtime):
    with runtime.sessions.begin() as s:
        _, subs = with_list(s)
        subs[0].status = "unsubscribed"
        s.add(Suppression(email_key=subs[1].email_key, reason="bounce"))
        s.flush()
        n = broadcasts.schedule(s, make(s), at="2026-12-01 09:00", clinic_tz="UTC", now=NOW)
    assert n == 2


def test_cancel_and_reschedule(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="UTC", now=NOW)
        assert broadcasts.reschedule(s, b, at="2026-12-02 10:30", local=False, clinic_tz="UTC", now=NOW) == 4
        assert set(s.scalars(select(Delivery.due_at))) == {datetime(2026, 12, 2, 10, 30, tzinfo=timezone.utc)}
        assert broadcasts.cancel(s, b) == 4
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}
        with pytest.raises(InputError):
            broadcasts.schedule(s, b, at="2026-12-03 09:00", clinic_tz="UTC", now=NOW)


def test_recurring_cron_fires_once_per_occurrence_and_coalesces(runtime):
    with runtime.sessions.begin() as s:
        with_list(s, n=2)
        b = make(s)
        broadcasts.schedule(s, b, cron="0 9 * * mon", clinic_tz="UTC", now=NOW)
        assert b.send_at == datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    with runtime.sessions.begin() as s:
        assert broadcasts.run_due(s, datetime(2026, 11, 30, 8, 59, tzinfo=timezone.utc), "UTC") == 0
        assert broadcasts.run_due(s, datetime(2026, 11, 30, 9, 1, tzinfo=timezone.utc), "UTC") == 1
        assert broadcasts.run_due(s, datetime(2026, 11, 30, 9, 2, tzinfo=timezone.utc), "UTC") == 0
        # three weeks without a worker: one occurrence, not three
        assert broadcasts.run_due(s, datetime(2026, 12, 21, 12, 0, tzinfo=timezone.utc), "UTC") == 1
        children = s.scalars(select(Broadcast.slug).where(Broadcast.parent_id.is_not(None)).order_by(Broadcast.id)).all()
        assert children == ["dec-news-202611300900", "dec-news-202612210900"]
        assert s.scalar(select(Broadcast.send_at).where(Broadcast.slug == "dec-news")) == datetime(
            2026, 12, 28, 9, 0, tzinfo=timezone.utc)
        assert len(s.scalars(select(Delivery.id)).all()) == 4


@pytest.mark.parametrize("kwargs,match", [
    ({"at": "tomorrow"}, "YYYY-MM-DD"),
    ({"cron": "not a cron"}, "cron"),
    ({}, "exactly one"),
    ({"at": "2020-01-01 09:00"}, "past"),
])
def test_bad_schedule_input(runtime, kwargs, match):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        with pytest.raises(InputError, match=match):
            broadcasts.schedule(s, b, clinic_tz="UTC", now=NOW, **kwargs)


def test_unknown_list_and_template(runtime):
    with runtime.sessions.begin() as s:
        with pytest.raises(NotFoundError, match="no list"):
            broadcasts.create_broadcast(s, "x", title="t", subject="s", body="b", list_name="nope")
    with pytest.raises(NotFoundError, match="holiday-hours"):
        broadcasts.load_template("nope")
    t = broadcasts.load_template("holiday-hours")
    assert t["subject"] == "Our holiday opening hours" and "Monday to Friday" in t["body"]


def test_newsletter_goes_at_its_time_not_a_campaign_window(runtime):
    # Saturday 23:59 in the clinic's zone: a campaign step would wait for Monday; a newsletter does not
    with runtime.sessions.begin() as s:
        with_list(s, n=1)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-05 23:59", clinic_tz="UTC", now=NOW)
    at = datetime(2026, 12, 5, 23, 59, 30, tzinfo=timezone.utc)
    backend = ScriptedBackend(runtime.settings)
    report = Dispatcher(runtime, backend, clock=Clock(at)).tick()
    assert report.sent == 1 and report.deferred == 0


def test_newsletter_subject_with_appointment_details_refused(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        with pytest.raises(InputError, match="appointment"):
            broadcasts.create_broadcast(s, "x", title="t", subject="Your appointment on Monday", body="b",
                                        list_name="newsletter")


def _dues(s, b):
    return set(s.scalars(select(Delivery.due_at).where(Delivery.broadcast_id == b.id)))


@pytest.mark.parametrize("again", ["schedule", "reschedule"])
def test_scheduling_again_moves_the_pending_emails(runtime, again):
    """`schedule --at <later>` on a scheduled newsletter used to leave its rows at the old time."""
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        assert broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="UTC", now=NOW) == 4
        n = getattr(broadcasts, again)(s, b, at="2027-03-01 09:00", clinic_tz="UTC", now=NOW)
        assert n == 4
        assert _dues(s, b) == {datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)}
        assert b.send_at == datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)
        # and into each patient's zone, for --local
        getattr(broadcasts, again)(s, b, at="2027-03-02 09:00", local=True, clinic_tz="UTC", now=NOW)
        assert len(_dues(s, b)) == 4 and min(_dues(s, b)) > datetime(2027, 3, 1, 12, tzinfo=timezone.utc)
    # nothing goes out at the old time
    backend = ScriptedBackend(runtime.settings)
    report = Dispatcher(runtime, backend, clock=Clock(datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc))).tick()
    assert report.sent == 0 and backend.sent == []


def test_recurring_newsletter_can_be_rescheduled(runtime):
    with runtime.sessions.begin() as s:
        with_list(s, n=2)
        b = make(s)
        broadcasts.schedule(s, b, cron="0 9 * * mon", clinic_tz="UTC", now=NOW)
        broadcasts.reschedule(s, b, cron="0 8 * * fri", clinic_tz="UTC", now=NOW)
        assert (b.cron, b.send_at) == ("0 8 * * fri", datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc))
        broadcasts.reschedule(s, b, at="2026-12-02 07:15", clinic_tz="UTC", now=NOW)  # its next occurrence
        assert b.send_at == datetime(2026, 12, 2, 7, 15, tzinfo=timezone.utc)
        with pytest.raises(InputError, match="--local"):
            broadcasts.reschedule(s, b, at="2026-12-02 07:15", local=True, clinic_tz="UTC", now=NOW)
    with runtime.sessions.begin() as s:
        assert broadcasts.run_due(s, datetime(2026, 11, 27, 8, 1, tzinfo=timezone.utc), "UTC") == 0
        assert broadcasts.run_due(s, datetime(2026, 12, 2, 7, 16, tzinfo=timezone.utc), "UTC") == 1
        parent = s.scalar(select(Broadcast).where(Broadcast.slug == "dec-news"))
        assert parent.send_at == datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)  # the cron again


def test_a_one_off_with_emails_does_not_silently_become_recurring(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="UTC", now=NOW)
        with pytest.raises(InputError, match="cancel it"):
            broadcasts.schedule(s, b, cron="0 9 * * mon", clinic_tz="UTC", now=NOW)


def test_pause_and_resume_a_one_off(runtime):
    with runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        broadcasts.schedule(s, b, at="2026-12-01 09:00", clinic_tz="UTC", now=NOW)
        assert broadcasts.pause(s, b) == 4 and b.status == "paused" and broadcasts.next_send(b) is None
        with pytest.raises(InputError, match="paused"):
            broadcasts.pause(s, b)
    clock = Clock(datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc))
    backend = ScriptedBackend(runtime.settings)
    assert Dispatcher(runtime, backend, clock=clock).tick().sent == 0  # held
    with runtime.sessions.begin() as s:
        b = broadcasts.get_broadcast(s, "dec-news")
        broadcasts.run_due(s, clock.now, "UTC")
        assert b.status == "paused"  # not closed as "sent" while held
        assert broadcasts.resume(s, b, clinic_tz="UTC", now=clock.now) == 4 and b.status == "scheduled"
    run_until_done(Dispatcher(runtime, backend, clock=clock), clock)
    assert len(backend.sent) == 4


def test_pause_a_recurring_newsletter_skips_what_fell_in_the_pause(runtime):
    with runtime.sessions.begin() as s:
        with_list(s, n=2)
        b = make(s)
        broadcasts.schedule(s, b, cron="0 9 * * mon", clinic_tz="UTC", now=NOW)
        broadcasts.pause(s, b)
    with runtime.sessions.begin() as s:
        assert broadcasts.run_due(s, datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc), "UTC") == 0
        b = broadcasts.get_broadcast(s, "dec-news")
        broadcasts.resume(s, b, clinic_tz="UTC", now=datetime(2026, 12, 8, 12, 0, tzinfo=timezone.utc))
        assert b.send_at == datetime(2026, 12, 14, 9, 0, tzinfo=timezone.utc)
    with runtime.sessions.begin() as s:
        assert broadcasts.run_due(s, datetime(2026, 12, 8, 12, 1, tzinfo=timezone.utc), "UTC") == 0
        assert broadcasts.run_due(s, datetime(2026, 12, 14, 9, 1, tzinfo=timezone.utc), "UTC") == 1


def test_cancelled_newsletter_has_no_next_date(runtime):
    with runtime.sessions.begin() as s:
        with_list(s, n=1)
        b = make(s)
        broadcasts.schedule(s, b, cron="0 9 * * mon", clinic_tz="UTC", now=NOW)
        assert broadcasts.next_send(b) == datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
        broadcasts.cancel(s, b)
        assert broadcasts.next_send(b) is None
        with pytest.raises(InputError, match="cancelled"):
            broadcasts.reschedule(s, b, cron="0 9 * * tue", clinic_tz="UTC", now=NOW)


def test_far_future_is_an_input_error(sqlite_runtime):
    with sqlite_runtime.sessions.begin() as s:
        with_list(s)
        b = make(s)
        for at in ("9999-12-31 23:59", "9999-12-31 00:00", "2062-01-01 09:00"):
            for zone in ("UTC", "Pacific/Pago_Pago", "Pacific/Kiritimati"):
                for local in (False, True):
                    with pytest.raises(InputError, match="5 years ahead"):
                        broadcasts.schedule(s, b, at=at, local=local, clinic_tz=zone, now=NOW)
        assert s.scalar(select(Delivery.id)) is None and b.status == "draft"
