"""What a patient can do from a link in an email: unsubscribe, pause, resume, choose lists.

The link's signed token (subscribers/tokens.py) is the authentication: whoever holds the email
may act for that address. Every function here is idempotent, because mail clients and people
click twice, and takes `now` so the caller owns the clock.

Unsubscribe scopes:
- "campaign": a `CampaignOptOut` row, that campaign's scheduled deliveries and its enrollment
  cancelled; other mail keeps coming.
- "all": status `unsubscribed`, the address on the suppression list (reason "unsubscribe"),
  every scheduled delivery and every active enrollment cancelled.

Pausing sets status `paused`: scheduled rows stay in the ledger and the dispatcher defers them
while the patient is paused (delivery/dispatcher.py checks the status at send time); resuming
lets them go out again.

Lists: a tag is a patient-facing list when staff gave it a `description` (that text is its label
on the preference page). Tags without one are internal (e.g. "vip", "no-show") and are never
shown to patients. Leaving a list stops newsletters to it; leaving a list that is tied to a
campaign also opts out of that campaign. Joining a list again takes back that opt-out but does
not restart a series by itself (staff or the list's automation enrols).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from drip.errors import InputError
from drip.models import (
    Broadcast,
    Campaign,
    CampaignOptOut,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    Tag,
)
from subscribers.suppression import cancel_pending, suppress, suppression_of, unsuppress
from subscribers.tokens import LinkClaims

Scope = Literal["campaign", "all"]

# Statuses a patient may change from a link. Bounced and complained addresses are not theirs to
# flip back (a complaint or a dead mailbox needs staff), pending needs the confirm link.
_RECEIVING = {SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value}
_UNSUBSCRIBABLE = _RECEIVING | {SubscriberStatus.PENDING.value}


class PreferenceError(InputError):
    """A change the subscriber's current status does not allow (e.g. pausing while unsubscribed)."""


@dataclass(frozen=True)
class UnsubscribeResult:
    scope: Scope
    found: bool  # False: the subscriber no longer exists (erased); nothing to do
    changed: bool  # False: it was already done (a second click)
    cancelled: int  # scheduled deliveries cancelled now
    campaign_title: str | None = None


@dataclass(frozen=True)
class MailingList:
    id: int
    name: str
    label: str
    member: bool
    campaign_id: int | None


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _source(source: str, claims: LinkClaims) -> str:
    # Which email the click came from, for the audit trail ("one-click d123").
    return (f"{source} d{claims.delivery_id}" if claims.delivery_id else source)[:64]


def unsubscribe(
    session: Session, claims: LinkClaims, scope: Scope = "campaign", *, now: datetime, source: str = "link"
) -> UnsubscribeResult:
    """Unsubscribe the token's subscriber from its campaign or from everything. Idempotent."""
    if scope not in ("campaign", "all"):
        raise InputError(f"unknown unsubscribe scope {scope!r} (campaign, all)", where="scope")
    sub = session.get(Subscriber, claims.subscriber_id)
    if sub is None:
        return UnsubscribeResult(scope=scope, found=False, changed=False, cancelled=0)
    if scope == "all":
        changed = False
        if sub.status in _UNSUBSCRIBABLE:
            sub.status = SubscriberStatus.UNSUBSCRIBED.value
            sub.updated_at = now
            changed = True
        changed |= suppress(session, sub.email_key, "unsubscribe", _source(source, claims), now)
        cancelled = cancel_pending(session, sub.id, reason="unsubscribed from all email", now=now)
        if changed:
            from webhooks.outbox import emit

            emit(session, "subscriber.unsubscribed",
                 [{"subscriber_id": sub.id, "scope": "all", "campaign": None}], now)
        return UnsubscribeResult(scope="all", found=True, changed=changed, cancelled=cancelled)

    if claims.campaign_id is None:
        raise InputError("this link is for a newsletter, not a series; unsubscribe from all instead", where="scope")
    campaign = session.get(Campaign, claims.campaign_id)
    if campaign is None:  # the campaign was deleted: nothing of it can be sent any more
        return UnsubscribeResult(scope="campaign", found=True, changed=False, cancelled=0)
    changed = _opt_out(session, sub.id, campaign.id, now)
    cancelled = cancel_pending(session, sub.id, campaign.id, reason="unsubscribed from this series", now=now)
    if changed:
        from webhooks.outbox import emit

        emit(session, "subscriber.unsubscribed",
             [{"subscriber_id": sub.id, "scope": "campaign", "campaign": campaign.slug}], now)
    return UnsubscribeResult(
        scope="campaign", found=True, changed=changed or cancelled > 0, cancelled=cancelled, campaign_title=campaign.title
    )


def _opt_out(session: Session, subscriber_id: int, campaign_id: int, now: datetime) -> bool:
    stmt = (
        _insert(session)(CampaignOptOut)
        .values(subscriber_id=subscriber_id, campaign_id=campaign_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["subscriber_id", "campaign_id"])
        .returning(CampaignOptOut.campaign_id)  # rowcount is -1 on psycopg for ON CONFLICT
    )
    return session.execute(stmt).first() is not None


