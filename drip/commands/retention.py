"""`drip retention [--apply] [--days N]`: how many old delivery rows and events the retention setting removes."""

from __future__ import annotations

from typing import Optional

import typer


def retention_cmd(
    days: Optional[int] = typer.Option(None, "--days", min=1, help="Override the retention (Settings, else DRIP_RETENTION_DAYS) for this run."),
    apply: bool = typer.Option(False, "--apply", help="Delete them (default: only count)."),
) -> None:
    """Finished delivery rows and provider events older than the retention setting (the worker applies it hourly)."""
    from rich.console import Console

    from delivery.retention import apply_retention, configured_days, count_expired
    from drip.errors import InputError
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    keep = days or configured_days(rt)  # the one saved on Settings, else DRIP_RETENTION_DAYS
    if keep <= 0:
        raise InputError("no retention is set: set it on Settings or DRIP_RETENTION_DAYS, or pass --days N",
                         where="--days")
    now = utcnow()
    if apply:
        result = apply_retention(rt.sessions, now, keep)
        verb = "deleted"
    else:
        with rt.read_sessions() as s:
            result = count_expired(s, now, keep)
        verb = "would delete (--apply deletes)"
    Console(highlight=False).print(f"{verb}: {result.deliveries} delivery rows and {result.events} provider events "
                                   f"older than {result.cutoff:%Y-%m-%d} ({keep} days)", markup=False)


def register(app: typer.Typer) -> None:
    app.command("retention")(retention_cmd)
