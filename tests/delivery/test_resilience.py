"""Delivery heals itself: outages of the SMTP server, the outbox disk and the database, with real
parts (an aiosmtpd server on loopback, the outbox on disk, a SQLite file locked by a second
connection). Each case counts lost and duplicated emails and ends with the campaign sending again
with no human step. Small breaker and retry settings keep each case to about a second.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll
from delivery.backends import outbox
from delivery.backends.outbox import OutboxBackend
from delivery.backends.smtp import SMTPBackend
from delivery.dispatcher import Dispatcher
from drip.db import is_unavailable, make_engine, session_factory
from drip.models import Campaign, Delivery, Step, Subscriber, Suppression
from drip.runtime import Runtime
from tests.delivery.conftest import run_smtp_server
from tests.factories import make_campaign

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


class FastClock:
    """Simulated time from T0, by default at 600x: a row's own retry backoff (30-60 s) passes in a
    tenth of a second, and the whole test stays inside one afternoon (no dependence on the real
    date or time of day)."""

    def __init__(self, rate: float = 600.0) -> None:
        self.start = time.monotonic()
        self.rate = rate

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=(time.monotonic() - self.start) * self.rate)


def populate(runtime, n: int, n_items: int = 0) -> int:
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=n_items, window="daily 00:00-23:59")
        for i in range(n):
            sub = Subscriber(email=f"p{i}@example.org", email_key=f"p{i}@example.org", name=f"P{i}", status="active")
            s.add(sub)
            s.flush()
            enroll(s, sub, c, T0 - timedelta(hours=1), clinic_tz="UTC")
        return c.id


def tuned(settings, **changes):
    base = dict(breaker_base_seconds=0.1, breaker_max_seconds=0.4, frequency_cap=10, lease_seconds=36000,
                record_every=5, batch_size=20, db_retry_max_seconds=0.2)
    base.update(changes)
    return settings.with_(**base)


FIRST_STEP = select(Step.id).where(Step.position == 1).scalar_subquery()


def due_ids(runtime) -> set[int]:
    """The first step's deliveries: due at the start (a later step is not)."""
    with runtime.sessions() as s:
        return set(s.scalars(select(Delivery.id).where(Delivery.step_id.in_(FIRST_STEP))))


def counts(runtime) -> dict[str, int]:
    with runtime.sessions() as s:  # a Runtime or a Dispatcher (both have .sessions)
        return dict(s.execute(select(Delivery.status, func.count()).where(Delivery.step_id.in_(FIRST_STEP))
                              .group_by(Delivery.status)).all())


def campaign(runtime, cid) -> tuple[str, int]:
    with runtime.sessions() as s:
        c = s.get(Campaign, cid)
        return c.status, c.consecutive_failures


def tick_until(d: Dispatcher, done, seconds: float = 20.0) -> list:
    reports = []
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"did not recover: {reports[-2:]} {counts(d)} {d.clock()}"
        try:
            reports.append(d.tick())
        except Exception as exc:  # as the worker's clock does (scheduler.Worker): the next tick retries
            if not is_unavailable(exc):
                raise
        time.sleep(0.02)
    return reports


def received(server) -> Counter:
    return Counter(int(m["X-Drip-Delivery-Id"]) for m in server.messages)


def smtp_settings(runtime, port: int):
    return tuned(runtime.settings, backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=2.0, smtp_connections=1)


def test_smtp_down_at_start_then_up_sends_everything_once_by_itself(runtime, closed_port):
    cid = populate(runtime, 30)
    runtime.settings = smtp_settings(runtime, closed_port)
    ids = due_ids(runtime)
    with SMTPBackend(runtime.settings) as backend:
        d = Dispatcher(runtime, backend, clock=FastClock())
        first = d.tick()
        assert first.backend_down and first.sent == first.failed == first.retried == 0
        assert counts(runtime) == {"scheduled": 30}  # every row left due, untouched
        with runtime.sessions() as s:
            assert set(s.scalars(select(Delivery.attempts))) == {0}  # no attempt counted for an outage
        gen = run_smtp_server(port=closed_port)  # the server comes up where the worker was refused
        server = next(gen)
        try:
            reports = tick_until(d, lambda: counts(runtime).get("sent") == 30)
        finally:
            gen.close()
    got = received(server)
    assert set(got) == ids, "lost"
    assert max(got.values()) == 1, "duplicated"
    assert campaign(runtime, cid) == ("published", 0)  # never paused, nothing counted against it
    assert sum(r.failed for r in [first, *reports]) == 0


