"""The staff pages' numbers as the templates use them, from the counts of `delivery.counts`
(which says what each number means, and when it comes from the cache)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.counts import campaign_counts, step_counts
from drip.models import Campaign, DeliveryStatus, Step

UTC = ZoneInfo("UTC")


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


def campaign_summaries(session: Session, counts: dict | None = None) -> list[CampaignSummary]:
    """Every campaign with its numbers; `counts`: `campaign_counts`' value (counted here without one).
    Steps are counted here always (a small table), so a new campaign shows its emails at once."""
    if counts is None:
        counts = campaign_counts(session, None, datetime.now(UTC), UTC)
    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())))
    steps: dict[int, tuple[int, int]] = {}
    for cid, kind, n in session.execute(
        select(Step.campaign_id, Step.kind, func.count()).group_by(Step.campaign_id, Step.kind)
    ):
        total, items = steps.get(cid, (0, 0))
        steps[cid] = (total + n, items + (n if kind == "item" else 0))
    out = []
    for c in campaigns:
        enrolled, active = counts["enrolled"].get(str(c.id), (0, 0))
        sent = counts["deliveries"].get(str(c.id), {})
        out.append(CampaignSummary(
            campaign=c, steps=steps.get(c.id, (0, 0))[0], items=steps.get(c.id, (0, 0))[1], enrolled=enrolled,
            active=active, sent=sent.get(DeliveryStatus.SENT.value, 0),
            scheduled=sent.get(DeliveryStatus.SCHEDULED.value, 0) + sent.get(DeliveryStatus.SENDING.value, 0)))
    return out


def step_stats(session: Session, campaign: Campaign, counts: dict | None = None) -> dict[int, StepStats]:
    """step id -> its numbers; `counts`: `step_counts`' value for this campaign (counted here without one)."""
    if counts is None:
        counts = step_counts(session, campaign.id, datetime.now(UTC), UTC)
    return {int(sid): StepStats(**c) for sid, c in counts["steps"].items()}


def as_of_note(as_of: datetime | None, settings) -> str:
    """"" for counts made for this page view; else when they were counted, in the clinic's time."""
    if as_of is None:
        return ""
    clinic_tz, refresh_seconds = settings.clinic.timezone, settings.stats_refresh_seconds
    every = f"{refresh_seconds / 60:g} minutes" if refresh_seconds >= 120 else f"{refresh_seconds:g} seconds"
    return (f"Counts as of {as_of.astimezone(ZoneInfo(clinic_tz)).strftime('%a %d %b, %H:%M')}: on a ledger this "
            f"large the worker recounts them every {every}.")
