from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from campaigns.enrollment import NotEnrollable, enroll, enroll_for_tags
from drip.models import CampaignOptOut, Delivery, Enrollment, Suppression, Tag
from tests.factories import make_campaign, make_subscriber

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)  # Tuesday


def test_enroll_creates_one_delivery_per_step_in_the_window(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, n_items=4, window="mon-fri 09:00-17:00")
        sub = make_subscriber(s, "tokyo@example.org", tz="Asia/Tokyo")
        e = enroll(s, sub, c, NOW, clinic_tz="America/New_York")
        rows = s.scalars(select(Delivery).where(Delivery.enrollment_id == e.id).order_by(Delivery.due_at)).all()
    assert len(rows) == 5
    tz = ZoneInfo("Asia/Tokyo")
    for prev, row in zip(rows, rows[1:]):
        assert row.due_at - prev.due_at >= timedelta(hours=20)
    for row in rows:
        local = row.due_at.astimezone(tz)
        assert local.weekday() < 5 and 9 <= local.hour < 17, local
        assert row.due_at >= NOW


def test_no_second_active_enrollment(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        sub = make_subscriber(s, "a@example.org")
        enroll(s, sub, c, NOW, clinic_tz="UTC")
        with pytest.raises(NotEnrollable, match="already enrolled"):
            enroll(s, sub, c, NOW, clinic_tz="UTC")
        assert s.scalar(select(Enrollment.id).where(Enrollment.state == "active")) is not None


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained", "pending"])
def test_inactive_subscribers_are_never_enrolled(runtime, status):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        sub = make_subscriber(s, "a@example.org", status=status)
        with pytest.raises(NotEnrollable):
            enroll(s, sub, c, NOW, clinic_tz="UTC")


def test_suppressed_or_opted_out_never_enrolled(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s)
        a = make_subscriber(s, "a@example.org")
        b = make_subscriber(s, "b@example.org")
        s.add(Suppression(email_key="a@example.org", reason="bounce"))
        s.add(CampaignOptOut(subscriber_id=b.id, campaign_id=c.id))
        s.flush()
        with pytest.raises(NotEnrollable, match="suppression"):
            enroll(s, a, c, NOW, clinic_tz="UTC")
        with pytest.raises(NotEnrollable, match="unsubscribed from"):
            enroll(s, b, c, NOW, clinic_tz="UTC")


def test_draft_campaign_refuses_enrollment(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, publish=False)
        sub = make_subscriber(s, "a@example.org")
        with pytest.raises(NotEnrollable, match="draft"):
            enroll(s, sub, c, NOW, clinic_tz="UTC")


def test_enroll_for_tags_only_tied_published_campaigns(runtime):
    with runtime.sessions.begin() as s:
        live = make_campaign(s, "live")
        draft = make_campaign(s, "draft", publish=False)
        t1 = Tag(name="new-patients", campaign_id=live.id)
        t2 = Tag(name="drafty", campaign_id=draft.id)
        t3 = Tag(name="plain")
        s.add_all([t1, t2, t3])
        subs = [make_subscriber(s, f"p{i}@example.org") for i in range(3)]
        made = enroll_for_tags(s, [x.id for x in subs], [t1.id, t2.id, t3.id], NOW, clinic_tz="UTC")
        assert made == 3
        # a second join is not an error and does not double
        assert enroll_for_tags(s, [x.id for x in subs], [t1.id], NOW, clinic_tz="UTC") == 0
        assert s.scalar(select(Enrollment.id).where(Enrollment.campaign_id == draft.id)) is None
