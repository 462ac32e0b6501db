"""The clock: APScheduler 3.x runs the dispatcher on an interval. No state of its own.

Everything that matters lives in the database, so the in-memory job store is deliberate (3.x
cannot share a job store between processes; duplicate sends were seen when it was tried). The job
options are set on purpose:
- `misfire_grace_time=None`: APScheduler's default of 1 s silently drops a run that starts late
  (a busy machine, a long batch); a late tick must still run.
- `coalesce=True`: after a stall, run once, not once per missed interval - a tick sends
  everything due anyway.
- `max_instances=1`: a tick never overlaps itself in one process (other processes are kept apart
  by the database's row claims).
Recurring newsletters use `CronTrigger` arithmetic in `campaigns.broadcasts`, called from each tick,
with their next fire time stored in the database.

With a `Heartbeat` (delivery/heartbeat.py) the worker beats at start, after every tick and from a
second job every `BEAT_SECONDS` (so a long tick still shows a live worker), and marks itself
stopped on a clean exit. `start()`/`stop()` run it inside another process's life (`drip serve
--worker`); `run_forever()` is `drip run`.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from delivery.dispatcher import TickReport

if TYPE_CHECKING:
    from delivery.heartbeat import Heartbeat

log = logging.getLogger("drip.scheduler")

#: Seconds between heartbeats besides the one after each tick (well inside DRIP_WORKER_STALE_SECONDS).
BEAT_SECONDS = 15.0


class _QuietOverlap(logging.Filter):
    """`max_instances=1` is deliberate: a tick still running (a long batch, a wait for a locked
    database) makes APScheduler skip the next one and say so at WARNING every interval. Expected,
    so not logged; the tick itself says what it waits for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_QuietOverlap())


class Worker:
    """`drip run`: tick every `interval` seconds until SIGTERM/SIGINT, then finish the batch and exit."""

    def __init__(self, tick: Callable[[], TickReport], interval: float, on_report: Callable[[TickReport], None] | None = None,
                 heartbeat: "Heartbeat | None" = None, beat_seconds: float = BEAT_SECONDS) -> None:
        self._tick = tick
        self.interval = interval
        self.on_report = on_report
        self.heartbeat = heartbeat
        self.beat_seconds = beat_seconds
        self.stopping = threading.Event()
        self.errors = 0
        self._scheduler: BackgroundScheduler | None = None
        self.chores: list[tuple[str, Callable[[], object], float]] = []  # (name, job, seconds): housekeeping

    def add_chore(self, name: str, job: Callable[[], object], seconds: float) -> None:
        """Housekeeping beside the ticks (e.g. retention), in its own job: never delays sending."""
        self.chores.append((name, job, seconds))

    def _chore(self, name: str, job: Callable[[], object]) -> None:
        if self.stopping.is_set():
            return
        try:
            job()
        except Exception:  # noqa: BLE001 - housekeeping failing must not stop the worker
            log.exception("%s failed; it runs again later", name)

    def _job(self) -> None:
        if self.stopping.is_set():
            return
        try:
            report = self._tick()
        except Exception as exc:  # keep the clock running; the next tick retries (rows stay due)
            self.errors += 1
            from drip.db import is_unavailable, short_reason

            if is_unavailable(exc):  # locked or unreachable: expected, one line, no traceback
                log.warning("tick skipped: database unavailable (%s); the next tick retries", short_reason(exc))
            else:
                log.exception("tick failed")
            if self.heartbeat:
                self.heartbeat.beat()
            return
        if self.heartbeat:
            self.heartbeat.beat(report.sent)
        if self.on_report:
            self.on_report(report)

    def _beat(self) -> None:
        if self.heartbeat and not self.stopping.is_set():
            self.heartbeat.beat()

    def build_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._job,
            IntervalTrigger(seconds=self.interval, timezone="UTC"),
            id="dispatch",
            next_run_time=datetime.now().astimezone(),  # first tick at start, not after one interval
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        if self.heartbeat:
            scheduler.add_job(self._beat, IntervalTrigger(seconds=self.beat_seconds, timezone="UTC"), id="heartbeat",
                              misfire_grace_time=None, coalesce=True, max_instances=1)
        for name, job, seconds in self.chores:
            scheduler.add_job(self._chore, IntervalTrigger(seconds=seconds, timezone="UTC"), args=(name, job), id=name,
                              next_run_time=datetime.now().astimezone(), misfire_grace_time=None, coalesce=True,
                              max_instances=1)
        return scheduler

    def start(self) -> None:
        """Start ticking in background threads (returns at once)."""
        if self.heartbeat:
            self.heartbeat.start()
        self._scheduler = self.build_scheduler()
        self._scheduler.start()

    def stop(self) -> None:
        """Stop ticking; a tick in progress records its batch first (wait=True)."""
        self.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        if self.heartbeat:
            self.heartbeat.stop()

    def run_forever(self, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            self.stop()
