"""Retention: delivery rows and provider events older than the clinic's setting are deleted.

A sent email's row says who got which email when: personal data, kept only as long as the clinic
needs it (DRIP_RETENTION_DAYS; 0 keeps everything). Only finished rows go (sent, failed,
cancelled); scheduled and in-flight rows are the ledger's promises and are never touched. The
worker applies it once an hour in batches, so a first run over years of history does not hold a
long write lock; `drip retention` shows or applies it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.models import Delivery, DeliveryStatus, Event, WebhookDelivery, WebhookEvent

FINISHED = (DeliveryStatus.SENT.value, DeliveryStatus.FAILED.value, DeliveryStatus.CANCELLED.value)
BATCH = 5_000


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime
    deliveries: int
    events: int
    webhook_events: int = 0  # outbound webhook events whose deliveries all finished (delivered/failed)


def _old_deliveries(cutoff: datetime):
    return (Delivery.status.in_(FINISHED)) & (func.coalesce(Delivery.sent_at, Delivery.due_at) < cutoff)


def count_expired(session: Session, now: datetime, days: int) -> RetentionResult:
    cutoff = now - timedelta(days=days)
    deliveries = session.scalar(select(func.count()).select_from(Delivery).where(_old_deliveries(cutoff))) or 0
    events = session.scalar(select(func.count()).select_from(Event).where(Event.occurred_at < cutoff)) or 0
    return RetentionResult(cutoff, deliveries, events)


def apply_retention(sessions: sessionmaker[Session], now: datetime, days: int, batch: int = BATCH) -> RetentionResult:
    """Delete finished deliveries and provider events older than `days`, one batch per transaction."""
    if days <= 0:
        return RetentionResult(now, 0, 0)
    cutoff = now - timedelta(days=days)
    totals = {"deliveries": 0, "events": 0}
    for key, model, where in (("deliveries", Delivery, _old_deliveries(cutoff)), ("events", Event, Event.occurred_at < cutoff)):
        while True:
            with sessions.begin() as s:
                ids = list(s.scalars(select(model.id).where(where).order_by(model.id).limit(batch)))
                if ids:
                    s.execute(delete(model).where(model.id.in_(ids)))
            totals[key] += len(ids)
            if len(ids) < batch:
                break
    while True:  # outbound webhook events (webhooks/outbox.py): only once no delivery of one is still to go
        with sessions.begin() as s:
            ids = list(s.scalars(select(WebhookEvent.id).where(_old_webhook_events(cutoff))
                                 .order_by(WebhookEvent.id).limit(batch)))
            if ids:
                s.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids)))
                s.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        totals["webhooks"] = totals.get("webhooks", 0) + len(ids)
        if len(ids) < batch:
            break
    return RetentionResult(cutoff, totals["deliveries"], totals["events"], totals["webhooks"])


def _old_webhook_events(cutoff: datetime):
    waiting = exists().where(WebhookDelivery.event_id == WebhookEvent.id,
                             WebhookDelivery.status.in_(("pending", "sending")))
    return (WebhookEvent.created_at < cutoff) & ~waiting
