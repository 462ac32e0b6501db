"""The outbox: webhook events written in the same transaction as the change they report.

`emit(session, type, items, now)` finds the active endpoints subscribed to `type` (one small
query), and when there are any writes one `webhook_events` row per item and one
`webhook_deliveries` row per (event, endpoint), each as one multi-row INSERT. Nothing is sent
here: the worker's webhook job (webhooks/sender.py) delivers later, so a slow receiver never
holds a transaction or a send. If the change rolls back, its events go with it; if it commits,
they are there for the worker. (email.sent and enrollment.completed are written from the
ledger by the webhook job instead: webhooks/derived.py.)

Payloads carry opaque ids and the event's own facts, never an address, a name, a subject, a
step's title or any content: a receiver looks the patient up through the API if it is allowed
to. What each type's `data` holds is listed in `FIELDS` (and in the README).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import WebhookEndpoint

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
          key: Callable[[dict], str] | None = None, times: Sequence[datetime] | None = None) -> int:
    """Write the events for these endpoints (already chosen). Returns the events written.

    `key`: the event's id from its data (e.g. `msg_sent_<delivery_id>`) for an event that must
    exist once whatever happens: ids already there are left out (one indexed look-up per chunk),
    the rest inserted with ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike), and deliveries
    are written only for the events this call added, so a transaction run again (a record retried
    after a commit whose answer was lost) never doubles one. Without `key` each event gets a
    fresh random id. `times`: each item's own time (the payload's `timestamp`, the rows'
    created_at and first attempt) instead of `now`, e.g. when the send it reports was recorded.

    The rows go through the driver's executemany (two statements, whatever the count): SQLAlchemy's
    per-row statement building cost ~150 us an event (profiled in `drip bench webhooks`), ~10 this way."""
    if not items or not endpoint_ids:
        return 0
    session.flush()  # the caller's pending ORM rows first (the driver statements below skip autoflush)
    conn = session.connection()
    rows = event_rows(conn.dialect.name, type_, items, now, key=key, times=times)
    return insert_rows(session, rows, endpoint_ids, keyed=key is not None)


EventRow = tuple  # (id, type, payload, stored time): what insert_rows writes


def event_rows(dialect: str, type_: str, items: Sequence[dict], now: datetime, *,
               key: Callable[[dict], str] | None = None, times: Sequence[datetime] | None = None) -> list[EventRow]:
    """The events' rows, payloads made (no database needed: webhooks/derived.py makes them before
    it takes the write lock). With `key`, one row per id."""
    pg = dialect == "postgresql"
    stamps: dict[datetime, tuple] = {}

    def stamp(when: datetime) -> tuple:  # (the stored time, the payload's head): once per distinct time
        found = stamps.get(when)
        if found is None:
            utc = when.astimezone(timezone.utc)
            found = stamps[when] = (utc if pg else utc.strftime("%Y-%m-%d %H:%M:%S.%f"),  # UTCDateTime's form on SQLite
                                    '{"type":' + json.dumps(type_) + ',"timestamp":'
                                    + json.dumps(utc.isoformat().replace("+00:00", "Z")) + ',"data":')
        return found

    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    rows = []
    for i, data in enumerate(items):
        at, head = stamp(times[i] if times is not None else now)
        rows.append(((key(data) if key else new_id()), type_, head + dumps(data) + "}", at))
    if key is not None:
        rows = list({r[0]: r for r in rows}.values())  # one event per id, whatever the caller passed
    return rows


def insert_rows(session: Session, rows: list[EventRow], endpoint_ids: Sequence[int], *, keyed: bool) -> int:
    """Insert `event_rows` and one delivery per (event, endpoint); keyed: ids already there left out."""
    if not rows or not endpoint_ids:
        return 0
    conn = session.connection()
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    if keyed:
        have: set[str] = set()
        for i in range(0, len(rows), 500):
            part = [r[0] for r in rows[i:i + 500]]
            have.update(r[0] for r in conn.exec_driver_sql(
                f"SELECT id FROM webhook_events WHERE id IN ({', '.join([mark] * len(part))})", tuple(part)))
        if have:
            rows = [r for r in rows if r[0] not in have]
        if not rows:
            return 0
    conn.exec_driver_sql(
        f"INSERT INTO webhook_events (id, type, payload, created_at) VALUES ({mark}, {mark}, {mark}, {mark})"
        + (" ON CONFLICT (id) DO NOTHING" if keyed else ""), rows)
    conn.exec_driver_sql(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, last_error, "
        f"created_at) VALUES ({mark}, {mark}, 'pending', 0, {mark}, '', {mark})",
        [(r[0], ep, r[3], r[3]) for r in rows for ep in endpoint_ids])
    return len(rows)


def emit(session: Session, type_: str, items: Sequence[dict] | Callable[[], Sequence[dict]], now: datetime) -> int:
    """Record `type_` events (a list of `data` dicts, or a function making them only when some
    endpoint wants this type) in the caller's transaction. Returns the events written."""
    assert type_ in FIELDS, type_
    endpoint_ids = targets(session, type_)
    if not endpoint_ids:
        return 0
    data = items() if callable(items) else items
    return write(session, type_, data, endpoint_ids, now)
