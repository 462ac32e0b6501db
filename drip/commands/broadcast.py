"""`drip broadcast create|schedule|reschedule|cancel|show|list`: newsletters to a list."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from drip.errors import InputError

# SQLAlchemy, the models and campaigns.broadcasts (APScheduler's cron trigger) are imported inside
# each command: `drip --help` and the other commands must not pay for them (tests/test_startup.py).

console = Console()
app_ = typer.Typer(help="Newsletters: one email to a list, once or recurring.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(app_, name="broadcast")


@app_.command("create")
def create_cmd(
    slug: str = typer.Argument(..., help="Name for the newsletter, e.g. december-news."),
    list_name: str = typer.Option(..., "--list", help="The list (tag) to send to."),
    article: Optional[Path] = typer.Option(None, "--article", help="Send a whole article as one email."),
    template: Optional[str] = typer.Option(None, "--template", help="A newsletter template from templates/newsletters/."),
    subject: Optional[str] = typer.Option(None, "--subject", help="Override the subject."),
) -> None:
    """Create a newsletter from an article or a template (a draft until scheduled)."""
    if (article is None) == (template is None):
        raise InputError("give exactly one of --article or --template", where="--article/--template")
    from campaigns import broadcasts
    from drip.runtime import open_runtime

    if article is not None:
        from campaigns.split import split_file

        content = broadcasts.content_from_article(split_file(article))
    else:
        content = broadcasts.load_template(template)
    if subject:
        content["subject"] = subject
    rt = open_runtime()
    with rt.sessions.begin() as s:
        broadcasts.create_broadcast(s, slug, list_name=list_name, **content)
    console.print(f"Newsletter [bold]{slug}[/] created for list {list_name}: {content['subject']!r} (draft).")


@app_.command("schedule")
def schedule_cmd(
    slug: str,
    at: Optional[str] = typer.Option(None, "--at", help="'YYYY-MM-DD HH:MM' in the clinic's zone."),
    local: bool = typer.Option(False, "--local", help="With --at: that wall time in each subscriber's own zone."),
    cron: Optional[str] = typer.Option(None, "--cron", help="Recurring, e.g. '0 9 * * mon' (clinic's zone)."),
) -> None:
    """Schedule once (--at [--local]) or recurring (--cron)."""
    from campaigns import broadcasts
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        b = broadcasts.get_broadcast(s, slug)
        n = broadcasts.schedule(s, b, at=at, local=local, cron=cron, clinic_tz=rt.settings.clinic.timezone, now=utcnow())
        when = b.send_at
    what = f"cron {cron}, next {when:%Y-%m-%d %H:%M} UTC" if cron else f"{at}{' local' if local else ''}: {n} recipients"
    console.print(f"{slug} scheduled ({what}).")


@app_.command("reschedule")
def reschedule_cmd(
    slug: str,
    at: str = typer.Option(..., "--at"),
    local: bool = typer.Option(False, "--local"),
) -> None:
    """Move a scheduled newsletter; rows not yet sent move with it."""
    from campaigns import broadcasts
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        n = broadcasts.reschedule(s, broadcasts.get_broadcast(s, slug), at=at, local=local,
                                  clinic_tz=rt.settings.clinic.timezone, now=utcnow())
    console.print(f"{slug} moved to {at}{' local' if local else ''} ({n} pending emails).")


@app_.command("cancel")
def cancel_cmd(slug: str) -> None:
    """Cancel: nothing more is sent (already sent emails stay sent)."""
    from campaigns import broadcasts
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        n = broadcasts.cancel(s, broadcasts.get_broadcast(s, slug))
    console.print(f"{slug} cancelled ({n} pending emails cancelled).")


@app_.command("show")
def show_cmd(slug: str) -> None:
    """A newsletter's schedule and results."""
    from campaigns import broadcasts
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions() as s:
        b = broadcasts.get_broadcast(s, slug)
        c = broadcasts.counts(s, b)
    when = f"{b.send_at:%Y-%m-%d %H:%M} UTC" if b.send_at else "-"
    console.print(f"[bold]{b.subject}[/] ({b.slug}) - {b.status}; send at {when}"
                  + (f" ({b.local_time} local)" if b.local_time else "") + (f"; cron {b.cron}" if b.cron else ""))
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "no deliveries yet")


@app_.command("list")
def list_cmd() -> None:
    """All newsletters."""
    from rich.table import Table
    from sqlalchemy import select

    from drip.models import Broadcast
    from drip.runtime import open_runtime

    rt = open_runtime()
    table = Table("slug", "subject", "status", "send at (UTC)", "cron")
    with rt.sessions() as s:
        for b in s.scalars(select(Broadcast).order_by(Broadcast.id)):
            table.add_row(b.slug, b.subject, b.status, f"{b.send_at:%Y-%m-%d %H:%M}" if b.send_at else "", b.cron or "")
    console.print(table)
