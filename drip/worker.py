"""The worker as a part that can run anywhere: `drip run` runs it alone, `drip serve --worker`
runs it inside the web server's process, so a small clinic runs one command.

Either way it is the same `scheduler.Worker` ticking the same `Dispatcher`, with a heartbeat row
(delivery/heartbeat.py) so /healthz and the staff pages can tell whether anything is sending.
"""

from __future__ import annotations

import logging
import socket
from contextlib import ExitStack
from typing import TYPE_CHECKING, Callable

from drip.runtime import Runtime

if TYPE_CHECKING:
    from delivery.dispatcher import Dispatcher, TickReport
    from scheduler import Worker

log = logging.getLogger("drip.worker")


def build_worker(rt: Runtime, dispatcher: "Dispatcher", interval: float | None, *, mode: str,
                 on_report: "Callable[[TickReport], None] | None" = None) -> "Worker":
    """The ticking worker with its heartbeat row, id = the dispatcher's `claimed_by`."""
    from delivery.heartbeat import Heartbeat
    from scheduler import Worker

    heartbeat = Heartbeat(rt.sessions, dispatcher.store.worker_id, mode=mode)
    worker = Worker(dispatcher.tick, interval or rt.settings.tick_seconds, on_report=on_report, heartbeat=heartbeat)
    # Always scheduled: owners may set a retention on Settings while the worker runs (0: the job does nothing).
    worker.add_chore("retention", lambda: _retention(rt), RETENTION_SECONDS)
    from delivery.bounces.mailbox import configured

    if configured(rt.settings) and rt.settings.bounce_poll_seconds > 0:
        worker.add_chore("bounces", lambda: _bounces(rt, worker.stopping.is_set), rt.settings.bounce_poll_seconds)
    worker.add_chore("stats", lambda: _stats(rt), rt.settings.stats_refresh_seconds)
    sender = webhook_sender(rt, dispatcher.store.worker_id)
    worker.add_chore("webhooks", lambda: sender.drain(WEBHOOK_BUDGET_SECONDS, worker.stopping), WEBHOOK_SECONDS)
    return worker


WEBHOOK_SECONDS = 1.0  # the webhook job's interval (its own APScheduler job: never inside a sending tick)
WEBHOOK_BUDGET_SECONDS = 10.0


def webhook_sender(rt: Runtime, worker_id: str):
    """The worker's webhook deliverer (webhooks/sender.py), claiming as `worker_id`."""
    from webhooks.sender import WebhookSender

    s = rt.settings
    return WebhookSender(rt.sessions, worker_id, allow_private=s.webhook_allow_private, timeout=s.webhook_timeout,
                         concurrency=s.webhook_concurrency, nice=s.webhook_nice, read_sessions=rt.read_sessions)


RETENTION_SECONDS = 3600.0


def _stats(rt: Runtime) -> None:
    """The staff pages' counts of a large ledger (delivery/counts.py; nothing on a small one)."""
    from delivery.counts import refresh
    from drip.models import utcnow

    refresh(rt, utcnow())


def _retention(rt: Runtime) -> None:
    from delivery.retention import apply_retention, configured_days
    from drip.models import utcnow

    result = apply_retention(rt.sessions, utcnow(), configured_days(rt))
    if result.deliveries or result.events:
        log.info("retention: deleted %d delivery rows and %d provider events older than %s", result.deliveries,
                 result.events, result.cutoff.date())


def _bounces(rt: Runtime, stopping: Callable[[], bool]) -> None:
    """The bounce mailbox chore: a mailbox that cannot be reached is one warning, retried next time."""
    from delivery.bounces.mailbox import sources_for
    from delivery.bounces.poll import poll
    from drip.models import utcnow

    try:
        result = poll(rt.sessions, rt.settings, sources_for(rt.settings), utcnow, stopping)
    except ConnectionError as exc:
        log.warning("%s; retrying in %.0f s", exc, rt.settings.bounce_poll_seconds)
        return
    if result.messages:
        log.info("bounce mailbox: %s", result.summary())


def beat_once(rt: Runtime) -> Callable[[int], None]:
    """`drip run --once` (e.g. from cron) beats once per run, in one row per host, and does not
    mark itself stopped: run every minute, it counts as a live worker."""
    from delivery.heartbeat import Heartbeat

    heartbeat = Heartbeat(rt.sessions, f"{socket.gethostname()}:once", mode="once")

    def beat(sent: int) -> None:
        heartbeat.start()
        heartbeat.beat(sent)

    return beat


class EmbeddedWorker:
    """The worker inside another process (the web server): `start()` at start-up, `stop()` at
    shutdown. Ticks run in the scheduler's threads, never on the server's event loop."""

    def __init__(self, rt: Runtime, interval: float | None = None) -> None:
        self.rt = rt
        self.interval = interval
        self._stack = ExitStack()
        self.worker: "Worker | None" = None

    def start(self) -> None:
        from delivery.backends import get_backend
        from delivery.dispatcher import Dispatcher

        backend = self._stack.enter_context(get_backend(self.rt.settings))
        dispatcher = Dispatcher(self.rt, backend)
        self.worker = build_worker(self.rt, dispatcher, self.interval, mode="serve", on_report=_log_report)
        self.worker.start()
        log.info("worker started in this process (every %.0f s)", self.worker.interval)

    def stop(self) -> None:
        try:
            if self.worker is not None:
                self.worker.stop()  # a tick in progress records its batch first
                log.info("worker stopped")
        finally:
            self._stack.close()


def _log_report(report: "TickReport") -> None:
    if report.claimed or report.reclaimed:
        log.info("sent %d, retry %d, deferred %d, failed %d, cancelled %d", report.sent, report.retried,
                 report.deferred, report.failed, report.cancelled)
    for slug in report.paused_campaigns:
        log.warning("campaign %s auto-paused after consecutive send errors", slug)
