"""Double opt-in for the public sign-up form: a request makes a *pending* subscriber, the link
in the confirmation email makes them *active*.

The form is not authenticated, so a request may only touch what it created itself:
- a new address becomes `pending`, with the consent shown on the form recorded (source
  "web-form", time, wording version, IP), and gets a confirmation email;
- a still-pending address (asked twice, lost the email) gets its name, zone and consent record
  refreshed and a new confirmation email;
- anything else (already active or paused, unsubscribed, bounced) is left alone and gets no
  email: a stranger must not be able to change a patient's data, and a suppressed address is
  never sent to again. The page answers the same in every case (no account enumeration).

Confirming activates a pending subscriber, enrolls them in the campaign staff chose for the form
(subscribers/signup_forms.py; `settings.signup_campaign` when none is stored) when it exists and
is published (otherwise that is logged and they are activated and tagged only), and tags them
with the form's list (`settings.signup_tag` when none is stored). It never undoes an unsubscribe, a bounce or a complaint:
an old confirmation link must not bring back someone who left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.enrollment import NotEnrollable, enroll
from drip.config import Settings
from drip.models import Subscriber, SubscriberStatus, Suppression
from subscribers.signup_forms import SignupChoice, consent_source, form_of, signup_choice
from subscribers.service import clean_name, find_subscriber, normalize_email, tag_subscribers, validate_zone
from subscribers.suppression import is_suppressed
from drip.i18n import normalize_language

log = logging.getLogger("drip.signup")

SOURCE = "web-form"
_RECEIVING = {SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value}


@dataclass(frozen=True)
class SignupRequest:
    """What the form sent, after `check_signup` (address normalised, zone canonical)."""

    email: str
    email_key: str
    name: str
    tz: str | None
    form: str = "default"  # which sign-up form (subscribers/signup_forms.py)
    language: str | None = None  # drip/i18n.py code; None: the clinic's default


@dataclass(frozen=True)
class SignupOutcome:
    subscriber_id: int | None  # who to send the confirmation email to; None: send nothing
    email: str = ""
    name: str = ""
    language: str | None = None  # the confirmation email's


@dataclass(frozen=True)
class ConfirmOutcome:
    state: Literal["confirmed", "already", "refused", "gone"]
    email: str = ""
    enrolled_in: str | None = None  # campaign title when enrolled now
    language: str | None = None  # the patient's (their pages are in it)


def check_signup(email: str, name: str, tz: str | None, language: str | None = None) -> SignupRequest:
    """Validate the form fields. InputError(where="email"/"tz"/"language") names the field to fix."""
    address, key = normalize_email(email)
    return SignupRequest(email=address, email_key=key, name=clean_name(name), tz=validate_zone(tz),
                         language=normalize_language(language))


def request_signup(
    session: Session, req: SignupRequest, *, now: datetime, ip: str | None, consent_version: str
) -> SignupOutcome:
    """Record the sign-up (see the module rules). Returns whom to send a confirmation to, if anyone.

    Every address costs the same database work, so the time it takes does not tell a stranger
    whether a patient is known: two lookups (suppression list, subscriber), then one write in a
    savepoint - the INSERT of a new address, the refresh of a pending one, or, for anyone else, an
    UPDATE of the same row that sets nothing new (it takes the same locks and journal work).
    """
    suppressed = is_suppressed(session, req.email_key)
    sub = find_subscriber(session, req.email_key)
    consent = {"consent_source": consent_source(req.form), "consent_at": now,
               "consent_text_version": consent_version[:32],
               "consent_ip": (ip or "")[:64] or None, "updated_at": now}
    try:
        with session.begin_nested():  # a concurrent sign-up of the same address wins the race
            if sub is None and not suppressed:
                sub = Subscriber(email=req.email, email_key=req.email_key, name=req.name, tz=req.tz,
                                 language=req.language, status=SubscriberStatus.PENDING.value, created_at=now, **consent)
                session.add(sub)
                session.flush()
                return SignupOutcome(sub.id, sub.email, sub.name, sub.language)
            if sub is not None and sub.status == SubscriberStatus.PENDING.value and not suppressed:
                sub.name, sub.tz = req.name or sub.name, req.tz or sub.tz
                sub.language = req.language or sub.language
                for key, value in consent.items():
                    setattr(sub, key, value)
                session.flush()
                return SignupOutcome(sub.id, sub.email, sub.name, sub.language)
            # Known and not pending, or suppressed: nothing changes and no email is sent.
            if sub is not None:
                session.execute(update(Subscriber).where(Subscriber.id == sub.id)
                                .values(updated_at=Subscriber.updated_at))
            else:  # suppressed, never a subscriber (or erased): its suppression row is the one row
                session.execute(update(Suppression).where(Suppression.email_key == req.email_key)
                                .values(created_at=Suppression.created_at))
    except IntegrityError:
        return SignupOutcome(None)
    if suppressed:
        log.info("sign-up for a suppressed address ignored")
    return SignupOutcome(None)


def confirm_signup(session: Session, subscriber_id: int, *, now: datetime, settings: Settings) -> ConfirmOutcome:
    """Activate, enroll and tag a pending subscriber. Idempotent: a second click answers "already"."""
    # FOR UPDATE (PostgreSQL): two clicks at once are serialised here; SQLite's BEGIN IMMEDIATE already is.
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return ConfirmOutcome("gone")
    if sub.status in _RECEIVING:
        return ConfirmOutcome("already", sub.email, language=sub.language)
    if sub.status != SubscriberStatus.PENDING.value or is_suppressed(session, sub.email_key):
        return ConfirmOutcome("refused", sub.email, language=sub.language)
    sub.status = SubscriberStatus.ACTIVE.value
    sub.updated_at = now
    session.flush()
    from webhooks.outbox import emit

    emit(session, "subscriber.confirmed", [{"subscriber_id": sub.id}], now)
    clinic_tz = settings.clinic.timezone
    choice = signup_choice(session, settings, form_of(sub.consent_source))
    enrolled = _enroll_signup(session, sub, choice, now, clinic_tz)
    if choice.tag:
        tag_subscribers(session, [sub.id], [choice.tag], now, clinic_tz=clinic_tz)
    return ConfirmOutcome("confirmed", sub.email, enrolled, language=sub.language)


def _enroll_signup(session: Session, sub: Subscriber, choice: SignupChoice, now: datetime, clinic_tz: str) -> str | None:
    campaign = choice.campaign
    if campaign is None:
        if choice.warning:
            log.warning("sign-up confirmed without enrollment: %s", choice.warning)
        return None
    try:
        enroll(session, sub, campaign, now, clinic_tz=clinic_tz, source=SOURCE)
    except NotEnrollable as exc:  # e.g. they had opted out of this series before
        log.info("sign-up confirmed without enrollment: %s", exc)
        return None
    from campaigns.service import title_in

    return title_in(campaign, sub.language)
