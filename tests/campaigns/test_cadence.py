"""Cadence staff can trust: business-day spacing and a fixed local send time (hypothesis + cases)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.schedule import Cadence, SendWindow, add_days, parse_send_time, parse_window, schedule_sequence
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


# -- minimum spacing after deferrals, for random gaps, windows, zones and enrollment times

PROPERTY_ZONES = ZONES + ["America/St_Johns", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata"]


@st.composite
def windows(draw):
    """Any day set, an opening from 00:00 to 20:00 and a span of 1 to 12 hours (a whole day at most)."""
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    start = draw(st.integers(0, 20 * 4)) * 15
    end = min(start + draw(st.integers(4, 48)) * 15, 24 * 60 - 1)
    return SendWindow(frozenset(days), time(start // 60, start % 60), time(end // 60, end % 60))


@st.composite
def send_time_in(draw, window):
    """A fixed send time inside the window (the campaign page refuses one outside it)."""
    lo = window.start.hour * 60 + window.start.minute
    hi = window.end.hour * 60 + window.end.minute - 1
    m = draw(st.integers(lo, hi))
    return time(m // 60, m % 60)


gaps = st.lists(st.one_of(st.integers(0, 6).map(lambda d: timedelta(days=d)),
                          st.integers(0, 72 * 60).map(lambda m: timedelta(minutes=m))), min_size=1, max_size=7)


def wall_time_exists(day: date, at: time, tz: ZoneInfo) -> bool:
    """Whether `day at` happens on the patient's clock (not inside a spring-forward gap)."""
    wall = datetime.combine(day, at)
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


@settings(max_examples=200, deadline=None)
@given(enrolled=instants, zone=st.sampled_from(PROPERTY_ZONES), window=windows(), step_gaps=gaps)
def test_consecutive_sends_keep_the_gap_even_after_a_deferral(enrolled, zone, window, step_gaps):
    """Default cadence: each email goes no sooner than max(its gap, 20 h) after the previous one
    actually went, whatever the window deferred; always inside the window, never before its due."""
    tz = ZoneInfo(zone)
    delays = [sum(step_gaps[: i + 1], timedelta(0)) for i in range(len(step_gaps))]
    times = schedule_sequence(enrolled, delays, window, tz, SPACING)
    for i, at in enumerate(times):
        assert at >= enrolled + delays[i] and window.contains_wall(at.astimezone(tz).replace(tzinfo=None))
        if i:
            assert at - times[i - 1] >= max(delays[i] - delays[i - 1], SPACING)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), enrolled=instants, zone=st.sampled_from(PROPERTY_ZONES), window=windows(),
       day_gaps=st.lists(st.integers(0, 5), min_size=1, max_size=7), business=st.booleans())
def test_a_fixed_send_time_holds_and_days_keep_their_gap_after_a_deferral(data, enrolled, zone, window, day_gaps,
                                                                          business):
    """Fixed local send time: every email goes at exactly that local time (except on a day whose
    clocks skip it), inside the window, its whole days counted (Mon-Fri with business days) from the
    day the previous one actually went, and at least 20 h after it."""
    at = data.draw(send_time_in(window))
    tz = ZoneInfo(zone)
    delays = [timedelta(days=sum(day_gaps[: i + 1])) for i in range(len(day_gaps))]
    times = schedule_sequence(enrolled, delays, window, tz, SPACING, Cadence(business_days=business, send_time=at))
    local = [t.astimezone(tz) for t in times]
    assert times[0] >= enrolled
    for i, x in enumerate(local):
        assert window.contains_wall(x.replace(tzinfo=None))
        assert x.time().replace(tzinfo=None) == at or not wall_time_exists(x.date(), at, tz)
        if i:
            gap_days = day_gaps[i]
            assert times[i] - times[i - 1] >= SPACING
            counted = (business_days_between(local[i - 1].date(), x.date()) if business
                       else (x.date() - local[i - 1].date()).days)
            assert counted >= gap_days


def test_every_two_days_in_mon_fri_without_a_cadence_never_squeezes_a_gap_after_the_weekend():
    """The default arithmetic too: the step a weekend pushed to Monday pushes the next one, so the
    reported 2,4,1,1,... becomes gaps of at least two days (send times stay at the window's opening)."""
    tz = ZoneInfo("America/New_York")
    enrolled = datetime(2026, 12, 3, 20, 47, tzinfo=UTC)  # Thu 15:47 in New York
    times = schedule_sequence(enrolled, [timedelta(days=2 * i) for i in range(8)],
                              parse_window("mon-fri 09:00-17:00"), tz, SPACING)
    local = [t.astimezone(tz) for t in times]
    assert [x.strftime("%a %d %H:%M") for x in local] == [
        "Thu 03 15:47", "Mon 07 09:00", "Wed 09 09:00", "Fri 11 09:00", "Mon 14 09:00", "Wed 16 09:00",
        "Fri 18 09:00", "Mon 21 09:00"]


def test_a_weekend_step_with_a_fixed_time_goes_at_that_time_on_monday():
    """Calendar days, 09:30, Mon-Fri 09:00-17:00: Saturday's email goes Monday 09:30 (not the 09:00
    opening), and the next, two days on, Wednesday 09:30."""
    tz = ZoneInfo("Europe/Berlin")
    enrolled = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # Thu 09:00 in Berlin
    times = schedule_sequence(enrolled, [timedelta(days=2 * i) for i in range(3)],
                              parse_window("mon-fri 09:00-17:00"), tz, SPACING, Cadence(send_time=time(9, 30)))
    assert [t.astimezone(tz).strftime("%a %d %H:%M") for t in times] == ["Thu 03 09:30", "Mon 07 09:30",
                                                                          "Wed 09 09:30"]


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
