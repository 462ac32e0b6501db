"""`email.sent` and `enrollment.completed`, written from the ledger by the webhook job.

Every other event is written in the transaction of its change (webhooks/outbox.py). These two
report a send, and the ledger row the record writes (`sent`, `sent_at`) already is the durable
fact; writing their outbox rows inside the sender's record cost the sender ~80 us of CPU an
email and held the database's write lock longer (profiled in `drip bench webhooks`). So the
record only marks the row (`mark_sent`, in its own transaction and UPDATE): `hooks_until` = the
highest endpoint id that wanted either event at that moment, and `hooks_completed` = the send
left its enrollment active with nothing scheduled or sending (today's test for completion,
decided in the same transaction as before). `publish` - run by the webhook job before each claim
(webhooks/sender.py), so within about a second of the send - writes the events for the marked
rows and clears the marks in one transaction: a crash before it leaves the marks for the next
run, a crash after it leaves nothing to do, so no event is lost or written twice (and the ids,
`msg_sent_<delivery id>` / `msg_completed_<enrollment id>`, are inserted once whatever happens).

The events are the ones the record used to write: same types, ids, fields and payload bytes,
their `timestamp` the send's `sent_at`. They go to the endpoints that wanted them when the send
was recorded (an endpoint added after it gets none: ids only grow) and are still active and
subscribed to the type when `publish` runs, a second or so later.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Iterable

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, aliased

from drip.models import Campaign, Delivery, Enrollment, Step
from webhooks.outbox import write

TYPES = ("email.sent", "enrollment.completed")
BATCH = 500  # marked rows per publish transaction: short enough not to hold SQLite's lock for long

_ENDPOINTS = "SELECT id, events FROM webhook_endpoints WHERE active = TRUE"

# The chunk's rows that completed their enrollment, as the record used to find them: the
# enrollment still active, nothing of it scheduled or sending. By primary key and this worker's
# claim only (coalesce() keeps SQLite's planner off the partial index: the chunk's ids decide).
_COMPLETED = text(
    "UPDATE deliveries SET hooks_completed = TRUE "
    "WHERE id IN :ids AND claimed_by = :worker AND coalesce(hooks_until, 0) > 0 "
    "AND EXISTS (SELECT 1 FROM enrollments e WHERE e.id = deliveries.enrollment_id AND e.state = 'active') "
    "AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.enrollment_id = deliveries.enrollment_id "
    "AND p.status IN ('scheduled', 'sending'))"
).bindparams(bindparam("ids", expanding=True))


def _wants(events: object, type_: str) -> bool:
    if isinstance(events, str):  # SQLite hands JSON back as text through the driver
        events = json.loads(events or "[]")
    return not events or type_ in events


def endpoints(session: Session) -> list[tuple[int, object]]:
    """(id, event types) of the active endpoints, through the driver (a table of a few rows)."""
    return [tuple(r) for r in session.connection().exec_driver_sql(_ENDPOINTS)]


def marks(session: Session) -> tuple[int | None, bool]:
    """For a record about to write sent rows: (hooks_until, completion wanted). (None, False):
    no endpoint wants either event, nothing is marked (a clinic without webhooks pays one query)."""
    found = endpoints(session)
    sent_to = [eid for eid, ev in found if _wants(ev, TYPES[0])]
    done_to = [eid for eid, ev in found if _wants(ev, TYPES[1])]
    return (max(sent_to + done_to) if sent_to or done_to else None), bool(done_to)


def mark_completed(session: Session, ids: list[int], worker_id: str) -> None:
    """In the record's transaction, after its sent rows were written: flag the sends that completed
    their enrollment (one statement per 500 rows)."""
    conn = session.connection()
    for i in range(0, len(ids), 500):
        conn.execute(_COMPLETED, {"ids": ids[i:i + 500], "worker": worker_id})


def publish(session: Session, limit: int = BATCH) -> int:
    """Write the events of up to `limit` marked rows and clear their marks, in the caller's
    transaction. Returns the rows done. Several workers at once on PostgreSQL skip each other's
    rows (SKIP LOCKED); SQLite has one writer at a time."""
    ec = aliased(Campaign)
    q = (select(Delivery.id, Delivery.subscriber_id, Campaign.slug, Step.position, Delivery.broadcast_id,
                Delivery.sent_at, Delivery.hooks_until, Delivery.hooks_completed, Delivery.enrollment_id,
                Enrollment.subscriber_id, ec.slug)
         .outerjoin(Step, Step.id == Delivery.step_id).outerjoin(Campaign, Campaign.id == Step.campaign_id)
         .outerjoin(Enrollment, Enrollment.id == Delivery.enrollment_id).outerjoin(ec, ec.id == Enrollment.campaign_id)
         .where(Delivery.hooks_until.is_not(None)).order_by(Delivery.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(of=Delivery, skip_locked=True)
    rows = session.execute(q).all()
    if not rows:
        return 0
    active = endpoints(session)
    rows.sort(key=lambda r: (r[5], r[0]))  # as the records wrote them: by send, then delivery id

    def to(type_: str, until: int) -> tuple[int, ...]:
        return tuple(eid for eid, ev in active if eid <= until and _wants(ev, type_))

    sent: dict[tuple[int, ...], list] = {}
    done: dict[tuple[int, ...], list] = {}
    for did, sid, slug, pos, bid, at, until, completed, eid, esid, eslug in rows:
        sent.setdefault(to(TYPES[0], until), []).append(
            ({"delivery_id": did, "subscriber_id": sid, "campaign": slug, "step": pos, "broadcast_id": bid}, at))
        if completed and eid is not None:
            done.setdefault(to(TYPES[1], until), []).append(
                ({"enrollment_id": eid, "subscriber_id": esid, "campaign": eslug}, at))
    for eps, items in sent.items():
        _write(session, TYPES[0], eps, items, lambda d: f"msg_sent_{d['delivery_id']}")
    for eps, items in done.items():
        items.sort(key=lambda item: (item[1], item[0]["enrollment_id"]))
        _write(session, TYPES[1], eps, items, lambda d: f"msg_completed_{d['enrollment_id']}")
    ids = [r[0] for r in rows]
    t = Delivery.__table__
    for i in range(0, len(ids), 500):
        session.execute(update(t).where(t.c.id.in_(ids[i:i + 500])).values(hooks_until=None, hooks_completed=None))
    return len(rows)


def _write(session: Session, type_: str, eps: Iterable[int], items: list[tuple[dict, datetime]], key) -> None:
    eps = list(eps)
    if eps:
        write(session, type_, [d for d, _ in items], eps, items[0][1], key=key, times=[at for _, at in items])
