"""`drip preview FILE --out DIR [--name NAME]`: look at a document's emails before storing anything."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("preview")
    def preview_cmd(
        file: Path = typer.Argument(..., help="Article to split: .txt, .md, .html or .docx."),
        out: Path = typer.Option(Path("preview"), "--out", "-o", help="Folder to write (replaced if it is an earlier preview)."),
        name: str = typer.Option("Maria Lopez", "--name", help="Sample recipient name for the greeting."),
    ) -> None:
        """Render every step of FILE for a sample recipient: NN-slug.html/.txt plus index.html."""
        from campaigns.preview import preview_file
        from drip.config import load_settings

        index, count = preview_file(file, out, name=name, settings=load_settings())
        typer.echo(f"Wrote {count} emails to {out}/")
        typer.echo(f"Open {index.resolve().as_uri()}")
