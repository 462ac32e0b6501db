"""`drip subscribers ...`: add, import, list, show and tag patients.

Exit codes: 0 done (an import in the default mode also exits 0 when it skipped bad rows: the good
rows are in, the skipped ones are listed on stderr with their line numbers); 2 bad input (a bad
address, an unreadable file, or any bad row with `import --strict`, which then imports nothing).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional

import typer
from rich.console import Console

from drip.errors import InputError

if TYPE_CHECKING:
    from drip.runtime import Runtime
    from subscribers.importer import ImportReport

# SQLAlchemy, the models, the subscriber services and rich's tables are imported inside each
# command: `drip --help` and the other commands must not pay for them (tests/test_startup.py).

SHOWN_ERRORS = 50

app = typer.Typer(help="Patients: add, import from CSV, list, show, tag.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="subscribers")


@contextmanager
def _runtime() -> Iterator[Runtime]:
    from drip.runtime import open_runtime

    rt = open_runtime()
    try:
        yield rt
    finally:
        rt.close()


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The patient's email address."),
    name: str = typer.Option("", "--name", help="Name used in greetings (kept when omitted)."),
    tz: str = typer.Option("", "--tz", help="IANA time zone, e.g. Europe/Paris (clinic zone when omitted)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag/list to add; repeat for several."),
    language: str = typer.Option("", "--language", help="Language for pages and emails: en or es (kept when omitted)."),
) -> None:
    """Add a patient, or update the one with this address (name/zone/language only when given; tags added)."""
    from drip.db import transaction
    from drip.i18n import normalize_language
    from drip.models import utcnow
    from subscribers.service import upsert_subscriber

    try:
        code = normalize_language(language)
    except InputError as exc:
        raise InputError(str(exc).removeprefix("language: "), where="--language") from None
    with _runtime() as rt, transaction(rt.sessions) as session:
        sub, created = upsert_subscriber(
            session, email, name=name, tz=tz or None, tags=tag or (), source="cli", now=utcnow(),
            clinic_tz=rt.settings.clinic.timezone,
        )
        if code is not None:
            sub.language = code
        out.print(f"{'added' if created else 'updated'} {sub.email} (id {sub.id})", markup=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV with a header row: email, name, tz, tags (';' or '|' between tags)."),
    strict: bool = typer.Option(False, "--strict", help="Import nothing if any row is bad (exit 2)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="Tag every imported patient; repeat for several."),
) -> None:
    """Import patients from a CSV file. Bad rows are skipped and listed (or, with --strict, refused)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from subscribers.importer import import_csv

    with _runtime() as rt:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=not err.is_terminal,  # no bar in logs and pipes
        ) as bar:
            task = bar.add_task("reading", total=None)

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(task, description=phase, completed=done, total=total)

            report = import_csv(rt, file, mode="refuse" if strict else "skip", tags=tuple(tag or ()), progress=progress)
        if not report.refused:
            from drip.audit import Actor, record

            with rt.sessions.begin() as session:
                record(session, Actor.cli(), "subscriber.import", f"file {Path(file).name}", after={
                    "rows": report.rows, "created": report.created, "updated": report.updated,
                    "skipped": report.skipped})
    _print_report(report, strict)
    if report.refused:
        raise InputError(
            f"{report.skipped} bad row(s) of {report.rows}; nothing imported (--strict)", where=str(file)
        )


