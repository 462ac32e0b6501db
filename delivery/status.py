"""The ledger as people read it: patient, step, local send time, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.schedule import resolve_zone
from campaigns.service import latest_versions
from drip.models import Broadcast, Campaign, Delivery, Step, StepVersion, Subscriber


@dataclass(frozen=True)
class StatusRow:
    delivery_id: int
    patient: str
    tz: str
    campaign: str
    step: str
    local_time: datetime  # sent_at when sent, else due_at, in the patient's zone
    status: str
    error: str


def _filtered(q, campaign: str | None, email: str | None):
    if campaign:
        q = q.where(Campaign.slug == campaign)
    if email:
        q = q.where(Subscriber.email_key == email.strip().lower())
    return q


def status_rows(session: Session, clinic_tz: str, *, campaign: str | None = None, email: str | None = None,
                limit: int = 500) -> list[StatusRow]:
    """Deliveries by patient, then due time. A step is shown by its title: the version that was sent,
    or the newest one for an email still to go."""
    q = _filtered(
        select(Delivery, Subscriber, Step, Campaign, Broadcast, StepVersion.title)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(Step, Step.id == Delivery.step_id)
        .outerjoin(Campaign, Campaign.id == Step.campaign_id)
        .outerjoin(Broadcast, Broadcast.id == Delivery.broadcast_id)
        .outerjoin(StepVersion, StepVersion.id == Delivery.step_version_id)
        .order_by(Subscriber.email_key, Delivery.due_at, Delivery.id)
        .limit(limit),
        campaign, email,
    )
    found = session.execute(q).all()
    newest = latest_versions(session, sorted({step.id for _, _, step, _, _, title in found if step and not title}))
    out = []
    for d, sub, step, camp, b, sent_title in found:
        tz = resolve_zone(sub.tz, clinic_tz)
        at = (d.sent_at or d.due_at).astimezone(tz)
        if step is not None:
            title = sent_title or (newest[step.id].title if step.id in newest else step.slug)
        out.append(
            StatusRow(
                delivery_id=d.id,
                patient=sub.name or sub.email,
                tz=tz.key,
                campaign=camp.slug if camp else (f"newsletter:{b.slug}" if b else ""),
                step=f"{step.position}. {title}" if step else (b.subject if b else ""),
                local_time=at,
                status=d.status,
                error=d.last_error,
            )
        )
    return out


def status_count(session: Session, *, campaign: str | None = None, email: str | None = None) -> int:
    """How many deliveries `status_rows` would list without a limit (for the "N more" line)."""
    q = _filtered(
        select(func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(Step, Step.id == Delivery.step_id)
        .outerjoin(Campaign, Campaign.id == Step.campaign_id),
        campaign, email,
    )
    return session.scalar(q) or 0


def status_table(rows: list[StatusRow], title: str = "Deliveries") -> Table:
    """Four columns that fit 80 characters: who (name, zone below), what (campaign, step title
    below), when (date, time below), status. Names and titles wrap rather than being cut; the
    time and the status never wrap or shrink."""
    table = Table(title=title, show_lines=False)
    table.add_column("patient / zone", ratio=2, overflow="fold", min_width=10)
    table.add_column("campaign / step", ratio=3, overflow="fold", min_width=12)
    table.add_column("local send time", no_wrap=True, min_width=14)
    table.add_column("status", no_wrap=True, min_width=9)
    previous = None
    for r in rows:
        style = {"sent": "green", "failed": "red", "cancelled": "yellow"}.get(r.status, "")
        who = Text(r.patient)
        who.append(f"\n{r.tz}", style="dim")
        what = Text(r.campaign, style="dim")
        what.append(f"\n{r.step}", style="")
        table.add_row(who if r.patient != previous else "", what,
                      r.local_time.strftime("%a %Y-%m-%d\n%H:%M %Z"), Text(r.status, style=style),
                      end_section=False)
        previous = r.patient
    return table
