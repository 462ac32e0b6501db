"""The staff home page: is sending running, what went out, what goes next, what came back.

The counts over the ledger (sent today and this week, due now, the 30-day chart) come from
`delivery.counts` (live on a small ledger, the worker's cached count on a large one); the rest
are short queries on indexed columns (the next 500 due rows, returns since a week). Days are the
clinic's local days (the zone's offset now; a DST change moves a day's edge by an hour at most).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from delivery.counts import counted
from drip.models import (
    Broadcast,
    Campaign,
    CampaignOptOut,
    Delivery,
    DeliveryStatus,
    StepVersion,
    Subscriber,
    Suppression,
)
from web.staff.base import StaffRequest
from web.staff.charts import Series, bar_chart, progress_bar
from web.staff.stats import as_of_note

SENT, BOUNCED, UNSUB = "#2f6f6a", "#d97706", "#6b7280"


def chart(data: dict, title: str) -> object:
    """`delivery.counts.daily`'s value as a bar chart."""
    return bar_chart([date.fromisoformat(d) for d in data["days"]],
                     [Series("sent", SENT, data["sent"]), Series("bounced", BOUNCED, data["bounced"]),
                      Series("unsubscribed", UNSUB, data["unsubscribed"])], title=title)


@dataclass(frozen=True)
class NextSend:
    due_at: datetime
    what: str
    count: int


def next_sends(session: Session, now: datetime, limit: int = 8) -> list[NextSend]:
    """The next scheduled emails, grouped by (hour, step or newsletter): "14:00 Welcome (120)"."""
    rows = session.execute(
        select(Delivery.due_at, Delivery.step_id, Delivery.broadcast_id).where(
            Delivery.status == DeliveryStatus.SCHEDULED.value).order_by(Delivery.due_at).limit(500)).all()
    groups: Counter = Counter()
    first: dict = {}
    for due, step_id, broadcast_id in rows:
        key = (due.replace(minute=0, second=0, microsecond=0), step_id, broadcast_id)
        groups[key] += 1
        first.setdefault(key, due)
    keys = sorted(groups, key=lambda k: first[k])[:limit]
    steps = {sid for _, sid, _ in keys if sid}
    titles: dict[int, str] = {}
    if steps:
        newest = select(StepVersion.step_id, func.max(StepVersion.version).label("v")).where(
            StepVersion.step_id.in_(steps), StepVersion.language == "").group_by(StepVersion.step_id).subquery()
        titles = dict(session.execute(select(StepVersion.step_id, StepVersion.subject).join(
            newest, (StepVersion.step_id == newest.c.step_id) & (StepVersion.version == newest.c.v)).where(
            StepVersion.language == "")).all())
    news = {bid for _, _, bid in keys if bid}
    subjects = dict(session.execute(select(Broadcast.id, Broadcast.subject).where(Broadcast.id.in_(news)))) if news else {}
    return [NextSend(first[k], titles.get(k[1], "") if k[1] else subjects.get(k[2], "newsletter"), groups[k])
            for k in keys]


def recent_returns(session: Session, since: datetime, with_addresses: bool, limit: int = 8) -> dict:
    """Bounces, complaints and unsubscribes since `since`: counts, and the latest (addresses only
    for staff who may see patients; an erased patient's entry has no address)."""
    counts = dict(session.execute(select(Suppression.reason, func.count()).where(
        Suppression.created_at >= since).group_by(Suppression.reason)).all())
    optouts = session.scalar(select(func.count()).select_from(CampaignOptOut).where(
        CampaignOptOut.created_at >= since)) or 0
    latest = []
    if with_addresses:
        for s, sub_id in session.execute(
            select(Suppression, Subscriber.id).outerjoin(Subscriber, Subscriber.email_key == Suppression.email_key)
            .where(Suppression.created_at >= since).order_by(Suppression.created_at.desc()).limit(limit)):
            latest.append({"at": s.created_at, "reason": s.reason, "subscriber_id": sub_id,
                           "who": "an erased patient" if s.email_key.startswith("sha256:") else s.email_key})
    return {"bounced": counts.get("bounce", 0) + counts.get("bounced", 0), "complained": counts.get("complaint", 0),
            "unsubscribed": counts.get("unsubscribe", 0) + optouts, "latest": latest}


def running_sends(session: Session, now: datetime) -> list[dict]:
    """Newsletters going out now: sent of total, for a progress bar."""
    out = []
    for b, total, sent in session.execute(
        select(Broadcast, func.count(Delivery.id), func.count(Delivery.id).filter(Delivery.status == "sent"))
        .join(Delivery, Delivery.broadcast_id == Broadcast.id)
        .where(Broadcast.status == "scheduled", Broadcast.send_at <= now).group_by(Broadcast.id).limit(5)):
        if sent < total:
            out.append({"title": b.subject, "bar": progress_bar(sent, total, label=b.subject)})
    return out


def dashboard(req: StaffRequest) -> Response:
    from delivery.heartbeat import worker_health
    from drip.permissions import Perm, allowed

    now = req.now
    tz = ZoneInfo(req.ctx.settings.clinic.timezone)
    role = getattr(req.user, "role", None)
    with req.ctx.runtime.read_sessions() as db:
        health = worker_health(db, now, req.ctx.settings.worker_stale_seconds)
        counts = counted(req.ctx.runtime, db, "home", None, now)
        home = counts.value
        context = {
            "nav": "home", "health": health, "sent_today": home["sent_today"], "sent_week": home["sent_week"],
            "due_now": home["due_now"], "counts_note": as_of_note(counts.as_of, req.ctx.settings),
            "chart": chart(home["daily"], "Emails per day, last 30 days"), "next": next_sends(db, now),
            "returns": recent_returns(db, now - timedelta(days=7), allowed(role, Perm.SUBSCRIBERS_READ)),
            "running": running_sends(db, now), "tz": tz,
            "campaigns": db.scalar(select(func.count()).select_from(Campaign).where(Campaign.status == "published")),
        }
    return req.render("dashboard.html", context)


def campaign_chart(activity: dict) -> dict:
    """For the campaign page, from `delivery.counts.campaign_activity`'s value: the 30-day chart
    and, while its emails are due, a progress bar."""
    waiting = activity["due"] - activity["sent"]
    return {"chart": chart(activity["daily"], "This campaign per day, last 30 days"),
            "progress": progress_bar(activity["sent"], activity["due"], label="Due so far, sent") if waiting > 0 else None}
