"""Prometheus metrics: what an operator needs to see that email is going out.

Two kinds, because `drip serve` and `drip run` are separate processes:

- Read from the database at scrape time (`LedgerCollector`, the same in every process): deliveries
  by status (one grouped count over the `(status, due_at)` index), rows due now, the age of the
  worker's last sign of life, whether the database answers.
- Counted in the process that does the work (module-level, `REGISTRY`): send latency, backend
  errors and rate-limit waits in the worker (`drip run --metrics-port` serves them), webhook
  events in the web app (`/metrics` of `drip serve`).

Access (`allowed`): from loopback without a proxy's forwarding header, or with
`Authorization: Bearer $DRIP_METRICS_TOKEN`. Counts and ages only: no address, name or subject
ever becomes a label.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger("drip.metrics")

STATUSES = ("scheduled", "sending", "sent", "failed", "cancelled")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files of this process

SEND_LATENCY = Histogram(
    "drip_send_latency_seconds",
    "Seconds the backend took to accept one send call (DRIP_RECORD_EVERY emails; one SendGrid request)",
    ["backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
EMAILS = Counter("drip_emails_total", "Emails handed to the backend, by result (ok, transient, permanent)",
                 ["backend", "result"], registry=REGISTRY)
BACKEND_ERRORS = Counter("drip_backend_errors_total", "Emails the backend refused or failed to send",
                         ["backend", "kind"], registry=REGISTRY)
RATE_LIMIT_WAITS = Counter("drip_rate_limit_waits_total",
                           "Times a worker found a provider rate limit (DRIP_RATE_LIMITS) used up and left emails due for the next window",
                           registry=REGISTRY)
WEBHOOK_EVENTS = Counter("drip_webhook_events_total", "Provider events received on the webhook, by type",
                         ["provider", "type"], registry=REGISTRY)
WEBHOOK_DUPLICATES = Counter("drip_webhook_duplicates_total", "Provider events received again (deduplicated)",
                             ["provider"], registry=REGISTRY)


def prepare_backend(backend: str) -> None:
    """Make the labelled series of `backend` exist at 0 before the first send, so rates work."""
    for result in ("ok", "transient", "permanent"):
        EMAILS.labels(backend, result)
    for kind in ("transient", "permanent"):
        BACKEND_ERRORS.labels(backend, kind)
    SEND_LATENCY.labels(backend)


def observe_send(backend: str, seconds: float, results: Sequence) -> None:
    """One backend call: its duration and what became of each email (`SendResult`s)."""
    SEND_LATENCY.labels(backend).observe(seconds)
    bad = [r for r in results if not r.ok]
    if len(results) > len(bad):
        EMAILS.labels(backend, "ok").inc(len(results) - len(bad))
    if bad:
        transient = sum(1 for r in bad if r.transient)
        for kind, n in (("transient", transient), ("permanent", len(bad) - transient)):
            if n:
                EMAILS.labels(backend, kind).inc(n)
                BACKEND_ERRORS.labels(backend, kind).inc(n)


def observe_webhook(provider: str, by_type: Mapping[str, int], duplicates: int = 0) -> None:
    for kind, n in by_type.items():
        WEBHOOK_EVENTS.labels(provider, str(kind)).inc(n)
    if duplicates:
        WEBHOOK_DUPLICATES.labels(provider).inc(duplicates)


# -- read from the database at scrape time -----------------------------------------------------

#: Column names a worker heartbeat table may use for "last seen", newest first in preference.
HEARTBEAT_COLUMNS = ("last_seen_at", "seen_at", "beat_at", "last_beat_at", "heartbeat_at", "updated_at")


def _heartbeat_source() -> tuple[str, str] | None:
    """(table, column) of a worker heartbeat table if this version of drip's models has one."""
    from drip.models import Base

    for name, table in Base.metadata.tables.items():
        if "heartbeat" in name:
            for column in HEARTBEAT_COLUMNS:
                if column in table.c:
                    return name, column
    return None


class LedgerCollector:
    """Gauges computed from the database on each scrape (a few indexed queries, read-only)."""

    def __init__(self, sessions, clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only (nothing is queried when registering)

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("drip_database_up", "1 when the database answered this scrape")
        try:
            by_status, due, beat, source = self._read()
        except Exception:  # the scrape still answers; the log has the detail
            log.exception("metrics: database query failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        deliveries = GaugeMetricFamily("drip_deliveries", "Delivery rows by status", labels=["status"])
        for status in sorted(set(STATUSES) | set(by_status)):
            deliveries.add_metric([status], by_status.get(status, 0))
        yield deliveries
        yield GaugeMetricFamily("drip_deliveries_due", "Scheduled rows whose due time has come (the worker's backlog)",
                                value=due)
        age = GaugeMetricFamily(
            "drip_worker_heartbeat_age_seconds",
            "Seconds since the worker last showed life (its heartbeat; without one, its last recorded send)",
            labels=["source"],
        )
        if beat is not None:
            age.add_metric([source], max(0.0, (self.clock() - beat).total_seconds()))
        yield age

    def _read(self) -> tuple[dict[str, int], int, datetime | None, str]:
        from sqlalchemy import func, select, text

        from drip.models import Delivery, UTCDateTime

        now = self.clock()
        with self.sessions() as s:
            by_status = dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
            due = s.scalar(select(func.count()).select_from(Delivery)
                           .where(Delivery.status == "scheduled", Delivery.due_at <= now)) or 0
            beat, source = None, "last_send"
            heartbeat = _heartbeat_source()
            if heartbeat is not None:
                table, column = heartbeat
                beat = s.execute(text(f'SELECT max("{column}") AS beat FROM "{table}"')
                                 .columns(beat=UTCDateTime())).scalar()
                source = "heartbeat"
            if beat is None:
                beat, source = s.scalar(select(func.max(Delivery.sent_at))), "last_send"
        return by_status, int(due), beat, source


def ledger_registry(sessions, clock: Callable[[], datetime]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(sessions, clock))  # type: ignore[arg-type]
    return registry


def exposition(ledger: CollectorRegistry) -> bytes:
    """The text a scrape gets: the database's gauges, then this process's counters."""
    return generate_latest(ledger) + generate_latest(REGISTRY)


# -- who may scrape ----------------------------------------------------------------------------

_FORWARDED = ("x-forwarded-for", "forwarded", "x-real-ip")


def allowed(client_host: str | None, headers: Mapping[str, str], token: str) -> bool:
    """Loopback without a proxy in between (the proxy would be loopback for every visitor), or
    the bearer token when one is configured (compared in constant time)."""
    auth = headers.get("authorization", "")
    if token and auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
        return True
    if any(headers.get(h) for h in _FORWARDED):
        return False
    try:
        return client_host is not None and ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


# -- the worker's own endpoint -----------------------------------------------------------------

def serve_worker_metrics(host: str, port: int, token: str, ledger: CollectorRegistry) -> ThreadingHTTPServer:
    """`GET /metrics` for `drip run` on a daemon thread; returns the server (`.shutdown()` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = "drip", ""  # no Python version in a header

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(404, b"not found\n", "text/plain; charset=utf-8")
            elif not allowed(self.client_address[0], {k.lower(): v for k, v in self.headers.items()}, token):
                self._answer(403, b"metrics: loopback or Authorization: Bearer DRIP_METRICS_TOKEN\n",
                             "text/plain; charset=utf-8")
            else:
                self._answer(200, exposition(ledger), CONTENT_TYPE_LATEST)

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # scrapes every 15 s are not news
            log.debug("metrics %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="drip-metrics", daemon=True).start()
    return server
