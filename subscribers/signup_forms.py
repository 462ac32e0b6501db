"""Which campaign a web sign-up starts: chosen by staff per form, stored in `signup_forms`.

The public form (`/subscribe`) is the form named "default". Staff choose its campaign in the
staff app (/staff/signup) or with `drip signup set-campaign SLUG [--list L]`; with no choice
stored, the `signup_campaign` setting (DRIP_SIGNUP_CAMPAIGN) is the fallback. The choice is
*effective* only when that campaign exists and is published: otherwise staff pages show the
warning from `SignupChoice.warning`, and the patient's confirmation page promises no emails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.config import Settings
from drip.errors import InputError, NotFoundError
from drip.models import Campaign, CampaignStatus, SignupForm
from subscribers.service import clean_tag

DEFAULT_FORM = "default"
SOURCE_PREFIX = "web-form"  # a sign-up's consent_source: "web-form" (default form) or "web-form:NAME"
_FORM_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


def known_form(session: Session, name: str | None) -> str:
    """The form a public request names (`/subscribe?form=NAME`), if staff created it; else the default."""
    name = (name or "").strip()
    if name and name != DEFAULT_FORM and _FORM_NAME.match(name) and _form_row(session, name) is not None:
        return name
    return DEFAULT_FORM


def consent_source(form: str) -> str:
    return SOURCE_PREFIX if form == DEFAULT_FORM else f"{SOURCE_PREFIX}:{form}"


def form_of(source: str | None) -> str:
    """The form a pending sign-up came from (recorded in its consent_source)."""
    prefix = SOURCE_PREFIX + ":"
    return source[len(prefix):] if source and source.startswith(prefix) else DEFAULT_FORM


def list_forms(session: Session) -> list[SignupForm]:
    return list(session.scalars(select(SignupForm).order_by(SignupForm.name)))


@dataclass(frozen=True)
class SignupChoice:
    form: str
    slug: str  # the chosen (or fallback) campaign slug; "" when none
    tag: str  # the list a confirmed sign-up joins; "" for none
    origin: str  # "staff" (stored choice) | "setting" (DRIP_SIGNUP_CAMPAIGN) | "none"
    campaign: Campaign | None  # set only when it exists and is published
    warning: str  # why sign-ups start no emails; "" when they do

    @property
    def starts_emails(self) -> bool:
        return self.campaign is not None


def _form_row(session: Session, form: str) -> SignupForm | None:
    return session.scalar(select(SignupForm).where(SignupForm.name == form))


def signup_choice(session: Session, settings: Settings, form: str = DEFAULT_FORM) -> SignupChoice:
    """What a confirmed sign-up on `form` starts, and a warning for staff if it starts nothing."""
    row = _form_row(session, form)
    tag = (row.tag if row is not None and row.tag is not None else settings.signup_tag).strip()
    campaign: Campaign | None = None
    if row is not None and row.campaign_id is not None:
        campaign = session.get(Campaign, row.campaign_id)
        slug, origin = (campaign.slug if campaign else ""), "staff"
    else:
        slug = settings.signup_campaign.strip()
        origin = "setting" if slug else "none"
        if slug:
            campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if not slug:
        return SignupChoice(form, "", tag, "none", None,
                            "No campaign is chosen for sign-ups: patients who sign up get no emails.")
    if campaign is None:
        return SignupChoice(form, slug, tag, origin, None,
                            f"Sign-ups start no emails: there is no campaign '{slug}'. "
                            "Choose a published campaign for sign-ups.")
    if campaign.status != CampaignStatus.PUBLISHED.value:
        return SignupChoice(form, slug, tag, origin, None,
                            f"Sign-ups start no emails: the campaign '{slug}' is {campaign.status}, not published "
                            "(publish it or choose another).")
    return SignupChoice(form, slug, tag, origin, campaign, "")


def signup_warnings(session: Session, settings: Settings) -> str:
    """The staff pages' warning: every sign-up form (the default one and each named one staff
    created) whose confirmed sign-ups start no emails, and why; "" when all of them start one."""
    parts = []
    default = signup_choice(session, settings)
    if default.warning:
        parts.append(default.warning)
    for row in list_forms(session):
        if row.name == DEFAULT_FORM:
            continue
        choice = signup_choice(session, settings, row.name)
        if choice.warning:
            parts.append(f"Form /subscribe?form={row.name}: {choice.warning}")
    return " ".join(parts)


def set_signup_campaign(
    session: Session, slug: str | None, now: datetime, *, form: str = DEFAULT_FORM, tag: str | None = None
) -> SignupForm:
    """Store the campaign (None: none) and optionally the list ("" clears it) for a sign-up form."""
    form = (form or "").strip()
    if form != DEFAULT_FORM and not _FORM_NAME.match(form):
        raise InputError("a form name is 1 to 50 of a-z, 0-9 and '-' (it goes into /subscribe?form=NAME)",
                         where="--form")
    campaign_id = None
    if slug:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == slug.strip()))
        if campaign_id is None:
            raise NotFoundError(f"no campaign {slug.strip()!r} (drip campaigns list shows the slugs)",
                                where="--campaign")
    row = _form_row(session, form)
    if row is None:
        row = SignupForm(name=form, updated_at=now)
        session.add(row)
    row.campaign_id = campaign_id
    if tag is not None:
        row.tag = clean_tag(tag) if tag.strip() else ""
    row.updated_at = now
    session.flush()
    return row
