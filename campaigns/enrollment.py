"""Enrollment: a subscriber joins a campaign and gets one delivery row per step.

Due times are fixed here (enrolled_at + step delay, moved into the campaign's send window in the
subscriber's own zone, with a minimum spacing between steps) so the ledger shows what will go out
when. The dispatcher re-checks the window and the frequency cap at send time, because a worker can
be down or a newsletter can land on the same day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.schedule import parse_window, resolve_zone, schedule_sequence
from drip.errors import InputError
from drip.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Step,
    Subscriber,
    SubscriberStatus,
    Tag,
)
from subscribers.suppression import is_suppressed
from subscribers.unsubscribe import is_opted_out

MIN_SPACING = timedelta(hours=20)


class NotEnrollable(InputError):
    """The subscriber cannot be enrolled (unsubscribed, suppressed, already enrolled, campaign not live)."""


def enroll(
    session: Session,
    subscriber: Subscriber,
    campaign: Campaign,
    now: datetime,
    *,
    clinic_tz: str,
    source: str = "cli",
) -> Enrollment:
    if campaign.status != CampaignStatus.PUBLISHED.value:
        raise NotEnrollable(f"campaign {campaign.slug!r} is {campaign.status}, not published", where="--campaign")
    if subscriber.status != SubscriberStatus.ACTIVE.value:
        raise NotEnrollable(f"{subscriber.email} is {subscriber.status}; only active subscribers are enrolled", where="email")
    if is_suppressed(session, subscriber.email_key):
        raise NotEnrollable(f"{subscriber.email} is on the suppression list", where="email")
    if is_opted_out(session, subscriber.id, campaign.id):
        raise NotEnrollable(f"{subscriber.email} unsubscribed from {campaign.slug!r}", where="email")
    active = session.scalar(
        select(Enrollment.id).where(
            Enrollment.subscriber_id == subscriber.id,
            Enrollment.campaign_id == campaign.id,
            Enrollment.state == EnrollmentState.ACTIVE.value,
        )
    )
    if active is not None:
        raise NotEnrollable(f"{subscriber.email} is already enrolled in {campaign.slug!r}", where="email")

    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id).order_by(Step.position)))
    tz = resolve_zone(subscriber.tz, clinic_tz)
    window = parse_window(campaign.send_window)
    due = schedule_sequence(now, [timedelta(minutes=s.delay_minutes) for s in steps], window, tz, MIN_SPACING)

    enrollment = Enrollment(subscriber_id=subscriber.id, campaign_id=campaign.id, enrolled_at=now, source=source)
    try:
        with session.begin_nested():
            session.add(enrollment)
            session.flush()
    except IntegrityError:  # a concurrent enrollment won the race (partial unique index)
        raise NotEnrollable(f"{subscriber.email} is already enrolled in {campaign.slug!r}", where="email") from None
    if steps:
        session.execute(
            insert(Delivery),
            [
                {
                    "subscriber_id": subscriber.id,
                    "enrollment_id": enrollment.id,
                    "step_id": step.id,
                    "due_at": at,
                    "status": DeliveryStatus.SCHEDULED.value,
                }
                for step, at in zip(steps, due)
            ],
        )
    return enrollment


def enroll_for_tags(
    session: Session, subscriber_ids: list[int], tag_ids: list[int], now: datetime, *, clinic_tz: str | None = None
) -> int:
    """Enroll these subscribers in every published campaign tied to these tags. Returns enrollments made.

    Subscribers who cannot be enrolled (already enrolled, unsubscribed, suppressed) are passed over:
    joining a list is not an error because a campaign is already running for them.
    """
    if not subscriber_ids or not tag_ids:
        return 0
    campaign_ids = set(
        session.scalars(select(Tag.campaign_id).where(Tag.id.in_(tag_ids), Tag.campaign_id.is_not(None)))
    )
    if clinic_tz is None:
        from drip.config import load_settings

        clinic_tz = load_settings().clinic.timezone
    made = 0
    for campaign in session.scalars(select(Campaign).where(Campaign.id.in_(campaign_ids))):
        if campaign.status != CampaignStatus.PUBLISHED.value:
            continue
        for sub in session.scalars(select(Subscriber).where(Subscriber.id.in_(subscriber_ids))):
            try:
                enroll(session, sub, campaign, now, clinic_tz=clinic_tz, source="tag")
                made += 1
            except NotEnrollable:
                continue
    return made
