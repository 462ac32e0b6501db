"""Date-anchored steps: planned from the patient's date, moved when it changes, skipped (and
recorded) when passed or missing, never re-created once sent. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from campaigns.anchors import anchored_due, describe, parse_offset, set_anchor
from campaigns.enrollment import enroll, enroll_many
from campaigns.schedule import parse_window
from drip.models import Delivery, Step
from subscribers.attributes import define_attribute, set_attributes
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)  # a Tuesday
NY = ZoneInfo("America/New_York")


def test_anchored_due_keeps_the_wall_time_across_dst_and_respects_the_window():
    window = parse_window("mon-fri 09:00-17:00")
    # 3 days before Wed 11 Mar 2026 (DST began Sun 8 Mar): Sun 8 Mar 09:00 -> moved to Mon 9 Mar 09:00 EDT
    at = anchored_due(date(2026, 3, 11), -3 * 1440, window, NY, None)
    assert at.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 9, 9, 0)
    at = anchored_due(date(2026, 3, 11), 1440, window, NY, parse_window("daily 10:30-11:00").start)
    assert at.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 12, 10, 30)
    assert describe("first_visit", -4320) == "3 days before first_visit"
    assert describe("first_visit", 1440) == "1 day after first_visit"
    assert parse_offset("3d", "--before") == 4320


def _setup(s):
    define_attribute(s, "first_visit", "date")
    c = make_campaign(s, "visit", n_items=3, every=timedelta(days=1), window="daily 09:00-17:00")
    steps = list(s.scalars(select(Step).where(Step.campaign_id == c.id).order_by(Step.position)))
    set_anchor(s, steps[1], "first_visit", -3 * 1440, T0, clinic_tz="UTC")  # 3 days before
    set_anchor(s, steps[2], "first_visit", 1440, T0, clinic_tz="UTC")  # 1 day after
    return c, steps


def rows(runtime, sid):
    with runtime.sessions() as s:
        return {d.step_id: (d.status, d.due_at, d.last_error)
                for d in s.scalars(select(Delivery).where(Delivery.subscriber_id == sid))}


def test_enrollment_plans_anchored_steps_and_a_date_change_moves_them(runtime):
    with runtime.sessions.begin() as s:
        c, steps = _setup(s)
        sub = make_subscriber(s, "a@example.org")
        set_attributes(s, sub.id, {"first_visit": "2026-12-20"}, T0, clinic_tz="UTC")
        enroll(s, sub, c, T0, clinic_tz="UTC")
        sid, ids = sub.id, [st.id for st in steps]
    got = rows(runtime, sid)
    assert got[ids[0]][0] == "scheduled"  # the unanchored step keeps its delay
    assert got[ids[1]][:2] == ("scheduled", datetime(2026, 12, 17, 9, 0, tzinfo=timezone.utc))
    assert got[ids[2]][:2] == ("scheduled", datetime(2026, 12, 21, 9, 0, tzinfo=timezone.utc))

    later = T0 + timedelta(days=1)
    with runtime.sessions.begin() as s:  # the booking moves the visit
        set_attributes(s, sid, {"first_visit": "2027-01-10"}, later, clinic_tz="UTC")
    got = rows(runtime, sid)
    assert got[ids[1]][:2] == ("scheduled", datetime(2027, 1, 7, 9, 0, tzinfo=timezone.utc))
    assert got[ids[2]][:2] == ("scheduled", datetime(2027, 1, 11, 9, 0, tzinfo=timezone.utc))

    # The visit is moved to the day after tomorrow: "3 days before" has passed -> skipped, recorded.
    with runtime.sessions.begin() as s:
        set_attributes(s, sid, {"first_visit": "2026-12-04"}, later, clinic_tz="UTC")
    got = rows(runtime, sid)
    assert got[ids[1]][0] == "cancelled"
    assert got[ids[1]][2] == "skipped: 3 days before first_visit (2026-12-04) had passed"
    assert got[ids[2]][:2] == ("scheduled", datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc))

    # Moved into the future again: the skipped (never sent) step comes back; a sent one never does.
    with runtime.sessions.begin() as s:
        s.execute(Delivery.__table__.update().where(Delivery.subscriber_id == sid, Delivery.step_id == ids[2])
                  .values(status="sent", sent_at=later))
        set_attributes(s, sid, {"first_visit": "2027-02-01"}, later, clinic_tz="UTC")
    got = rows(runtime, sid)
    assert got[ids[1]][:3] == ("scheduled", datetime(2027, 1, 29, 9, 0, tzinfo=timezone.utc), "")
    assert got[ids[2]][:2] == ("sent", datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc))
    with runtime.sessions() as s:
        assert s.query(Delivery).filter(Delivery.subscriber_id == sid).count() == len(ids)  # none re-created


def test_passed_and_missing_dates_are_skipped_and_recorded_in_bulk_too(runtime):
    with runtime.sessions.begin() as s:
        c, steps = _setup(s)
        past = make_subscriber(s, "past@example.org")
        none = make_subscriber(s, "none@example.org", tz="America/New_York")
        set_attributes(s, past.id, {"first_visit": "2026-12-02"}, T0, clinic_tz="UTC")  # 3 days before: passed
        outcome = enroll_many(s, [past.id, none.id], c, T0, clinic_tz="UTC")
        assert outcome.enrolled == 2
        pid, nid, ids = past.id, none.id, [st.id for st in steps]
    got = rows(runtime, pid)
    assert got[ids[1]][0] == "cancelled" and got[ids[1]][2].endswith("(2026-12-02) had passed")
    assert got[ids[2]][:2] == ("scheduled", datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc))
    got = rows(runtime, nid)
    assert got[ids[0]][0] == "scheduled"
    assert got[ids[1]][:3:2] == ("cancelled", "skipped: no first_visit for this patient (3 days before first_visit)")
    assert got[ids[2]][0] == "cancelled"
    # The date arrives later (front desk books the visit): the skipped steps are planned, in the patient's zone.
    with runtime.sessions.begin() as s:
        set_attributes(s, nid, {"first_visit": "2026-12-20"}, T0, clinic_tz="UTC")
    got = rows(runtime, nid)
    assert got[ids[1]][0] == "scheduled"
    assert got[ids[1]][1].astimezone(NY).replace(tzinfo=None) == datetime(2026, 12, 17, 9, 0)
