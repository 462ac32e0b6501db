"""Campaigns in the database: import an article, edit steps (versioned), publish/pause/archive.

Versioning rule: a draft campaign's steps are edited in place. Once published, editing a step adds
a new `StepVersion`; every delivery not yet sent renders the newest version when it goes out
(patients already enrolled get the corrected text), and the version actually sent is recorded on
the delivery row. Changing a step's delay affects future enrollments only: due times of existing
deliveries were fixed when the patient enrolled.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns.draft import Draft
from campaigns.schedule import format_duration, parse_window
from campaigns.subjects import check_subject, heading_for
from drip.errors import InputError, NotFoundError
from drip.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Step,
    StepVersion,
    utcnow,
)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")

TRANSITIONS: dict[str, set[str]] = {
    CampaignStatus.DRAFT.value: {CampaignStatus.PUBLISHED.value, CampaignStatus.ARCHIVED.value},
    CampaignStatus.PUBLISHED.value: {CampaignStatus.PAUSED.value, CampaignStatus.ARCHIVED.value},
    CampaignStatus.PAUSED.value: {CampaignStatus.PUBLISHED.value, CampaignStatus.ARCHIVED.value},
    CampaignStatus.ARCHIVED.value: set(),
}


def slugify(text: str, max_len: int = 60) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "step"


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise InputError(f"campaign slug {slug!r} must be lower-case letters, digits and '-'", where="--campaign")
    return slug


def create_campaign(
    session: Session,
    draft: Draft,
    slug: str,
    *,
    every: timedelta = timedelta(days=2),
    start: timedelta = timedelta(0),
    window: str = "mon-fri 09:00-17:00",
    source_name: str = "",
    business_days: bool = False,
    send_time: str | None = None,
    language: str | None = None,
) -> Campaign:
    """Store a split document as a draft campaign: one step per draft step, delays start + i*every.
    `language`: the article's (None: the clinic's)."""
    check_slug(slug)
    parse_window(window)  # fail before writing anything
    send_time = (send_time or "").strip() or None
    check_cadence(window, send_time)
    if every < timedelta(0) or start < timedelta(0):
        raise InputError("delays cannot be negative", where="--every/--start")
    if session.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
        raise InputError(f"campaign {slug!r} already exists", where="--campaign")
    campaign = Campaign(slug=slug, title=draft.title, source_name=source_name, send_window=window,
                        business_days=business_days, send_time=send_time, language=language)
    session.add(campaign)
    session.flush()
    used: set[str] = set()
    for i, ds in enumerate(draft.steps):
        base = slugify(ds.title or ds.kind)
        step_slug, n = base, 2
        while step_slug in used:
            step_slug, n = f"{base}-{n}", n + 1
        used.add(step_slug)
        step = Step(
            campaign_id=campaign.id,
            position=i + 1,
            kind=ds.kind,
            slug=step_slug,
            delay_minutes=int((start + every * i).total_seconds() // 60),
        )
        session.add(step)
        session.flush()
        session.add(
            StepVersion(
                step_id=step.id,
                version=1,
                section=ds.section,
                title=ds.title or heading_for(ds.kind, ds.section, draft.title, language or "en"),
                subject=ds.subject,
                preheader=ds.preheader,
                body=ds.text,
            )
        )
    session.flush()
    return campaign


def import_article(session: Session, path: Path, slug: str, language: str | None = None, **kwargs) -> Campaign:
    from campaigns.split import split_file

    draft = split_file(Path(path), language or "en")
    return create_campaign(session, draft, slug, source_name=Path(path).name, language=language, **kwargs)


def campaign_language(campaign: Campaign, clinic_language: str) -> str:
    """The language a campaign's own steps are in (the version a patient gets when there is none in theirs)."""
    return campaign.language or clinic_language


def title_in(campaign: Campaign, language: str | None) -> str:
    """The campaign's title in `language` when its article in that language was uploaded, else its own."""
    return (campaign.titles or {}).get(language or "") or campaign.title


def languages_of(session: Session, campaign: Campaign) -> list[str]:
    """The other languages this campaign has step versions in, sorted."""
    step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
    return sorted(session.scalars(select(StepVersion.language).distinct()
                                  .where(StepVersion.step_id.in_(step_ids), StepVersion.language != "")))


