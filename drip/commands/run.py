"""`drip run` (the worker) and `drip status` (the ledger as a table)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from delivery.dispatcher import TickReport

# The dispatcher, the renderer, the backends and SQLAlchemy are imported inside the commands:
# `drip --help` must not pay for them, and `drip run --once` with nothing due skips them
# (delivery/due_check.py; tests/test_startup.py).

console = Console()


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("status")(status_cmd)


_shown_limit: dict = {}


def _print(report: TickReport) -> None:
    if report.claimed or report.reclaimed:
        console.print(
            f"sent {report.sent}, retry {report.retried}, deferred {report.deferred}, failed {report.failed}, "
            f"cancelled {report.cancelled}" + (f", reclaimed {report.reclaimed}" if report.reclaimed else "")
        )
    if report.backend_down:
        console.print(f"[yellow]backend unavailable: {report.released} emails stay due; "
                      f"next try in {report.held_for:.0f} s[/]")
    if report.limited_until is not None and report.limited_until != _shown_limit.get("until"):
        _shown_limit["until"] = report.limited_until  # once per full window, not every tick
        console.print(f"[yellow]limited ({report.limit}): next sends at "
                      f"{report.limited_until:%Y-%m-%d %H:%M:%S} UTC; the emails due stay in order[/]")
    for slug in report.paused_campaigns:
        console.print(f"[red]campaign {slug} auto-paused after consecutive recipient failures[/]")


def run_cmd(
    once: bool = typer.Option(False, "--once", help="Send what is due now, then exit."),
    interval: Optional[float] = typer.Option(None, "--interval", help="Seconds between ticks (default DRIP_TICK_SECONDS)."),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=0, max=65535, envvar="DRIP_WORKER_METRICS_PORT",
        help="Serve the worker's Prometheus /metrics on this port (send latency, backend errors)."),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", envvar="DRIP_WORKER_METRICS_HOST",
                                     help="Address for --metrics-port (off loopback: DRIP_METRICS_TOKEN required)."),
) -> None:
    """The worker: send due emails until SIGTERM/SIGINT (finishes the batch in hand, then exits)."""
    from datetime import datetime, timezone

    from drip.config import load_settings
    from drip.errors import ConfigurationError
    from drip.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format)
    if once:
        from delivery.due_check import anything_due, idle_beat

        if settings.backend == "sendgrid" and not settings.sendgrid_api_key.strip():
            # What the backend would refuse once something is due: say so now, not only then.
            raise ConfigurationError("SENDGRID_API_KEY is not set; the sendgrid backend needs it in the environment")
        now = datetime.now(timezone.utc)
        if anything_due(settings.db_url, now) is False and idle_beat(settings.db_url, now):
            return  # nothing due: no ORM, no Alembic, no renderer, no backend (the heartbeat still beats)

    from delivery.backends import get_backend
    from delivery.dispatcher import Dispatcher
    from drip.runtime import open_runtime, tune_worker_gc
    from drip.worker import beat_once, build_worker

    # A database locked (SQLite) or not up yet (PostgreSQL) at start is waited for, not a traceback
    # (SIGTERM meanwhile ends the process at once: nothing is claimed yet).
    rt = open_runtime(settings, wait_for_database=True)
    if metrics_port is not None and not once:
        from drip.metrics import ledger_registry, serve_worker_metrics
        from drip.models import utcnow

        server = serve_worker_metrics(metrics_host, metrics_port, rt.settings.metrics_token,
                                      ledger_registry(rt.read_sessions, utcnow))
        logging.getLogger("drip.metrics").info("worker metrics on http://%s:%s/metrics", *server.server_address[:2])
    with get_backend(rt.settings) as backend:
        dispatcher = Dispatcher(rt, backend)
        tune_worker_gc()
        if once:
            report = dispatcher.tick()
            beat_once(rt)(report.sent)
            _print(report)
            from drip.worker import webhook_sender

            sender = webhook_sender(rt, dispatcher.store.worker_id)
            try:
                hooks = sender.drain(30.0)
            finally:
                sender.close()
            if hooks.claimed:
                console.print(f"webhooks: {hooks.delivered} delivered, {hooks.retried} to retry, {hooks.failed} failed")
            return
        build_worker(rt, dispatcher, interval, mode="run", on_report=_print).run_forever()
    console.print("worker stopped")


def status_cmd(
    campaign: Optional[str] = typer.Option(None, "--campaign", help="Only this campaign (its slug)."),
    email: Optional[str] = typer.Option(None, "--email", help="Only this patient (their address)."),
    limit: int = typer.Option(50, "--limit", min=1, help="Rows to show; a last line says how many more there are."),
) -> None:
    """Deliveries by patient: campaign and step, local send time, status."""
    from delivery.status import status_count, status_rows, status_table
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        with rt.read_sessions() as s:
            if campaign:
                from campaigns.service import get_campaign

                get_campaign(s, campaign)  # an unknown slug is an error (exit 2), not an empty table
            if email:
                from subscribers.service import get_subscriber

                get_subscriber(s, email)
            rows = status_rows(s, rt.settings.clinic.timezone, campaign=campaign, email=email, limit=limit)
            total = status_count(s, campaign=campaign, email=email) if len(rows) == limit else len(rows)
            from zoneinfo import ZoneInfo

            from delivery.ratelimit import limited_now, limited_text
            from drip.models import utcnow

            limited = limited_text(limited_now(s, utcnow()), ZoneInfo(rt.settings.clinic.timezone))
    finally:
        rt.close()
    out = Console()  # made now, not at import: the width is the terminal's (or COLUMNS) at this call
    out.print(status_table(rows))
    if limited:
        out.print(limited, markup=False, highlight=False)
    if total > len(rows):
        out.print(f"{total - len(rows):,} more not shown (--limit {total} shows all; "
                      "--campaign or --email narrows)", markup=False, highlight=False)
