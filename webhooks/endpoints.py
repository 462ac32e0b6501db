"""Managing endpoints (staff pages and `drip webhooks`): add, rotate the secret, disable, replay.

Rotation keeps the old secret signing beside the new one for `ROTATION_GRACE` (24 h by default),
so a receiver can be switched to the new secret at leisure without failing a single event.
A replay makes a delivery due again now, with fresh attempts; the event keeps its webhook-id, so a
receiver that did get it the first time recognises the repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from drip.errors import InputError, NotFoundError
from drip.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks import signing
from webhooks.outbox import check_types
from webhooks.targets import check_form, resolve

ROTATION_GRACE = timedelta(hours=24)


def add_endpoint(session: Session, url: str, events: Iterable[str], now: datetime, *, allow_private: bool,
                 description: str = "", check_dns: bool = True) -> WebhookEndpoint:
    """Check the URL (form, and that it resolves to an allowed address) and store it with a new secret."""
    url = check_form(url)
    types = check_types(events)
    if check_dns:
        try:
            resolve(url, allow_private=allow_private)
        except LookupError as exc:
            raise InputError(str(exc), where="url") from None
    endpoint = WebhookEndpoint(url=url, secret=signing.new_secret(), events=types, active=True,
                               description=" ".join(description.split())[:200], created_at=now)
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    found = session.get(WebhookEndpoint, endpoint_id)
    if found is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id}", where="endpoint")
    return found


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def rotate_secret(session: Session, endpoint: WebhookEndpoint, now: datetime,
                  grace: timedelta = ROTATION_GRACE) -> str:
    """A new secret; the old one keeps signing (a second signature) until now + grace."""
    endpoint.previous_secret, endpoint.previous_until = endpoint.secret, now + grace
    endpoint.secret = signing.new_secret()
    session.flush()
    return endpoint.secret


def set_active(session: Session, endpoint: WebhookEndpoint, active: bool) -> None:
    """Disable (no new events; those already waiting stay pending, unposted) or enable again (they go)."""
    endpoint.active = active
    session.flush()


def replay(session: Session, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Make one delivery due again now with fresh attempts (a failed or delivered one)."""
    row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"no webhook delivery {delivery_id}", where="delivery")
    if row.status == "sending":
        raise InputError("this delivery is being posted right now", where="delivery")
    row.status, row.attempts, row.next_attempt_at, row.claimed_by, row.lease_until = "pending", 0, now, None, None
    row.last_error = f"replayed (was: {row.last_error or row.status})"[:2000]
    session.flush()
    return row


@dataclass(frozen=True)
class LogRow:
    id: int
    endpoint_id: int
    event_id: str
    type: str
    status: str
    attempts: int
    last_code: int | None
    last_error: str
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


def delivery_log(session: Session, endpoint_id: int | None = None, *, status: str | None = None,
                 limit: int = 100) -> list[LogRow]:
    q = (select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookEvent.id, WebhookEvent.type,
                WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.last_code,
                WebhookDelivery.last_error, WebhookDelivery.next_attempt_at, WebhookDelivery.created_at,
                WebhookDelivery.delivered_at)
         .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
         .order_by(WebhookDelivery.id.desc()).limit(limit))
    if endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        q = q.where(WebhookDelivery.status == status)
    return [LogRow(*r) for r in session.execute(q)]


def counts_by_status(session: Session, endpoint_id: int) -> dict[str, int]:
    return dict(session.execute(select(WebhookDelivery.status, func.count()).where(
        WebhookDelivery.endpoint_id == endpoint_id).group_by(WebhookDelivery.status)).all())