def add_translation(session: Session, campaign: Campaign, draft: Draft, language: str, *, clinic_language: str,
                    pending: bool = False) -> int:
    """Store `draft` (the same article in `language`) as that language's version of each step.

    The article must split into as many emails as the campaign has steps, each of the same kind
    (intro/item/outro), so step N of the translation is step N of the campaign; otherwise an
    InputError says where they differ and nothing is written. Uploading a language again adds new
    versions (a corrected translation). `pending`: they wait for a clinician's approval like an edit
    (campaigns/signoff.py). Returns the number of steps."""
    from drip.i18n import ENGLISH_NAMES as NAMES, LANGUAGES

    if language not in LANGUAGES:
        raise InputError(f"unsupported language {language!r} (use one of: {', '.join(LANGUAGES)})", where="--language")
    if campaign.status == CampaignStatus.ARCHIVED.value:
        raise InputError(f"campaign {campaign.slug!r} is archived", where="--campaign")
    own = campaign_language(campaign, clinic_language)
    if language == own:
        raise InputError(f"campaign {campaign.slug!r} is written in {language!r} already: edit its steps, or "
                         "import the article as a new campaign", where="--language")
    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    if len(draft.steps) != len(steps):
        raise InputError(f"the {NAMES[language]} article splits into {len(draft.steps)} emails but campaign "
                         f"{campaign.slug!r} has {len(steps)} steps: each step needs its version (compare with "
                         "`drip split FILE`)", where="--language")
    for step, ds in zip(steps, draft.steps):
        if step.kind != ds.kind:
            raise InputError(f"email {step.position} of the {NAMES[language]} article is {ds.kind!r} but step "
                             f"{step.position} of {campaign.slug!r} is {step.kind!r}", where="--language")
    existing = latest_versions(session, [st.id for st in steps], language=language)
    defaults = latest_versions(session, [st.id for st in steps])
    for step, ds in zip(steps, draft.steps):
        before = existing.get(step.id)
        session.add(StepVersion(
            step_id=step.id, version=(before.version + 1) if before else 1, language=language,
            section=ds.section, title=ds.title or heading_for(ds.kind, ds.section, draft.title, language),
            subject=ds.subject, preheader=ds.preheader, body=ds.text,
            template=defaults[step.id].template if step.id in defaults else "step",
            pending=pending and campaign.status != CampaignStatus.DRAFT.value,
        ))
    campaign.titles = {**(campaign.titles or {}), language: draft.title}
    session.flush()
    return len(steps)


