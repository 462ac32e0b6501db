"""Schedule arithmetic: hypothesis against a brute-force minute oracle, plus the DST cases by name.

The oracle walks wall time minute by minute (every offset change and every window opening in
2024-2030 falls on a whole UTC minute), so it shares no logic with `next_send_at`. Due times are
drawn near real offset changes of each zone, found here by a daily scan of `utcoffset`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from campaigns.schedule import (
    MAX_DURATION,
    SendWindow,
    defer_for_cap,
    format_duration,
    local_day_bounds,
    next_send_at,
    parse_duration,
    parse_window,
    resolve_zone,
    schedule_sequence,
)
from drip.errors import InputError

UTC = timezone.utc
MINUTE = timedelta(minutes=1)
SETTINGS = settings(max_examples=200, deadline=None)
ORACLE_SETTINGS = settings(max_examples=150, deadline=None)
LIGHT_SETTINGS = settings(max_examples=100, deadline=None)  # each example already runs several schedules

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Sydney",  # southern hemisphere: clocks go forward in October
    "Asia/Tokyo",  # no DST at all
    "Australia/Lord_Howe",  # DST is 30 minutes
    "America/St_Johns",  # half-hour offset
    "America/Santiago",  # spring forward at midnight: some days have no 00:00
    "Asia/Beirut",  # fall back at midnight to 23:00 of the day before
]
RANGE_START = datetime(2024, 1, 1, tzinfo=UTC)
RANGE_END = datetime(2031, 1, 1, tzinfo=UTC)


def tz_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _find_changes(tz: ZoneInfo) -> list[datetime]:
    """Offset changes in 2024-2030: scan daily, then bisect to the minute (independent of schedule.py)."""
    out = []
    day = RANGE_START
    while day < RANGE_END:
        nxt = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            lo, hi = day, nxt
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) // 2 // MINUTE * MINUTE
                if mid.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
                    hi = mid
                else:
                    lo = mid
            out.append(hi)
        day = nxt
    return out


CHANGES = {name: _find_changes(tz_of(name)) for name in ZONES}


def wall(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz).replace(tzinfo=None)


def inside(at: datetime, window: SendWindow, tz: ZoneInfo) -> bool:
    local = at.astimezone(tz)
    return local.weekday() in window.days and window.start <= local.time() < window.end


def brute_next(due: datetime, window: SendWindow, tz: ZoneInfo, horizon: timedelta = timedelta(days=16)) -> datetime:
    """First instant >= due inside the window, by checking due and then every whole UTC minute."""
    if inside(due, window, tz):
        return due
    t = due.replace(second=0, microsecond=0)
    if t < due:
        t += MINUTE
    limit = due + horizon
    while t <= limit:
        if inside(t, window, tz):
            return t
        t += MINUTE
    raise AssertionError(f"oracle found nothing inside {window} within {horizon} of {due}")


# -- strategies --------------------------------------------------------------------------------

minutes_of_day = st.one_of(st.integers(0, 1438), st.integers(0, 4 * 60))  # biased to DST hours


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    start = draw(minutes_of_day)
    length = draw(st.one_of(st.integers(1, 90), st.integers(1, 1439 - start)))
    end = min(start + length, 1439)
    return SendWindow(days, time(start // 60, start % 60), time(end // 60, end % 60))


@st.composite
def zone_and_due(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    name = draw(st.sampled_from(ZONES))
    changes = CHANGES[name]
    if changes and draw(st.booleans()):
        base = draw(st.sampled_from(changes))
        due = base + timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))
    else:
        due = draw(st.datetimes(min_value=datetime(2024, 1, 2), max_value=datetime(2030, 12, 20))).replace(tzinfo=UTC)
    if draw(st.booleans()):
        due = due.replace(microsecond=draw(st.integers(0, 999_999)))
    return tz_of(name), due


@st.composite
def window_at_a_change(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, SendWindow]:
    """A window opening or closing within 90 minutes of the wall times around an offset change."""
    name = draw(st.sampled_from([z for z in ZONES if CHANGES[z]]))
    tz = tz_of(name)
    change = draw(st.sampled_from(CHANGES[name]))
    anchor = draw(st.sampled_from([wall(change - MINUTE, tz) + MINUTE, wall(change, tz)]))
    start = min(max(anchor.hour * 60 + anchor.minute + draw(st.integers(-90, 90)), 0), 1438)
    end = min(start + draw(st.one_of(st.integers(1, 120), st.integers(1, 1439 - start))), 1439)
    days = draw(st.frozensets(st.integers(0, 6))) | {anchor.weekday(), wall(change, tz).weekday()}
    window = SendWindow(days, time(start // 60, start % 60), time(end // 60, end % 60))
    due = change + timedelta(seconds=draw(st.integers(-2 * 86400, 3 * 3600)))
    return tz, due, window


# -- next_send_at: properties ------------------------------------------------------------------


@ORACLE_SETTINGS
@given(zd=zone_and_due(), window=windows())
def test_next_send_at_matches_minute_oracle(zd: tuple[ZoneInfo, datetime], window: SendWindow) -> None:
    tz, due = zd
    got = next_send_at(due, window, tz)
    assert got == brute_next(due, window, tz)  # inside, >= due, and nothing earlier is inside


@ORACLE_SETTINGS
@given(case=window_at_a_change())
def test_next_send_at_at_offset_changes_matches_minute_oracle(case: tuple[ZoneInfo, datetime, SendWindow]) -> None:
    tz, due, window = case
    assert next_send_at(due, window, tz) == brute_next(due, window, tz)


@SETTINGS
@given(zd=zone_and_due(), window=windows())
def test_next_send_at_is_inside_later_and_idempotent(zd: tuple[ZoneInfo, datetime], window: SendWindow) -> None:
    tz, due = zd
    got = next_send_at(due, window, tz)
    assert got.tzinfo is UTC
    assert got >= due
    local = got.astimezone(tz)
    assert local.weekday() in window.days
    assert window.start <= local.time() < window.end
    assert next_send_at(got, window, tz) == got
    assert next_send_at(due.astimezone(tz), window, tz) == got  # any aware input, UTC out
    if got > due:  # due was outside, and so was the second before the answer
        assert not inside(due, window, tz)
        if got - timedelta(seconds=1) >= due:
            assert not inside(got - timedelta(seconds=1), window, tz)


# -- next_send_at: named cases -----------------------------------------------------------------

NY = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_inside_window_is_returned_unchanged() -> None:
    due = utc(2024, 6, 4, 14, 7, 3, 123)  # Tue 10:07:03 EDT
    assert next_send_at(due, parse_window("mon-fri 09:00-17:00"), NY) == due


def test_friday_evening_waits_for_monday_morning() -> None:
    got = next_send_at(utc(2024, 6, 7, 22, 0), parse_window("mon-fri 09:00-17:00"), NY)  # Fri 18:00 EDT
    assert got == utc(2024, 6, 10, 13, 0)  # Mon 09:00 EDT


def test_end_is_exclusive_start_inclusive() -> None:
    window = parse_window("daily 09:00-17:00")
    assert next_send_at(utc(2024, 6, 4, 21, 0), window, NY) == utc(2024, 6, 5, 13, 0)  # 17:00 -> next 09:00
    assert next_send_at(utc(2024, 6, 4, 13, 0), window, NY) == utc(2024, 6, 4, 13, 0)


def test_opening_inside_spring_forward_gap_moves_to_end_of_gap() -> None:
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 does not exist.
    got = next_send_at(utc(2024, 3, 10, 5, 0), parse_window("daily 02:30-04:00"), NY)
    assert got == utc(2024, 3, 10, 7, 0)
    assert wall(got, NY) == datetime(2024, 3, 10, 3, 0)


def test_window_wholly_inside_gap_skips_that_day() -> None:
    # Sunday 2024-03-10 has no 02:00-02:30; the next Sunday does.
    got = next_send_at(utc(2024, 3, 10, 5, 0), parse_window("sun 02:00-02:30"), NY)
    assert wall(got, NY) == datetime(2024, 3, 17, 2, 0)


def test_opening_in_fall_back_overlap_takes_first_occurrence() -> None:
    # 2024-11-03: 02:00 EDT falls back to 01:00 EST (06:00 UTC); 01:30 happens twice.
    got = next_send_at(utc(2024, 11, 3, 4, 0), parse_window("daily 01:30-03:00"), NY)
    assert got == utc(2024, 11, 3, 5, 30)  # 01:30 EDT, not 01:30 EST (06:30 UTC)
    assert got.astimezone(NY).fold == 0


def test_clocks_falling_back_into_window_open_it_again() -> None:
    # 01:40 EDT is past a 00:00-01:30 window; at 06:00 UTC the clocks read 01:00 EST, inside again.
    got = next_send_at(utc(2024, 11, 3, 5, 40), parse_window("daily 00:00-01:30"), NY)
    assert got == utc(2024, 11, 3, 6, 0)
    assert wall(got, NY) == datetime(2024, 11, 3, 1, 0)


def test_second_pass_of_repeated_time_opens_window_again() -> None:
    # 01:50 EDT is past a 01:30-01:40 window; the clocks go back and read 01:30 again (EST) at 06:30 UTC.
    got = next_send_at(utc(2024, 11, 3, 5, 50), parse_window("daily 01:30-01:40"), NY)
    assert got == utc(2024, 11, 3, 6, 30)
    assert got.astimezone(NY).fold == 1


def test_gap_across_midnight_opens_when_clocks_jump() -> None:
    # Toronto, 1919-03-30: 23:30 jumped to 00:30 on the 31st, so that day began at 00:30.
    tz = ZoneInfo("America/Toronto")
    got = next_send_at(utc(1919, 3, 30, 12, 0), parse_window("mon 00:00-06:00"), tz)
    assert wall(got, tz) == datetime(1919, 3, 31, 0, 30)
    start, end = local_day_bounds(utc(1919, 3, 31, 12, 0), tz)
    assert wall(start, tz) == datetime(1919, 3, 31, 0, 30)
    assert end - start == timedelta(hours=23, minutes=30)


def test_second_pass_of_repeated_hour_inside_window_is_kept() -> None:
    due = utc(2024, 11, 3, 6, 45)  # 01:45 EST, second pass
    assert next_send_at(due, parse_window("daily 01:30-03:00"), NY) == due


@pytest.mark.parametrize(
    ("zone", "due", "window", "expected_wall"),
    [
        # Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST.
        ("Europe/Berlin", utc(2024, 3, 30, 23, 0), "daily 02:15-02:45", datetime(2024, 4, 1, 2, 15)),
        ("Europe/Berlin", utc(2024, 3, 30, 23, 0), "daily 02:15-03:30", datetime(2024, 3, 31, 3, 0)),
        # Australia/Sydney: spring forward in October (02:00 -> 03:00), back in April (03:00 -> 02:00).
        ("Australia/Sydney", utc(2024, 10, 5, 14, 0), "sun 02:30-06:00", datetime(2024, 10, 6, 3, 0)),
        ("Australia/Sydney", utc(2024, 4, 6, 14, 0), "sun 02:30-06:00", datetime(2024, 4, 7, 2, 30)),
        # Australia/Lord_Howe: 30-minute DST, 2024-10-06 02:00 -> 02:30.
        ("Australia/Lord_Howe", utc(2024, 10, 5, 13, 0), "daily 02:10-03:00", datetime(2024, 10, 6, 2, 30)),
        ("Australia/Lord_Howe", utc(2024, 10, 5, 13, 0), "daily 02:00-02:20", datetime(2024, 10, 7, 2, 0)),
        # America/St_Johns: UTC-2:30 in summer, so 09:00 local is 11:30 UTC.
        ("America/St_Johns", utc(2024, 7, 1, 3, 0), "mon-fri 09:00-17:00", datetime(2024, 7, 1, 9, 0)),
        # Asia/Tokyo: no DST, plain arithmetic.
        ("Asia/Tokyo", utc(2024, 3, 10, 10, 0), "daily 09:00-17:00", datetime(2024, 3, 11, 9, 0)),
        # America/Santiago: 2024-09-08 00:00 -> 01:00, so a midnight opening becomes 01:00.
        ("America/Santiago", utc(2024, 9, 7, 12, 0), "sun 00:00-06:00", datetime(2024, 9, 8, 1, 0)),
        # Pacific/Apia skipped Friday 2011-12-30 entirely: the next Friday is 2012-01-06.
        ("Pacific/Apia", utc(2011, 12, 29, 12, 0), "fri 09:00-17:00", datetime(2012, 1, 6, 9, 0)),
    ],
)
def test_dst_and_odd_zones(zone: str, due: datetime, window: str, expected_wall: datetime) -> None:
    tz = ZoneInfo(zone)
    got = next_send_at(due, parse_window(window), tz)
    assert wall(got, tz) == expected_wall
    assert got == brute_next(due, parse_window(window), tz, horizon=timedelta(days=10))


def test_st_johns_opening_is_half_hour_in_utc() -> None:
    got = next_send_at(utc(2024, 7, 1, 3, 0), parse_window("mon-fri 09:00-17:00"), ZoneInfo("America/St_Johns"))
    assert got == utc(2024, 7, 1, 11, 30)


def test_naive_due_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_at(datetime(2024, 6, 4, 12, 0), parse_window("daily 09:00-17:00"), NY)


# -- schedule_sequence -------------------------------------------------------------------------


@LIGHT_SETTINGS
@given(
    zd=zone_and_due(),
    window=windows(),
    delays=st.lists(st.integers(0, 20 * 24 * 60).map(lambda m: timedelta(minutes=m)), max_size=6),
    spacing=st.integers(1, 48 * 60).map(lambda m: timedelta(minutes=m)),
)
def test_sequence_is_ordered_spaced_and_in_window(
    zd: tuple[ZoneInfo, datetime], window: SendWindow, delays: list[timedelta], spacing: timedelta
) -> None:
    tz, enrolled = zd
    times = schedule_sequence(enrolled, delays, window, tz, spacing)
    assert len(times) == len(delays)
    prev = prev_delay = None
    for at, delay in zip(times, delays):
        assert at >= enrolled + delay
        assert inside(at, window, tz)
        due = enrolled + delay
        if prev is not None:
            # after a deferral too: the gap staff set between the two steps, and at least the spacing
            assert at - prev >= max(spacing, delay - prev_delay)
            due = max(due, prev + max(spacing, delay - prev_delay))
        assert at == next_send_at(due, window, tz)  # as early as the rules allow
        prev, prev_delay = at, delay


def test_sequence_example_weekend_and_spacing() -> None:
    window = parse_window("mon-fri 09:00-17:00")
    enrolled = utc(2024, 6, 7, 20, 30)  # Fri 16:30 EDT
    times = schedule_sequence(enrolled, [timedelta(0), timedelta(hours=1), timedelta(days=1)], window, NY)
    assert [wall(t, NY) for t in times] == [
        datetime(2024, 6, 7, 16, 30),  # inside: at once
        datetime(2024, 6, 10, 9, 0),  # Fri 17:30 is closed; Sat 12:30 (20 h spacing) too: Monday
        datetime(2024, 6, 11, 9, 0),  # Mon 09:00 + 20 h = Tue 05:00 -> Tue 09:00
    ]


def test_sequence_refuses_bad_arguments() -> None:
    window = parse_window("daily 09:00-17:00")
    assert schedule_sequence(utc(2024, 6, 4, 12), [], window, NY) == []
    with pytest.raises(ValueError, match="negative"):
        schedule_sequence(utc(2024, 6, 4, 12), [timedelta(days=-1)], window, NY)
    with pytest.raises(ValueError, match="min_spacing"):
        schedule_sequence(utc(2024, 6, 4, 12), [timedelta(0)], window, NY, timedelta(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_sequence(datetime(2024, 6, 4, 12), [timedelta(0)], window, NY)


# -- local_day_bounds and defer_for_cap --------------------------------------------------------


@SETTINGS
@given(zd=zone_and_due())
def test_day_bounds_hold_exactly_one_local_date(zd: tuple[ZoneInfo, datetime]) -> None:
    tz, at = zd
    start, end = local_day_bounds(at, tz)
    assert start <= at < end
    day = at.astimezone(tz).date()
    second = timedelta(seconds=1)
    assert start.astimezone(tz).date() == day and (start - second).astimezone(tz).date() < day
    assert (end - second).astimezone(tz).date() == day and end.astimezone(tz).date() > day
    assert timedelta(hours=23) <= end - start <= timedelta(hours=25)


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/New_York", date(2024, 3, 10), 23),
        ("America/New_York", date(2024, 11, 3), 25),
        ("America/New_York", date(2024, 6, 4), 24),
        ("Australia/Sydney", date(2024, 10, 6), 23),
        ("Australia/Lord_Howe", date(2024, 10, 6), 23.5),
        ("Australia/Lord_Howe", date(2024, 4, 7), 24.5),
        ("America/Santiago", date(2024, 9, 8), 23),  # starts at 01:00: midnight never happened
        ("Asia/Beirut", date(2024, 10, 26), 25),  # Saturday ends with 23:00-24:00 twice
    ],
)
def test_day_bounds_lengths(zone: str, day: date, hours: float) -> None:
    tz = ZoneInfo(zone)
    noon = datetime.combine(day, time(12), tzinfo=tz)
    start, end = local_day_bounds(noon, tz)
    assert end - start == timedelta(hours=hours)


def test_day_bounds_when_midnight_is_skipped() -> None:
    tz = ZoneInfo("America/Santiago")
    start, _ = local_day_bounds(utc(2024, 9, 8, 15, 0), tz)
    assert wall(start, tz) == datetime(2024, 9, 8, 1, 0)


@LIGHT_SETTINGS
@given(zd=zone_and_due(), window=windows())
def test_defer_for_cap_lands_on_a_later_local_day_inside_the_window(
    zd: tuple[ZoneInfo, datetime], window: SendWindow
) -> None:
    tz, at = zd
    got = defer_for_cap(at, window, tz)
    _, end = local_day_bounds(at, tz)
    assert got >= end
    assert got.astimezone(tz).date() > at.astimezone(tz).date()
    assert inside(got, window, tz)
    assert got == next_send_at(end, window, tz)


def test_defer_for_cap_examples() -> None:
    window = parse_window("mon-fri 09:00-17:00")
    # Tuesday 08:00: today's window has not opened, but today's cap is spent -> Wednesday 09:00.
    assert wall(defer_for_cap(utc(2024, 6, 4, 12, 0), window, NY), NY) == datetime(2024, 6, 5, 9, 0)
    # Friday afternoon -> Monday morning (the weekend is closed; never dropped).
    assert wall(defer_for_cap(utc(2024, 6, 7, 19, 0), window, NY), NY) == datetime(2024, 6, 10, 9, 0)


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0d", timedelta(0)),
        ("2d", timedelta(days=2)),
        ("36h", timedelta(hours=36)),
        ("90m", timedelta(minutes=90)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m", timedelta(weeks=1, days=2, hours=3, minutes=4)),
        ("  3h ", timedelta(hours=3)),
    ],
)
def test_parse_duration_examples(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-1d", "negative"),
        ("2 days", "bad duration"),
        ("1 d", "bad duration"),
        ("1.5d", "bad duration"),
        ("3y", "bad duration"),
        ("12h1d", "bad duration"),  # units out of order
        ("1d1d", "bad duration"),
        ("d", "bad duration"),
        ("5", "bad duration"),
        ("1D", "bad duration"),
        ("\u0661d", "bad duration"),  # an Arabic-Indic digit: int() would take it, we do not
        ("99999999999w", "longer than"),
        ("3661d", "longer than"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_duration(text, field="--every")
    assert info.value.where == "--every"
    assert str(info.value).startswith("--every: ")
    assert "\n" not in str(info.value)


def test_parse_duration_default_field_is_named() -> None:
    with pytest.raises(InputError) as info:
        parse_duration("soon")
    assert info.value.where == "duration"


@SETTINGS
@given(st.integers(0, MAX_DURATION // MINUTE).map(lambda m: timedelta(minutes=m)))
def test_duration_round_trip(td: timedelta) -> None:
    text = format_duration(td)
    assert parse_duration(text) == td
    assert format_duration(parse_duration(text)) == text


@SETTINGS
@given(
    st.tuples(*(st.one_of(st.none(), st.integers(0, 400)) for _ in "wdhm")).filter(lambda t: any(x is not None for x in t))
)
def test_parsed_strings_normalise(parts: tuple[int | None, ...]) -> None:
    text = "".join(f"{n}{u}" for n, u in zip(parts, "wdhm") if n is not None)
    td = parse_duration(text)
    w, d, h, m = (n or 0 for n in parts)
    assert td == timedelta(weeks=w, days=d, hours=h, minutes=m)
    assert parse_duration(format_duration(td)) == td


@SETTINGS
@given(st.text(max_size=20))
@example("1w1w")
def test_parse_duration_never_fails_otherwise(text: str) -> None:
    try:
        assert parse_duration(text) >= timedelta(0)
    except InputError as exc:
        assert exc.where == "duration"


def test_format_duration_examples_and_refusals() -> None:
    assert format_duration(timedelta(0)) == "0d"
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(days=10)) == "10d"
    assert format_duration(timedelta(days=14)) == "2w"
    assert format_duration(timedelta(days=1, hours=12)) == "1d12h"
    with pytest.raises(ValueError):
        format_duration(timedelta(minutes=-1))
    with pytest.raises(ValueError):
        format_duration(timedelta(seconds=30))


# -- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "start", "end", "canonical"),
    [
        ("mon-fri 09:00-17:00", {0, 1, 2, 3, 4}, time(9), time(17), "mon-fri 09:00-17:00"),
        ("mon,wed,fri 10:00-12:30", {0, 2, 4}, time(10), time(12, 30), "mon,wed,fri 10:00-12:30"),
        ("daily 08:00-20:00", set(range(7)), time(8), time(20), "daily 08:00-20:00"),
        ("sat-sun 10:00-14:00", {5, 6}, time(10), time(14), "sat-sun 10:00-14:00"),
        ("fri-mon 10:00-14:00", {4, 5, 6, 0}, time(10), time(14), "fri-mon 10:00-14:00"),
        ("Mon-Sun 9:05-9:06", set(range(7)), time(9, 5), time(9, 6), "daily 09:05-09:06"),
        ("sun,mon,wed 00:00-23:59", {6, 0, 2}, time(0), time(23, 59), "wed,sun-mon 00:00-23:59"),
        ("mon-wed,tue-thu 09:00-10:00", {0, 1, 2, 3}, time(9), time(10), "mon-thu 09:00-10:00"),
        ("  tue   09:00-10:00 ", {1}, time(9), time(10), "tue 09:00-10:00"),
    ],
)
def test_parse_window_examples(text: str, days: set[int], start: time, end: time, canonical: str) -> None:
    window = parse_window(text)
    assert window == SendWindow(frozenset(days), start, end)
    assert str(window) == canonical
    assert parse_window(str(window)) == window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad send window"),
        ("mon-fri", "bad send window"),
        ("mon-fri 09:00 - 17:00", "bad send window"),
        ("funday 09:00-17:00", "unknown day 'funday'"),
        ("mon-mon 09:00-17:00", "same day"),
        ("mon-wed-fri 09:00-17:00", "bad day range"),
        ("mon,,fri 09:00-17:00", "empty day"),
        ("mon, fri 09:00-17:00", "bad send window"),
        ("mon-fri 09:00", "bad time span"),
        ("mon-fri 9-17", "bad time"),
        ("mon-fri 24:00-25:00", "bad time"),
        ("mon-fri 09:60-17:00", "bad time"),
        ("mon-fri 09:00-24:00", "bad time"),
        ("mon-fri 17:00-09:00", "must be after its start"),
        ("mon-fri 09:00-09:00", "must be after its start"),
        ("mon-fri 22:00-02:00", "same-day windows only"),
    ],
)
def test_parse_window_rejects(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_window(text, field="--window")
    assert info.value.where == "--window"
    assert "\n" not in str(info.value)


@SETTINGS
@given(windows())
def test_window_str_round_trips(window: SendWindow) -> None:
    assert parse_window(str(window)) == window


@SETTINGS
@given(st.text(alphabet="monwedfrisatu-,: 0123456789dly", max_size=30))
def test_parse_window_never_fails_otherwise(text: str) -> None:
    try:
        window = parse_window(text)
    except InputError as exc:
        assert exc.where == "window"
    else:
        assert parse_window(str(window)) == window


def test_send_window_validates_direct_construction() -> None:
    with pytest.raises(ValueError):
        SendWindow(frozenset(), time(9), time(17))
    with pytest.raises(ValueError):
        SendWindow(frozenset({7}), time(9), time(17))
    with pytest.raises(ValueError):
        SendWindow(frozenset({0}), time(17), time(9))
    with pytest.raises(ValueError):
        SendWindow(frozenset({0}), time(9, 0, 30), time(17))
    assert SendWindow({0, 1}, time(9), time(17)).days == frozenset({0, 1})  # type: ignore[arg-type]


# -- zones -------------------------------------------------------------------------------------


def test_resolve_zone() -> None:
    assert resolve_zone("Europe/Berlin", "America/New_York") == ZoneInfo("Europe/Berlin")
    assert resolve_zone(None, "America/New_York") == NY
    assert resolve_zone("  ", "America/New_York") == NY
    assert resolve_zone(" Asia/Tokyo ", "America/New_York") == ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize("name", ["Mars/Olympus", "america/new_york", "localtime", "../etc/passwd", "/etc/localtime",
                                  "right/UTC", "zone.tab", "America", "a\x00b"])
def test_resolve_zone_rejects(name: str) -> None:
    with pytest.raises(InputError) as info:
        resolve_zone(name, "America/New_York")
    assert info.value.where == "tz"
    assert str(info.value) == f"tz: unknown time zone {name!r}"


def test_resolve_zone_bad_fallback_is_named() -> None:
    with pytest.raises(InputError, match="unknown time zone 'Nowhere'") as info:
        resolve_zone(None, "Nowhere")
    assert info.value.where == "clinic timezone"


@SETTINGS
@given(st.one_of(st.none(), st.text(max_size=30), st.sampled_from(ZONES)))
def test_resolve_zone_never_fails_otherwise(name: str | None) -> None:
    try:
        assert isinstance(resolve_zone(name, "UTC"), ZoneInfo)
    except InputError as exc:
        assert exc.where == "tz"
