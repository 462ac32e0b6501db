"""Worker heartbeats: each worker says it is alive, so a page can say when nothing is sending.

Sending only happens while a worker runs (`drip run`, or `drip serve --worker`); with only the
web app up, emails wait in the ledger and nothing else shows it. Each worker keeps one row in
`worker_heartbeats` (id = the `claimed_by` it writes on the deliveries it claims) and beats:
when it starts, after every tick (with what the tick sent) and on a timer of its own, so a long
tick sending thousands of emails still counts as alive. A clean exit marks the row stopped.

`worker_health` is what /healthz and the staff pages read: one small aggregate query. A worker is
live when it has not stopped and beat within `stale_after`; `drip run --once` (from cron) beats
without stopping, so a cron that runs it every minute counts as a live worker.

A heartbeat that cannot be written (the database is locked or down) is logged and skipped: it
must never stop the worker from sending.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from drip.models import WorkerHeartbeat, utcnow

log = logging.getLogger("drip.heartbeat")

#: Rows of workers silent this long are deleted when a worker starts (restarts leave one row each).
FORGET_AFTER = timedelta(days=7)
#: A beat with nothing new to record is skipped when the last one is younger than this (a worker
#: ticking every 0.5 s must not write its row twice a second).
MIN_BEAT_GAP = timedelta(seconds=5)


def default_worker_id() -> str:
    """The id the dispatcher writes into `deliveries.claimed_by` (host:pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """One worker's row. Thread-safe: the tick thread and the beat timer both call `beat`."""

    def __init__(self, sessions: sessionmaker[Session], worker_id: str | None = None, *, mode: str = "run",
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.mode = mode
        self.clock = clock
        self._lock = threading.Lock()
        self._last_write: datetime | None = None
        self._last_sent = 0  # as recorded in the row

    def start(self) -> None:
        """(Re)create this worker's row; forget workers silent for a week."""
        now = self.clock()
        host, _, pid = self.worker_id.rpartition(":")
        row = dict(worker_id=self.worker_id, host=(host or socket.gethostname())[:255],
                   pid=int(pid) if pid.isdigit() else os.getpid(), mode=self.mode[:16], started_at=now,
                   last_beat_at=now, last_sent=0, sent_total=0, stopped_at=None)
        with self._lock:
            self._last_write, self._last_sent = now, 0
            self._write(lambda s: (
                s.execute(delete(WorkerHeartbeat).where((WorkerHeartbeat.worker_id == self.worker_id)
                                                        | (WorkerHeartbeat.last_beat_at < now - FORGET_AFTER))),
                s.add(WorkerHeartbeat(**row)),
            ))

    def beat(self, sent: int | None = None) -> None:
        """Alive now; with `sent`, the latest tick sent that many (added to the total)."""
        now = self.clock()
        values: dict = {"last_beat_at": now, "stopped_at": None}
        if sent is not None:
            values.update(last_sent=sent, sent_total=WorkerHeartbeat.sent_total + sent)
        with self._lock:
            nothing_new = not sent and (sent is None or self._last_sent == 0)
            if nothing_new and self._last_write is not None and now - self._last_write < MIN_BEAT_GAP:
                return
            self._last_write = now
            if sent is not None:
                self._last_sent = sent
            self._write(lambda s: s.execute(
                update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id).values(**values)))

    def stop(self) -> None:
        now = self.clock()
        with self._lock:
            self._write(lambda s: s.execute(
                update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id)
                .values(last_beat_at=now, stopped_at=now)))

    def _write(self, work: Callable[[Session], object]) -> None:
        try:
            with self.sessions.begin() as s:
                work(s)
        except Exception as exc:  # never let the heartbeat stop the sending
            log.warning("heartbeat of worker %s not recorded: %s", self.worker_id, " ".join(str(exc).split())[:200])


@dataclass(frozen=True)
class WorkerHealth:
    """Is any worker sending? `state`: running, stale (there were workers, none is live) or never."""

    state: Literal["running", "stale", "never"]
    live: int  # workers that beat within the limit and did not stop
    last_beat: datetime | None  # the latest beat of any worker

    @property
    def sending(self) -> bool:
        return self.state == "running"

    def as_json(self) -> dict:
        return {"status": self.state, "live": self.live,
                "last_beat": self.last_beat.isoformat() if self.last_beat else None}


def worker_health(session: Session, now: datetime, stale_after: float) -> WorkerHealth:
    """One aggregate query over the (small) heartbeat table."""
    cutoff = now - timedelta(seconds=stale_after)
    live = (WorkerHeartbeat.last_beat_at >= cutoff) & WorkerHeartbeat.stopped_at.is_(None)
    total, last, n_live = session.execute(
        select(func.count(), func.max(WorkerHeartbeat.last_beat_at), func.count().filter(live))
    ).one()
    if not total:
        return WorkerHealth("never", 0, None)
    return WorkerHealth("running" if n_live else "stale", int(n_live), last)
