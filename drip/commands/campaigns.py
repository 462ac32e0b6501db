"""`drip` commands for this area (see drip/commands/__init__.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