def is_opted_out(session: Session, subscriber_id: int, campaign_id: int) -> bool:
    return session.get(CampaignOptOut, (subscriber_id, campaign_id)) is not None


def can_resubscribe(session: Session, subscriber: Subscriber) -> bool:
    """Only the patient's own "unsubscribe from all" can be undone from a link, never a bounce or complaint."""
    if subscriber.status != SubscriberStatus.UNSUBSCRIBED.value:
        return False
    entry = suppression_of(session, subscriber.email_key)
    return entry is None or entry.reason == "unsubscribe"


def resubscribe(session: Session, subscriber: Subscriber, *, now: datetime, source: str = "preferences") -> bool:
    """Undo an unsubscribe-all: active again, off the suppression list, consent re-recorded now.

    Cancelled deliveries stay cancelled: a series does not resume by itself.
    """
    if subscriber.status in _RECEIVING:
        return False
    if not can_resubscribe(session, subscriber):
        raise PreferenceError(
            f"this address is {subscriber.status}; please contact the clinic to receive email again", where="status"
        )
    unsuppress(session, subscriber.email_key, only_reasons={"unsubscribe"})
    subscriber.status = SubscriberStatus.ACTIVE.value
    subscriber.consent_source = source[:64]
    subscriber.consent_at = now
    subscriber.updated_at = now
    return True


def public_lists(session: Session, subscriber: Subscriber) -> list[MailingList]:
    """The lists a patient may see and choose (tags shown to patients, with a description), with their membership."""
    member_of = set(session.scalars(select(SubscriberTag.tag_id).where(SubscriberTag.subscriber_id == subscriber.id)))
    tags = session.scalars(select(Tag).where(Tag.description != "", Tag.shown.is_(True)).order_by(Tag.description, Tag.id))
    return [
        MailingList(id=t.id, name=t.name, label=t.description, member=t.id in member_of, campaign_id=t.campaign_id)
        for t in tags
    ]


@dataclass(frozen=True)
class PreferenceChange:
    status: str
    status_changed: bool = False
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    cancelled: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.status_changed or self.joined or self.left or self.cancelled)


def set_preferences(
    session: Session,
    subscriber: Subscriber,
    *,
    paused: bool | None = None,
    lists: Iterable[int] | None = None,
    now: datetime,
) -> PreferenceChange:
    """Pause/resume all email and/or set exactly which public lists the subscriber is on.

    `paused=None` leaves the status alone; `lists=None` leaves lists alone. Ids that are not
    public lists are ignored (a patient cannot join an internal tag by editing the form).
    """
    if subscriber.status not in _RECEIVING:
        raise PreferenceError(f"this address is {subscriber.status}; preferences cannot be changed", where="status")
    status_changed = False
    if paused is not None:
        want = SubscriberStatus.PAUSED.value if paused else SubscriberStatus.ACTIVE.value
        if subscriber.status != want:
            subscriber.status = want
            subscriber.updated_at = now
            status_changed = True
    joined: list[str] = []
    left: list[str] = []
    cancelled = 0
    if lists is not None:
        wanted = set(lists)
        for ml in public_lists(session, subscriber):
            if ml.id in wanted and not ml.member:
                session.execute(
                    _insert(session)(SubscriberTag)
                    .values(subscriber_id=subscriber.id, tag_id=ml.id)
                    .on_conflict_do_nothing(index_elements=["subscriber_id", "tag_id"])
                )
                if ml.campaign_id is not None:
                    session.execute(
                        delete(CampaignOptOut).where(
                            CampaignOptOut.subscriber_id == subscriber.id, CampaignOptOut.campaign_id == ml.campaign_id
                        )
                    )
                joined.append(ml.label)
            elif ml.id not in wanted and ml.member:
                session.execute(
                    delete(SubscriberTag).where(SubscriberTag.subscriber_id == subscriber.id, SubscriberTag.tag_id == ml.id)
                )
                cancelled += _cancel_list_broadcasts(session, subscriber.id, ml.id)
                if ml.campaign_id is not None:
                    _opt_out(session, subscriber.id, ml.campaign_id, now)
                    cancelled += cancel_pending(session, subscriber.id, ml.campaign_id, reason="left the list")
                left.append(ml.label)
    return PreferenceChange(
        status=subscriber.status, status_changed=status_changed, joined=tuple(joined), left=tuple(left), cancelled=cancelled
    )


def _cancel_list_broadcasts(session: Session, subscriber_id: int, tag_id: int) -> int:
    """Scheduled newsletters to this list for this subscriber (left the list before they went out)."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status == DeliveryStatus.SCHEDULED.value,
            Delivery.broadcast_id.in_(select(Broadcast.id).where(Broadcast.tag_id == tag_id)),
        )
        .values(status=DeliveryStatus.CANCELLED.value, last_error="left the list")
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount or 0
