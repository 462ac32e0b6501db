"""`drip split FILE [--json]`: show how a document would be cut into campaign steps, writing nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the readers, rich's tables and the Draft load only when a file is split
    from rich.console import Console
    from rich.table import Table

    from campaigns.draft import Draft


def _table(draft: Draft) -> Table:
    from rich.table import Table

    table = Table(title=draft.title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("kind")
    for name in ("section", "title", "subject"):
        table.add_column(name, overflow="fold")
    table.add_column("words", justify="right")
    for n, step in enumerate(draft.steps, 1):
        table.add_row(str(n), step.kind, step.section, step.title, step.subject, str(len(step.text.split())))
    return table


def register(app: typer.Typer) -> None:
    @app.command("split")
    def split(
        file: str = typer.Argument(..., help="Document to split: .txt, .md, .html/.htm or .docx."),
        as_json: bool = typer.Option(False, "--json", help="Print the Draft as one JSON object (the contract)."),
    ) -> None:
        """Split a document into steps: one per titled list item, plus intro/outro text."""
        from campaigns.split import split_file

        draft = split_file(Path(file))
        if as_json:
            data = json.dumps(draft.to_json(), ensure_ascii=False, indent=2) + "\n"
            sys.stdout.flush()
            sys.stdout.buffer.write(data.encode("utf-8"))  # UTF-8 whatever the locale says
            sys.stdout.buffer.flush()
            return
        from rich.console import Console

        console = Console(highlight=False)
        console.print(_table(draft))
        console.print(f"{len(draft.items)} items, {len(draft.steps)} steps", markup=False)
        _print_warnings(console, draft)


def _print_warnings(console: Console, draft: Draft) -> None:
    """Review warnings under the table, one line each, so staff know what to look at first."""
    from campaigns.review import review

    warnings = review(draft.steps)
    if not warnings:
        return
    console.print(f"{len(warnings)} to review before publishing:", markup=False)
    for w in warnings:
        console.print(f"  step {w.step}: {w.message}", markup=False)
