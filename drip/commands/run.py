"""`drip run` (the worker) and `drip status` (the ledger as a table)."""

from __future__ import annotations

import logging
from typing import Optional

import typer
from rich.console import Console

from delivery.backends import get_backend
from delivery.dispatcher import Dispatcher, TickReport
from delivery.status import status_rows, status_table
from drip.runtime import open_runtime, tune_worker_gc
from drip.worker import beat_once, build_worker

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
    if report.backend_down:
        console.print(f"[yellow]backend unavailable: {report.released} emails stay due; "
                      f"next try in {report.held_for:.0f} s[/]")
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
    from drip.logs import configure_logging

    # A database locked (SQLite) or not up yet (PostgreSQL) at start is waited for, not a traceback
    # (SIGTERM meanwhile ends the process at once: nothing is claimed yet).
    rt = open_runtime(wait_for_database=True)
    configure_logging(rt.settings.log_format)
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
            return
        build_worker(rt, dispatcher, interval, mode="run", on_report=_print).run_forever()
    console.print("worker stopped")


def status_cmd(
    campaign: Optional[str] = typer.Option(None, "--campaign"),
    email: Optional[str] = typer.Option(None, "--email"),
    limit: int = typer.Option(200, "--limit"),
) -> None:
    """Every delivery: patient, step, local send time, status."""
    rt = open_runtime()
    with rt.sessions() as s:
        rows = status_rows(s, rt.settings.clinic.timezone, campaign=campaign, email=email, limit=limit)
    console.print(status_table(rows))
