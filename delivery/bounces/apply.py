"""Match a bounce report to the delivery it is about and act on it through delivery/events.py,
so statistics, suppression, subscriber status and outbound webhooks stay in one place.

Matching, most trusted first. Anyone can send mail to a bounce mailbox, so a report only acts
when it names one of our deliveries in a way that is hard to forge:
1. a signed VERP address (delivery/bounces/verp.py) in the report's envelope headers or ARF
   Original-Mail-From: the delivery's own subscriber is the address (the DSN's recipient may be
   a forwarding target);
2. the returned message's Message-ID equal to a delivery's recorded one (random, per attempt);
3. the returned X-Drip-Delivery-Id, only when the failed address is that delivery's subscriber.
A report that matches nothing is counted as unmatched and changes nothing.

Hard bounce -> a `bounce` event (suppressed, subscriber bounced, pending mail cancelled); soft
-> a soft `bounce` event (outcome deferred) and the address's streak +1: `bounce_soft_limit` in
a row suppress it. "In a row": a delivery to the address sent between the last soft-bounced one
and this one, that did not bounce itself, restarts the streak; several reports about one
delivery (Postfix warns every few hours) count once. Complaint -> a `spamreport` event
(suppressed, subscriber complained, enrollments cancelled: unsubscribed from everything).
Each (report, address) is stored once (`events.provider_event_id`): the same DSN read twice
counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.bounces.dsn import COMPLAINT, HARD, SOFT, Failure, Report
from delivery.bounces.verp import find_verp
from delivery.events import EventCounts, EventType, NormalizedEvent, _apply_suppression, apply_events
from drip.config import Settings
from drip.models import Delivery, DeliveryStatus, SoftBounceStreak, Subscriber, SubscriberStatus


@dataclass(frozen=True)
class Finding:
    """One line of `drip bounces poll`: what one failure in one report did."""

    kind: str  # hard | soft | complaint
    address: str
    delivery_id: int | None
    via: str  # verp | message-id | header | "" (unmatched)
    status: str
    outcome: str  # suppressed | counted n/N | duplicate | unmatched | recorded

    def line(self) -> str:
        where = f"delivery {self.delivery_id} (by {self.via})" if self.delivery_id else "no delivery matched"
        code = f" {self.status}" if self.status else ""
        return f"{self.kind}{code} {self.address or '(address withheld)'}: {where}: {self.outcome}"


@dataclass
class ApplyResult:
    findings: list[Finding] = field(default_factory=list)
    counts: EventCounts = field(default_factory=EventCounts)


def _match(session: Session, report: Report, failure: Failure, secret: str) -> tuple[Delivery, Subscriber, str] | None:
    for value in report.envelope:
        did = find_verp(value, secret)
        if did is not None:
            found = _delivery(session, did)
            if found:
                return (*found, "verp")
    if report.message_ids:
        d = session.scalar(select(Delivery).where(Delivery.provider_message_id.in_(report.message_ids)).limit(1))
        if d is not None:
            sub = session.get(Subscriber, d.subscriber_id)
            if sub is not None:
                return d, sub, "message-id"
    for did in report.delivery_ids:
        found = _delivery(session, did)
        if found and failure.recipient and found[1].email_key == failure.recipient:
            return (*found, "header")
    return None


def _delivery(session: Session, delivery_id: int) -> tuple[Delivery, Subscriber] | None:
    if not 0 < delivery_id < 2**63:
        return None
    d = session.get(Delivery, delivery_id)
    sub = session.get(Subscriber, d.subscriber_id) if d is not None else None
    return (d, sub) if d is not None and sub is not None else None


def _event(report: Report, failure: Failure, delivery: Delivery, address: str, now: datetime) -> NormalizedEvent:
    provider = "arf" if failure.kind == COMPLAINT else "dsn"
    raw: dict[str, Any] = {
        "report": report.report_id, "recipient": failure.recipient, "status": failure.status,
        "diagnostic": failure.diagnostic, "delivery_id": delivery.id,
    }
    if failure.kind == COMPLAINT:
        etype = EventType.SPAMREPORT
    else:
        etype = EventType.BOUNCE
        raw["type"] = "bounce" if failure.kind == HARD else "soft"
    return NormalizedEvent(
        type=etype, provider_event_id=f"{provider}:{report.report_id}:{failure.recipient or address}"[:200],
        email_key=address, delivery_id=delivery.id, occurred_at=now, raw=raw, provider=provider,
    )


def _count_soft(session: Session, delivery: Delivery, address: str, status: str, now: datetime) -> int:
    """The address's streak after this soft bounce."""
    row = session.get(SoftBounceStreak, address)
    if row is None:
        row = SoftBounceStreak(email_key=address, count=0, last_delivery_id=None, last_status="", updated_at=now)
        session.add(row)
    if row.last_delivery_id == delivery.id:
        return row.count  # another warning about the same message
    if row.last_delivery_id is not None and row.count:
        lo, hi = sorted((row.last_delivery_id, delivery.id))
        went_through = session.scalar(select(Delivery.id).where(
            Delivery.subscriber_id == delivery.subscriber_id, Delivery.id > lo, Delivery.id < hi,
            Delivery.status == DeliveryStatus.SENT.value,
            (Delivery.outcome.is_(None)) | (Delivery.outcome.notin_(["deferred", "bounced"])),
        ).limit(1))
        if went_through is not None:
            row.count = 0
    row.count += 1
    row.last_delivery_id = delivery.id
    row.last_status = status[:16]
    row.updated_at = now
    return row.count


def apply_report(session: Session, report: Report, settings: Settings, now: datetime, secret: str) -> ApplyResult:
    """Act on every failure of one report, in the caller's transaction."""
    result = ApplyResult()
    for failure in report.failures:
        matched = _match(session, report, failure, secret)
        if matched is None:
            result.findings.append(Finding(failure.kind, failure.recipient, None, "", failure.status, "unmatched"))
            continue
        delivery, sub, via = matched
        address = sub.email_key
        event = _event(report, failure, delivery, address, now)
        counts = apply_events(session, [event], settings, now)
        _merge(result.counts, counts)
        if counts.duplicates:
            outcome = "duplicate (already counted)"
        elif failure.kind == SOFT:
            n = _count_soft(session, delivery, address, failure.status, now)
            limit = settings.bounce_soft_limit
            if n >= limit:
                before = result.counts.suppressed
                _apply_suppression(session, event, SubscriberStatus.BOUNCED, "bounce", now, result.counts,
                                   source="dsn:soft-streak")
                outcome = f"soft bounce {n} of {limit} in a row: suppressed" if result.counts.suppressed > before \
                    else f"soft bounce {n} of {limit} in a row (already suppressed)"
            else:
                outcome = f"soft bounce {n} of {limit} in a row"
        else:
            outcome = "suppressed" if counts.suppressed else "recorded (already suppressed)"
            if failure.kind == COMPLAINT:
                outcome += ", unsubscribed"
        result.findings.append(Finding(failure.kind, address, delivery.id, via, failure.status, outcome))
    return result


def _merge(total: EventCounts, part: EventCounts) -> None:
    for name in ("received", "stored", "duplicates", "ignored", "suppressed", "cancelled"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.by_type.update(part.by_type)
