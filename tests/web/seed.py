"""Test data for the unsubscribe/suppression/event tests: a patient in two series and a newsletter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from campaigns.enrollment import enroll
from drip.models import Base, Broadcast, Delivery, DeliveryStatus, Enrollment, Tag
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


@dataclass
class Seeded:
    subscriber_id: int
    other_id: int  # a second patient, who must never be touched
    campaign_id: int
    other_campaign_id: int
    broadcast_id: int
    list_tag_id: int
    email: str = "ann@example.org"


def seed(runtime, *, now: datetime = T0) -> Seeded:
    """Ann is enrolled in two campaigns (3 steps each) and has one scheduled newsletter; Bob in one."""
    with runtime.sessions.begin() as s:
        c1 = make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1))
        c2 = make_campaign(s, "sleep-series", n_items=2, every=timedelta(days=1))
        ann = make_subscriber(s, "Ann@Example.org", name="Ann")
        bob = make_subscriber(s, "bob@example.org", name="Bob")
        for sub, camp in ((ann, c1), (ann, c2), (bob, c1)):
            enroll(s, sub, camp, now, clinic_tz="America/New_York")
        tag = Tag(name="newsletter", description="Monthly clinic newsletter")
        s.add(tag)
        s.flush()
        b = Broadcast(slug="december", title="December", subject="December news", body="Hello", tag_id=tag.id,
                      status="scheduled", send_at=now + timedelta(days=3))
        s.add(b)
        s.flush()
        for sub in (ann, bob):
            s.add(Delivery(subscriber_id=sub.id, broadcast_id=b.id, due_at=now + timedelta(days=3)))
        return Seeded(ann.id, bob.id, c1.id, c2.id, b.id, tag.id)


def deliveries(runtime, subscriber_id: int) -> list[Delivery]:
    with runtime.sessions() as s:
        return list(s.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id)))


def enrollments(runtime, subscriber_id: int) -> dict[int, str]:
    with runtime.sessions() as s:
        rows = s.scalars(select(Enrollment).where(Enrollment.subscriber_id == subscriber_id))
        return {e.campaign_id: e.state for e in rows}


def campaign_of(runtime, delivery: Delivery) -> int | None:
    with runtime.sessions() as s:
        if delivery.enrollment_id is None:
            return None
        return s.get(Enrollment, delivery.enrollment_id).campaign_id


def snapshot(runtime) -> dict[str, list[tuple]]:
    """Every row of every table, to prove a request changed nothing."""
    out = {}
    with runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out[table.name] = sorted(tuple(map(repr, row)) for row in conn.execute(table.select()))
    return out


SCHEDULED = DeliveryStatus.SCHEDULED.value
CANCELLED = DeliveryStatus.CANCELLED.value
