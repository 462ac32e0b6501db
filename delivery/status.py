"""The ledger as people read it: patient, step, local send time, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.schedule import resolve_zone
from drip.models import Broadcast, Campaign, Delivery, Step, Subscriber


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


def status_rows(session: Session, clinic_tz: str, *, campaign: str | None = None, email: str | None = None,
                limit: int = 500) -> list[StatusRow]:
    q = (
        select(Delivery, Subscriber, Step, Campaign, Broadcast)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(Step, Step.id == Delivery.step_id)
        .outerjoin(Campaign, Campaign.id == Step.campaign_id)
        .outerjoin(Broadcast, Broadcast.id == Delivery.broadcast_id)
        .order_by(Subscriber.email_key, Delivery.due_at, Delivery.id)
        .limit(limit)
    )
    if campaign:
        q = q.where(Campaign.slug == campaign)
    if email:
        q = q.where(Subscriber.email_key == email.strip().lower())
    out = []
    for d, sub, step, camp, b in session.execute(q):
        tz = resolve_zone(sub.tz, clinic_tz)
        at = (d.sent_at or d.due_at).astimezone(tz)
        out.append(
            StatusRow(
                delivery_id=d.id,
                patient=sub.name or sub.email,
                tz=tz.key,
                campaign=camp.slug if camp else (f"newsletter:{b.slug}" if b else ""),
                step=f"{step.position}. {step.slug}" if step else (b.subject if b else ""),
                local_time=at,
                status=d.status,
                error=d.last_error,
            )
        )
    return out


def status_table(rows: list[StatusRow], title: str = "Deliveries") -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("patient", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("zone", no_wrap=True, max_width=19, overflow="ellipsis")
    table.add_column("campaign", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("step", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("local send time", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=9)
    previous = None
    for r in rows:
        style = {"sent": "green", "failed": "red", "cancelled": "yellow"}.get(r.status, "")
        table.add_row(r.patient if r.patient != previous else "", r.tz if r.patient != previous else "",
                      r.campaign, r.step, r.local_time.strftime("%a %Y-%m-%d %H:%M %Z"),
                      f"[{style}]{r.status}[/]" if style else r.status,
                      end_section=False)
        previous = r.patient
    return table
