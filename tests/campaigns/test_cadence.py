"""Cadence staff can trust: business-day spacing and a fixed local send time (hypothesis + cases)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.schedule import Cadence, add_days, parse_send_time, parse_window, schedule_sequence
from drip.errors import InputError

UTC = timezone.utc
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Tokyo", "America/Sao_Paulo"]
MON_FRI = parse_window("mon-fri 08:00-18:00")
DAILY = parse_window("daily 08:00-18:00")
SPACING = timedelta(hours=20)


def business_days_between(a: date, b: date) -> int:
    n, d = 0, a
    while d < b:
        d += timedelta(days=1)
        if d.weekday() < 5:
            n += 1
    return n


instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, second=0, microsecond=0))
send_times = st.builds(time, st.integers(8, 17), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=150, deadline=None)
@given(enrolled=instants, zone=st.sampled_from(ZONES), at=send_times, every=st.integers(1, 4),
       start=st.integers(0, 3), n=st.integers(1, 8))
def test_business_days_at_a_fixed_time_keep_exact_spacing(enrolled, zone, at, every, start, n):
    tz = ZoneInfo(zone)
    delays = [timedelta(days=start + i * every) for i in range(n)]
    times = schedule_sequence(enrolled, delays, MON_FRI, tz, SPACING, Cadence(business_days=True, send_time=at))
    local = [t.astimezone(tz) for t in times]
    assert times[0] >= enrolled and all(a < b for a, b in zip(times, times[1:]))
    assert all(x.weekday() < 5 for x in local)
    # the chosen time of day, except where a DST change skips it (then just after)
    assert all(x.time().replace(tzinfo=None) == at or x.utcoffset() != (x - timedelta(hours=3)).utcoffset()
               for x in local)
    assert all(business_days_between(a.date(), b.date()) == every for a, b in zip(local, local[1:]))


@settings(max_examples=150, deadline=None)
@given(enrolled=instants, zone=st.sampled_from(ZONES), at=send_times, every=st.integers(1, 4), n=st.integers(2, 8))
def test_calendar_days_keep_at_least_the_spacing_after_a_window_deferral(enrolled, zone, at, every, n):
    tz = ZoneInfo(zone)
    delays = [timedelta(days=i * every) for i in range(n)]
    times = schedule_sequence(enrolled, delays, MON_FRI, tz, SPACING, Cadence(send_time=at))
    local = [t.astimezone(tz) for t in times]
    assert all((b.date() - a.date()).days >= every for a, b in zip(local, local[1:]))
    assert all(MON_FRI.contains_wall(x.replace(tzinfo=None)) for x in local)


def test_the_reported_case_every_two_days_mon_fri_no_longer_jitters():
    """'every 2 days' in Mon-Fri from a Thursday 15:47 enrollment: today's gaps 2,4,1,1,... and
    hours between 15:47 and 09:00; with business days at 09:30, every gap is two business days."""
    tz = ZoneInfo("America/New_York")
    enrolled = datetime(2026, 12, 3, 20, 47, tzinfo=UTC)  # Thu 15:47 in New York
    delays = [timedelta(days=2 * i) for i in range(8)]
    times = schedule_sequence(enrolled, delays, parse_window("mon-fri 09:00-17:00"), tz, SPACING,
                              Cadence(business_days=True, send_time=time(9, 30)))
    local = [t.astimezone(tz) for t in times]
    assert [x.strftime("%a %d %H:%M") for x in local] == [
        "Fri 04 09:30", "Tue 08 09:30", "Thu 10 09:30", "Mon 14 09:30", "Wed 16 09:30", "Fri 18 09:30",
        "Tue 22 09:30", "Thu 24 09:30"]


def test_default_cadence_is_the_old_arithmetic():
    tz = ZoneInfo("Europe/Berlin")
    enrolled = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    delays = [timedelta(days=i) for i in range(5)]
    assert schedule_sequence(enrolled, delays, DAILY, tz, SPACING, Cadence()) == schedule_sequence(
        enrolled, delays, DAILY, tz, SPACING)


def test_add_days_and_parse_send_time():
    fri, sat = date(2026, 12, 4), date(2026, 12, 5)
    assert add_days(fri, 1, True) == date(2026, 12, 7) and add_days(fri, 5, True) == date(2026, 12, 11)
    assert add_days(sat, 0, True) == date(2026, 12, 7) and add_days(fri, 2, False) == sat + timedelta(days=1)
    assert parse_send_time("09:30") == time(9, 30) and parse_send_time("") is None
    with pytest.raises(InputError, match="HH:MM"):
        parse_send_time("9.30am")


# -- stored on the campaign, used by one-by-one and bulk enrollment alike


def _local_times(runtime, tz):
    from sqlalchemy import select

    from drip.models import Delivery

    with runtime.sessions() as s:
        return [d.astimezone(ZoneInfo(tz)).strftime("%a %H:%M")
                for d in s.scalars(select(Delivery.due_at).order_by(Delivery.subscriber_id, Delivery.due_at))]


def test_enroll_and_enroll_many_follow_the_campaign_cadence(runtime):
    from campaigns import service
    from campaigns.enrollment import enroll, enroll_many
    from tests.factories import make_campaign, make_subscriber

    now = datetime(2026, 12, 3, 20, 47, tzinfo=UTC)  # Thu 15:47 in New York
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=3, every=timedelta(days=2), window="mon-fri 09:00-17:00")
        service.set_cadence(s, c, business_days=True, send_time="09:30")
        one = make_subscriber(s, "one@example.org", tz="America/New_York")
        many = [make_subscriber(s, f"m{i}@example.org", tz="America/New_York").id for i in range(2)]
        enroll(s, one, c, now, clinic_tz="UTC")
        enroll_many(s, many, c, now, clinic_tz="UTC")
    plan = ["Fri 09:30", "Tue 09:30", "Thu 09:30", "Mon 09:30"]  # intro + 3 items, two business days apart
    assert _local_times(runtime, "America/New_York") == plan * 3


def test_a_send_time_outside_the_window_is_refused(runtime):
    from campaigns import service
    from tests.factories import make_campaign

    with runtime.sessions.begin() as s:
        c = make_campaign(s, window="mon-fri 09:00-17:00")
        with pytest.raises(InputError, match="outside the send window"):
            service.set_cadence(s, c, business_days=False, send_time="18:30")
