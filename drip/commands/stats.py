"""`drip stats-refresh`: recount the staff pages' numbers now (the worker does it every
DRIP_STATS_REFRESH_SECONDS on a large ledger; see delivery/counts.py)."""

from __future__ import annotations

import typer


def stats_refresh_cmd() -> None:
    """Recount the campaign, home-page and patient counts the staff pages read on a large ledger."""
    from rich.console import Console

    from delivery.counts import ledger_rows, refresh
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    stored = refresh(rt, utcnow())
    console = Console(highlight=False)
    if stored:
        console.print(f"recounted {stored} page counts", markup=False)
    else:
        with rt.read_sessions() as s:
            rows = ledger_rows(s)
        console.print(f"nothing to recount: the ledger holds about {rows:,} rows, under DRIP_STATS_LIVE_ROWS="
                      f"{rt.settings.stats_live_rows:,}, so the pages count live", markup=False)


def register(app: typer.Typer) -> None:
    app.command("stats-refresh")(stats_refresh_cmd)
