"""The suppression list and cancelling mail that has not gone out yet.

A suppressed address is never sent to again, whoever asks (a bounce, a spam complaint, an
"unsubscribe from everything", staff). The list is keyed by the lower-cased address, not the
subscriber id, so an address that bounced stays blocked even if it is imported again later.

An erased patient leaves only `erased_key(address)` behind: a SHA-256 of the lower-cased address,
never the address itself. It answers "was this address erased?" for whoever already holds the
address (an import, the API, a sign-up form), so an erased patient is never re-added, and it
tells nobody else anything.

`cancel_pending` only touches rows still `scheduled`. A row in `sending` has been claimed by a
worker and may already be with the provider: it cannot be recalled, and rewriting it would make
the ledger lie about what went out (the worker's `record()` only updates rows it still holds in
`sending`). The dispatcher re-checks suppression, subscriber status and opt-outs after claiming,
so such a row is cancelled there unless it was already handed to the backend; a row whose worker
died comes back as `scheduled` after its lease and is cancelled at that check too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from drip.models import Delivery, DeliveryStatus, Enrollment, EnrollmentState, Suppression

ERASED_PREFIX = "sha256:"


def erased_key(email_key: str) -> str:
    """What the suppression list keeps of an erased patient's address: a one-way hash."""
    import hashlib

    return ERASED_PREFIX + hashlib.sha256(email_key.strip().lower().encode("utf-8")).hexdigest()


def erased_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these (lower-cased) addresses belong to erased patients: one query per 500."""
    by_hash = {erased_key(k): k.strip().lower() for k in keys if k}
    hashes = sorted(by_hash)
    found: set[str] = set()
    for i in range(0, len(hashes), _CHUNK):
        found.update(by_hash[h] for h in session.scalars(
            select(Suppression.email_key).where(Suppression.email_key.in_(hashes[i : i + _CHUNK]))))
    return found


# Keep IN lists well under SQLite's bound-parameter limit and PostgreSQL's comfortable plan size.
_CHUNK = 500


def suppress(session: Session, email_key: str, reason: str, source: str, now: datetime) -> bool:
    """Put an address on the suppression list. Idempotent: True if it was added now.

    The first reason wins (a later "unsubscribe" does not overwrite an earlier "bounce"), and a
    concurrent insert of the same address is not an error (ON CONFLICT DO NOTHING on both
    SQLite and PostgreSQL).
    """
    key = email_key.strip().lower()
    if not key:
        raise ValueError("cannot suppress an empty address")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(Suppression)
        .values(email_key=key, reason=reason[:32], source=source[:64], created_at=now)
        .on_conflict_do_nothing(index_elements=["email_key"])
        # RETURNING, not rowcount: psycopg reports rowcount -1 for INSERT .. ON CONFLICT here.
        .returning(Suppression.email_key)
    )
    return session.execute(stmt).first() is not None


def unsuppress(session: Session, email_key: str, *, only_reasons: Iterable[str] | None = None) -> bool:
    """Take an address off the list (resubscribe / staff). `only_reasons` limits which entries may go."""
    row = session.get(Suppression, email_key.strip().lower())
    if row is None or (only_reasons is not None and row.reason not in set(only_reasons)):
        return False
    session.delete(row)
    session.flush()
    return True


def suppression_of(session: Session, email_key: str) -> Suppression | None:
    """The entry for this address: its own, or the hash an erasure left."""
    key = email_key.strip().lower()
    return session.get(Suppression, key) or session.get(Suppression, erased_key(key))


def is_suppressed(session: Session, email_key: str) -> bool:
    key = email_key.strip().lower()
    return session.scalar(select(Suppression.email_key)
                          .where(Suppression.email_key.in_((key, erased_key(key)))).limit(1)) is not None


def suppressed_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these (lower-cased) keys are suppressed: one query per 500 keys, for the dispatcher."""
    wanted = sorted({k.strip().lower() for k in keys if k})
    found: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        found.update(session.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(chunk))))
    return found


def cancel_pending(session: Session, subscriber_id: int, campaign_id: int | None = None, *, reason: str,
                   now: datetime | None = None) -> int:
    """Cancel this subscriber's not-yet-claimed deliveries and stop their active enrollments.

    With `campaign_id` only that campaign's deliveries and enrollment; without it every
    scheduled delivery (campaign steps and newsletters) and every active enrollment. Rows in
    `sending` are left alone (see the module docstring). Returns the number of deliveries cancelled.
    """
    enrollments = select(Enrollment.id).where(Enrollment.subscriber_id == subscriber_id)
    deliveries = update(Delivery).where(
        Delivery.subscriber_id == subscriber_id, Delivery.status == DeliveryStatus.SCHEDULED.value
    )
    if campaign_id is not None:
        enrollments = enrollments.where(Enrollment.campaign_id == campaign_id)
        deliveries = deliveries.where(Delivery.enrollment_id.in_(enrollments.scalar_subquery()))
    result = session.execute(
        deliveries.values(status=DeliveryStatus.CANCELLED.value, last_error=reason).execution_options(
            synchronize_session="fetch"
        )
    )
    from webhooks.outbox import emit

    def stopped() -> list[dict]:  # read before the update below, only when an endpoint wants it
        from drip.models import Campaign

        return [{"enrollment_id": eid, "subscriber_id": subscriber_id, "campaign": slug, "reason": reason}
                for eid, slug in session.execute(
                    select(Enrollment.id, Campaign.slug).join(Campaign, Campaign.id == Enrollment.campaign_id)
                    .where(Enrollment.id.in_(enrollments.scalar_subquery()),
                           Enrollment.state == EnrollmentState.ACTIVE.value).order_by(Enrollment.id))]

    emit(session, "enrollment.exited", stopped, now or datetime.now(timezone.utc))
    session.execute(
        update(Enrollment)
        .where(Enrollment.id.in_(enrollments.scalar_subquery()), Enrollment.state == EnrollmentState.ACTIVE.value)
        .values(state=EnrollmentState.CANCELLED.value)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount or 0
