"""`drip campaigns merge / split / drop / restore / make-item / to-paragraph / move / undo`: fix a
draft's structure from the shell (campaigns/draft_tools.py; drafts only)."""

from __future__ import annotations

from typing import Optional

import typer

# The database and the tools are imported inside each command (CLI start-up time, tests/test_startup.py).

SLUG = typer.Argument(..., metavar="SLUG", help="Campaign slug (a draft).")
STEP = typer.Argument(..., metavar="STEP", help="Step number (see `drip campaigns show`).")


def register(app: typer.Typer) -> None:
    from drip.commands.campaigns import campaigns_app

    campaigns_app.command("merge")(merge_cmd)
    campaigns_app.command("split")(split_cmd)
    campaigns_app.command("drop")(drop_cmd)
    campaigns_app.command("restore")(restore_cmd)
    campaigns_app.command("make-item")(make_item_cmd)
    campaigns_app.command("to-paragraph")(to_paragraph_cmd)
    campaigns_app.command("move")(move_cmd)
    campaigns_app.command("undo")(undo_cmd)


def _run(slug: str, op: str, *args, **kwargs) -> None:
    from campaigns import draft_tools, service
    from drip.audit import Actor
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        c = service.get_campaign(s, slug, where="SLUG")
        result = getattr(draft_tools, op)(s, c, *args, actor=Actor.cli(), **kwargs)
        if op == "undo":
            typer.echo(f"{slug}: undid {result}")
            result = draft_tools.load_state(s, c)
        else:
            typer.echo(f"{slug}: {op.replace('_', ' ')} done")
        for n, st in enumerate(result.steps, 1):
            typer.echo(f"  {n:>2}  {st.kind:<5}  {st.title}")
        if result.excluded:
            typer.echo(f"  excluded: {len(result.excluded)} (drip campaigns restore {slug} N)")


def merge_cmd(slug: str = SLUG, step: int = STEP) -> None:
    """Merge step STEP with the next one (an item's title becomes a paragraph)."""
    _run(slug, "merge", step)


def split_cmd(slug: str = SLUG, step: int = STEP,
              paragraph: int = typer.Argument(..., metavar="PARAGRAPH", help="The new step starts at this paragraph (2..).")) -> None:
    """Split step STEP before its paragraph PARAGRAPH."""
    _run(slug, "split", step, paragraph)


def drop_cmd(slug: str = SLUG, step: int = STEP) -> None:
    """Drop step STEP: its text is kept as excluded text (`restore` brings it back)."""
    _run(slug, "drop", step)


def restore_cmd(slug: str = SLUG, number: int = typer.Argument(1, metavar="N", help="Excluded text number.")) -> None:
    """Excluded text N becomes a step again, where it was."""
    _run(slug, "restore", number)


def make_item_cmd(slug: str = SLUG, step: int = STEP,
                  paragraph: int = typer.Argument(..., metavar="PARAGRAPH"),
                  title: Optional[str] = typer.Option(None, "--title", help="Title (default: the first sentence).")) -> None:
    """Paragraph PARAGRAPH of step STEP becomes an item email of its own."""
    _run(slug, "make_item", step, paragraph, title=title or "")


def to_paragraph_cmd(slug: str = SLUG, step: int = STEP) -> None:
    """Item STEP goes back into the previous step as a paragraph."""
    _run(slug, "to_paragraph", step)


def move_cmd(slug: str = SLUG, step: int = STEP,
             direction: str = typer.Argument(..., metavar="up|down")) -> None:
    """Move step STEP up or down one place."""
    _run(slug, "move", step, direction)


def undo_cmd(slug: str = SLUG) -> None:
    """Undo the last change made with these tools (as new versions)."""
    _run(slug, "undo")
