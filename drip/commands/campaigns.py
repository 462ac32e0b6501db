"""`drip import`, `drip campaigns ...`, `drip enroll`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from drip.errors import InputError

# SQLAlchemy, the models and the campaign services are imported inside each command: `drip --help`
# and every other command must not pay for them at start-up (tests/test_startup.py).

console = Console()
campaigns_app = typer.Typer(help="Campaigns: list, show, publish, pause, archive, edit steps.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("enroll")(enroll_cmd)
    app.add_typer(campaigns_app, name="campaigns")


def import_cmd(
    article: Path = typer.Argument(..., help="Article (.txt .md .html .docx)."),
    campaign: str = typer.Option(..., "--campaign", help="Slug of the new campaign, e.g. onboarding."),
    every: str = typer.Option("2d", "--every", help="Time between steps (e.g. 2d, 36h)."),
    start: str = typer.Option("0d", "--start", help="Delay of the first step after enrollment."),
    window: str = typer.Option("mon-fri 09:00-17:00", "--window", help="Send window in each patient's zone."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Joining this tag/list enrolls a subscriber automatically."),
    publish: bool = typer.Option(False, "--publish", help="Publish at once (default: stays a draft to review)."),
    yes: bool = typer.Option(False, "--yes", help="Publish even with review warnings open (see `drip split`)."),
    business_days: bool = typer.Option(False, "--business-days", help="Count --every/--start in Mon-Fri days."),
    send_time: Optional[str] = typer.Option(None, "--send-time", help="Send each step at this local time (HH:MM)."),
    language: Optional[str] = typer.Option(
        None, "--language", help="The article's language (en, es). For an existing campaign: store it as that "
                                 "language's version of each step (e.g. the Spanish article of the same series)."),
) -> None:
    """Split an article and store it as a campaign (a draft unless --publish), or with --language
    as another language's version of an existing campaign's steps."""
    from sqlalchemy import select

    from campaigns import service
    from campaigns.schedule import parse_duration
    from drip.audit import Actor, record
    from drip.models import Tag
    from drip.runtime import open_runtime

    from drip.i18n import ENGLISH_NAMES, normalize_language
    from drip.models import Campaign

    every_td = parse_duration(every, field="--every")
    start_td = parse_duration(start, field="--start")
    try:
        code = normalize_language(language)
    except InputError as exc:
        raise InputError(str(exc).removeprefix("language: "), where="--language") from None
    rt = open_runtime()
    with rt.sessions.begin() as s:
        existing = s.scalar(select(Campaign).where(Campaign.slug == campaign)) if code else None
        if existing is not None:
            from campaigns.split import split_file

            n = service.add_translation(s, existing, split_file(article, code), code,
                                        clinic_language=rt.settings.clinic.language)
            if publish and existing.status == "draft":
                _confirm_warnings(s, existing, yes)
                service.set_status(s, existing, "published")
            record(s, Actor.cli(), "campaign.translation", f"campaign {existing.slug}",
                   after={"file": article.name, "language": code, "steps": n})
            status = existing.status
            console.print(f"Imported the {ENGLISH_NAMES[code]} version of [bold]{campaign}[/] ({n} steps) - {status}.")
            return
        c = service.import_article(s, article, campaign, every=every_td, start=start_td, window=window,
                                   business_days=business_days, send_time=send_time, language=code)
        if tag:
            t = s.scalar(select(Tag).where(Tag.name == tag)) or Tag(name=tag)
            t.campaign_id = c.id
            s.add(t)
        if publish:
            _confirm_warnings(s, c, yes)
            service.set_status(s, c, "published")
        n, status = len(c.steps), c.status
        record(s, Actor.cli(), "campaign.import", f"campaign {c.slug}",
               after={"file": article.name, "steps": n, "status": status})
    console.print(f"Imported [bold]{campaign}[/] ({n} steps, every {every}, window {window}) - {status}.")


@campaigns_app.command("list")
def list_cmd() -> None:
    """All campaigns with their state and numbers."""
    from rich.table import Table
    from sqlalchemy import func, select

    from campaigns import service
    from drip.models import Delivery, Enrollment, Step
    from drip.runtime import open_runtime

    rt = open_runtime()
    table = Table("slug", "title", "status", "steps", "active enrollments", "sent", "scheduled")
    with rt.sessions() as s:
        for c in service.list_campaigns(s):
            step_ids = select(Step.id).where(Step.campaign_id == c.id).scalar_subquery()
            counts = dict(
                s.execute(
                    select(Delivery.status, func.count()).where(Delivery.step_id.in_(step_ids)).group_by(Delivery.status)
                ).all()
            )
            active = s.scalar(
                select(func.count()).select_from(Enrollment).where(Enrollment.campaign_id == c.id, Enrollment.state == "active")
            )
            table.add_row(c.slug, c.title, c.status, str(len(c.steps)), str(active), str(counts.get("sent", 0)),
                          str(counts.get("scheduled", 0)))
    console.print(table)


SLUG = typer.Argument(..., metavar="SLUG", help="The campaign's slug (see `drip campaigns list`).")


@campaigns_app.command("show")
def show_cmd(slug: str = SLUG) -> None:
    """One campaign's steps: delay, newest version, subject."""
    from rich.table import Table

    from campaigns import service
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions() as s:
        c = service.get_campaign(s, slug, where="SLUG")
        versions = service.latest_versions(s, [st.id for st in c.steps])
        console.print(f"[bold]{c.title}[/] ({c.slug}) - {c.status}; window {c.send_window}"
                      + (f"; {c.paused_reason}" if c.paused_reason else ""))
        table = Table("#", "kind", "delay", "v", "title", "subject", "only when")
        from campaigns.anchors import describe

        for st in c.steps:
            v = versions[st.id]
            when = (describe(st.anchor_attribute, st.anchor_offset_minutes or 0) if st.anchor_attribute
                    else format_duration_minutes(st.delay_minutes))
            table.add_row(str(st.position), st.kind, when, str(v.version), v.title, v.subject, st.condition or "")
        console.print(table)


