"""Provider events (SendGrid Event Webhook): normalise, store once, act on them.

Each SendGrid event name maps onto one `EventType`; anything else is kept as `unknown` with its
raw payload (SendGrid adds event types; a new one must not make the webhook fail and be retried
for a day). Events are stored once per `sg_event_id`: SendGrid delivers at least once and
retries a batch that timed out, so the same event can arrive twice, even inside one batch.

What an event does:
- bounce (hard), dropped for an address reason, spamreport, unsubscribe, group_unsubscribe:
  the address is suppressed, the subscriber's status set (bounced / complained / unsubscribed,
  never downgraded), scheduled deliveries and active enrollments cancelled.
- delivered / bounce / dropped / spamreport / deferred: the delivery's `outcome` (a later
  "delivered" never overwrites a bounce that arrived first: events are not ordered).
- open / click: stored only when `settings.tracking` is on (off by default: patient privacy).
- group_resubscribe: stored, no action. Our suppression list is the truth; a resubscribe happens
  from the patient's preference page, where consent is recorded.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from drip.config import Settings
from drip.models import Delivery, Event, Subscriber, SubscriberStatus
from subscribers.suppression import cancel_pending, suppress

PROVIDER = "sendgrid"


class EventType(str, enum.Enum):
    DELIVERED = "delivered"
    BOUNCE = "bounce"
    DROPPED = "dropped"
    DEFERRED = "deferred"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    GROUP_RESUBSCRIBE = "group_resubscribe"
    OPEN = "open"
    CLICK = "click"
    PROCESSED = "processed"
    UNKNOWN = "unknown"


_BY_NAME = {t.value: t for t in EventType if t is not EventType.UNKNOWN}
_TRACKING = {EventType.OPEN, EventType.CLICK}

# SendGrid quirk: a "bounce" event carries `type` "bounce" (hard: the mailbox does not exist) or
# "blocked" (the receiving server refused this message for now, e.g. reputation). Only a hard
# bounce says the address is dead; SendGrid itself does not suppress blocks. "expired" is a
# deferred message that ran out of retries: also not the address's fault.
_SOFT_BOUNCE_TYPES = {"blocked", "expired", "soft"}  # "soft": a 4.x.x DSN (delivery/bounces/)

# SendGrid quirk: "dropped" means SendGrid never tried. The `reason` says why; only some reasons
# are about the address (others, e.g. "Spam Content" or "Invalid SMTPAPI header", are about the
# message and must not block the patient). Lower-cased reason -> subscriber status.
_DROPPED_ADDRESS_REASONS = {
    "bounced address": SubscriberStatus.BOUNCED,
    "invalid": SubscriberStatus.BOUNCED,
    "unsubscribed address": SubscriberStatus.UNSUBSCRIBED,
    "spam reporting address": SubscriberStatus.COMPLAINED,
}

# Never move a subscriber to a milder status because of a later event.
_SEVERITY = {
    SubscriberStatus.PENDING.value: 0,
    SubscriberStatus.ACTIVE.value: 0,
    SubscriberStatus.PAUSED.value: 0,
    SubscriberStatus.UNSUBSCRIBED.value: 1,
    SubscriberStatus.BOUNCED.value: 2,
    SubscriberStatus.COMPLAINED.value: 3,
}

# Outcome precedence on the delivery row: a higher rank is never overwritten by a lower one.
_OUTCOME_RANK = {"deferred": 0, "delivered": 1, "dropped": 2, "bounced": 2, "complained": 3}


@dataclass(frozen=True)
class NormalizedEvent:
    type: EventType
    provider_event_id: str
    email_key: str
    delivery_id: int | None
    occurred_at: datetime
    raw: dict[str, Any]
    provider: str = PROVIDER  # "sendgrid"; "dsn" / "arf" for reports read from the bounce mailbox


@dataclass
class EventCounts:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0  # open/click with tracking off: not stored at all
    suppressed: int = 0  # addresses newly put on the suppression list
    cancelled: int = 0  # scheduled deliveries cancelled because of an event
    by_type: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "suppressed": self.suppressed,
            "cancelled": self.cancelled,
            "by_type": dict(sorted(self.by_type.items())),
        }


def _delivery_id(value: Any) -> int | None:
    # custom_args values are strings on the wire ("42"); SendGrid flattens them into the event.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
        return n if 0 < n < 2**63 else None
    return None


def _occurred_at(value: Any, fallback: datetime) -> datetime:
    try:
        ts = float(value)
        return datetime.fromtimestamp(ts, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _synthetic_id(raw: dict[str, Any]) -> str:
    # Events without sg_event_id (very old accounts, hand-made tests) still dedupe: hash the event.
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalize_sendgrid(raw: dict[str, Any], *, now: datetime | None = None) -> NormalizedEvent:
    """One SendGrid event object -> NormalizedEvent. Never raises on odd content: unknown stays unknown."""
    name = raw.get("event")
    etype = _BY_NAME.get(name, EventType.UNKNOWN) if isinstance(name, str) else EventType.UNKNOWN
    sg_id = raw.get("sg_event_id")
    provider_event_id = sg_id.strip()[:200] if isinstance(sg_id, str) and sg_id.strip() else _synthetic_id(raw)
    email = raw.get("email")
    return NormalizedEvent(
        type=etype,
        provider_event_id=provider_event_id,
        email_key=email.strip().lower()[:320] if isinstance(email, str) else "",
        delivery_id=_delivery_id(raw.get("delivery_id")),
        occurred_at=_occurred_at(raw.get("timestamp"), now or datetime.now(timezone.utc)),
        raw=raw,
    )


def _suppression_for(event: NormalizedEvent) -> tuple[SubscriberStatus, str] | None:
    """(status, suppression reason) when this event means the address must not be mailed again."""
    t = event.type
    if t is EventType.BOUNCE:
        kind = str(event.raw.get("type", "bounce")).strip().lower()
        return None if kind in _SOFT_BOUNCE_TYPES else (SubscriberStatus.BOUNCED, "bounce")
    if t is EventType.DROPPED:
        status = _DROPPED_ADDRESS_REASONS.get(str(event.raw.get("reason", "")).strip().lower())
        if status is None:
            return None
        reason = {SubscriberStatus.BOUNCED: "bounce", SubscriberStatus.UNSUBSCRIBED: "unsubscribe",
                  SubscriberStatus.COMPLAINED: "complaint"}[status]
        return status, reason
    if t is EventType.SPAMREPORT:
        return SubscriberStatus.COMPLAINED, "complaint"
    if t in (EventType.UNSUBSCRIBE, EventType.GROUP_UNSUBSCRIBE):
        return SubscriberStatus.UNSUBSCRIBED, "unsubscribe"
    return None


def _outcome_for(event: NormalizedEvent) -> str | None:
    t = event.type
    if t is EventType.DELIVERED:
        return "delivered"
    if t is EventType.DEFERRED:
        return "deferred"
    if t is EventType.BOUNCE:
        kind = str(event.raw.get("type", "bounce")).strip().lower()
        return "deferred" if kind in _SOFT_BOUNCE_TYPES else "bounced"
    if t is EventType.DROPPED:
        return "dropped"
    if t is EventType.SPAMREPORT:
        return "complained"
    return None


def _store(session: Session, event: NormalizedEvent, now: datetime) -> bool:
    """Insert the event; False if its provider_event_id is already stored (a replay)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(Event)
        .values(
            provider=event.provider,
            provider_event_id=event.provider_event_id,
            type=event.type.value,
            delivery_id=event.delivery_id if event.delivery_id is not None and event.delivery_id < 2**31 else None,
            email_key=event.email_key,
            occurred_at=event.occurred_at,
            raw=event.raw,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(Event.id)  # rowcount is -1 on psycopg for ON CONFLICT; RETURNING is exact
    )
    return session.execute(stmt).first() is not None


