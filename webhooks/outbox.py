"""The outbox: webhook events written in the same transaction as the change they report.

`emit(session, type, items, now)` finds the active endpoints subscribed to `type` (one small
query), and when there are any writes one `webhook_events` row per item and one
`webhook_deliveries` row per (event, endpoint), each as one multi-row INSERT. Nothing is sent
here: the worker's webhook job (webhooks/sender.py) delivers later, so a slow receiver never
holds a transaction or a send. If the change rolls back, its events go with it; if it commits,
they are there for the worker.

Payloads carry opaque ids and the event's own facts, never an address, a name, a subject, a
step's title or any content: a receiver looks the patient up through the API if it is allowed
to. What each type's `data` holds is listed in `FIELDS` (and in the README).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Callable, Iterable, Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from drip.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

FIELDS: dict[str, tuple[str, ...]] = {
    "subscriber.subscribed": ("subscriber_id", "status", "source"),
    "subscriber.confirmed": ("subscriber_id",),
    "subscriber.unsubscribed": ("subscriber_id", "scope", "campaign"),
    "subscriber.bounced": ("subscriber_id", "source"),
    "subscriber.complained": ("subscriber_id", "source"),
    "email.sent": ("delivery_id", "subscriber_id", "campaign", "step", "broadcast_id"),
    "enrollment.started": ("enrollment_id", "subscriber_id", "campaign", "source"),
    "enrollment.completed": ("enrollment_id", "subscriber_id", "campaign"),
    "enrollment.exited": ("enrollment_id", "subscriber_id", "campaign", "reason"),
}
TYPES: tuple[str, ...] = tuple(FIELDS)
ALIASES = {t.split(".", 1)[1]: t for t in TYPES if t.startswith("subscriber.")} | {"sent": "email.sent"}


def check_types(names: Iterable[str]) -> list[str]:
    """Event type names as staff type them ("confirmed", "email.sent", "enrollment.*"); [] = all."""
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name in ("*", "all"):
            return []
        if name.endswith(".*"):
            found = [t for t in TYPES if t.startswith(name[:-1])]
        else:
            found = [ALIASES.get(name, name)] if ALIASES.get(name, name) in TYPES else []
        if not found:
            from drip.errors import InputError

            raise InputError(f"unknown event type {raw.strip()!r} (one of: {', '.join(TYPES)})", where="--events")
        out.extend(t for t in found if t not in out)
    return out


def targets(session: Session, type_: str) -> list[int]:
    """Active endpoints that want `type_` (one query over a table of a few rows)."""
    return targets_of(session, (type_,))[type_]


def targets_of(session: Session, types: Sequence[str]) -> dict[str, list[int]]:
    """`targets` for several types with one query."""
    rows = session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))).all()
    return {t: [eid for eid, wanted in rows if not wanted or t in wanted] for t in types}


def new_id() -> str:
    return "msg_" + secrets.token_hex(12)


def write(session: Session, type_: str, items: Sequence[dict], endpoint_ids: Sequence[int], now: datetime, *,
          key: Callable[[dict], str] | None = None) -> int:
    """Write the events for these endpoints (already chosen). Returns the events written.

    `key`: the event's id from its data (e.g. `msg_sent_<delivery_id>`) for an event that must
    exist once whatever happens: the events are then inserted with ON CONFLICT DO NOTHING (SQLite
    and PostgreSQL alike) and deliveries are written only for the events this call inserted, so
    a transaction run again (a record retried after a commit whose answer was lost) never doubles
    one. Without `key` each event gets a fresh random id."""
    if not items or not endpoint_ids:
        return 0
    stamp = now.isoformat().replace("+00:00", "Z")
    events = []
    for data in items:
        events.append({"id": key(data) if key else new_id(), "type": type_, "created_at": now,
                       "payload": json.dumps({"type": type_, "timestamp": stamp, "data": data},
                                             separators=(",", ":"), ensure_ascii=False)})
    if key is None:
        session.execute(insert(WebhookEvent), events)
        ids = [e["id"] for e in events]
    else:
        ids = _insert_new(session, events)
    if not ids:
        return 0
    session.execute(insert(WebhookDelivery), [
        {"event_id": eid, "endpoint_id": ep, "status": "pending", "attempts": 0, "next_attempt_at": now,
         "last_error": "", "created_at": now}
        for eid in ids for ep in endpoint_ids
    ])
    return len(ids)


def _insert_new(session: Session, events: list[dict]) -> list[str]:
    """INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id: the ids of the events not there yet."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - drip runs on these two
        raise RuntimeError(f"no ON CONFLICT insert for {name}")
    table = WebhookEvent.__table__
    ids: list[str] = []
    for i in range(0, len(events), 500):  # 4 parameters a row: well under SQLite's variable limit
        stmt = dialect_insert(table).values(events[i:i + 500]).on_conflict_do_nothing(
            index_elements=[table.c.id]).returning(table.c.id)
        ids.extend(session.scalars(stmt))
    return ids


def emit(session: Session, type_: str, items: Sequence[dict] | Callable[[], Sequence[dict]], now: datetime) -> int:
    """Record `type_` events (a list of `data` dicts, or a function making them only when some
    endpoint wants this type) in the caller's transaction. Returns the events written."""
    assert type_ in FIELDS, type_
    endpoint_ids = targets(session, type_)
    if not endpoint_ids:
        return 0
    data = items() if callable(items) else items
    return write(session, type_, data, endpoint_ids, now)
