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


def _print(report: TickReport) -> None:
    if report.claimed or report.reclaimed:
        console.print(
            f"sent {report.sent}, retry {report.retried}, deferred {report.deferred}, failed {report.failed}, "
            f"cancelled {report.cancelled}" + (f", reclaimed {report.reclaimed}" if report.reclaimed else "")
        )
    for slug in report.paused_campaigns:
        console.print(f"[red]campaign {slug} auto-paused after consecutive send errors[/]")


def run_cmd(
    once: bool = typer.Option(False, "--once", help="Send what is due now, then exit."),
    interval: Optional[float] = typer.Option(None, "--interval", help="Seconds between ticks (default DRIP_TICK_SECONDS)."),
) -> None:
    """The worker: send due emails until SIGTERM/SIGINT (finishes the batch in hand, then exits)."""
    from datetime import datetime, timezone

    from drip.config import load_settings
    from drip.errors import ConfigurationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    if once:
        from delivery.due_check import anything_due

        if settings.backend == "sendgrid" and not settings.sendgrid_api_key.strip():
            # What the backend would refuse once something is due: say so now, not only then.
            raise ConfigurationError("SENDGRID_API_KEY is not set; the sendgrid backend needs it in the environment")
        if anything_due(settings.db_url, datetime.now(timezone.utc)) is False:
            return  # nothing due: no ORM, no Alembic, no renderer, no backend

    from delivery.backends import get_backend
    from delivery.dispatcher import Dispatcher
    from drip.runtime import open_runtime, tune_worker_gc

    rt = open_runtime(settings)
    with get_backend(rt.settings) as backend:
        dispatcher = Dispatcher(rt, backend)
        tune_worker_gc()
        if once:
            _print(dispatcher.tick())
            return
        from scheduler import Worker

        Worker(dispatcher.tick, interval or rt.settings.tick_seconds, on_report=_print).run_forever()
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
    finally:
        rt.close()
    out = Console()  # made now, not at import: the width is the terminal's (or COLUMNS) at this call
    out.print(status_table(rows))
    if total > len(rows):
        out.print(f"{total - len(rows):,} more not shown (--limit {total} shows all; "
                      "--campaign or --email narrows)", markup=False, highlight=False)