def _set_outcome(session: Session, event: NormalizedEvent, outcome: str) -> None:
    if event.delivery_id is None:
        return
    delivery = session.get(Delivery, event.delivery_id)
    if delivery is None:
        return
    # Several installs can share one SendGrid account and webhook; a delivery id from another
    # one must not touch our row. The address must match the delivery's subscriber.
    owner = session.get(Subscriber, delivery.subscriber_id)
    if owner is None or owner.email_key != event.email_key:
        return
    current = _OUTCOME_RANK.get(delivery.outcome or "", -1)
    if _OUTCOME_RANK[outcome] >= current:
        delivery.outcome = outcome


def _apply_suppression(session: Session, event: NormalizedEvent, status: SubscriberStatus, reason: str,
                       now: datetime, counts: EventCounts, source: str | None = None) -> None:
    if not event.email_key:
        return
    source = source or f"{event.provider}:{event.type.value}"
    if suppress(session, event.email_key, reason, source, now):
        counts.suppressed += 1
    sub = session.scalar(select(Subscriber).where(Subscriber.email_key == event.email_key))
    if sub is None:  # not (or no longer) a subscriber: the suppression row still blocks a re-import
        return
    if _SEVERITY[status.value] > _SEVERITY.get(sub.status, 0):
        sub.status = status.value
        sub.updated_at = now
        _emit_status(session, sub.id, status, source, now)
    counts.cancelled += cancel_pending(session, sub.id, reason=f"{source.replace(':', ' ')}: address suppressed",
                                       now=now)


def _emit_status(session: Session, subscriber_id: int, status: SubscriberStatus, source: str, now: datetime) -> None:
    from webhooks.outbox import emit

    if status is SubscriberStatus.UNSUBSCRIBED:
        emit(session, "subscriber.unsubscribed", [{"subscriber_id": subscriber_id, "scope": "all", "campaign": None}],
             now)
    else:
        emit(session, f"subscriber.{status.value}", [{"subscriber_id": subscriber_id, "source": source}], now)


def apply_events(session: Session, events: Iterable[NormalizedEvent], settings: Settings, now: datetime) -> EventCounts:
    """Store new events once each and act on them, in the caller's transaction."""
    counts = EventCounts()
    for event in events:
        counts.received += 1
        counts.by_type[event.type.value] += 1
        if event.type in _TRACKING and not settings.tracking:
            counts.ignored += 1
            continue
        if not _store(session, event, now):
            counts.duplicates += 1
            continue
        counts.stored += 1
        outcome = _outcome_for(event)
        if outcome:
            _set_outcome(session, event, outcome)
        suppression = _suppression_for(event)
        if suppression:
            _apply_suppression(session, event, *suppression, now, counts)
    return counts
