"""Rate limits: the window arithmetic (hypothesis), the spec, the shared count, the dispatcher."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from delivery.dispatcher import Dispatcher
from drip import metrics
from delivery.ratelimit import RateLimiter, limited_now, limited_text
from delivery.ratespec import EPOCH, WINDOWS, Limit, free_room, parse_limits, window_end, window_start
from drip.config import load_settings
from drip.errors import ConfigurationError
from drip.models import Delivery, RateWindow
from tests.delivery.test_dispatcher import ScriptedBackend, setup

T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=timezone.utc)  # pinned: after the test campaigns are due

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(timezone.utc))
zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])


# -- window arithmetic

@given(times, st.sampled_from(sorted(WINDOWS)), zones)
def test_window_holds_now_and_is_aligned(now, window, zone):
    start = window_start(now.astimezone(zone), window)  # the zone it is given in does not matter
    assert start == window_start(now, window)
    assert start <= now < window_end(now, window) == start + timedelta(seconds=WINDOWS[window])
    assert (start - EPOCH).total_seconds() % WINDOWS[window] == 0 and start.microsecond == 0


@given(times, st.sampled_from(sorted(WINDOWS)))
def test_boundaries(now, window):
    start, end = window_start(now, window), window_end(now, window)
    assert window_start(end, window) == end  # the end is the next window's start
    assert window_start(end - timedelta(microseconds=1), window) == start  # the last instant is inside
    assert window_start(start, window) == start


@given(times)
def test_windows_nest(now):
    """A second lies in its minute, the minute in its hour, the hour in its (UTC) day."""
    starts = [window_start(now, w) for w in ("day", "hour", "minute", "second")]
    assert starts == sorted(starts)
    ends = [window_end(now, w) for w in ("second", "minute", "hour", "day")]
    assert ends == sorted(ends)


@given(st.dictionaries(st.sampled_from(sorted(WINDOWS)), st.integers(0, 200)),
       st.lists(st.tuples(st.sampled_from(sorted(WINDOWS)), st.integers(1, 100)), min_size=1, max_size=4,
                unique_by=lambda t: t[0]))
def test_free_room_is_what_every_window_allows(used, raw):
    limits = [Limit(w, n) for w, n in raw]
    room = free_room(used, limits)
    assert room >= 0
    assert all(used.get(lim.window, 0) + room <= lim.count or room == 0 for lim in limits)
    assert room == 0 or any(used.get(lim.window, 0) + room == lim.count for lim in limits)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * 3600), st.integers(1, 12)), min_size=1, max_size=40))
def test_reservations_never_exceed_any_window(requests):
    """A model of the limiter's arithmetic over several windows at once: replay reservations at
    increasing times; per window, the total granted never exceeds the limit."""
    limits = parse_limits("5/minute,40/hour,100/day")
    state: dict[str, tuple[datetime, int]] = {}
    granted_in: dict[tuple[str, datetime], int] = {}
    now = T0
    for step, want in requests:
        now += timedelta(seconds=step % 200)
        used = {}
        for lim in limits:
            start = window_start(now, lim.window)
            if lim.window not in state or state[lim.window][0] != start:
                state[lim.window] = (start, 0)
            used[lim.window] = state[lim.window][1]
        got = min(want, free_room(used, limits))
        for lim in limits:
            start, n = state[lim.window]
            state[lim.window] = (start, n + got)
            granted_in[(lim.window, start)] = granted_in.get((lim.window, start), 0) + got
    for (window, _), n in granted_in.items():
        assert n <= next(lim.count for lim in limits if lim.window == window)


# -- the spec

def test_presets_and_mixed_specs():
    assert parse_limits("") == ()
    assert parse_limits("workspace") == (Limit("day", 2000),)
    assert parse_limits("m365") == (Limit("minute", 30), Limit("day", 10000))
    assert parse_limits("ses") == (Limit("second", 14),)
    assert parse_limits(" 30/min , 10000 per day,20/minute") == (Limit("minute", 20), Limit("day", 10000))
    assert parse_limits("5/s,100/h") == (Limit("second", 5), Limit("hour", 100))


@pytest.mark.parametrize("bad", ["lots", "30/fortnight", "0/minute", "30/", "m365,x"])
def test_a_bad_spec_is_one_line_naming_it(bad, tmp_path):
    with pytest.raises(ConfigurationError) as err:
        load_settings({"DRIP_RATE_LIMITS": bad}, toml_path=tmp_path / "none.toml")
    assert str(err.value).startswith("DRIP_RATE_LIMITS: ") and "\n" not in str(err.value)


# -- the shared count

def test_reserve_counts_every_window_and_gives_back(sqlite_runtime):
    lim = RateLimiter(sqlite_runtime.sessions, "smtp", parse_limits("3/minute,5/hour"))
    assert lim.reserve(T0, 2).granted == 2
    g = lim.reserve(T0 + timedelta(seconds=10), 2)
    assert g.granted == 1 and g.next_at == T0 + timedelta(minutes=1) and g.limit == Limit("minute", 3)
    assert lim.reserve(T0 + timedelta(seconds=20), 1).granted == 0 and lim.blocked(T0 + timedelta(seconds=59))
    assert not lim.blocked(T0 + timedelta(minutes=1))
    # a new minute: room again, but the hour has only 2 left; then the hour is what holds
    g = lim.reserve(T0 + timedelta(minutes=1), 3)
    assert g.granted == 2 and g.limit == Limit("hour", 5) and g.next_at == T0 + timedelta(hours=1)
    lim.give_back(g, 1)  # one never reached the provider
    assert lim.reserve(T0 + timedelta(minutes=1, seconds=5), 5).granted == 1
    with sqlite_runtime.sessions() as s:
        rows = {r.period: (r.used, r.cap) for r in s.scalars(select(RateWindow))}
        assert rows == {"minute": (2, 3), "hour": (5, 5)}
        items = limited_now(s, T0 + timedelta(minutes=1, seconds=6))
    assert [(i.backend, str(i.limit), i.until) for i in items] == [("smtp", "5/hour", T0 + timedelta(hours=1))]
    assert limited_text(items, timezone.utc) == "limited: next sends at Thu 03 Dec, 11:00 (smtp: 5/hour used up)"


def test_dispatcher_sends_only_what_the_limit_grants_and_the_rest_next_minute(sqlite_runtime):
    rt = sqlite_runtime
    rt.settings = rt.settings.with_(rate_limits="4/minute", batch_size=50, frequency_cap=5)
    setup(rt, n_subs=10, n_items=0)
    now = {"t": T0}
    backend = ScriptedBackend(rt.settings)
    d = Dispatcher(rt, backend, clock=lambda: now["t"])
    waits = metrics.REGISTRY.get_sample_value("drip_rate_limit_waits_total")
    first = d.tick()
    assert (first.sent, first.limited_until, first.limit) == (4, T0 + timedelta(minutes=1), "4/minute")
    assert metrics.REGISTRY.get_sample_value("drip_rate_limit_waits_total") == waits + 1
    again = d.tick()  # the same minute: nothing, and the worker knows it without asking the database
    assert (again.claimed, again.limited_until, again.limit) == (0, T0 + timedelta(minutes=1), "4/minute")
    for minute in (1, 2):
        now["t"] = T0 + timedelta(minutes=minute, seconds=1)
        assert d.tick().sent == (4 if minute == 1 else 2)
    ids = [m.delivery_id for m in backend.sent]
    assert ids == sorted(ids) and len(set(ids)) == 10, "in order, none twice"
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 10
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "failed")) == 0


def test_rows_not_sent_give_their_reservation_back(sqlite_runtime):
    rt = sqlite_runtime
    rt.settings = rt.settings.with_(rate_limits="100/minute", batch_size=50, frequency_cap=5)
    setup(rt, n_subs=3, n_items=0)
    d = Dispatcher(rt, ScriptedBackend(rt.settings), clock=lambda: T0)
    assert d.tick().sent == 3
    with rt.sessions() as s:
        assert s.scalar(select(RateWindow.used)) == 3, "reserved 50, three went, 47 given back"


def test_no_limit_no_query(sqlite_runtime):
    rt = sqlite_runtime
    rt.settings = rt.settings.with_(frequency_cap=5)
    setup(rt, n_subs=3, n_items=0)
    d = Dispatcher(rt, ScriptedBackend(rt.settings), clock=lambda: T0)
    assert d.limiter is None
    seen: list[str] = []
    from sqlalchemy import event

    event.listen(rt.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    assert d.tick().sent == 3
    assert seen and not any("rate_windows" in q for q in seen)


@pytest.mark.postgres
def test_give_back_locks_in_the_order_reserve_does(pg_schema_url):
    """A worker giving back while another reserves must not deadlock: both take the rows in period
    order. Replayed step by step: a reserving transaction holds 'day' and is about to take 'second'
    while give_back runs; give_back in limit order (second, then day) deadlocked with it."""
    import threading
    import time

    from sqlalchemy import text

    from drip.db import make_engine, session_factory
    from tests.conftest import _truncate_pg

    engine = make_engine(pg_schema_url)
    _truncate_pg(engine)
    lim = RateLimiter(session_factory(engine), "smtp", parse_limits("10/second,100/day"))
    grant = lim.reserve(T0, 3)
    errors: list[BaseException] = []

    def give_back() -> None:
        try:
            lim.give_back(grant, 1)
        except BaseException as exc:  # noqa: BLE001 - the deadlock is what this test looks for
            errors.append(exc)

    with engine.connect() as reserving:
        tx = reserving.begin()
        reserving.execute(text("SET LOCAL lock_timeout = '10s'"))
        reserving.execute(text("SELECT 1 FROM rate_windows WHERE period = 'day' FOR UPDATE"))
        worker = threading.Thread(target=give_back)
        worker.start()
        with engine.connect() as watch:  # wait until give_back is blocked on a row lock
            for _ in range(200):
                waiting = watch.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE rate_windows%'")).scalar()
                if waiting:
                    break
                time.sleep(0.02)
        try:
            reserving.execute(text("SELECT 1 FROM rate_windows WHERE period = 'second' FOR UPDATE"))
            tx.commit()
        except Exception as exc:  # the deadlock detector may pick this side as the victim
            errors.append(exc)
            tx.rollback()
        worker.join(30)
    engine.dispose()
    assert not errors, errors
    with session_factory(make_engine(pg_schema_url))() as s:
        assert {r.period: r.used for r in s.scalars(select(RateWindow))} == {"second": 2, "day": 2}
