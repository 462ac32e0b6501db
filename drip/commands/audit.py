"""`drip audit [--since DATE] [--action ACTION] [--who TEXT] [--csv]`: read the audit log.

The same rows the staff page /staff/audit shows, newest first. Dates are UTC days (YYYY-MM-DD)
or full ISO times; `--action campaign.` (ending in a dot) matches every campaign action.
"""

from __future__ import annotations

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.command("audit")(audit)


def _when(raw: str | None, where: str):  # -> datetime | None
    from datetime import datetime, timezone

    from drip.errors import InputError

    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{raw[:40]!r} is not a date or time (YYYY-MM-DD or ISO 8601)", where=where) from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def audit(
    since: str = typer.Option(None, "--since", help="From this UTC date or time (YYYY-MM-DD or ISO 8601)."),
    action: str = typer.Option("", "--action", help="One action, or a prefix ending in '.' (e.g. 'staff.')."),
    who: str = typer.Option("", "--who", help="Part of the actor: a staff email, a token name, 'cli'."),
    limit: int = typer.Option(100, "--limit", min=1, max=1_000_000, help="At most this many rows."),
    as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout (every column)."),
) -> None:
    """Show the audit log: who did what, when, from where."""
    import json

    from rich.table import Table
    from rich.text import Text

    from drip.audit import AuditFilter, entries, to_csv
    from drip.runtime import open_runtime

    where = AuditFilter(who=who, action=action, since=_when(since, "--since"))
    rt = open_runtime()
    try:
        with rt.sessions() as session:
            rows = entries(session, where, limit=limit)
    finally:
        rt.close()
    if as_csv:
        print(to_csv(rows), end="")
        return
    table = Table("id", "at (UTC)", "who", "action", "target", "change", "ip")
    for e in rows:
        change = " -> ".join(json.dumps(v, ensure_ascii=False) for v in (e.before, e.after) if v is not None)
        table.add_row(str(e.id), f"{e.at:%Y-%m-%d %H:%M:%S}", Text(f"{e.actor} ({e.actor_kind})"), Text(e.action),
                      Text(e.target), Text(change), Text(e.ip))
    out.print(table)
