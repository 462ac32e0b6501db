"""Test data for the staff pages: a published and a draft campaign, two patients, a list, a newsletter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from campaigns.broadcasts import create_broadcast
from campaigns.enrollment import enroll
from drip.models import SubscriberTag, Tag
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0


@dataclass(frozen=True)
class Ids:
    campaign_id: int
    draft_id: int
    ann_id: int
    bob_id: int
    tag_id: int
    broadcast_id: int


def seed_staff(runtime) -> Ids:
    with runtime.sessions.begin() as s:
        live = make_campaign(s, "onboarding", n_items=3, every=timedelta(days=1))
        draft = make_campaign(s, "draft-series", n_items=2, publish=False)
        ann = make_subscriber(s, "ann@example.org", name="Ann Lee", tz="Europe/Paris")
        bob = make_subscriber(s, "bob@example.org", name="Bob Stone")
        enroll(s, ann, live, T0, clinic_tz="America/New_York")
        tag = Tag(name="newsletter", description="Monthly clinic newsletter")
        s.add(tag)
        s.flush()
        s.add_all([SubscriberTag(subscriber_id=ann.id, tag_id=tag.id), SubscriberTag(subscriber_id=bob.id, tag_id=tag.id)])
        b = create_broadcast(s, "december", title="December news", subject="December at the clinic",
                             body="Hello from the clinic.", list_name="newsletter")
        return Ids(live.id, draft.id, ann.id, bob.id, tag.id, b.id)
