"""Erasing a subscriber (the REST API's DELETE): the patient's personal data goes, opt-outs stay.

What goes: the subscriber row and, through the foreign keys' ON DELETE CASCADE, their tags,
custom attribute values, reported events (subscriber_events), enrollments, campaign opt-outs and
every delivery (scheduled ones would otherwise still be sent;
sent ones record who got which email, which is personal data too), plus the provider events
stored for the address (their raw payload holds it).

What stays: one suppression entry keyed by a hash of the address (subscribers.suppression.erased_key),
never the address itself, so the patient is never re-added - not by an import of an old list, the
booking system or the API - and nobody who does not already hold the address learns anything from
it. Its reason is the one the patient had (unsubscribe, bounce, complaint), else "erased". A plain
entry for the address (an earlier unsubscribe) is replaced by the hashed one.

Why not "mark deleted": a soft-deleted row still holds the name, address and history the patient
asked us to erase.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from drip.models import Event, Subscriber, SubscriberStatus, Suppression
from subscribers.suppression import erased_key, suppress

_KEEP_SUPPRESSED = {
    SubscriberStatus.UNSUBSCRIBED.value: "unsubscribe",
    SubscriberStatus.BOUNCED.value: "bounce",
    SubscriberStatus.COMPLAINED.value: "complaint",
}


def erase_subscriber(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Erase as described above. Returns True if the hashed suppression entry was written now."""
    key = subscriber.email_key
    plain = session.get(Suppression, key)
    reason = plain.reason if plain is not None else _KEEP_SUPPRESSED.get(subscriber.status, "erased")
    if plain is not None:
        session.delete(plain)
        session.flush()
    added = suppress(session, erased_key(key), reason, "erased", now)
    session.execute(delete(Event).where(Event.email_key == key))
    # Core DELETE so the database's cascades do the work in one statement per table.
    session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
    session.expunge(subscriber)
    return added
