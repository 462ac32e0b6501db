"""Provider rate limits shared by every worker, kept in the database.

Google Workspace suspends an account that sends more than 2,000 emails a day, Microsoft 365 one
that sends more than 30 a minute or 10,000 a day, SES refuses past 14 a second. Each worker only
knows what it sent itself, so the count lives in `rate_windows`: one row per (backend, window)
holding the current window's start and how many emails were reserved in it. A worker *reserves*
before it claims: in one transaction it locks the backend's rows (PostgreSQL `FOR UPDATE`; SQLite
writes take the lock up front with `BEGIN IMMEDIATE`), resets a row whose window has passed, and
grants at most what every window still has room for. It then claims only that many rows; the rest
stay due, in order, and go when a window opens again. Never a failed row, never an error.

What a worker reserved but did not hand to the provider (rows cancelled or deferred at send time,
rows held back because the backend is down) is given back to the window it came from; an email
the provider was given counts, accepted or refused. A worker that dies holding a reservation
leaves it counted: the error is always on the side of sending less.

Windows are fixed and aligned to UTC (a minute starts at :00, a day at 00:00 UTC), not rolling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session, sessionmaker

from delivery.ratespec import PRESETS, WINDOWS, Limit, free_room, parse_limits, window_end, window_start
from drip.models import RateWindow

log = logging.getLogger("drip.ratelimit")

__all__ = ["PRESETS", "Grant", "Limit", "Limited", "RateLimiter", "limited_now", "limited_text", "parse_limits"]


@dataclass(frozen=True)
class Grant:
    """What a reservation got: `granted` emails now; when short of the request, `next_at` is when
    the first full window ends, `limit` the one that was full."""

    granted: int
    starts: tuple[tuple[str, datetime], ...] = ()  # (window, start) the grant was counted in
    next_at: datetime | None = None
    limit: Limit | None = None


class RateLimiter:
    """The shared count of one backend. Each call is one short write transaction."""

    def __init__(self, sessions: sessionmaker[Session], backend: str, limits: tuple[Limit, ...]) -> None:
        if not limits:
            raise ValueError("a RateLimiter needs at least one limit")
        self.sessions = sessions
        self.backend = backend[:64]
        self.limits = limits
        self.blocked_until: datetime | None = None  # this worker saw a full window until then
        self.blocked_by: Limit | None = None  # ...this one

    def describe(self) -> str:
        return ", ".join(str(lim) for lim in self.limits)

    def blocked(self, now: datetime) -> bool:
        """True while a window this worker found full has not ended: no query, no claim."""
        return self.blocked_until is not None and now < self.blocked_until

    def reserve(self, now: datetime, want: int) -> Grant:
        """Reserve up to `want` emails in every window at once (all or the same share of each)."""
        starts = {lim.window: window_start(now, lim.window) for lim in self.limits}
        with self.sessions.begin() as s:
            rows = self._lock_rows(s, starts)
            used: dict[str, int] = {}
            for lim in self.limits:
                row = rows[lim.window]
                if row.period_start != starts[lim.window]:  # a new window: the count starts again
                    row.period_start, row.used = starts[lim.window], 0
                if row.cap != lim.count:
                    row.cap = lim.count
                used[lim.window] = row.used
            granted = min(want, free_room(used, self.limits))
            for lim in self.limits:
                rows[lim.window].used += granted
        full = [lim for lim in self.limits if used[lim.window] + granted >= lim.count]
        if granted >= want or not full:
            self.blocked_until = None
            return Grant(granted, tuple(starts.items()))
        # The window that opens last decides when a whole request fits again.
        stop = max(full, key=lambda lim: window_end(now, lim.window))
        next_at = window_end(now, stop.window)
        if granted == 0:
            self.blocked_until, self.blocked_by = next_at, stop
        return Grant(granted, tuple(starts.items()), next_at, stop)

    def give_back(self, grant: Grant, n: int) -> None:
        """Return `n` reserved emails that never reached the provider, to the windows they were
        counted in (a window that has passed since keeps its count: it no longer matters)."""
        if n <= 0:
            return
        with self.sessions.begin() as s:
            for window, start in sorted(grant.starts):  # the lock order of reserve(): no deadlock
                s.execute(update(RateWindow)
                          .where(RateWindow.backend == self.backend, RateWindow.period == window,
                                 RateWindow.period_start == start)
                          .values(used=case((RateWindow.used > n, RateWindow.used - n), else_=0)))
        self.blocked_until = None

    def _lock_rows(self, s: Session, starts: dict[str, datetime]) -> dict[str, RateWindow]:
        q = (select(RateWindow).where(RateWindow.backend == self.backend, RateWindow.period.in_(list(starts)))
             .order_by(RateWindow.period).with_for_update())  # one lock order: no deadlock between workers
        rows = {r.period: r for r in s.scalars(q)}
        missing = [w for w in starts if w not in rows]
        if missing:  # first use: create the rows; another worker doing the same at once is no error
            insert = _insert_for(s)
            s.execute(insert(RateWindow).values([
                {"backend": self.backend, "period": w, "period_start": starts[w], "used": 0,
                 "cap": next(lim.count for lim in self.limits if lim.window == w)} for w in sorted(missing)
            ]).on_conflict_do_nothing())
            rows = {r.period: r for r in s.scalars(q.execution_options(populate_existing=True))}
        return rows


def _insert_for(s: Session):
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


@dataclass(frozen=True)
class Limited:
    """A window that is full now: what staff pages and `drip status` show."""

    backend: str
    limit: Limit
    until: datetime


def limited_now(session: Session, now: datetime) -> list[Limited]:
    """Windows used up at `now`, by backend (one query over a table of a few rows)."""
    out: list[Limited] = []
    for row in session.scalars(select(RateWindow).where(RateWindow.used >= RateWindow.cap)):
        if row.period not in WINDOWS:
            continue
        until = row.period_start + timedelta(seconds=WINDOWS[row.period])
        if row.period_start <= now < until:
            out.append(Limited(row.backend, Limit(row.period, row.cap), until))
    # One line per backend: the window that ends last is when sending resumes.
    last: dict[str, Limited] = {}
    for item in out:
        if item.backend not in last or item.until > last[item.backend].until:
            last[item.backend] = item
    return sorted(last.values(), key=lambda x: x.backend)


def limited_text(items: list[Limited], zone) -> str:
    """ "limited: next sends at 14:05 (smtp: 30/minute used up)" or ""."""
    if not items:
        return ""
    parts = []
    for item in items:
        at = item.until.astimezone(zone)
        fmt = "%H:%M:%S" if item.limit.window in ("second", "minute") else "%a %d %b, %H:%M"
        parts.append(f"next sends at {at.strftime(fmt)} ({item.backend}: {item.limit} used up)")
    return "limited: " + "; ".join(parts)
