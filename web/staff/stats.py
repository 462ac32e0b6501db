"""Numbers for the staff pages, read from the delivery ledger in a few grouped queries.

Per step:
  scheduled     rows waiting (scheduled) or being sent right now (sending)
  sent          accepted by the backend
  failed        permanently failed
  bounced       provider said bounced or dropped (Delivery.outcome, from the event webhook)
  unsubscribed  patients who unsubscribed after this email: a provider unsubscribe event for
                one of its deliveries, an "unsubscribe from all" whose link came from one of its
                deliveries (the suppression's source names the delivery), or an opt-out of the
                series, counted on the newest email of the series sent to them before it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drip.models import (
    Campaign,
    CampaignOptOut,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    Step,
    Subscriber,
    Suppression,
)

_UNSUBSCRIBE_EVENTS = ("unsubscribe", "group_unsubscribe")
_SOURCE_DELIVERY = re.compile(r"\bd(\d{1,18})$")


@dataclass(frozen=True)
class StepStats:
    scheduled: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class CampaignSummary:
    campaign: Campaign
    steps: int
    items: int
    enrolled: int
    active: int
    sent: int
    scheduled: int


def campaign_summaries(session: Session) -> list[CampaignSummary]:
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())))
    steps: dict[int, tuple[int, int]] = {}
    for cid, kind, n in session.execute(
        select(Step.campaign_id, Step.kind, func.count()).group_by(Step.campaign_id, Step.kind)
    ):
        total, items = steps.get(cid, (0, 0))
        steps[cid] = (total + n, items + (n if kind == "item" else 0))
    enrolled: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for cid, state, n in session.execute(
        select(Enrollment.campaign_id, Enrollment.state, func.count()).group_by(Enrollment.campaign_id, Enrollment.state)
    ):
        enrolled[cid][0] += n
        if state == EnrollmentState.ACTIVE.value:
            enrolled[cid][1] += n
    sent: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, status, n in session.execute(
        select(Step.campaign_id, Delivery.status, func.count())
        .join(Step, Step.id == Delivery.step_id)
        .group_by(Step.campaign_id, Delivery.status)
    ):
        sent[cid][status] = n
    return [
        CampaignSummary(
            campaign=c,
            steps=steps.get(c.id, (0, 0))[0],
            items=steps.get(c.id, (0, 0))[1],
            enrolled=enrolled[c.id][0],
            active=enrolled[c.id][1],
            sent=sent[c.id].get(DeliveryStatus.SENT.value, 0),
            scheduled=sent[c.id].get(DeliveryStatus.SCHEDULED.value, 0) + sent[c.id].get(DeliveryStatus.SENDING.value, 0),
        )
        for c in campaigns
    ]


def step_stats(session: Session, campaign: Campaign) -> dict[int, StepStats]:
    """step id -> its numbers (see the module docstring)."""
    step_ids = list(session.scalars(select(Step.id).where(Step.campaign_id == campaign.id)))
    counts: dict[int, dict[str, int]] = {sid: defaultdict(int) for sid in step_ids}
    if not step_ids:
        return {}
    for sid, status, outcome, n in session.execute(
        select(Delivery.step_id, Delivery.status, Delivery.outcome, func.count())
        .where(Delivery.step_id.in_(step_ids))
        .group_by(Delivery.step_id, Delivery.status, Delivery.outcome)
    ):
        c = counts[sid]
        if status in (DeliveryStatus.SCHEDULED.value, DeliveryStatus.SENDING.value):
            c["scheduled"] += n
        elif status in (DeliveryStatus.SENT.value, DeliveryStatus.FAILED.value, DeliveryStatus.CANCELLED.value):
            c[status] += n
        if outcome in ("bounced", "dropped"):
            c["bounced"] += n
    for sid, who in _unsubscribes(session, campaign, step_ids).items():
        counts[sid]["unsubscribed"] = len(who)
    return {sid: StepStats(**{k: v for k, v in c.items() if k in StepStats.__dataclass_fields__})
            for sid, c in counts.items()}


def _unsubscribes(session: Session, campaign: Campaign, step_ids: list[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    # 1. provider events naming a delivery of this campaign
    for sid, sub in session.execute(
        select(Delivery.step_id, Delivery.subscriber_id)
        .join(Event, Event.delivery_id == Delivery.id)
        .where(Delivery.step_id.in_(step_ids), Event.type.in_(_UNSUBSCRIBE_EVENTS))
    ):
        out[sid].add(sub)
    # 2. "unsubscribe from all" through the link of one of this campaign's emails
    rows = session.execute(
        select(Suppression.source, Subscriber.id)
        .join(Subscriber, Subscriber.email_key == Suppression.email_key)
        .where(Suppression.reason == "unsubscribe",
               Subscriber.id.in_(select(Enrollment.subscriber_id).where(Enrollment.campaign_id == campaign.id)))
    ).all()
    by_delivery: dict[int, int] = {}
    for source, sub in rows:
        m = _SOURCE_DELIVERY.search(source or "")
        if m:
            by_delivery[int(m.group(1))] = sub
    if by_delivery:
        for did, sid, sub in session.execute(
            select(Delivery.id, Delivery.step_id, Delivery.subscriber_id)
            .where(Delivery.id.in_(list(by_delivery)), Delivery.step_id.in_(step_ids))
        ):
            if by_delivery[did] == sub:
                out[sid].add(sub)
    # 3. opted out of this series: the newest email of it they had been sent before
    optouts = dict(session.execute(
        select(CampaignOptOut.subscriber_id, CampaignOptOut.created_at).where(CampaignOptOut.campaign_id == campaign.id)
    ).all())
    if optouts:
        sent = session.execute(
            select(Delivery.subscriber_id, Delivery.step_id, Delivery.sent_at)
            .where(Delivery.step_id.in_(step_ids), Delivery.subscriber_id.in_(list(optouts)),
                   Delivery.sent_at.is_not(None))
            .order_by(Delivery.sent_at)
        ).all()
        latest: dict[int, int] = {}
        for sub, sid, at in sent:
            if at <= optouts[sub]:
                latest[sub] = sid
        for sub, sid in latest.items():
            out[sid].add(sub)
    return out
