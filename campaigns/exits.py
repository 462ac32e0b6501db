"""Stopping one patient's enrollment: by staff, the API, or a campaign's exit conditions.

An exit condition belongs to a campaign: a tag added or removed, an attribute changed, or an
event the clinic's booking system posts (`appointment_booked`). When one happens to a patient
enrolled in that campaign, the enrollment becomes `exited` (with the reason and time) and its
deliveries still `scheduled` are cancelled, in the caller's transaction: the change and the
cancelling commit together or not at all.

A row a worker has already claimed (`sending`) is not touched here; the dispatcher re-checks the
enrollment of each chunk just before sending it (LedgerStore.exited), so it is cancelled there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from drip.errors import InputError, NotFoundError
from drip.models import (
    Campaign,
    CampaignExit,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    ExitKind,
    SubscriberEvent,
)

MAX_REASON = 500
KINDS = tuple(k.value for k in ExitKind)


@dataclass(frozen=True)
class Exited:
    enrollment_id: int
    campaign_slug: str
    reason: str
    cancelled: int  # scheduled deliveries cancelled


def clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise InputError("a reason is needed (it is recorded on the enrollment)", where="--reason")
    return text[:MAX_REASON]


def stop_enrollment(session: Session, enrollment: Enrollment, reason: str, now: datetime) -> int:
    """Exit one active enrollment and cancel its scheduled deliveries. Returns how many were cancelled."""
    moved = session.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id, Enrollment.state == EnrollmentState.ACTIVE.value)
        .values(state=EnrollmentState.EXITED.value, exited_at=now, exit_reason=reason[:MAX_REASON])
        .execution_options(synchronize_session="fetch")
    ).rowcount
    if not moved:  # a concurrent stop (or completion) came first
        return 0
    from webhooks.outbox import emit

    emit(session, "enrollment.exited", lambda: [{
        "enrollment_id": enrollment.id, "subscriber_id": enrollment.subscriber_id,
        "campaign": session.scalar(select(Campaign.slug).where(Campaign.id == enrollment.campaign_id)),
        "reason": reason[:MAX_REASON]}], now)
    result = session.execute(
        update(Delivery)
        .where(Delivery.enrollment_id == enrollment.id, Delivery.status == DeliveryStatus.SCHEDULED.value)
        .values(status=DeliveryStatus.CANCELLED.value, last_error=f"enrollment exited: {reason}"[:2000])
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def active_enrollment(session: Session, subscriber_id: int, campaign_id: int) -> Enrollment | None:
    return session.scalar(select(Enrollment).where(
        Enrollment.subscriber_id == subscriber_id, Enrollment.campaign_id == campaign_id,
        Enrollment.state == EnrollmentState.ACTIVE.value).with_for_update())


def stop_in_campaign(session: Session, subscriber_id: int, campaign: Campaign, reason: str, now: datetime) -> Exited:
    """Staff/API stop: NotFoundError when the patient has no active enrollment in this campaign."""
    reason = clean_reason(reason)
    enrollment = active_enrollment(session, subscriber_id, campaign.id)
    if enrollment is None:
        raise NotFoundError(f"no active enrollment in {campaign.slug!r} for this subscriber", where="--campaign")
    cancelled = stop_enrollment(session, enrollment, reason, now)
    return Exited(enrollment.id, campaign.slug, reason, cancelled)


# --------------------------------------------------------------------------- exit conditions


def check_kind(kind: str) -> str:
    kind = (kind or "").strip().lower().replace("_", "-")
    if kind not in KINDS:
        raise InputError(f"unknown exit condition {kind!r} (one of: {', '.join(KINDS)})", where="kind")
    return kind


def check_value(value: str) -> str:
    text = " ".join((value or "").split())
    if not text or len(text) > 100:
        raise InputError("the condition needs a tag, attribute or event name of 1 to 100 characters", where="value")
    return text


def add_exit(session: Session, campaign: Campaign, kind: str, value: str, now: datetime) -> CampaignExit:
    """Add an exit condition (idempotent: the same one twice is one)."""
    kind, value = check_kind(kind), check_value(value)
    found = session.scalar(select(CampaignExit).where(
        CampaignExit.campaign_id == campaign.id, CampaignExit.kind == kind, CampaignExit.value == value))
    if found is not None:
        return found
    row = CampaignExit(campaign_id=campaign.id, kind=kind, value=value, created_at=now)
    session.add(row)
    session.flush()
    return row


def remove_exit(session: Session, campaign: Campaign, kind: str, value: str) -> bool:
    kind, value = check_kind(kind), check_value(value)
    res = session.execute(delete(CampaignExit).where(
        CampaignExit.campaign_id == campaign.id, CampaignExit.kind == kind, CampaignExit.value == value))
    return bool(res.rowcount)


def exits_of(session: Session, campaign_id: int) -> list[CampaignExit]:
    return list(session.scalars(select(CampaignExit).where(CampaignExit.campaign_id == campaign_id)
                                .order_by(CampaignExit.kind, CampaignExit.value)))


def describe(kind: str, value: str) -> str:
    return {"tag-added": f"tag “{value}” added", "tag-removed": f"tag “{value}” removed",
            "attribute-changed": f"attribute “{value}” changed", "event": f"event “{value}”"}.get(kind, value)


def apply_exits(
    session: Session, subscriber_ids: Iterable[int], kind: str, values: Iterable[str], now: datetime
) -> list[Exited]:
    """What happened (`kind` with one of `values`) to these subscribers: exit the matching enrollments.

    One query finds the conditions; most calls (no campaign has such a condition) stop there.
    """
    values = sorted(set(values))
    ids = sorted(set(subscriber_ids))
    if not values or not ids:
        return []
    conditions = session.execute(
        select(CampaignExit.campaign_id, CampaignExit.value).where(
            CampaignExit.kind == kind, CampaignExit.value.in_(values))
    ).all()
    if not conditions:
        return []
    why: dict[int, str] = {}
    for campaign_id, value in conditions:
        why.setdefault(campaign_id, describe(kind, value))
    out: list[Exited] = []
    rows = session.execute(
        select(Enrollment, Campaign.slug).join(Campaign, Campaign.id == Enrollment.campaign_id).where(
            Enrollment.subscriber_id.in_(ids), Enrollment.campaign_id.in_(list(why)),
            Enrollment.state == EnrollmentState.ACTIVE.value).order_by(Enrollment.id).with_for_update(of=Enrollment)
    ).all()
    for enrollment, slug in rows:
        reason = f"exit condition: {why[enrollment.campaign_id]}"
        out.append(Exited(enrollment.id, slug, reason, stop_enrollment(session, enrollment, reason, now)))
    return out


def record_event(session: Session, subscriber_id: int, name: str, now: datetime, *, source: str = "api") -> tuple[
        SubscriberEvent, list[Exited]]:
    """Store an event about a patient and apply the `event` exit conditions, in one transaction."""
    name = check_value(name)
    event = SubscriberEvent(subscriber_id=subscriber_id, name=name, source=source[:64], occurred_at=now)
    session.add(event)
    session.flush()
    return event, apply_exits(session, [subscriber_id], ExitKind.EVENT.value, [name], now)
