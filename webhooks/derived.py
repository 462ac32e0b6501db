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
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, aliased

from drip.models import Campaign, Delivery, Enrollment, Step
from webhooks.outbox import event_rows, insert_rows

TYPES = ("email.sent", "enrollment.completed")
BATCH = 200  # marked rows per claim: the write lock is held ~6 ms for them (SQLite, 2 cores)

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


@dataclass
class Ready:
    """Marked rows read and their events made (`prepare`), to be written by `publish`."""

    ids: list[int] = field(default_factory=list)
    # endpoint ids -> [(delivery id, event row)], the rows made by outbox.event_rows
    groups: dict[tuple[int, ...], list[tuple[int, tuple]]] = field(default_factory=dict)


def prepare(session: Session, limit: int = BATCH) -> Ready:
    """Read up to `limit` marked rows and make their events (no lock needed: on SQLite the webhook
    job does this in a read transaction, so the write lock is held only for the inserts)."""
    ec = aliased(Campaign)
    q = (select(Delivery.id, Delivery.subscriber_id, Campaign.slug, Step.position, Delivery.broadcast_id,
                Delivery.sent_at, Delivery.hooks_until, Delivery.hooks_completed, Delivery.enrollment_id,
                Enrollment.subscriber_id, ec.slug)
         .outerjoin(Step, Step.id == Delivery.step_id).outerjoin(Campaign, Campaign.id == Step.campaign_id)
         .outerjoin(Enrollment, Enrollment.id == Delivery.enrollment_id).outerjoin(ec, ec.id == Enrollment.campaign_id)
         .where(Delivery.hooks_until.is_not(None)).order_by(Delivery.id).limit(limit))
    rows = session.execute(q).all()
    ready = Ready([r[0] for r in rows])
    if not rows:
        return ready
    active = endpoints(session)
    rows.sort(key=lambda r: (r[5], r[0]))  # as the records wrote them: by send, then delivery id

    def to(type_: str, until: int) -> tuple[int, ...]:
        return tuple(eid for eid, ev in active if eid <= until and _wants(ev, type_))

    dialect = session.get_bind().dialect.name
    sent, done = [], []
    for did, sid, slug, pos, bid, at, until, completed, eid, esid, eslug in rows:
        sent.append((to(TYPES[0], until), did, at,
                     {"delivery_id": did, "subscriber_id": sid, "campaign": slug, "step": pos, "broadcast_id": bid}))
        if completed and eid is not None:
            done.append((to(TYPES[1], until), did, at, {"enrollment_id": eid, "subscriber_id": esid, "campaign": eslug}))
    done.sort(key=lambda d: (d[2], d[3]["enrollment_id"]))  # by send, then enrollment id
    for type_, items, key in ((TYPES[0], sent, lambda d: f"msg_sent_{d['delivery_id']}"),
                              (TYPES[1], done, lambda d: f"msg_completed_{d['enrollment_id']}")):
        for (eps, did, at, data) in items:
            if eps:
                row = event_rows(dialect, type_, [data], at, key=key)[0]
                ready.groups.setdefault(eps, []).append((did, row))
    return ready


def publish(session: Session, limit: int = BATCH, *, ready: Ready | None = None) -> int:
    """Write the events of up to `limit` marked rows (or of `ready`, read beforehand) and clear
    their marks, in the caller's transaction. Returns the rows done. Only rows still marked now
    are written: another job may have done some meanwhile (on PostgreSQL, rows another job holds
    are skipped: SKIP LOCKED; SQLite has one writer at a time)."""
    if ready is None:
        ready = prepare(session, limit)
    if not ready.ids:
        return 0
    still: set[int] = set()
    pg = session.get_bind().dialect.name == "postgresql"
    for i in range(0, len(ready.ids), 500):
        q = select(Delivery.id).where(Delivery.id.in_(ready.ids[i:i + 500]), Delivery.hooks_until.is_not(None))
        still.update(session.scalars(q.with_for_update(skip_locked=True) if pg else q))
    if not still:
        return 0
    for eps, items in ready.groups.items():
        insert_rows(session, list({row[0]: row for did, row in items if did in still}.values()), eps, keyed=True)
    ids = sorted(still)
    t = Delivery.__table__
    for i in range(0, len(ids), 500):
        session.execute(update(t).where(t.c.id.in_(ids[i:i + 500])).values(hooks_until=None, hooks_completed=None))
    return len(ids)
