"""`drip migrate`: bring the database schema to this version of drip.

Every command migrates on start anyway; this one exists so a deployment (the container's entry
point) can do it once, up front, before the web app and the worker start side by side.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate_cmd)


def migrate_cmd() -> None:
    """Create or upgrade the database schema (safe to run again; concurrent runs wait for each other)."""
    from drip.runtime import open_runtime

    runtime = open_runtime()
    try:
        url = runtime.engine.url.render_as_string(hide_password=True)
    finally:
        runtime.close()
    typer.echo(f"database schema up to date: {url}")
