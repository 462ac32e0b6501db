"""Worker heartbeats: the row each worker keeps, and what /healthz and the staff pages read from it."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from delivery.dispatcher import TickReport
from delivery.heartbeat import Heartbeat, worker_health
from drip.models import WorkerHeartbeat
from scheduler import Worker

T = datetime(2026, 12, 1, 9, 12, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def health(runtime, now, stale=120):
    with runtime.sessions() as s:
        return worker_health(s, now, stale)


def row(runtime, worker_id):
    with runtime.sessions() as s:
        return s.get(WorkerHeartbeat, worker_id)


def test_states_never_running_stale_stopped(runtime):
    assert health(runtime, T).state == "never" and health(runtime, T).last_beat is None
    clock = Clock(T)
    hb = Heartbeat(runtime.sessions, "clinic-box:4242", clock=clock)
    hb.start()
    clock.now = T + timedelta(seconds=30)
    hb.beat(7)
    hb.beat(5)
    r = row(runtime, "clinic-box:4242")
    assert (r.host, r.pid, r.mode, r.started_at, r.last_beat_at, r.last_sent, r.sent_total, r.stopped_at) == (
        "clinic-box", 4242, "run", T, T + timedelta(seconds=30), 5, 12, None)
    assert health(runtime, T + timedelta(seconds=149)).state == "running"
    h = health(runtime, T + timedelta(seconds=151))
    assert (h.state, h.live, h.last_beat) == ("stale", 0, T + timedelta(seconds=30))
    clock.now = T + timedelta(seconds=40)
    hb.stop()  # a clean exit: stopped at once, not after the stale limit
    h = health(runtime, T + timedelta(seconds=41))
    assert (h.state, h.last_beat) == ("stale", T + timedelta(seconds=40))
    assert h.as_json() == {"status": "stale", "live": 0, "last_beat": "2026-12-01T09:12:40+00:00"}


def test_restart_replaces_the_row_and_week_old_workers_are_forgotten(runtime):
    Heartbeat(runtime.sessions, "old:1", clock=Clock(T - timedelta(days=8))).start()
    Heartbeat(runtime.sessions, "b:2", clock=Clock(T - timedelta(days=1))).start()
    hb = Heartbeat(runtime.sessions, "b:2", clock=Clock(T))
    hb.start()
    with runtime.sessions() as s:
        assert sorted(s.scalars(select(WorkerHeartbeat.worker_id))) == ["b:2"]
    assert row(runtime, "b:2").started_at == T


def test_two_workers_one_live(runtime):
    Heartbeat(runtime.sessions, "a:1", clock=Clock(T)).start()
    Heartbeat(runtime.sessions, "b:2", clock=Clock(T + timedelta(minutes=10))).start()
    h = health(runtime, T + timedelta(minutes=11))
    assert (h.state, h.live, h.last_beat) == ("running", 1, T + timedelta(minutes=10))


def test_a_heartbeat_that_cannot_be_written_never_stops_the_worker(caplog):
    class Broken:
        def begin(self):
            raise RuntimeError("database is locked")

    hb = Heartbeat(Broken(), "x:1")  # type: ignore[arg-type]
    hb.start()
    hb.beat(3)
    hb.stop()
    assert "heartbeat of worker x:1 not recorded: database is locked" in caplog.text


def test_worker_beats_after_each_tick_and_stops_cleanly(sqlite_runtime):
    ticked = threading.Event()
    ticks = []

    def tick() -> TickReport:
        ticks.append(1)
        ticked.set()
        return TickReport(sent=2)

    hb = Heartbeat(sqlite_runtime.sessions, "w:9")
    worker = Worker(tick, 60.0, heartbeat=hb)  # the first tick runs at start
    worker.start()
    try:
        assert ticked.wait(10), "no tick"
        for _ in range(200):  # the beat after the tick is written just after it returns (bounded wait)
            r = row(sqlite_runtime, "w:9")
            if r is not None and r.sent_total == 2:
                break
            time.sleep(0.05)
        assert r is not None and (r.last_sent, r.sent_total, r.stopped_at) == (2, 2, None)
    finally:
        worker.stop()
    assert row(sqlite_runtime, "w:9").stopped_at is not None and len(ticks) == 1


def test_idle_beats_are_throttled_but_news_is_always_written(runtime):
    clock = Clock(T)
    hb = Heartbeat(runtime.sessions, "w:1", clock=clock)
    hb.start()
    clock.now = T + timedelta(seconds=1)
    hb.beat(0)  # a tick that sent nothing, a second after the last write: skipped
    hb.beat()
    assert row(runtime, "w:1").last_beat_at == T
    hb.beat(4)  # something sent: written at once
    clock.now = T + timedelta(seconds=2)
    hb.beat(0)  # the latest tick sent 0 now: written, so last_sent is not left at 4
    r = row(runtime, "w:1")
    assert (r.last_beat_at, r.last_sent, r.sent_total) == (T + timedelta(seconds=2), 0, 4)
    clock.now = T + timedelta(seconds=8)
    hb.beat()
    assert row(runtime, "w:1").last_beat_at == T + timedelta(seconds=8)
