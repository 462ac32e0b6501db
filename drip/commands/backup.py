"""`drip backup FILE` and `drip restore FILE`: the database, copied while the worker runs.

What to keep besides the file: `DRIP_SECRET_KEY` (see README "Backups"). Heavy imports happen
inside the commands: `drip --help` must not load SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.command("restore")(restore_cmd)


def _summary(rows: dict[str, int]) -> str:
    total = sum(rows.values())
    parts = ", ".join(f"{n} {s}" for s, n in sorted(rows.items()))
    return f"{total} deliveries" + (f" ({parts})" if parts else "")


def backup_cmd(
    file: Path = typer.Argument(..., metavar="FILE", help="Where to write the backup (replaced only when complete)."),
) -> None:
    """Copy the database to FILE, consistent while the worker runs (SQLite online backup; PostgreSQL pg_dump -Fc)."""
    from drip.backup import backup
    from drip.config import load_settings

    settings = load_settings()
    report = backup(settings.db_url, file)
    typer.echo(f"backed up {report.kind} database to {report.path} ({report.bytes:,} bytes, {_summary(report.rows)})")


def restore_cmd(
    file: Path = typer.Argument(..., metavar="FILE", help="A file written by `drip backup`."),
) -> None:
    """Load FILE into the configured database, which must be empty (refused otherwise, exit 2)."""
    from drip.backup import restore
    from drip.config import load_settings

    settings = load_settings()
    report = restore(settings.db_url, file)
    typer.echo(f"restored {report.kind} backup {report.path} ({_summary(report.rows)})")
