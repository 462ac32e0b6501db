"""`drip broadcast create|schedule|reschedule|pause|resume|cancel|show|list`: newsletters to a list."""

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
    yes: bool = typer.Option(False, "--yes", help="Schedule even if the wording addresses the reader's own health."),
) -> None:
    """Schedule once (--at [--local]) or recurring (--cron)."""
    from campaigns import broadcasts
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        b = broadcasts.get_broadcast(s, slug)
        _confirm_wording(b, yes)
        n = broadcasts.schedule(s, b, at=at, local=local, cron=cron, clinic_tz=rt.settings.clinic.timezone, now=utcnow())
        when = b.send_at
    what = f"cron {cron}, next {when:%Y-%m-%d %H:%M} UTC" if cron else f"{at}{' local' if local else ''}: {n} recipients"
    console.print(f"{slug} scheduled ({what}).")


def _confirm_wording(b, yes: bool) -> None:
    """Wording about the reader's own health is asked about first: at a terminal, a question; in a script, --yes."""
    import sys

    from rich.console import Console

    from campaigns import broadcasts

    found = broadcasts.health_wording(b)
    if not found or yes:
        return
    err = Console(stderr=True, highlight=False)
    for hit in found:
        err.print(str(hit), markup=False)
    if sys.stdin.isatty() and typer.confirm("This newsletter goes to a whole list; schedule it anyway?", default=False,
                                            err=True):
        return
    raise InputError(f"the newsletter addresses the reader's own health ({len(found)} place(s), listed above): "
                     "reword it, or re-run with --yes", where=b.slug)


@app_.command("reschedule")
def reschedule_cmd(
    slug: str,
    at: Optional[str] = typer.Option(None, "--at", help="'YYYY-MM-DD HH:MM' (for a recurring one: its next occurrence)."),
    local: bool = typer.Option(False, "--local"),
    cron: Optional[str] = typer.Option(None, "--cron", help="A new cron for a recurring newsletter."),
) -> None:
    """Move a scheduled or paused newsletter; rows not yet sent move with it."""
    from campaigns import broadcasts
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        b = broadcasts.get_broadcast(s, slug)
        n = broadcasts.reschedule(s, b, at=at, local=local, cron=cron, clinic_tz=rt.settings.clinic.timezone,
                                  now=utcnow())
        recurring, when = bool(b.cron), b.send_at
    if recurring:
        console.print(f"{slug}: next occurrence {when:%Y-%m-%d %H:%M} UTC" + (f" (cron {cron})" if cron else "") + ".")
    else:
        console.print(f"{slug} moved to {at}{' local' if local else ''} ({n} pending emails).")


@app_.command("pause")
def pause_cmd(slug: str) -> None:
    """Hold a newsletter (one-off or recurring): nothing more is sent until `resume`."""
    from campaigns import broadcasts
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        n = broadcasts.pause(s, broadcasts.get_broadcast(s, slug))
    console.print(f"{slug} paused ({n} pending emails held).")


@app_.command("resume")
def resume_cmd(slug: str) -> None:
    """Let a paused newsletter send again (a recurring one continues with its next occurrence)."""
    from campaigns import broadcasts
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        b = broadcasts.get_broadcast(s, slug)
        n = broadcasts.resume(s, b, clinic_tz=rt.settings.clinic.timezone, now=utcnow())
        nxt = broadcasts.next_send(b)
    console.print(f"{slug} resumed ({n} pending emails)" + (f"; next {nxt:%Y-%m-%d %H:%M} UTC" if nxt else "") + ".")


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
    nxt = broadcasts.next_send(b)
    when = f"{nxt:%Y-%m-%d %H:%M} UTC" + (f" ({b.local_time} local)" if b.local_time else "") if nxt else "-"
    console.print(f"[bold]{b.subject}[/] ({b.slug}) - {b.status}; {'next' if b.cron else 'send at'} {when}"
                  + (f"; cron {b.cron}" if b.cron else ""))
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "no deliveries yet")


@app_.command("list")
def list_cmd() -> None:
    """All newsletters."""
    from rich.table import Table
    from sqlalchemy import select

    from campaigns import broadcasts
    from drip.models import Broadcast
    from drip.runtime import open_runtime

    rt = open_runtime()
    table = Table("slug", "subject", "status", "next send (UTC)", "cron")
    with rt.sessions() as s:
        for b in s.scalars(select(Broadcast).order_by(Broadcast.id)):
            nxt = broadcasts.next_send(b)
            table.add_row(b.slug, b.subject, b.status, f"{nxt:%Y-%m-%d %H:%M}" if nxt else "", b.cron or "")
    console.print(table)