def format_duration_minutes(minutes: int) -> str:
    from datetime import timedelta

    from campaigns.schedule import format_duration

    return format_duration(timedelta(minutes=minutes))


def _confirm_warnings(session, campaign, yes: bool) -> None:
    """Publishing with review warnings open asks first: at a terminal, a question; in a script, --yes."""
    import sys

    from campaigns import service

    warnings = service.review_campaign(session, campaign)
    if not warnings or yes:
        return
    err = Console(stderr=True, highlight=False)
    for w in warnings:
        err.print(f"step {w.step}: {w.message}", markup=False)
    question = f"{len(warnings)} review warning(s) open for {campaign.slug!r}; publish anyway?"
    if sys.stdin.isatty() and typer.confirm(question, default=False, err=True):
        return
    raise InputError(f"{len(warnings)} review warning(s) open (listed above); fix them or re-run with --yes",
                     where=campaign.slug)


def _set(slug: str, status: str, yes: bool = True) -> None:
    from campaigns import service
    from drip.audit import Actor, record
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        c = service.get_campaign(s, slug, where="SLUG")
        if status == "published" and c.status == "draft":
            _confirm_warnings(s, c, yes)
        old = c.status
        service.set_status(s, c, status)
        action = {"published": "publish", "paused": "pause", "archived": "archive"}[status]
        record(s, Actor.cli(), f"campaign.{action}", f"campaign {c.slug}", before={"status": old},
               after={"status": c.status})
    console.print(f"{slug}: {status}")


@campaigns_app.command("publish")
def publish_cmd(
    slug: str = SLUG,
    yes: bool = typer.Option(False, "--yes", help="Publish even with review warnings open (see `drip split`)."),
) -> None:
    """Start sending: enrollments are accepted, due emails go out."""
    _set(slug, "published", yes)


