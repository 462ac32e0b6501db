"""Erasing a subscriber (the REST API's DELETE): the patient's personal data goes, opt-outs stay.

What goes: the subscriber row and, through the foreign keys' ON DELETE CASCADE, their tags,
custom attribute values, reported events (subscriber_events), enrollments, campaign opt-outs and
every delivery (scheduled ones would otherwise still be sent;
sent ones record who got which email, which is personal data too), plus the provider events
stored for the address (their raw payload holds it).

What stays: the suppression entry. An address that unsubscribed, bounced or complained must never
be mailed again, even if the booking system sends it back next week; the suppression list is keyed
by the lower-cased address and holds nothing else (reason, source, time). If the subscriber is in
one of those states without an entry (older data), one is written before the row goes.

Why not "mark deleted": a soft-deleted row still holds the name, address and history the patient
asked us to erase.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from drip.models import Event, Subscriber, SubscriberStatus
from subscribers.suppression import suppress

_KEEP_SUPPRESSED = {
    SubscriberStatus.UNSUBSCRIBED.value: "unsubscribe",
    SubscriberStatus.BOUNCED.value: "bounce",
    SubscriberStatus.COMPLAINED.value: "complaint",
}


def erase_subscriber(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Erase as described above. Returns True if a suppression entry was written now."""
    added = False
    reason = _KEEP_SUPPRESSED.get(subscriber.status)
    if reason is not None:
        added = suppress(session, subscriber.email_key, reason, "erased", now)
    session.execute(delete(Event).where(Event.email_key == subscriber.email_key))
    # Core DELETE so the database's cascades do the work in one statement per table.
    session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
    session.expunge(subscriber)
    return added
