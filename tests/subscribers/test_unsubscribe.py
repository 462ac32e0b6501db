"""Unsubscribe scopes, pause/resume, resubscribe and list choices, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from drip.errors import InputError
from drip.models import CampaignOptOut, Subscriber, SubscriberTag, Suppression, Tag
from subscribers.suppression import suppress
from subscribers.tokens import LinkClaims
from subscribers.unsubscribe import (
    PreferenceError,
    can_resubscribe,
    public_lists,
    resubscribe,
    set_preferences,
    unsubscribe,
)
from tests.web.seed import CANCELLED, SCHEDULED, T0, campaign_of, deliveries, enrollments, seed


def _status(runtime, sid):
    with runtime.sessions() as s:
        return s.get(Subscriber, sid).status


def _suppression(runtime, key="ann@example.org"):
    with runtime.sessions() as s:
        row = s.get(Suppression, key)
        return (row.reason, row.source) if row else None


def test_unsubscribe_all_stops_everything_and_is_idempotent(runtime):
    ids = seed(runtime)
    claims = LinkClaims(ids.subscriber_id, ids.campaign_id, delivery_id=7)
    with runtime.sessions.begin() as s:
        first = unsubscribe(s, claims, "all", now=T0, source="one-click")
    assert first.found and first.changed and first.cancelled == 7  # 2 campaigns x 3 steps + 1 newsletter
    assert _status(runtime, ids.subscriber_id) == "unsubscribed"
    assert _suppression(runtime) == ("unsubscribe", "one-click d7")
    assert {d.status for d in deliveries(runtime, ids.subscriber_id)} == {CANCELLED}
    assert set(enrollments(runtime, ids.subscriber_id).values()) == {"cancelled"}
    assert {d.status for d in deliveries(runtime, ids.other_id)} == {SCHEDULED}

    with runtime.sessions.begin() as s:
        again = unsubscribe(s, claims, "all", now=T0 + timedelta(minutes=1), source="one-click")
    assert again.found and not again.changed and again.cancelled == 0


def test_unsubscribe_campaign_only_stops_that_series(runtime):
    ids = seed(runtime)
    claims = LinkClaims(ids.subscriber_id, ids.campaign_id, None)
    with runtime.sessions.begin() as s:
        result = unsubscribe(s, claims, "campaign", now=T0, source="unsubscribe-page")
    assert result.changed and result.cancelled == 3 and result.campaign_title == "Acupuncture basics"
    with runtime.sessions() as s:
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.campaign_id)) is not None
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.other_campaign_id)) is None
    assert _status(runtime, ids.subscriber_id) == "active"
    assert _suppression(runtime) is None
    for d in deliveries(runtime, ids.subscriber_id):
        assert d.status == (CANCELLED if campaign_of(runtime, d) == ids.campaign_id else SCHEDULED)
    with runtime.sessions.begin() as s:
        assert unsubscribe(s, claims, "campaign", now=T0, source="x").changed is False


def test_campaign_scope_needs_a_campaign_link(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s, pytest.raises(InputError, match="not a series"):
        unsubscribe(s, LinkClaims(ids.subscriber_id, None, None), "campaign", now=T0)
    with runtime.sessions.begin() as s, pytest.raises(InputError, match="unknown unsubscribe scope"):
        unsubscribe(s, LinkClaims(ids.subscriber_id, None, None), "everything", now=T0)  # type: ignore[arg-type]


def test_unsubscribe_all_keeps_a_bounce_status_and_reason(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        s.get(Subscriber, ids.subscriber_id).status = "bounced"
        suppress(s, "ann@example.org", "bounce", "sendgrid:bounce", T0)
    with runtime.sessions.begin() as s:
        unsubscribe(s, LinkClaims(ids.subscriber_id), "all", now=T0)
    assert _status(runtime, ids.subscriber_id) == "bounced"
    assert _suppression(runtime)[0] == "bounce"


def test_unsubscribe_of_an_erased_subscriber_is_a_no_op(runtime):
    with runtime.sessions.begin() as s:
        result = unsubscribe(s, LinkClaims(999), "all", now=T0)
    assert not result.found and not result.changed
    with runtime.sessions() as s:
        assert s.scalar(select(Suppression)) is None


def test_pause_keeps_pending_rows_and_resume_restores(runtime):
    ids = seed(runtime)
    before = [(d.id, d.status, d.due_at) for d in deliveries(runtime, ids.subscriber_id)]
    with runtime.sessions.begin() as s:
        change = set_preferences(s, s.get(Subscriber, ids.subscriber_id), paused=True, now=T0)
    assert change.changed and change.status == "paused"
    assert _status(runtime, ids.subscriber_id) == "paused"
    assert [(d.id, d.status, d.due_at) for d in deliveries(runtime, ids.subscriber_id)] == before
    with runtime.sessions.begin() as s:
        assert set_preferences(s, s.get(Subscriber, ids.subscriber_id), paused=True, now=T0).changed is False
        assert set_preferences(s, s.get(Subscriber, ids.subscriber_id), paused=False, now=T0).changed is True
    assert _status(runtime, ids.subscriber_id) == "active"


def test_preferences_refused_when_unsubscribed(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        unsubscribe(s, LinkClaims(ids.subscriber_id), "all", now=T0)
    with runtime.sessions.begin() as s, pytest.raises(PreferenceError, match="unsubscribed"):
        set_preferences(s, s.get(Subscriber, ids.subscriber_id), paused=False, now=T0)
    assert _status(runtime, ids.subscriber_id) == "unsubscribed"


def test_resubscribe_undoes_only_an_own_unsubscribe(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        unsubscribe(s, LinkClaims(ids.subscriber_id), "all", now=T0)
    with runtime.sessions.begin() as s:
        sub = s.get(Subscriber, ids.subscriber_id)
        assert can_resubscribe(s, sub)
        assert resubscribe(s, sub, now=T0 + timedelta(days=1)) is True
    with runtime.sessions() as s:
        sub = s.get(Subscriber, ids.subscriber_id)
        assert sub.status == "active" and sub.consent_at == T0 + timedelta(days=1)
        assert sub.consent_source == "preferences"
    assert _suppression(runtime) is None
    # Cancelled mail stays cancelled: a series does not restart by itself.
    assert {d.status for d in deliveries(runtime, ids.subscriber_id)} == {CANCELLED}

    # A bounced address is staff's to restore, not the link's.
    with runtime.sessions.begin() as s:
        s.get(Subscriber, ids.other_id).status = "unsubscribed"
        suppress(s, "bob@example.org", "bounce", "sendgrid:bounce", T0)
    with runtime.sessions.begin() as s:
        bob = s.get(Subscriber, ids.other_id)
        assert not can_resubscribe(s, bob)
        with pytest.raises(PreferenceError, match="contact the clinic"):
            resubscribe(s, bob, now=T0)
    assert _suppression(runtime, "bob@example.org")[0] == "bounce"


def test_lists_shown_are_only_public_ones(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        internal = Tag(name="no-show-risk")  # no description: internal
        s.add(internal)
        s.flush()
        s.add(SubscriberTag(subscriber_id=ids.subscriber_id, tag_id=internal.id))
        s.add(SubscriberTag(subscriber_id=ids.subscriber_id, tag_id=ids.list_tag_id))
    with runtime.sessions() as s:
        lists = public_lists(s, s.get(Subscriber, ids.subscriber_id))
    assert [(m.name, m.label, m.member) for m in lists] == [("newsletter", "Monthly clinic newsletter", True)]

    # Posting an internal tag id does not join it; leaving everything leaves the internal tag alone.
    with runtime.sessions.begin() as s:
        set_preferences(s, s.get(Subscriber, ids.subscriber_id), lists=[internal.id], now=T0)
    with runtime.sessions() as s:
        tags = set(s.scalars(select(SubscriberTag.tag_id).where(SubscriberTag.subscriber_id == ids.subscriber_id)))
    assert tags == {internal.id}


def test_leaving_a_list_cancels_its_newsletters_and_its_series(runtime):
    ids = seed(runtime)
    with runtime.sessions.begin() as s:
        series = Tag(name="onboarding-list", description="Getting started with acupuncture", campaign_id=ids.campaign_id)
        s.add(series)
        s.flush()
        series_id = series.id
        for tag_id in (ids.list_tag_id, series_id):
            s.add(SubscriberTag(subscriber_id=ids.subscriber_id, tag_id=tag_id))
    with runtime.sessions.begin() as s:
        change = set_preferences(s, s.get(Subscriber, ids.subscriber_id), lists=[], now=T0)
    assert set(change.left) == {"Monthly clinic newsletter", "Getting started with acupuncture"}
    assert change.cancelled == 1 + 3
    for d in deliveries(runtime, ids.subscriber_id):
        keep = d.broadcast_id is None and campaign_of(runtime, d) == ids.other_campaign_id
        assert d.status == (SCHEDULED if keep else CANCELLED)
    with runtime.sessions() as s:
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.campaign_id)) is not None
    assert {d.status for d in deliveries(runtime, ids.other_id)} == {SCHEDULED}

    # Joining again takes the opt-out back (staff may enrol again) and adds the tag.
    with runtime.sessions.begin() as s:
        change = set_preferences(s, s.get(Subscriber, ids.subscriber_id), lists=[series_id], now=T0)
    assert change.joined == ("Getting started with acupuncture",) and change.left == ()
    with runtime.sessions() as s:
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.campaign_id)) is None
        assert s.get(SubscriberTag, (ids.subscriber_id, series_id)) is not None
