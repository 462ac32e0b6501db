"""`drip bounces poll [--maildir DIR] [--json]`: read the bounce mailbox once, by hand, and say what was found."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

bounces_app = typer.Typer(help="Asynchronous bounces (DSN) and complaints (ARF) from the bounce mailbox.",
                          no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(bounces_app, name="bounces")


@bounces_app.command("poll")
def poll_cmd(
    maildir: Optional[Path] = typer.Option(None, "--maildir", help="Read this maildir instead of the configured "
                                                                   "mailbox (DRIP_BOUNCE_MAILDIR / _IMAP_HOST)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: findings and counts."),
) -> None:
    """Read unprocessed bounce reports once, record them, mark them processed (the worker does this every
    DRIP_BOUNCE_POLL_SECONDS when a mailbox is configured)."""
    import json

    from delivery.bounces.mailbox import sources_for
    from delivery.bounces.poll import poll
    from drip.errors import ConfigurationError, InputError
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        try:
            sources = sources_for(rt.settings, maildir)
        except ConnectionError as exc:
            raise InputError(str(exc)) from None
        except ConfigurationError as exc:
            if maildir is None:
                raise
            raise InputError(str(exc), where="--maildir") from None
        if not sources:
            raise InputError("no bounce mailbox configured: set DRIP_BOUNCE_MAILDIR or DRIP_BOUNCE_IMAP_HOST, "
                             "or pass --maildir DIR", where="bounces poll")
        try:
            result = poll(rt.sessions, rt.settings, sources, utcnow)
        except ConnectionError as exc:
            raise InputError(str(exc)) from None
    finally:
        rt.close()
    if as_json:
        typer.echo(json.dumps({
            "messages": result.messages, "not_reports": result.not_reports,
            "findings": [{"kind": f.kind, "address": f.address, "delivery_id": f.delivery_id, "via": f.via,
                          "status": f.status, "outcome": f.outcome} for f in result.findings],
        }))
        return
    for finding in result.findings:
        typer.echo(finding.line())
    typer.echo(result.summary())
