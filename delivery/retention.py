"""Retention: delivery rows and provider events older than the clinic's setting are deleted.

A sent email's row says who got which email when: personal data, kept only as long as the clinic
needs it (owners set it on Settings, stored in clinic_settings over DRIP_RETENTION_DAYS; 0 keeps
everything). Only finished rows go (sent, failed,
cancelled); scheduled and in-flight rows are the ledger's promises and are never touched. The
worker applies it once an hour in batches, so a first run over years of history does not hold a
long write lock; `drip retention` shows or applies it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from drip.models import Delivery, DeliveryStatus, Event, WebhookDelivery, WebhookEvent

if TYPE_CHECKING:
    from drip.runtime import Runtime

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


COUNT_CAP = 100_000  # the Settings page counts at most this many rows of each kind ("more than 100,000")


@dataclass(frozen=True)
class CappedCount:
    """Rows a retention would delete now, each count stopping at `cap` (a big ledger stays fast)."""

    cutoff: datetime
    deliveries: int
    events: int
    webhook_events: int
    cap: int

    def says(self, n: int) -> str:
        return f"more than {self.cap:,}" if n > self.cap else f"{n:,}"


def count_capped(session: Session, now: datetime, days: int, cap: int | None = None) -> CappedCount:
    """What `apply_retention(now, days)` would delete, counted up to `cap` + 1 rows of each kind."""
    cutoff = now - timedelta(days=days)
    cap = COUNT_CAP if cap is None else cap

    def upto(model, where) -> int:
        inner = select(model.id).where(where).limit(cap + 1).subquery()
        return session.scalar(select(func.count()).select_from(inner)) or 0

    return CappedCount(cutoff, upto(Delivery, _old_deliveries(cutoff)), upto(Event, Event.occurred_at < cutoff),
                       upto(WebhookEvent, _old_webhook_events(cutoff)), cap)


def configured_days(rt: "Runtime") -> int:
    """The retention in force now: the one saved on Settings (read afresh: the hourly job must not
    depend on a tick having refreshed the settings), else DRIP_RETENTION_DAYS."""
    from sqlalchemy.exc import SQLAlchemyError

    from drip import clinic_settings

    try:
        with rt.read_sessions() as db:
            saved = clinic_settings.retention_days(clinic_settings.stored(db))
    except SQLAlchemyError:
        saved = None
    return rt.settings.retention_days if saved is None else saved


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