def test_421_then_451_for_everyone_holds_the_backend_and_fails_nothing(sqlite_runtime, smtp_server):
    runtime = sqlite_runtime
    cid = populate(runtime, 40)
    runtime.settings = smtp_settings(runtime, smtp_server.port)
    ids = due_ids(runtime)
    smtp_server.reject_all(421, "4.3.2 service shutting down")
    timers = [threading.Timer(0.5, smtp_server.reject_all, (451, "4.7.1 try again later")),
              threading.Timer(1.0, smtp_server.accept_all)]
    for t in timers:
        t.start()
    try:
        with SMTPBackend(runtime.settings) as backend:
            d = Dispatcher(runtime, backend, clock=FastClock())
            reports = tick_until(d, lambda: counts(runtime).get("sent") == 40)
    finally:
        for t in timers:
            t.cancel()
    got = received(smtp_server)
    assert set(got) == ids and max(got.values()) == 1, "lost or duplicated"
    assert any(r.backend_down for r in reports), "the outage was seen"
    assert sum(r.failed for r in reports) == 0 and counts(runtime) == {"sent": 40}
    assert campaign(runtime, cid) == ("published", 0)


def test_one_address_550_fails_only_that_recipient_and_suppresses_it(runtime, smtp_server):
    cid = populate(runtime, 12, n_items=1)  # a second step, due days later, for everyone
    runtime.settings = smtp_settings(runtime, smtp_server.port)
    smtp_server.reject("p3@example.org", 550, "5.1.1 <p3@example.org>: user unknown")
    with SMTPBackend(runtime.settings) as backend:
        d = Dispatcher(runtime, backend, clock=FastClock())
        tick_until(d, lambda: "scheduled" not in counts(runtime))
    assert counts(runtime) == {"sent": 11, "failed": 1}
    got = received(smtp_server)
    assert len(got) == 11 and max(got.values()) == 1
    with runtime.sessions() as s:
        p3 = s.scalar(select(Subscriber).where(Subscriber.email_key == "p3@example.org"))
        assert p3.status == "bounced"
        assert s.get(Suppression, "p3@example.org").reason == "bounce"
        rows = {d.status: d for d in s.scalars(select(Delivery).where(Delivery.subscriber_id == p3.id))}
        assert set(rows) == {"failed", "cancelled"}  # the later step will never go to a dead address
        assert "550" in rows["failed"].last_error and rows["failed"].outcome == "bounced"
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1
    assert campaign(runtime, cid) == ("published", 0)


def test_outbox_disk_full_then_freed_sends_everything_once(sqlite_runtime, monkeypatch):
    runtime = sqlite_runtime
    cid = populate(runtime, 25)
    runtime.settings = tuned(runtime.settings)
    ids = due_ids(runtime)
    full = threading.Event()
    full.set()
    real_write = outbox.write_atomic
    written: Counter = Counter()

    def write(path, data):  # ENOSPC injected at the write, as a full disk answers it
        if full.is_set():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)
        if str(path).endswith(".eml"):
            written[int(os.path.basename(str(path))[:-4])] += 1

    monkeypatch.setattr(outbox, "write_atomic", write)
    with OutboxBackend(runtime.settings) as backend:
        d = Dispatcher(runtime, backend, clock=FastClock())
        first = d.tick()
        assert first.backend_down and first.failed == 0 and counts(runtime) == {"scheduled": 25}
        full.clear()  # space freed
        tick_until(d, lambda: counts(runtime).get("sent") == 25)
    assert set(written) == ids and max(written.values()) == 1, "lost or duplicated"
    assert campaign(runtime, cid) == ("published", 0)


# -- the database


def _lock(path: str) -> sqlite3.Connection:
    """A second connection holding the database's write lock (BEGIN EXCLUSIVE)."""
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_sqlite_locked_mid_run_sends_nothing_twice_and_carries_on(sqlite_runtime, smtp_server, caplog):
    """The lock is taken while a chunk is with the SMTP server, so recording that chunk waits
    (short busy timeout: it fails and is retried). Nothing may be resent: the rows are recorded
    when the lock goes, not reclaimed."""
    rt = sqlite_runtime
    cid = populate(rt, 40)
    path = rt.settings.db_url.split("///", 1)[1]
    settings = smtp_settings(rt, smtp_server.port).with_(db_busy_timeout=0.1, lease_seconds=5)
    engine = make_engine(settings.db_url, busy_timeout=settings.db_busy_timeout)
    fast = Runtime(settings=settings, engine=engine, sessions=session_factory(engine))
    ids = due_ids(rt)
    locked: list[sqlite3.Connection] = []
    original = SMTPBackend.send_batch

    def send_then_lock(self, messages):
        results = original(self, messages)
        if not locked and len(smtp_server.messages) >= 12:  # mid-run, before this chunk is recorded
            locked.append(_lock(path))
            threading.Timer(1.5, lambda: locked[0].execute("COMMIT")).start()
        return results

    try:
        with SMTPBackend(settings) as backend:
            backend.send_batch = send_then_lock.__get__(backend)
            # real seconds here: leases would run out during the lock if the record gave up
            d = Dispatcher(fast, backend, clock=FastClock(rate=1.0))
            with caplog.at_level("WARNING", logger="drip.db"):
                tick_until(d, lambda: counts(rt).get("sent") == 40)
    finally:
        fast.close()
    assert locked, "the database was locked mid-run"
    got = received(smtp_server)
    assert set(got) == ids and max(got.values()) == 1, "lost or duplicated"
    waits = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert waits and all("\n" not in w for w in waits)
    assert campaign(rt, cid) == ("published", 0)


