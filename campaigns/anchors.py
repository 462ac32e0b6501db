"""Date-anchored steps: "3 days before {first_visit}", "1 day after {first_visit}".

A step with `anchor_attribute` (a date attribute's key) and `anchor_offset_minutes` (signed:
negative is before) goes out on the patient's date plus the offset, at the campaign's fixed send
time (or its window's opening when it has none), in the patient's zone, moved into the send
window. It is outside the campaign's chain of delays: other steps keep their own spacing.

`plan_anchored` (re)computes the rows: at enrollment, and whenever the date attribute changes
(subscribers/attributes.py calls it in the same transaction as the write). It only ever touches
rows that were never sent: `scheduled` ones, and ones it skipped itself earlier (a patient who
had no date yet, or whose date moved into the future again). A row whose time has passed, or a
patient without the date, is recorded as `cancelled` with last_error "skipped: ..." (the
patient's timeline shows it), so nothing is sent late, twice, or silently dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Iterable

from sqlalchemy import and_, bindparam, case, not_, or_, select
from sqlalchemy.orm import Session

from campaigns.schedule import SendWindow, _at_wall, next_send_at, parse_send_time, parse_window, resolve_zone
from drip.errors import InputError
from drip.models import (
    AttributeDefinition,
    AttributeType,
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Step,
    Subscriber,
    SubscriberAttribute,
)

SKIPPED = "skipped: "
_CONDITION_SKIP = SKIPPED + "condition"
_OFFSET = re.compile(r"([0-9]+)([dhm])")
MAX_OFFSET_DAYS = 366


def parse_offset(text: str, where: str) -> int:
    """ "3d", "12h", "90m" -> minutes (unsigned; --before / --after give the sign)."""
    m = _OFFSET.fullmatch((text or "").strip())
    if m is None:
        raise InputError(f"expected an offset such as 3d, 12h or 90m, got {text!r}", where=where)
    minutes = int(m.group(1)) * {"d": 1440, "h": 60, "m": 1}[m.group(2)]
    if minutes > MAX_OFFSET_DAYS * 1440:
        raise InputError(f"offset {text!r} is more than {MAX_OFFSET_DAYS} days", where=where)
    return minutes


def describe(attribute: str, offset_minutes: int) -> str:
    """ "3 days before first_visit", "on first_visit", "1 day after first_visit"."""
    if offset_minutes == 0:
        return f"on {attribute}"
    n = abs(offset_minutes)
    if n % 1440 == 0:
        amount = f"{n // 1440} day" + ("s" if n // 1440 != 1 else "")
    elif n % 60 == 0:
        amount = f"{n // 60} hour" + ("s" if n // 60 != 1 else "")
    else:
        amount = f"{n} minutes"
    return f"{amount} {'before' if offset_minutes < 0 else 'after'} {attribute}"


def anchored_due(day: date, offset_minutes: int, window: SendWindow, tz, send_time: time | None) -> datetime:
    """When a step anchored to `day` goes: whole days move the date (so DST keeps the wall time),
    the rest is added to `send_time` (or the window's opening) there; then into the window."""
    days, rest = divmod(offset_minutes, 1440)
    at = _at_wall(day + timedelta(days=days), send_time or window.start, tz) + timedelta(minutes=rest)
    return next_send_at(at, window, tz)


def check_anchor(session: Session, attribute: str) -> str:
    """The key of an existing date attribute, or an InputError."""
    key = (attribute or "").strip().lower()
    defn = session.scalar(select(AttributeDefinition).where(AttributeDefinition.key == key))
    if defn is None:
        raise InputError(f"no attribute {attribute[:64]!r} is defined", where="--attribute")
    if defn.type != AttributeType.DATE.value:
        raise InputError(f"attribute {key!r} is {defn.type}; a step can only be anchored to a date", where="--attribute")
    return key


def plan_anchored(
    session: Session,
    now: datetime,
    *,
    clinic_tz: str | None = None,
    enrollment_ids: Iterable[int] | None = None,
    subscriber_ids: Iterable[int] | None = None,
    keys: Iterable[str] | None = None,
    step_ids: Iterable[int] | None = None,
) -> Counter[str]:
    """(Re)plan the anchored rows of these enrollments / subscribers (of active enrollments only).

    Returns counts: planned (due time set), skipped (recorded as such). One query to read, one
    executemany to write."""
    if clinic_tz is None:
        from drip.config import load_settings

        clinic_tz = load_settings().clinic.timezone
    replannable = _replannable()
    q = (
        select(Delivery.id, Delivery.status, Delivery.due_at, Delivery.last_error, Step.anchor_attribute,
               Step.anchor_offset_minutes, Campaign.send_window, Campaign.send_time, Subscriber.tz,
               SubscriberAttribute.value)
        .join(Step, Step.id == Delivery.step_id)
        .join(Campaign, Campaign.id == Step.campaign_id)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(AttributeDefinition, AttributeDefinition.key == Step.anchor_attribute)
        .outerjoin(SubscriberAttribute, and_(SubscriberAttribute.subscriber_id == Delivery.subscriber_id,
                                             SubscriberAttribute.attribute_id == AttributeDefinition.id))
        .where(Step.anchor_attribute.is_not(None), Enrollment.state == EnrollmentState.ACTIVE.value, replannable)
    )
    if enrollment_ids is not None:
        q = q.where(Delivery.enrollment_id.in_(list(enrollment_ids)))
    if subscriber_ids is not None:
        q = q.where(Delivery.subscriber_id.in_(list(subscriber_ids)))
    if keys is not None:
        q = q.where(Step.anchor_attribute.in_(list(keys)))
    if step_ids is not None:
        q = q.where(Delivery.step_id.in_(list(step_ids)))
    zones: dict[str | None, object] = {}
    changes: list[dict] = []
    counts: Counter[str] = Counter()
    for did, status, due_at, error, key, offset, window_spec, send_time, tz_name, value in session.execute(q):
        tz = zones.get(tz_name)
        if tz is None:
            tz = zones[tz_name] = resolve_zone(tz_name, clinic_tz)
        label = describe(key, offset or 0)
        new_due, new_status, new_error = due_at, DeliveryStatus.SCHEDULED.value, ""
        try:
            day = date.fromisoformat(value) if value else None
        except ValueError:
            day = None
        if day is None:
            new_status, new_error = DeliveryStatus.CANCELLED.value, f"{SKIPPED}no {key} for this patient ({label})"
        else:
            at = anchored_due(day, offset or 0, parse_window(window_spec), tz, parse_send_time(send_time))
            if at < now:
                new_status = DeliveryStatus.CANCELLED.value
                new_error = f"{SKIPPED}{label} ({day.isoformat()}) had passed"
            else:
                new_due = at
        counts["planned" if new_status == DeliveryStatus.SCHEDULED.value else "skipped"] += 1
        if (new_status, new_due, new_error) != (status, due_at, error):
            changes.append({"did": did, "st": new_status, "due": new_due, "err": new_error})
    if changes:
        # Only rows still re-plannable now (a worker may have claimed, sent or recorded one since
        # the read: a sent row must never become scheduled again). A row a worker holds keeps its
        # status: its new due time, or a "skipped: ..." reason, is what the worker's re-check just
        # before the send reads (delivery/ledger.py LedgerStore.recheck): it gives the row back
        # (due later) or records it skipped instead of sending it.
        table = Delivery.__table__
        sending = DeliveryStatus.SENDING.value
        session.execute(
            table.update().where(table.c.id == bindparam("did"), _replannable())
            .values(status=case((table.c.status == sending, sending), else_=bindparam("st")),
                    due_at=bindparam("due"), last_error=bindparam("err"))
            .execution_options(synchronize_session=False),
            changes,
        )
    return counts


def _replannable():
    """Rows never sent that a re-plan may move: scheduled, claimed by a worker but not sent yet
    (re-checked before sending), or skipped earlier by a plan (not by a step's condition)."""
    return or_(
        Delivery.status == DeliveryStatus.SCHEDULED.value,
        Delivery.status == DeliveryStatus.SENDING.value,  # no IN: the write is an executemany
        and_(Delivery.status == DeliveryStatus.CANCELLED.value, Delivery.sent_at.is_(None),
             Delivery.last_error.like(SKIPPED + "%"), not_(Delivery.last_error.like(_CONDITION_SKIP + "%"))),
    )


def anchored_keys(session: Session, keys: Iterable[str]) -> list[str]:
    """Of these attribute keys, those some step is anchored to (one cheap query)."""
    wanted = list(keys)
    if not wanted:
        return []
    return list(session.scalars(select(Step.anchor_attribute).where(Step.anchor_attribute.in_(wanted)).distinct()))


def set_anchor(session: Session, step: Step, attribute: str | None, offset_minutes: int, now: datetime, *,
               clinic_tz: str) -> Counter[str]:
    """Anchor `step` to a date attribute (None: back to its delay after enrollment, for enrollments
    from now on). Its rows not yet sent in active enrollments are re-planned at once."""
    if attribute is None:
        step.anchor_attribute, step.anchor_offset_minutes = None, None
        session.flush()
        return Counter()
    if abs(offset_minutes) > MAX_OFFSET_DAYS * 1440:
        raise InputError(f"offset is more than {MAX_OFFSET_DAYS} days", where="offset")
    step.anchor_attribute, step.anchor_offset_minutes = check_anchor(session, attribute), offset_minutes
    session.flush()
    return plan_anchored(session, now, clinic_tz=clinic_tz, step_ids=[step.id])