def _print_report(report: ImportReport, strict: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if report.ignored_columns:
        err.print(f"note: ignored column(s): {', '.join(report.ignored_columns)}", markup=False)
    if not report.refused:
        out.print(
            f"{report.path}: {report.rows} rows: {report.created} created, {report.updated} updated, "
            f"{report.duplicates} duplicates merged, {report.skipped} skipped; "
            f"{report.tagged} tags added, {report.enrolled} campaign enrollments",
            markup=False,
        )
    if not report.errors:
        return
    table = Table(title="rows refused" if strict else "rows skipped", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("field")
    table.add_column("problem")
    for e in report.errors[:SHOWN_ERRORS]:
        table.add_row(str(e.line), e.field, Text(e.message))  # Text: brackets from the file are not markup
    err.print(table)
    if report.error_count > SHOWN_ERRORS:
        err.print(f"... and {report.error_count - SHOWN_ERRORS} more problem(s)", markup=False)
    if not report.refused:
        err.print(f"warning: {report.skipped} row(s) skipped; fix them and import the file again", markup=False)


@app.command("list")
def list_(
    search: Optional[str] = typer.Option(None, "--search", help="Part of the address or name."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only patients with this tag."),
    status: Optional[str] = typer.Option(None, "--status", help="active, pending, paused, unsubscribed, bounced, complained."),
    limit: int = typer.Option(50, "--limit", help="Rows to show (at most 1000)."),
    offset: int = typer.Option(0, "--offset", help="Rows to skip."),
    after: Optional[int] = typer.Option(None, "--after", min=0, max=2**31 - 1,  # drip.models.MAX_ID: not imported, --help stays light
                                        help="Only ids above this one (the last id shown): a deep page without --offset's cost."),
) -> None:
    """List patients, newest last."""
    from rich.table import Table
    from rich.text import Text

    from subscribers.service import count_subscribers, list_subscribers, tags_of

    with _runtime() as rt, rt.sessions() as session:
        subs = list_subscribers(session, search=search, tag=tag, status=status, limit=limit, offset=offset, after=after)
        total = count_subscribers(session, search=search, tag=tag, status=status)
        tags = tags_of(session, [s.id for s in subs])
    table = Table()
    for col in ("id", "email", "name", "zone", "status", "tags"):
        table.add_column(col)
    for s in subs:
        cells = (s.email, s.name, s.tz or "", s.status, ", ".join(tags.get(s.id, [])))
        table.add_row(str(s.id), *(Text(c) for c in cells))  # Text: user data is never markup
    out.print(table)
    shown = f"{offset + 1}-{offset + len(subs)}" if subs and after is None else f"{len(subs)}" if subs else "none"
    more = f"; next page: --after {subs[-1].id}" if len(subs) == limit else ""
    out.print(f"{shown} of {total}{more}", markup=False)


@app.command("show")
def show(email: str = typer.Argument(..., help="The patient's address (any case).")) -> None:
    """One patient: details, consent, tags and campaign enrollments."""
    from rich.table import Table
    from rich.text import Text
    from sqlalchemy import select

    from drip.models import Campaign, Enrollment
    from subscribers.service import get_subscriber, tags_of

    with _runtime() as rt, rt.sessions() as session:
        sub = get_subscriber(session, email)
        tags = tags_of(session, [sub.id]).get(sub.id, [])
        enrollments = session.execute(
            select(Campaign.slug, Enrollment.state, Enrollment.enrolled_at)
            .join(Campaign, Campaign.id == Enrollment.campaign_id)
            .where(Enrollment.subscriber_id == sub.id)
            .order_by(Enrollment.enrolled_at)
        ).all()
        clinic_tz = rt.settings.clinic.timezone
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("email", sub.email),
        ("name", sub.name),
        ("zone", sub.tz or f"{clinic_tz} (clinic default)"),
        ("status", sub.status),
        ("consent", f"{sub.consent_source or '-'} at {sub.consent_at.isoformat() if sub.consent_at else '-'}"),
        ("added", sub.created_at.isoformat()),
        ("tags", ", ".join(tags) or "-"),
        ("campaigns", "; ".join(f"{slug} ({state} since {at:%Y-%m-%d})" for slug, state, at in enrollments) or "-"),
    ]
    for key, value in rows:
        table.add_row(key, Text(value))
    out.print(table)


@app.command("tag")
def tag(
    email: str = typer.Argument(..., help="The patient's address."),
    tags: List[str] = typer.Argument(..., help="Tag names (created when new)."),
) -> None:
    """Add tags to a patient; a tag tied to a campaign enrolls them in it."""
    from drip.db import transaction
    from drip.models import utcnow
    from subscribers.service import get_subscriber, tag_subscribers

    with _runtime() as rt, transaction(rt.sessions) as session:
        sub = get_subscriber(session, email)
        enrolled = tag_subscribers(session, [sub.id], tags, utcnow(), clinic_tz=rt.settings.clinic.timezone)
        out.print(f"tagged {sub.email}: {', '.join(tags)}; {enrolled} campaign enrollment(s)", markup=False)