def test_worker_started_while_sqlite_is_locked_waits_then_sends(sqlite_runtime, smtp_server):
    """`drip run` against a database another connection holds locked: one log line, no traceback,
    no exit; when the lock goes it migrates and sends every email once."""
    import signal
    import subprocess
    import sys

    from tests.delivery.test_crash_safety import ROOT

    rt = sqlite_runtime
    with rt.sessions.begin() as s:  # due by the real clock: the worker runs on it
        c = make_campaign(s, n_items=0, window="daily 00:00-23:59")
        for i in range(10):
            sub = Subscriber(email=f"w{i}@example.org", email_key=f"w{i}@example.org", name="", status="active",
                             tz="Pacific/Kiritimati")
            s.add(sub)
            s.flush()
            enroll(s, sub, c, datetime.now(timezone.utc) - timedelta(days=1), clinic_tz="UTC")
    path = rt.settings.db_url.split("///", 1)[1]
    lock = _lock(path)
    env = dict(os.environ, DRIP_DATABASE_URL=rt.settings.db_url, DRIP_DATA_DIR=str(rt.settings.data_dir),
               DRIP_SECRET_KEY=rt.settings.secret_key, DRIP_BACKEND="smtp", DRIP_SMTP_HOST="127.0.0.1",
               DRIP_SMTP_PORT=str(smtp_server.port), DRIP_TICK_SECONDS="0.2", DRIP_DB_BUSY_TIMEOUT="0.2",
               DRIP_DB_RETRY_MAX_SECONDS="0.3", DRIP_FREQUENCY_CAP="5")
    proc = subprocess.Popen([sys.executable, "-c", "from drip.cli import main; main(['run'])"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("database unavailable" in line for line in lines):
            assert proc.poll() is None, "the worker exited instead of waiting: " + "".join(lines[-5:])
            assert time.monotonic() < deadline, "no 'database unavailable' line"
            time.sleep(0.05)
        time.sleep(0.5)  # still locked: it keeps waiting
        assert proc.poll() is None
        lock.execute("COMMIT")
        lock.close()
        while len(smtp_server.messages) < 10:
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines[-5:])
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        reader.join(5)
    assert code == 0
    text = "".join(lines)
    assert "Traceback" not in text
    assert sum("database unavailable" in line for line in lines) == 1, text
    got = received(smtp_server)
    assert len(got) == 10 and max(got.values()) == 1


def test_a_tick_that_meets_a_locked_database_logs_one_line_and_the_clock_goes_on(sqlite_runtime, caplog):
    """The worker's clock (scheduler.Worker): a locked database is one warning line, no traceback;
    any other error keeps its traceback (a bug must be seen)."""
    from sqlalchemy import text

    from scheduler import Worker

    rt = sqlite_runtime
    path = rt.settings.db_url.split("///", 1)[1]
    engine = make_engine(rt.settings.db_url, busy_timeout=0.05)

    def tick():
        with engine.begin() as conn:
            conn.execute(text("UPDATE campaigns SET title = title"))

    lock = _lock(path)
    try:
        worker = Worker(tick, 1.0)
        with caplog.at_level("WARNING", logger="drip.scheduler"):
            worker._job()
    finally:
        lock.execute("COMMIT")
        lock.close()
        engine.dispose()
    (record,) = caplog.records
    assert "database unavailable" in record.getMessage() and record.exc_info is None
    caplog.clear()

    def broken():
        raise ValueError("a bug")

    with caplog.at_level("WARNING", logger="drip.scheduler"):
        Worker(broken, 1.0)._job()
    (record,) = caplog.records
    assert record.exc_info is not None and worker.errors == 1