@campaigns_app.command("pause")
def pause_cmd(slug: str = SLUG) -> None:
    """Hold every pending email of this campaign (nothing is dropped)."""
    _set(slug, "paused")


@campaigns_app.command("archive")
def archive_cmd(slug: str = SLUG) -> None:
    """End the campaign: pending emails are cancelled."""
    _set(slug, "archived")


@campaigns_app.command("cadence")
def cadence_cmd(
    slug: str = SLUG,
    business_days: Optional[bool] = typer.Option(None, "--business-days/--calendar-days",
                                                 help="Count step delays in Mon-Fri days, or in calendar days."),
    send_time: Optional[str] = typer.Option(None, "--send-time", help="Local send time HH:MM ('' for the enrollment's time)."),
) -> None:
    """Set how steps are spaced (for enrollments from now on) and show the plan for a patient enrolling now."""
    from campaigns import service
    from drip.models import utcnow
    from drip.runtime import open_runtime

    rt = open_runtime()
    tz = rt.settings.clinic.timezone
    with rt.sessions.begin() as s:
        c = service.get_campaign(s, slug, where="SLUG")
        if business_days is not None or send_time is not None:
            service.set_cadence(s, c, business_days=c.business_days if business_days is None else business_days,
                                send_time=c.send_time if send_time is None else send_time)
        plan = service.schedule_preview(s, c, utcnow(), tz)
        labels = [service.describe_delay(st.delay_minutes, bool(c.business_days), st.anchor_attribute is not None)
                  for st in sorted(c.steps, key=lambda st: st.position)]
        days, at = ("business" if c.business_days else "calendar"), c.send_time or "the time of enrollment"
    console.print(f"{slug}: {days} days, sent at {at} (window {c.send_window}); a patient enrolling now ({tz}):",
                  markup=False)
    from zoneinfo import ZoneInfo

    for n, (when, label) in enumerate(zip(plan, labels), 1):
        # a date-anchored step prints its rule; the others "business day 2: Wed 09 Dec 09:30"
        text = when if isinstance(when, str) else f"{label}: {when.astimezone(ZoneInfo(tz)):%a %d %b %H:%M}"
        console.print(f"  {n:>2}. {text}", markup=False)


@campaigns_app.command("retry")
def retry_cmd(
    slug: str = SLUG,
    resume: bool = typer.Option(False, "--resume", help="Also resume a paused campaign."),
) -> None:
    """Make the campaign's failed emails due again (after fixing what failed them)."""
    from campaigns import service
    from drip.runtime import open_runtime

    rt = open_runtime()
    with rt.sessions.begin() as s:
        c = service.get_campaign(s, slug, where="SLUG")
        count = service.retry_failed(s, c)
        if resume and c.status == "paused":
            service.set_status(s, c, "published")
        status = c.status
    held = " (held until the campaign is resumed)" if status == "paused" else ""
    console.print(f"{slug}: {count} failed emails due again{held}")


