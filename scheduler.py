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
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from delivery.dispatcher import TickReport

log = logging.getLogger("drip.scheduler")


class _QuietOverlap(logging.Filter):
    """`max_instances=1` is deliberate: a tick still running (a long batch, a wait for a locked
    database) makes APScheduler skip the next one and say so at WARNING every interval. Expected,
    so not logged; the tick itself says what it waits for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_QuietOverlap())


class Worker:
    """`drip run`: tick every `interval` seconds until SIGTERM/SIGINT, then finish the batch and exit."""

    def __init__(self, tick: Callable[[], TickReport], interval: float, on_report: Callable[[TickReport], None] | None = None) -> None:
        self._tick = tick
        self.interval = interval
        self.on_report = on_report
        self.stopping = threading.Event()
        self.errors = 0

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
            return
        if self.on_report:
            self.on_report(report)

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
        return scheduler

    def run_forever(self, install_signals: bool = True) -> None:
        scheduler = self.build_scheduler()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        scheduler.start()
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            # wait=True lets a tick in progress record its batch before the process exits
            scheduler.shutdown(wait=True)
