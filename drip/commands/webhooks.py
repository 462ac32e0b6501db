"""`drip webhooks add URL --events ... / list / rotate ID / disable ID / enable ID / log / replay / deliver`.

The changes are audited as the staff page's are (`webhook.add`, ... by `cli`; web/staff/webhooks.py)."""

from __future__ import annotations

from typing import Optional

import typer

webhooks_app = typer.Typer(help="Outbound webhooks: signed events to the clinic's other systems.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(webhooks_app, name="webhooks")


def _rt():
    from drip.runtime import open_runtime

    return open_runtime()


@webhooks_app.command("add")
def add(
    url: str = typer.Argument(..., help="Where to POST, e.g. https://booking.example/hooks/drip"),
    events: str = typer.Option("all", "--events", help="Comma-separated types (confirmed, sent, enrollment.*, ...), "
                                                       "or 'all'."),
    description: str = typer.Option("", "--description", help="A note for staff."),
) -> None:
    """Add an endpoint; prints its secret once (the receiver verifies signatures with it)."""
    from drip.audit import Actor, record, url_for_log
    from drip.models import utcnow
    from webhooks.endpoints import add_endpoint

    rt = _rt()
    try:
        with rt.sessions.begin() as s:
            ep = add_endpoint(s, url, events.split(","), utcnow(), allow_private=rt.settings.webhook_allow_private,
                              description=description)
            eid, secret, types = ep.id, ep.secret, ep.events
            record(s, Actor.cli(), "webhook.add", f"webhook {eid}", after={
                "url": url_for_log(ep.url), "events": list(types) or "all", "description": ep.description})
    finally:
        rt.close()
    typer.echo(f"webhook {eid} -> {url} ({', '.join(types) or 'all events'})")
    typer.echo(f"secret: {secret}")


@webhooks_app.command("list")
def list_cmd() -> None:
    """Endpoints with their state and delivery counts."""
    from webhooks.endpoints import counts_by_status, list_endpoints

    rt = _rt()
    try:
        with rt.sessions() as s:
            for ep in list_endpoints(s):
                counts = counts_by_status(s, ep.id)
                state = "active" if ep.active else "disabled"
                summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no deliveries"
                typer.echo(f"{ep.id}  {state:8}  {ep.url}  [{', '.join(ep.events) or 'all'}]  {summary}")
    finally:
        rt.close()


@webhooks_app.command("rotate")
def rotate(endpoint: int = typer.Argument(..., help="Endpoint id (from `drip webhooks list`).")) -> None:
    """A new secret; the old one keeps signing beside it for 24 hours."""
    from drip.audit import Actor, record
    from drip.models import utcnow
    from webhooks.endpoints import get_endpoint, rotate_secret

    rt = _rt()
    try:
        with rt.sessions.begin() as s:
            ep = get_endpoint(s, endpoint)
            secret = rotate_secret(s, ep, utcnow())
            until = ep.previous_until
            record(s, Actor.cli(), "webhook.rotate", f"webhook {ep.id}", after={"old_secret_until": until})
    finally:
        rt.close()
    typer.echo(f"new secret: {secret}")
    typer.echo(f"the old secret also signs until {until:%Y-%m-%d %H:%M} UTC")


def _set(endpoint: int, active: bool) -> None:
    from drip.audit import Actor, record
    from webhooks.endpoints import get_endpoint, set_active

    rt = _rt()
    try:
        with rt.sessions.begin() as s:
            ep = get_endpoint(s, endpoint)
            was = ep.active
            set_active(s, ep, active)
            if was != active:
                record(s, Actor.cli(), "webhook.enable" if active else "webhook.disable", f"webhook {ep.id}",
                       before={"active": was}, after={"active": active})
    finally:
        rt.close()
    typer.echo(f"webhook {endpoint} {'enabled' if active else 'disabled'}")


@webhooks_app.command("disable")
def disable(endpoint: int = typer.Argument(..., help="Endpoint id.")) -> None:
    """Stop sending to this endpoint (no new events; those already waiting stay until it is enabled)."""
    _set(endpoint, False)


@webhooks_app.command("enable")
def enable(endpoint: int = typer.Argument(..., help="Endpoint id.")) -> None:
    """Send to this endpoint again."""
    _set(endpoint, True)


@webhooks_app.command("log")
def log_cmd(
    endpoint: Optional[int] = typer.Option(None, "--endpoint", help="Only this endpoint."),
    status: Optional[str] = typer.Option(None, "--status", help="pending | sending | delivered | failed"),
    limit: int = typer.Option(50, "--limit", min=1),
) -> None:
    """Recent deliveries, newest first, with the last answer."""
    from webhooks.endpoints import delivery_log

    rt = _rt()
    try:
        with rt.sessions() as s:
            for r in delivery_log(s, endpoint, status=status, limit=limit):
                typer.echo(f"{r.id}  ep{r.endpoint_id}  {r.type:22}  {r.status:9}  tries {r.attempts}  "
                           f"{r.last_code or '-'}  {r.last_error[:60]}")
    finally:
        rt.close()


@webhooks_app.command("replay")
def replay_cmd(delivery: int = typer.Argument(..., help="Delivery id (from `drip webhooks log`).")) -> None:
    """Post one delivery again (same webhook-id, fresh attempts)."""
    from drip.audit import Actor, record
    from drip.models import utcnow
    from webhooks.endpoints import replay

    rt = _rt()
    try:
        with rt.sessions.begin() as s:
            row = replay(s, delivery, utcnow())
            record(s, Actor.cli(), "webhook.replay", f"webhook delivery {delivery}", after={"endpoint": row.endpoint_id})
    finally:
        rt.close()
    typer.echo(f"delivery {delivery} is due again; the worker posts it")


@webhooks_app.command("deliver")
def deliver(budget: float = typer.Option(30.0, "--budget", help="Seconds to spend at most.")) -> None:
    """Post what is due now and exit (what the worker's webhook job does every second)."""
    import socket

    from drip.worker import webhook_sender

    rt = _rt()
    sender = webhook_sender(rt, f"{socket.gethostname()}:webhooks")
    try:
        r = sender.drain(budget)
    finally:
        sender.close()
        rt.close()
    typer.echo(f"webhooks: {r.delivered} delivered, {r.retried} to retry, {r.failed} failed")


@webhooks_app.command("run")
def run_cmd(interval: float = typer.Option(1.0, "--interval", help="Seconds between looks when nothing is due.")) -> None:
    """Deliver webhooks in a process of their own until SIGTERM/SIGINT (`drip run` does it in a thread
    too; this keeps the sending process's CPU for sending, e.g. at very high event rates)."""
    import os
    import signal
    import socket
    import threading

    from drip.worker import webhook_sender

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rt = _rt()
    from webhooks.sender import lower_process_priority

    lower_process_priority(rt.settings.webhook_nice)  # a process of its own: all of it yields to sending
    sender = webhook_sender(rt, f"{socket.gethostname()}:{os.getpid()}:webhooks")
    try:
        while not stop.is_set():
            r = sender.drain(10.0, stop)
            if r.claimed < sender.batch:
                stop.wait(interval)
    finally:
        sender.close()
        rt.close()