@campaigns_app.command("edit")
def edit_cmd(
    slug: str = SLUG,
    step: int = typer.Argument(..., help="Step number (see `drip campaigns show`)."),
    subject: Optional[str] = typer.Option(None, "--subject"),
    preheader: Optional[str] = typer.Option(None, "--preheader"),
    title: Optional[str] = typer.Option(None, "--title"),
    body_file: Optional[Path] = typer.Option(None, "--body-file", help="Plain-text body (blank line between paragraphs)."),
    delay: Optional[str] = typer.Option(None, "--delay", help="New delay after enrollment (future enrollments)."),
    language: Optional[str] = typer.Option(
        None, "--language", help="Edit the step's version in this language (e.g. es, uploaded with `drip import "
                                 "--language`); the campaign's own language or none: its own version. The delay "
                                 "is shared by every language."),
) -> None:
    """Edit a step. On a published campaign this makes a new version (see README); with --language,
    a new version of that language's text, leaving the other languages' as they are."""
    from sqlalchemy import select

    from campaigns import service
    from campaigns.schedule import parse_duration
    from drip.audit import Actor, changed, record
    from drip.i18n import ENGLISH_NAMES, normalize_language
    from drip.models import Step
    from drip.runtime import open_runtime

    try:
        code = normalize_language(language)
    except InputError as exc:
        raise InputError(str(exc).removeprefix("language: "), where="--language") from None
    body = None
    if body_file is not None:
        try:
            body = body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read body: {exc}", where=str(body_file)) from None
    edit = service.StepEdit(subject=subject, preheader=preheader, title=title, body=body,
                            delay=parse_duration(delay, field="--delay") if delay else None)
    rt = open_runtime()
    with rt.sessions.begin() as s:  # an error below rolls back: nothing is written
        c = service.get_campaign(s, slug, where="SLUG")
        # as on the web's step page: naming the campaign's own language is its own version
        lang = "" if code in (None, service.campaign_language(c, rt.settings.clinic.language)) else code
        if lang and edit.delay is not None:
            raise InputError(f"the delay is shared by every language: change it without --language {lang}",
                             where="--delay")
        row = s.scalar(select(Step).where(Step.campaign_id == c.id, Step.position == step))
        old = service.latest_versions(s, [row.id], language=lang).get(row.id) if row is not None else None
        was = {k: getattr(old, k) for k in ("subject", "preheader", "title", "body")} if old is not None else {}
        was["delay_minutes"] = row.delay_minutes if row is not None else None
        try:
            # the server's own shell: no sign-off needed (as an owner's edit on the web)
            v = service.edit_step(s, c, step, edit, language=lang)
        except InputError as exc:
            if exc.where == "language":  # the translation is missing: name the option that asked for it
                raise InputError(str(exc).removeprefix("language: "), where="--language") from None
            raise
        s.flush()
        old_values, new_values = changed(was, {"subject": v.subject, "preheader": v.preheader, "title": v.title,
                                               "body": v.body, "delay_minutes": row.delay_minutes})
        if new_values:  # the web's step.edit row: what changed, the versions, the language when not the own
            tagged = {"language": lang} if lang else {}
            record(s, Actor.cli(), "step.edit", f"campaign {c.slug} step {step}",
                   before={**old_values, "version": old.version, **tagged},
                   after={**new_values, "version": v.version, **tagged})
        what = f" ({ENGLISH_NAMES[lang]})" if lang else ""
        console.print(f"{slug} step {step}{what}: version {v.version}", markup=False)


def enroll_cmd(
    email: str = typer.Argument(..., metavar="EMAIL", help="The subscriber's address."),
    campaign: str = typer.Option(..., "--campaign", help="Campaign slug."),
) -> None:
    """Enroll a subscriber: one delivery per step, due times in their own zone."""
    from sqlalchemy import func, select

    from campaigns import service
    from campaigns.enrollment import enroll
    from drip.errors import NotFoundError
    from drip.models import Delivery, Subscriber, utcnow
    from drip.runtime import open_runtime
    from subscribers.service import normalize_email

    rt = open_runtime()
    with rt.sessions.begin() as s:
        _, key = normalize_email(email)
        sub = s.scalar(select(Subscriber).where(Subscriber.email_key == key))
        if sub is None:
            raise NotFoundError(f"no subscriber {email!r} (add with `drip subscribers add`)", where="email")
        c = service.get_campaign(s, campaign)
        e = enroll(s, sub, c, utcnow(), clinic_tz=rt.settings.clinic.timezone)
        first = s.scalar(select(func.min(Delivery.due_at)).where(Delivery.enrollment_id == e.id))
    console.print(f"Enrolled {email} in {campaign}; first email due {first:%Y-%m-%d %H:%M} UTC.")
