"""The staff home page: is sending running, what went out, what goes next, what came back.

Every number is one grouped query on an indexed column (deliveries by (status, due_at), by
sent_at; suppressions and opt-outs by created_at), so the page costs the same at 10k and at a
million patients. Days are the clinic's local days (the zone's offset now; a DST change moves a
day's edge by an hour at most).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from drip.models import (
    Broadcast,
    Campaign,
    CampaignOptOut,
    Delivery,
    DeliveryStatus,
    Step,
    StepVersion,
    Subscriber,
    Suppression,
)
from web.staff.base import StaffRequest
from web.staff.charts import Series, bar_chart, progress_bar

SENT, BOUNCED, UNSUB = "#2f6f6a", "#d97706", "#6b7280"


def local_day_start(now: datetime, tz: ZoneInfo, days_back: int = 0) -> datetime:
    """UTC instant of the local midnight `days_back` days before today's (clinic's zone)."""
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=days_back)
    return datetime.combine(day, datetime.min.time(), tz).astimezone(ZoneInfo("UTC"))


def _local_date(session: Session, column, now: datetime, tz: ZoneInfo):
    """SQL for the local calendar date of a UTC timestamp column, at the zone's offset now."""
    offset = now.astimezone(tz).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if session.get_bind().dialect.name == "postgresql":
        return func.date(column + func.make_interval(0, 0, 0, 0, 0, minutes))
    return func.date(column, f"{minutes:+d} minutes")


def daily(session: Session, now: datetime, tz: ZoneInfo, days: int, campaign_id: int | None = None) -> dict:
    """Per local day for the last `days` days: sent, bounced, unsubscribed (a campaign's, or all)."""
    since = local_day_start(now, tz, days - 1)
    day = _local_date(session, Delivery.sent_at, now, tz)
    q = select(day, func.count(), func.count().filter(Delivery.outcome.in_(("bounced", "dropped")))).where(
        Delivery.sent_at >= since)
    if campaign_id is not None:
        q = q.join(Step, Step.id == Delivery.step_id).where(Step.campaign_id == campaign_id)
    rows = session.execute(q.group_by(day)).all()
    sent = {str(d): n for d, n, _ in rows}
    bounced = {str(d): b for d, _, b in rows}
    if campaign_id is None:
        uday = _local_date(session, Suppression.created_at, now, tz)
        unsub = dict(session.execute(select(uday, func.count()).where(
            Suppression.created_at >= since, Suppression.reason == "unsubscribe").group_by(uday)).all())
    else:
        uday = _local_date(session, CampaignOptOut.created_at, now, tz)
        unsub = dict(session.execute(select(uday, func.count()).where(
            CampaignOptOut.created_at >= since, CampaignOptOut.campaign_id == campaign_id).group_by(uday)).all())
    unsub = {str(k): v for k, v in unsub.items()}
    first = now.astimezone(tz).date() - timedelta(days=days - 1)
    labels = [first + timedelta(days=i) for i in range(days)]
    keys = [d.isoformat() for d in labels]
    return {"days": labels, "sent": [sent.get(k, 0) for k in keys], "bounced": [bounced.get(k, 0) for k in keys],
            "unsubscribed": [unsub.get(k, 0) for k in keys]}


def chart(data: dict, title: str) -> object:
    return bar_chart(data["days"], [Series("sent", SENT, data["sent"]), Series("bounced", BOUNCED, data["bounced"]),
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
        today, week = local_day_start(now, tz), local_day_start(now, tz, now.astimezone(tz).weekday())
        sent_today = db.scalar(select(func.count()).select_from(Delivery).where(Delivery.sent_at >= today)) or 0
        sent_week = db.scalar(select(func.count()).select_from(Delivery).where(Delivery.sent_at >= week)) or 0
        due_now = db.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.status == DeliveryStatus.SCHEDULED.value, Delivery.due_at <= now)) or 0
        data = daily(db, now, tz, 30)
        context = {
            "nav": "home", "health": health, "sent_today": sent_today, "sent_week": sent_week, "due_now": due_now,
            "chart": chart(data, "Emails per day, last 30 days"), "next": next_sends(db, now),
            "returns": recent_returns(db, now - timedelta(days=7), allowed(role, Perm.SUBSCRIBERS_READ)),
            "running": running_sends(db, now), "tz": tz,
            "campaigns": db.scalar(select(func.count()).select_from(Campaign).where(Campaign.status == "published")),
        }
    return req.render("dashboard.html", context)


def campaign_chart(db: Session, campaign_id: int, now: datetime, tz_name: str) -> dict:
    """For the campaign page: the 30-day chart and, while its emails are due, a progress bar."""
    tz = ZoneInfo(tz_name)
    data = daily(db, now, tz, 30, campaign_id)
    in_steps = select(Step.id).where(Step.campaign_id == campaign_id)
    due, sent = db.execute(select(
        func.count().filter(Delivery.due_at <= now),
        func.count().filter((Delivery.due_at <= now) & (Delivery.status == "sent")))
        .where(Delivery.step_id.in_(in_steps), Delivery.status.in_(("scheduled", "sending", "sent")))).one()
    waiting = due - sent
    return {"chart": chart(data, "This campaign per day, last 30 days"),
            "progress": progress_bar(sent, due, label="Due so far, sent") if waiting > 0 else None}
