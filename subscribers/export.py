"""One patient's data, as they may ask for it (right of access): everything drip holds about them.

`patient_export` gathers the profile, the consent evidence, tags, custom attributes, enrollments,
every delivery (with the step or newsletter it carried), the events the booking system posted,
the provider events stored for the address and any suppression entry. The staff page offers it
as JSON (machine-readable, for the patient or another system) and as a readable page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import (
    AttributeDefinition,
    Broadcast,
    Campaign,
    Delivery,
    Enrollment,
    Event,
    Step,
    StepVersion,
    Subscriber,
    SubscriberAttribute,
    SubscriberEvent,
    Tag,
    SubscriberTag,
)
from campaigns.service import latest_versions
from subscribers.suppression import suppression_of

EXPORT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def patient_export(session: Session, subscriber: Subscriber, *, clinic_name: str, now: datetime) -> dict[str, Any]:
    """Everything stored about `subscriber`, as plain JSON-able data."""
    sid = subscriber.id
    tags = list(session.scalars(select(Tag.name).join(SubscriberTag, SubscriberTag.tag_id == Tag.id)
                                .where(SubscriberTag.subscriber_id == sid).order_by(Tag.name)))
    attributes = {key: value for key, value in session.execute(
        select(AttributeDefinition.key, SubscriberAttribute.value)
        .join(AttributeDefinition, AttributeDefinition.id == SubscriberAttribute.attribute_id)
        .where(SubscriberAttribute.subscriber_id == sid).order_by(AttributeDefinition.key))}
    enrollments = [
        {"campaign": slug, "campaign_title": title, "state": e.state, "enrolled_at": _iso(e.enrolled_at),
         "source": e.source, "exited_at": _iso(e.exited_at), "exit_reason": e.exit_reason or ""}
        for e, slug, title in session.execute(
            select(Enrollment, Campaign.slug, Campaign.title).join(Campaign, Campaign.id == Enrollment.campaign_id)
            .where(Enrollment.subscriber_id == sid).order_by(Enrollment.enrolled_at, Enrollment.id))
    ]
    rows = list(session.execute(
            select(Delivery, StepVersion.subject, Campaign.slug, Step.position, Broadcast.slug, Broadcast.subject)
            .outerjoin(StepVersion, StepVersion.id == Delivery.step_version_id)
            .outerjoin(Step, Step.id == Delivery.step_id)
            .outerjoin(Campaign, Campaign.id == Step.campaign_id)
            .outerjoin(Broadcast, Broadcast.id == Delivery.broadcast_id)
            .where(Delivery.subscriber_id == sid).order_by(Delivery.due_at, Delivery.id)))
    # Not sent yet: the version it will carry is the step's newest (the sent one is recorded on the row).
    newest = latest_versions(session, sorted({d.step_id for d, subject, *_ in rows if subject is None and d.step_id}))
    deliveries = [
        {"id": d.id, "email": subject or (newest[d.step_id].subject if d.step_id in newest else newsletter_subject) or "",
         "campaign": slug, "step": position, "newsletter": newsletter, "status": d.status, "due_at": _iso(d.due_at),
         "sent_at": _iso(d.sent_at), "outcome": d.outcome, "attempts": d.attempts}
        for d, subject, slug, position, newsletter, newsletter_subject in rows
    ]
    posted = [{"name": e.name, "source": e.source, "occurred_at": _iso(e.occurred_at)}
              for e in session.scalars(select(SubscriberEvent).where(SubscriberEvent.subscriber_id == sid)
                                       .order_by(SubscriberEvent.occurred_at))]
    provider = [{"provider": e.provider, "type": e.type, "occurred_at": _iso(e.occurred_at), "delivery_id": e.delivery_id}
                for e in session.scalars(select(Event).where(Event.email_key == subscriber.email_key)
                                         .order_by(Event.occurred_at))]
    suppression = suppression_of(session, subscriber.email_key)
    return {
        "export_version": EXPORT_VERSION,
        "exported_at": _iso(now),
        "clinic": clinic_name,
        "profile": {"id": sid, "email": subscriber.email, "name": subscriber.name, "time_zone": subscriber.tz,
                    "status": subscriber.status, "created_at": _iso(subscriber.created_at),
                    "updated_at": _iso(subscriber.updated_at)},
        "consent": {"source": subscriber.consent_source, "at": _iso(subscriber.consent_at),
                    "text_version": subscriber.consent_text_version, "ip": subscriber.consent_ip},
        "tags": tags,
        "attributes": attributes,
        "enrollments": enrollments,
        "deliveries": deliveries,
        "events": posted,
        "provider_events": provider,
        "suppression": ({"reason": suppression.reason, "source": suppression.source,
                         "since": _iso(suppression.created_at)} if suppression else None),
    }
