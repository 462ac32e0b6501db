"""Schedule arithmetic: durations, send windows, and when a step may go out.

Everything here is a pure function of its arguments (no clock, no database, no I/O). The
dispatcher and the enrollment code pass `now` and the subscriber's zone in, so the arithmetic
is tested with hypothesis on its own, and a simulated clock in the other tests needs no patching.

Instants are aware datetimes in UTC, in and out. A `SendWindow` is wall time in the
subscriber's IANA zone ("mon-fri 09:00-17:00"): start inclusive, end exclusive, same-day only.

DST, and why the code looks for transitions instead of adding hours to wall times:

- Gap (spring forward: 02:00-03:00 does not exist in New York on that Sunday). A window that
  opens inside the gap opens at the first instant after it (a 02:30 opening becomes 03:00 local,
  the moment clocks jump), provided that is still before the window's end; a window lying wholly
  inside the gap does not happen that day.
- Overlap (fall back: 01:00-02:00 happens twice). A window opening at 01:30 opens at the first
  01:30. A due time between the two passes is judged by its own wall time: if the clocks move back
  into the window, the moment they do is the next send time.
- The result is always an instant whose local wall time and weekday are inside the window, and
  the earliest such instant at or after the input. It is found by collecting every instant where
  the window can begin to hold (the input itself, each day's opening in both folds, and every UTC
  offset change nearby) and taking the earliest that is inside; between those instants wall time
  runs continuously, so nothing in between can enter the window first.
- Offset changes are found by sampling `utcoffset` every few hours and bisecting to the second
  (zoneinfo does not expose its transition list). Two offset changes closer than the sampling step
  would be missed; tzdata has none closer than about four days since 1900.

Half-hour zones (St John's), 30-minute DST (Lord Howe), southern-hemisphere DST (Sydney) and
skipped days (Apia, 30 Dec 2011) need no special cases: only `zoneinfo` conversions are used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

from drip.errors import InputError

UTC = timezone.utc

# -- durations ---------------------------------------------------------------------------------

_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
}
# <int><unit> parts, units in the order w d h m, each at most once, no spaces: "1w", "1d12h", "90m".
_DURATION_RE = re.compile(r"(?:(?P<w>[0-9]+)w)?(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?")
# Ten years: far more than any campaign delay, and far from datetime's overflow.
MAX_DURATION = timedelta(days=3660)
_DURATION_HINT = "expected <number><unit> parts with units w, d, h, m in that order, e.g. 2d, 36h, 90m, 1w, 1d12h"


def parse_duration(s: str, field: str = "duration") -> timedelta:
    """Parse a step delay such as "2d", "36h", "90m", "1w" or "1d12h" (strict, lowercase, no spaces).

    Strict on purpose: "2 days" or "1.5d" would be easy to guess at but easy to guess wrong,
    and a delay is what decides when a patient gets mail. "0d" means "at once".
    """
    text = s.strip()
    if not text:
        raise InputError(f"empty duration; {_DURATION_HINT}", where=field)
    if text.startswith("-"):
        raise InputError(f"duration cannot be negative: {s!r}", where=field)
    match = _DURATION_RE.fullmatch(text)
    if match is None or not any(match.groupdict().values()):
        raise InputError(f"bad duration {s!r}; {_DURATION_HINT}", where=field)
    total = timedelta(0)
    for unit, amount in match.groupdict().items():
        if amount is not None:
            count = int(amount)
            if count > MAX_DURATION // _UNITS[unit]:
                raise InputError(f"duration {s!r} is longer than {MAX_DURATION.days} days", where=field)
            total += count * _UNITS[unit]
    if total > MAX_DURATION:
        raise InputError(f"duration {s!r} is longer than {MAX_DURATION.days} days", where=field)
    return total


def format_duration(td: timedelta) -> str:
    """Inverse of `parse_duration`: "0d", "2d", "1d12h", "1h30m", "2w".

    Weeks are used only for a whole number of weeks (10 days reads "10d", not "1w3d").
    Raises ValueError for negative durations or ones with seconds, which no parse produces.
    """
    if td < timedelta(0):
        raise ValueError(f"cannot format a negative duration: {td!r}")
    if td % timedelta(minutes=1):
        raise ValueError(f"cannot format a duration with seconds: {td!r}")
    if td == timedelta(0):
        return "0d"
    minutes = td // timedelta(minutes=1)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days // 7}w" if days % 7 == 0 else f"{days}d")
    if hours:
        parts.append(f"{hours}h")
    if mins:
        parts.append(f"{mins}m")
    return "".join(parts)


# -- send windows ------------------------------------------------------------------------------

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_WINDOW_HINT = 'expected e.g. "mon-fri 09:00-17:00", "mon,wed,fri 10:00-12:30" or "daily 08:00-20:00"'


@dataclass(frozen=True)
class SendWindow:
    """Days (Mon=0 .. Sun=6) and a same-day wall-clock span [start, end) in the subscriber's zone.

    Same-day only (end > start): a window across midnight ("22:00-02:00") would make "which
    day is this" ambiguous for the day filter; clinics mail in office hours anyway.
    """

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        object.__setattr__(self, "days", days)
        if not days or not days <= frozenset(range(7)):
            raise ValueError(f"days must be a non-empty subset of 0..6, got {sorted(days)}")
        for t in (self.start, self.end):
            if t.tzinfo is not None or t.second or t.microsecond:
                raise ValueError(f"window times are naive whole minutes, got {t!r}")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")

    def contains_wall(self, local: datetime) -> bool:
        """Whether a local wall-clock datetime (in the subscriber's zone) is inside the window."""
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def __str__(self) -> str:
        return f"{_format_days(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


def _format_days(days: frozenset[int]) -> str:
    """Shortest canonical spelling: "daily", "mon-fri", "mon,wed,fri", "fri-mon" (wrapping)."""
    if len(days) == 7:
        return "daily"
    # Start each run at a day whose predecessor is missing, so a run across Sunday stays whole.
    runs = []
    for first in sorted(d for d in days if (d - 1) % 7 not in days):
        last = first
        while (last + 1) % 7 in days:
            last = (last + 1) % 7
        if first == last:
            runs.append(DAY_NAMES[first])
        else:
            runs.append(f"{DAY_NAMES[first]}-{DAY_NAMES[last]}")
    return ",".join(runs)


def _parse_day(name: str, text: str, field: str) -> int:
    try:
        return DAY_NAMES.index(name.lower())
    except ValueError:
        raise InputError(f"unknown day {name!r} in {text!r}; days are {', '.join(DAY_NAMES)} or daily",
                         where=field) from None


def _parse_days(spec: str, text: str, field: str) -> frozenset[int]:
    if spec.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for item in spec.split(","):
        if not item:
            raise InputError(f"empty day in {text!r}; {_WINDOW_HINT}", where=field)
        ends = item.split("-")
        if len(ends) == 1:
            days.add(_parse_day(ends[0], text, field))
        elif len(ends) == 2:
            first, last = (_parse_day(e, text, field) for e in ends)
            if first == last:
                raise InputError(f"day range {item!r} in {text!r} starts and ends on the same day", where=field)
            span = (last - first) % 7  # wraps: fri-mon is fri, sat, sun, mon
            days.update((first + i) % 7 for i in range(span + 1))
        else:
            raise InputError(f"bad day range {item!r} in {text!r}; {_WINDOW_HINT}", where=field)
    return frozenset(days)


def _parse_time(part: str, text: str, field: str) -> time:
    match = _TIME_RE.fullmatch(part)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InputError(f"bad time {part!r} in {text!r}; use 24-hour HH:MM from 00:00 to 23:59", where=field)
    return time(int(match[1]), int(match[2]))


def parse_window(text: str, field: str = "window") -> SendWindow:
    """Parse "<days> <HH:MM>-<HH:MM>"; days are "daily" or a comma list of names and ranges.

    Day names are mon..sun (any case); a range may wrap ("fri-mon"). Times are 24-hour, end
    exclusive and after the start ("00:00-23:59" is the widest window). str() gives it back.
    """
    parts = text.split()
    if len(parts) != 2:
        raise InputError(f"bad send window {text!r}; {_WINDOW_HINT}", where=field)
    days = _parse_days(parts[0], text, field)
    bounds = parts[1].split("-")
    if len(bounds) != 2:
        raise InputError(f"bad time span {parts[1]!r} in {text!r}; {_WINDOW_HINT}", where=field)
    start, end = (_parse_time(b, text, field) for b in bounds)
    if end <= start:
        raise InputError(f"window end {bounds[1]} must be after its start {bounds[0]} (same-day windows only)",
                         where=field)
    return SendWindow(days, start, end)


# -- zones -------------------------------------------------------------------------------------


@functools.cache
def _known_zones() -> frozenset[str]:
    # "localtime" is this host's zone, not an IANA name; a subscriber's zone must not depend on the server.
    return frozenset(available_timezones() - {"localtime"})


def resolve_zone(name: str | None, fallback: str) -> ZoneInfo:
    """The subscriber's IANA zone, or the clinic's `fallback` zone when none was given.

    Only names tzdata lists are accepted (not "localtime" or a "right/" leap-second zone),
    so a typo fails loudly here instead of mailing at 3 a.m.
    """
    if name is not None and name.strip():
        given, key, where = name, name.strip(), "tz"
    else:
        given, key, where = fallback, fallback.strip(), "clinic timezone"
    if key in _known_zones():
        try:
            return ZoneInfo(key)
        except (ValueError, KeyError, OSError):  # listed but unreadable: same as unknown
            pass
    raise InputError(f"unknown time zone {given!r}", where=where)


# -- instants ----------------------------------------------------------------------------------

# Offset changes are found by sampling this often; tzdata has none closer together than ~4 days.
_SAMPLE = timedelta(hours=12)
# Each search pass covers more than a week of local days, so any weekday set has a day in it.
_CHUNK = timedelta(days=8)
# Days can be skipped (Apia 2011) or a window can lie in a gap; a few more weeks always find one.
_MAX_CHUNKS = 8
_SECOND = timedelta(seconds=1)


def _as_utc(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {at!r}")
    return at.astimezone(UTC)


def _offset(at: datetime, tz: ZoneInfo) -> timedelta | None:
    return at.astimezone(tz).utcoffset()


def _first_with_offset(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (lo, hi] whose offset is hi's, given lo's offset differs (one change)."""
    lo = lo.replace(microsecond=0)
    target = _offset(hi, tz)
    if hi.microsecond:
        hi = hi.replace(microsecond=0) + _SECOND
    while hi - lo > _SECOND:
        mid = lo + ((hi - lo) // 2 // _SECOND) * _SECOND
        if _offset(mid, tz) == target:
            hi = mid
        else:
            lo = mid
    return hi


def _transitions(lo: datetime, hi: datetime, tz: ZoneInfo) -> list[datetime]:
    """Instants in (lo, hi] where the zone's UTC offset changes (the first second of the new offset)."""
    found = []
    prev, prev_off = lo, _offset(lo, tz)
    at = lo
    while at < hi:
        at = min(at + _SAMPLE, hi)
        off = _offset(at, tz)
        if off != prev_off:
            found.append(_first_with_offset(prev, at, tz))
        prev, prev_off = at, off
    return found


def _wall_instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """UTC instants for a naive local wall time in both folds; callers filter what actually occurs."""
    return [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]


def _inside(at: datetime, window: SendWindow, tz: ZoneInfo) -> bool:
    return window.contains_wall(at.astimezone(tz).replace(tzinfo=None))


def _local_dates(lo: datetime, hi: datetime, tz: ZoneInfo) -> Iterable[date]:
    # Two days of slack each side: offsets reach +-14 h and Apia jumped a whole day.
    first = lo.astimezone(tz).date() - timedelta(days=2)
    last = hi.astimezone(tz).date() + timedelta(days=2)
    for i in range((last - first).days + 1):
        yield first + timedelta(days=i)


def next_send_at(due_utc: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """The earliest instant >= `due_utc` whose wall time in `tz` is inside `window` (aware UTC).

    An instant already inside the window is returned unchanged, so the function is idempotent.
    Gaps and overlaps: see the module docstring.
    """
    due = _as_utc(due_utc, "due_utc")
    if _inside(due, window, tz):
        return due
    lo = due
    for _ in range(_MAX_CHUNKS):
        hi = lo + _CHUNK
        # Where the window can begin to hold: each day's opening (both folds of an ambiguous
        # time; the folds of a skipped one are filtered or beaten by the jump found below) ...
        openings: list[datetime] = []
        first_day: date | None = None
        for day in _local_dates(lo, hi, tz):
            if first_day is not None and day > first_day + timedelta(days=2):
                break  # later days open later: offsets differ by at most a day
            if day.weekday() in window.days:
                for at in _wall_instants(datetime.combine(day, window.start), tz):
                    if lo <= at <= hi and _inside(at, window, tz):
                        openings.append(at)
                        first_day = first_day or day
        best = min(openings, default=hi)
        # ... and each offset change before the best opening (clocks jumping into the window).
        jumps = [at for at in _transitions(lo, best, tz) if _inside(at, window, tz)]
        if jumps or openings:
            return min(jumps + openings)
        lo = hi
    raise ValueError(f"no instant inside {window} in {tz.key} within {(_CHUNK * _MAX_CHUNKS).days} days of {due}")


def local_day_bounds(at_utc: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC [start, end) of the local calendar day containing `at_utc` (23 h or 25 h across DST).

    A day starts at the first instant its midnight occurs, or when clocks jump past a skipped
    midnight. The frequency cap counts a subscriber's sends inside these bounds.
    """
    at = _as_utc(at_utc, "at_utc")
    today = at.astimezone(tz).date()
    start = _day_start(today, tz)
    end = _day_start(today + timedelta(days=1), tz)
    # A fall-back across midnight (rare) can put `at` in a repeated late hour of the previous day;
    # step until the bounds hold it, so callers can rely on start <= at < end.
    for _ in range(3):
        if at < start:
            today -= timedelta(days=1)
        elif at >= end:
            today += timedelta(days=1)
        else:
            break
        start, end = _day_start(today, tz), _day_start(today + timedelta(days=1), tz)
    return start, end


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    """First instant whose local wall time is at or after `day` 00:00."""
    midnight = datetime.combine(day, time(0))
    first, second = _wall_instants(midnight, tz)
    for at in sorted((first, second)):
        if at.astimezone(tz).replace(tzinfo=None) == midnight:
            return at
    # Midnight is in a gap: the day begins when the clocks jump over it.
    return _first_with_offset(min(first, second), max(first, second), tz)


def defer_for_cap(at_utc: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """The first window opening from the next local day on: over the daily cap we defer, never drop."""
    _, next_day = local_day_bounds(at_utc, tz)
    return next_send_at(next_day, window, tz)


@dataclass(frozen=True)
class Cadence:
    """How a campaign spaces its steps beyond "delay after enrollment, moved into the window".

    `business_days`: a step's whole days count Monday to Friday only ("every 2 days" from a
    Thursday lands on Monday, not Saturday-moved-to-Monday-then-Wednesday). `send_time`: each
    step goes at this local wall time (e.g. 09:30 in the patient's zone) instead of the time of
    day the patient enrolled. With either set, each step's days count from the day the previous
    step actually goes (after any window deferral), so the spacing staff chose always holds.
    """

    business_days: bool = False
    send_time: time | None = None

    @property
    def is_default(self) -> bool:
        return not self.business_days and self.send_time is None


DEFAULT_CADENCE = Cadence()


def parse_send_time(value: str | None, field: str = "--send-time") -> time | None:
    """'09:30' -> time(9, 30); '' or None -> None (send at the enrollment's time of day)."""
    if value is None or not value.strip():
        return None
    m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
    if not m:
        raise InputError(f"expected a local time as HH:MM, e.g. 09:30, got {value!r}", where=field)
    return time(int(m.group(1)), int(m.group(2)))


def add_days(day: date, n: int, business: bool) -> date:
    """`day` + n calendar days, or n business days (Mon-Fri; a weekend start counts from Monday)."""
    if not business:
        return day + timedelta(days=n)
    while day.weekday() >= 5:  # a Saturday or Sunday start: the first business day is Monday
        day += timedelta(days=1)
    weeks, rest = divmod(n, 5)
    day += timedelta(weeks=weeks)
    for _ in range(rest):
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return day


def _at_wall(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant `day at` occurs in `tz` (its first, if the hour repeats; just after, if skipped)."""
    wall = datetime.combine(day, at)
    for instant in sorted(_wall_instants(wall, tz)):
        if instant.astimezone(tz).replace(tzinfo=None) == wall:
            return instant
    first, second = _wall_instants(wall, tz)
    return _first_with_offset(min(first, second), max(first, second), tz)


def earliest_after(prev_sent: datetime, gap: timedelta, min_spacing: timedelta) -> datetime:
    """The earliest a step may go when the one before it went at `prev_sent`: the gap staff set
    between the two steps (its delay minus the previous one's), and never less than `min_spacing`.

    Counted from when the previous step actually goes, not from when it was planned: a step a
    weekend, or the window's closing time, pushed to Monday 09:00 pushes the next one too, so
    "every 2 days" never turns into a 1-day gap after a wait. A sub-day or zero gap (two steps
    with the same delay) still waits `min_spacing` (20 h for campaigns), so no patient gets two
    emails of a series within the same few hours.
    """
    return prev_sent + max(gap, min_spacing)


def schedule_sequence(
    enrolled_at_utc: datetime,
    delays: Sequence[timedelta],
    window: SendWindow,
    tz: ZoneInfo,
    min_spacing: timedelta = timedelta(hours=20),
    cadence: Cadence = DEFAULT_CADENCE,
) -> list[datetime]:
    """Send times for a campaign's steps: enrolled_at + delay, moved into the window.

    Each step also waits `earliest_after` the previous one's send time: the gap between the two
    steps' delays, and at least `min_spacing` (a window that pushes step 1 to Monday 09:00 must
    land neither step 2 at 09:01 nor a 2-day gap at Tuesday), so times strictly increase.
    A `cadence` (business days, a fixed local send time) changes how days count; see `Cadence`.
    """
    enrolled = _as_utc(enrolled_at_utc, "enrolled_at_utc")
    if min_spacing <= timedelta(0):
        raise ValueError(f"min_spacing must be positive, got {min_spacing!r}")
    if any(d < timedelta(0) for d in delays):
        raise ValueError(f"step delays cannot be negative, got {min(delays)!r}")
    if not cadence.is_default:
        return _cadenced(enrolled, delays, window, tz, min_spacing, cadence)
    out: list[datetime] = []
    for i, delay in enumerate(delays):
        due = enrolled + delay
        if out:
            due = max(due, earliest_after(out[-1], delay - delays[i - 1], min_spacing))
        out.append(next_send_at(due, window, tz))
    return out


# A fixed send time on a later window day is looked for this many days ahead (a weekday window
# has one within a week; zones that skip days need a few more), then the window's own opening.
_SEND_TIME_DAYS = 21


def _next_at_time(due: datetime, at: time, rest: timedelta, window: SendWindow, tz: ZoneInfo) -> datetime:
    """The first instant >= `due` at local time `at` (+ `rest`) that is inside the window.

    With a fixed send time a step the window defers goes at that time on the next window day
    (Saturday's 09:30 becomes Monday 09:30, not Monday's 09:00 opening). When `at` + `rest` is never
    inside the window (a sub-day delay pushing past its end), it is the window's next opening.
    """
    day = due.astimezone(tz).date()
    for i in range(_SEND_TIME_DAYS):
        candidate = _at_wall(day + timedelta(days=i), at, tz) + rest
        if candidate >= due and _inside(candidate, window, tz):
            return candidate
    return next_send_at(due, window, tz)


def _cadenced(enrolled: datetime, delays: Sequence[timedelta], window: SendWindow, tz: ZoneInfo,
              min_spacing: timedelta, cadence: Cadence) -> list[datetime]:
    """Whole days count (calendar or business) on the patient's calendar from the day the previous
    step actually went, so their gap in days holds after any deferral; the time of day is the
    fixed send time (or the enrollment's), and a step the window defers keeps that time on the
    next window day. Real time between two steps is still at least `min_spacing`."""
    local = enrolled.astimezone(tz)
    at_time = cadence.send_time or local.time().replace(tzinfo=None)
    out: list[datetime] = []
    base_day, base_days = local.date(), 0
    for delay in delays:
        days, rest = divmod(delay, timedelta(days=1))
        day = add_days(base_day, days - base_days, cadence.business_days)
        due = _at_wall(day, at_time, tz) + rest
        if not out and due < enrolled:  # today's send time has passed: the next (business) day
            day = add_days(day, 1, cadence.business_days)
            due = _at_wall(day, at_time, tz) + rest
        if out:
            due = max(due, out[-1] + min_spacing)
        due = _next_at_time(due, at_time, rest, window, tz)
        out.append(due)
        # The next step's days count from the day this one actually goes.
        base_day, base_days = due.astimezone(tz).date(), days
    return out


class SequencePlanner:
    """`schedule_sequence` for many patients enrolled at one instant, computed once per zone.

    Everyone enrolled at the same `enrolled_at` in the same zone gets the same send times (the
    arithmetic depends on nothing else), so a bulk enrollment of 100,000 patients in five zones
    does the window and DST search five times instead of 100,000.
    """

    def __init__(
        self,
        enrolled_at_utc: datetime,
        delays: Sequence[timedelta],
        window: SendWindow,
        min_spacing: timedelta = timedelta(hours=20),
        cadence: Cadence = DEFAULT_CADENCE,
    ) -> None:
        self.enrolled_at = _as_utc(enrolled_at_utc, "enrolled_at_utc")
        self.delays = tuple(delays)
        self.window = window
        self.min_spacing = min_spacing
        self.cadence = cadence
        self._by_zone: dict[str, tuple[datetime, ...]] = {}

    def for_zone(self, tz: ZoneInfo) -> tuple[datetime, ...]:
        """The steps' send times in `tz` (aware UTC), the same list `schedule_sequence` gives."""
        times = self._by_zone.get(tz.key)
        if times is None:
            times = tuple(schedule_sequence(self.enrolled_at, self.delays, self.window, tz, self.min_spacing,
                                            self.cadence))
            self._by_zone[tz.key] = times
        return times