def get_campaign(session: Session, slug: str, *, where: str = "--campaign") -> Campaign:
    """The campaign `slug`; `where` names the argument it came from in the error (the CLI's
    positional SLUG is not `--campaign`)."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise NotFoundError(f"no campaign {slug!r}", where=where)
    return campaign


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.created_at, Campaign.id)))


def latest_versions(session: Session, step_ids: list[int], *, live: bool = False,
                    language: str = "") -> dict[int, StepVersion]:
    """Newest version of each step, in one query. `live`: the newest one that may be sent (an
    edit waiting for a clinician's approval, `pending`, is not; campaigns/signoff.py).
    `language`: "" the campaign's own versions; "es" its Spanish ones (steps without one are left out)."""
    if not step_ids:
        return {}
    where = StepVersion.step_id.in_(step_ids) & (StepVersion.language == language)
    if live:
        where = where & StepVersion.pending.is_(False)
    newest = (
        select(StepVersion.step_id, func.max(StepVersion.version).label("v"))
        .where(where)
        .group_by(StepVersion.step_id)
        .subquery()
    )
    rows = session.scalars(
        select(StepVersion).join(
            newest, (StepVersion.step_id == newest.c.step_id) & (StepVersion.version == newest.c.v)
        ).where(StepVersion.language == language)
    )
    return {v.step_id: v for v in rows}


@dataclass(frozen=True)
class StepEdit:
    subject: str | None = None
    preheader: str | None = None
    title: str | None = None
    body: str | None = None
    delay: timedelta | None = None


def step_languages(session: Session, step_id: int) -> list[str]:
    """The other languages one step has versions in, sorted (a step split off after the Spanish
    upload has none until the article is uploaded again)."""
    return sorted(session.scalars(select(StepVersion.language).distinct()
                                  .where(StepVersion.step_id == step_id, StepVersion.language != "")))


def edit_step(session: Session, campaign: Campaign, position: int, edit: StepEdit, *,
              pending: bool = False, language: str = "") -> StepVersion:
    """Edit one step. Draft: in place. Published/paused: a new version (see module docstring).

    `pending` (clinician sign-off, campaigns/signoff.py): the new version of a published step waits
    for approval and is not sent until then; a second pending edit changes the same version. An
    edit that needs no approval makes a waiting version live with its own changes.

    `language`: "" the campaign's own version; "es" the step's Spanish one, by the same rules and
    its own version numbers, leaving the other languages' versions as they are. It must exist (a
    translation is uploaded, not started here), and the delay, shared by every language, is not
    changed through it."""
    from drip.i18n import ENGLISH_NAMES as NAMES, LANGUAGES

    if language and language not in LANGUAGES:
        raise InputError(f"unsupported language {language[:20]!r} (use one of: {', '.join(LANGUAGES)})",
                         where="language")
    if language and edit.delay is not None:
        raise InputError("the delay is shared by every language: change it in the campaign's own version",
                         where="delay")
    if campaign.status == CampaignStatus.ARCHIVED.value:
        raise InputError(f"campaign {campaign.slug!r} is archived", where="--campaign")
    step = session.scalar(select(Step).where(Step.campaign_id == campaign.id, Step.position == position))
    if step is None:
        raise NotFoundError(f"campaign {campaign.slug!r} has no step {position}", where="--step")
    current = latest_versions(session, [step.id], language=language).get(step.id)
    if current is None:
        raise InputError(f"step {position} of campaign {campaign.slug!r} has no {NAMES[language]} version: "
                         f"upload the {NAMES[language]} article to the campaign first", where="language")
    fields = {}
    for name in ("subject", "preheader", "title", "body"):
        value = getattr(edit, name)
        if value is not None:
            value = value.strip() if name != "body" else value.replace("\r\n", "\n").strip()
            if name in ("subject", "preheader", "title"):
                value = " ".join(value.split())  # no CR/LF ever reaches a header
            if name in ("subject", "title", "body") and not value:
                raise InputError(f"{name} cannot be empty", where=name)
            if name == "subject" and len(value) > 200:
                raise InputError("subject is longer than 200 characters", where="subject")
            if name in ("subject", "preheader"):
                check_subject(value, name)
            fields[name] = value
    if edit.delay is not None:
        if edit.delay < timedelta(0):
            raise InputError("delay cannot be negative", where="delay")
        step.delay_minutes = int(edit.delay.total_seconds() // 60)
    if not fields:
        return current
    if campaign.status == CampaignStatus.DRAFT.value or current.pending:
        for k, v in fields.items():
            setattr(current, k, v)
        if campaign.status != CampaignStatus.DRAFT.value:
            current.pending = pending
        session.flush()
        return current
    new = StepVersion(
        step_id=step.id,
        version=current.version + 1,
        language=language,
        section=current.section,
        title=fields.get("title", current.title),
        subject=fields.get("subject", current.subject),
        preheader=fields.get("preheader", current.preheader),
        body=fields.get("body", current.body),
        template=current.template,
        pending=pending,
    )
    session.add(new)
    session.flush()
    return new


def review_versions(steps_and_versions) -> list:
    """The review warnings (campaigns/review.py) of (step, version) pairs, in step order."""
    from types import SimpleNamespace

    from campaigns.review import review

    return review(SimpleNamespace(kind=st.kind, title=v.title, subject=v.subject, text=v.body)
                  for st, v in steps_and_versions)


def review_campaign(session: Session, campaign: Campaign) -> list:
    """The review warnings of a stored campaign's newest step versions."""
    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    versions = latest_versions(session, [st.id for st in steps])
    return review_versions((st, versions[st.id]) for st in steps)


def check_cadence(window: str, send_time: str | None) -> None:
    """A fixed send time must fall inside the send window, or every step would wait a day."""
    from campaigns.schedule import parse_send_time

    at = parse_send_time(send_time)
    if at is not None:
        w = parse_window(window)
        if not w.start <= at < w.end:
            raise InputError(f"{at:%H:%M} is outside the send window {window!r}", where="--send-time")


def set_cadence(session: Session, campaign: Campaign, *, business_days: bool, send_time: str | None) -> Campaign:
    """Business-day spacing and a fixed local send time, for enrollments from now on."""
    send_time = (send_time or "").strip() or None
    check_cadence(campaign.send_window, send_time)
    campaign.business_days, campaign.send_time = business_days, send_time
    session.flush()
    return campaign


def describe_delay(minutes: int, business_days: bool = False, anchored: bool = False) -> str:
    """A step's delay as staff read it (campaign page, `drip campaigns cadence`): "day 14" reads
    better than "2w" between "12d" and "16d"; with business days counted, "business day 3"
    (Mon-Fri); a step anchored to a date: "on a date" (its rule is shown instead of a date)."""
    if anchored:
        return "on a date"
    days, rest = divmod(minutes, 24 * 60)
    unit = "business day" if business_days else "day"
    if not rest:
        return "at once" if days == 0 else f"{unit} {days}"
    if business_days and days:
        return f"{unit} {days} + {format_duration(timedelta(minutes=rest))}"
    return format_duration(timedelta(minutes=minutes))


def schedule_preview(session: Session, campaign: Campaign, now: datetime, tz_name: str) -> list[datetime | str]:
    """When each step would go for a patient in `tz_name` who enrolls at `now` (aware UTC); for a
    step anchored to a date, the rule instead ("3 days before first_visit"): it depends on the patient."""
    from campaigns.anchors import describe
    from campaigns.enrollment import MIN_SPACING, cadence_of
    from campaigns.schedule import resolve_zone, schedule_sequence

    steps = session.execute(select(Step.delay_minutes, Step.anchor_attribute, Step.anchor_offset_minutes)
                            .where(Step.campaign_id == campaign.id).order_by(Step.position)).all()
    chain = iter(schedule_sequence(now, [timedelta(minutes=d) for d, anchor, _ in steps if anchor is None],
                                   parse_window(campaign.send_window), resolve_zone(tz_name, tz_name),
                                   MIN_SPACING, cadence_of(campaign)))
    return [describe(anchor, offset or 0) if anchor else next(chain) for _, anchor, offset in steps]


def set_status(session: Session, campaign: Campaign, status: str, now: datetime | None = None) -> Campaign:
    """Move a campaign along draft -> published <-> paused -> archived.

    Archiving cancels every delivery not yet sent and ends active enrollments; pausing only holds
    them (they go out, inside the send window, once the campaign is published again).
    """
    now = now or utcnow()
    if status not in TRANSITIONS:
        raise InputError(f"unknown status {status!r}", where="status")
    if status == campaign.status:
        return campaign
    if status not in TRANSITIONS[campaign.status]:
        raise InputError(f"cannot move campaign {campaign.slug!r} from {campaign.status} to {status}", where="status")
    if status == CampaignStatus.PUBLISHED.value and not campaign.steps:
        raise InputError(f"campaign {campaign.slug!r} has no steps", where="status")
    campaign.status = status
    if status == CampaignStatus.PUBLISHED.value:
        campaign.consecutive_failures = 0
        campaign.paused_reason = ""
    if status == CampaignStatus.ARCHIVED.value:
        step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
        session.execute(
            update(Delivery)
            .where(Delivery.step_id.in_(step_ids), Delivery.status == DeliveryStatus.SCHEDULED.value)
            .values(status=DeliveryStatus.CANCELLED.value, last_error="campaign archived")
        )
        session.execute(
            update(Enrollment)
            .where(Enrollment.campaign_id == campaign.id, Enrollment.state == EnrollmentState.ACTIVE.value)
            .values(state=EnrollmentState.CANCELLED.value)
        )
    session.flush()
    return campaign


def retry_failed(session: Session, campaign: Campaign, now: datetime | None = None) -> int:
    """Failed emails of a campaign become due again, with fresh attempts (staff fixed the
    cause: a template, a relay setting). Returns how many. They go out once the campaign is
    published (a paused one holds them until it is resumed); addresses suppressed since are still
    cancelled at send time, so a hard bounce is never retried into."""
    if campaign.status not in (CampaignStatus.PUBLISHED.value, CampaignStatus.PAUSED.value):
        raise InputError(f"campaign {campaign.slug!r} is {campaign.status}: only a published or paused "
                         "campaign's failed emails can be retried", where="retry")
    now = now or utcnow()
    step_ids = select(Step.id).where(Step.campaign_id == campaign.id).scalar_subquery()
    result = session.execute(
        update(Delivery)
        .where(Delivery.step_id.in_(step_ids), Delivery.status == DeliveryStatus.FAILED.value)
        # due_at is kept: they were due already, so they go at once and in their first order
        .values(status=DeliveryStatus.SCHEDULED.value, attempts=0, claimed_by=None,
                lease_until=None, last_error=f"retry requested {now:%Y-%m-%d %H:%M} UTC")
        .execution_options(synchronize_session=False)
    )
    campaign.consecutive_failures = 0
    session.flush()
    return result.rowcount or 0
