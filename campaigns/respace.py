"""Minimum spacing after a deferral at send time.

Enrollment plans every step with `campaigns.schedule.earliest_after` (no step sooner than its gap
after the previous one, at least 20 h). The dispatcher can still move a step later when it is due:
outside the window because the worker was down, the patient over the daily frequency cap, a paused
patient. Without more, the next step keeps its planned time, so "every 2 days" became a 1-day gap
(or two emails a day apart after an outage). `respace_after` pushes the same enrollment's later
scheduled steps so each again goes no sooner than the gap after the one before it actually goes:

- default cadence: previous + max(gap, 20 h), moved into the window;
- business days or a fixed send time: the gap's whole days counted (Mon-Fri with business days)
  from the day the previous one goes, at the fixed time (or the time the row had), and >= 20 h;
  a step deferred to the window's opening goes at the fixed send time that day instead.

Only later steps of the same enrollment move, never earlier; a row claimed by a worker (in flight)
and a step anchored to a date (its own rule) are left alone; it stops at the first later step that
is already far enough. Nothing is cancelled or added: the ledger keeps every row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.enrollment import MIN_SPACING
from campaigns.schedule import (
    _at_wall, _next_at_time, add_days, earliest_after, next_send_at, parse_send_time, parse_window, resolve_zone,
)
from drip.models import Campaign, Delivery, DeliveryStatus, Step, Subscriber


def _earliest(prev: datetime, prev_delay: int, row_due: datetime, delay: int, campaign: Campaign, tz) -> datetime:
    gap = timedelta(minutes=delay - prev_delay)
    window = parse_window(campaign.send_window)
    send_time = parse_send_time(campaign.send_time)
    if not campaign.business_days and send_time is None:
        return next_send_at(earliest_after(prev, gap, MIN_SPACING), window, tz)
    at = send_time or row_due.astimezone(tz).time().replace(tzinfo=None)
    day = add_days(prev.astimezone(tz).date(), max(gap, timedelta(0)).days, bool(campaign.business_days))
    need = max(_at_wall(day, at, tz), prev + MIN_SPACING)
    return _next_at_time(need, at, timedelta(0), window, tz)


def respace_after(session: Session, moved: dict[int, datetime], clinic_tz: str) -> int:
    """`moved`: delivery id -> when it now goes (deferred to, or sent at). Pushes the later steps
    of each one's enrollment as needed; returns how many rows moved."""
    if not moved:
        return 0
    heads = session.execute(
        select(Delivery.id, Delivery.enrollment_id, Step.position, Step.delay_minutes, Campaign, Subscriber.tz)
        .join(Step, Step.id == Delivery.step_id).join(Campaign, Campaign.id == Step.campaign_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(list(moved)), Delivery.enrollment_id.is_not(None), Step.anchor_attribute.is_(None))
        .order_by(Delivery.enrollment_id, Step.position)  # earlier steps first: their pushes are seen by later ones
    ).all()
    changed = 0
    for did, enrollment_id, position, delay, campaign, tz_name in heads:
        tz = resolve_zone(tz_name, clinic_tz)
        later = session.execute(
            select(Delivery.id, Delivery.due_at, Step.delay_minutes).join(Step, Step.id == Delivery.step_id)
            .where(Delivery.enrollment_id == enrollment_id, Step.position > position,
                   Step.anchor_attribute.is_(None), Delivery.status == DeliveryStatus.SCHEDULED.value)
            .order_by(Step.position)
        ).all()
        # where it goes now: its deferral, its late send, or later if an earlier step here pushed it
        current = session.scalar(select(Delivery.due_at).where(Delivery.id == did,
                                                               Delivery.status == DeliveryStatus.SCHEDULED.value))
        prev, prev_delay = max(moved[did], current or moved[did]), delay
        send_time = parse_send_time(campaign.send_time)
        if current is not None and send_time is not None:
            # deferred to the window's opening: with a fixed send time it goes at that time that day
            fixed = _next_at_time(prev, send_time, timedelta(0), parse_window(campaign.send_window), tz)
            if fixed != prev:
                session.execute(update(Delivery).where(Delivery.id == did,
                                                       Delivery.status == DeliveryStatus.SCHEDULED.value)
                                .values(due_at=fixed).execution_options(synchronize_session=False))
                prev, changed = fixed, changed + 1
        for row_id, due, row_delay in later:
            need = _earliest(prev, prev_delay, due, row_delay, campaign, tz)
            if due >= need:
                break  # planned with its spacing from this one: the rest already keeps theirs
            done = session.execute(
                update(Delivery).where(Delivery.id == row_id, Delivery.status == DeliveryStatus.SCHEDULED.value,
                                       Delivery.claimed_by.is_(None))
                .values(due_at=need).execution_options(synchronize_session=False))
            if not done.rowcount:
                break  # a worker holds it: it is going now, leave the rest as planned
            changed += 1
            prev, prev_delay = need, row_delay
    return changed
