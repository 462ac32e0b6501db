"""Step conditions checked at send time: false -> skipped and recorded (not sent, not a failure,
not toward auto-pause), on SQLite and PostgreSQL; one query a chunk only when a step has one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.conditions import set_condition
from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.errors import InputError
from drip.models import Campaign, Delivery, Step
from subscribers.attributes import define_attribute, set_attributes
from subscribers.service import tag_subscribers, untag_subscribers
from tests.delivery.test_dispatcher import Clock, ScriptedBackend
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def _campaign(s, condition):
    define_attribute(s, "age", "number")
    define_attribute(s, "insurance", "choice", choices=["medicare", "private"])
    c = make_campaign(s, "care", n_items=1, every=timedelta(0))
    first = s.scalar(select(Step).where(Step.campaign_id == c.id).order_by(Step.position))
    set_condition(s, first, condition)
    return c, first.id


def _statuses(runtime, step_id):
    with runtime.sessions() as s:
        return {d.subscriber_id: (d.status, d.last_error)
                for d in s.scalars(select(Delivery).where(Delivery.step_id == step_id))}


def test_a_tag_removed_after_enrollment_skips_the_step_at_send_time(runtime):
    with runtime.sessions.begin() as s:
        c, step_id = _campaign(s, "tag:back-pain and not tag:pregnant")
        subs = [make_subscriber(s, f"p{i}@example.org") for i in range(4)]
        ids = [x.id for x in subs]
        tag_subscribers(s, [ids[0]], ["Back-Pain"], T0)
        tag_subscribers(s, ids[1:3], ["back-pain"], T0)
        tag_subscribers(s, [ids[2]], ["pregnant"], T0)
        for sub in subs:
            enroll(s, sub, c, T0, clinic_tz="UTC")
    with runtime.sessions.begin() as s:  # after enrollment: the front desk removes one tag
        untag_subscribers(s, ids[1], ["back-pain"], T0)
    backend = ScriptedBackend(runtime.settings)
    report = Dispatcher(runtime, backend, clock=Clock(T0 + timedelta(minutes=1)), worker_id="w").tick()
    got = _statuses(runtime, step_id)
    assert got[ids[0]][0] == "sent"
    for sid in ids[1:]:
        assert got[sid] == ("cancelled", "skipped: condition not met (tag:back-pain and not tag:pregnant)")
    assert report.skipped == 3 and report.failed == 0
    assert "p1@example.org" not in {m.to_email for m in backend.sent}
    with runtime.sessions() as s:  # skips are not failures: no auto-pause
        camp = s.get(Campaign, c.id)
        assert camp.status == "published" and camp.consecutive_failures == 0


def test_attribute_conditions_at_send_time(runtime):
    with runtime.sessions.begin() as s:
        c, step_id = _campaign(s, "attribute:age >= 65 and attribute:insurance = Medicare")
        step = s.get(Step, step_id)
        assert step.condition == "attribute:age >= 65 and attribute:insurance = medicare"  # stored canonically
        a, b, n = (make_subscriber(s, f"{x}@example.org") for x in "abn")
        set_attributes(s, a.id, {"age": 70, "insurance": "medicare"}, T0, clinic_tz="UTC")
        set_attributes(s, b.id, {"age": "64.5", "insurance": "medicare"}, T0, clinic_tz="UTC")
        for sub in (a, b, n):
            enroll(s, sub, c, T0, clinic_tz="UTC")
        ids = (a.id, b.id, n.id)
    Dispatcher(runtime, ScriptedBackend(runtime.settings), clock=Clock(T0 + timedelta(minutes=1)), worker_id="w").tick()
    got = _statuses(runtime, step_id)
    assert got[ids[0]][0] == "sent"
    assert got[ids[1]][0] == got[ids[2]][0] == "cancelled"
    assert got[ids[2]][1].startswith("skipped: condition not met")


def test_setting_a_condition_checks_it_against_the_attributes(runtime):
    with runtime.sessions.begin() as s:
        c, step_id = _campaign(s, "tag:x")
        step = s.get(Step, step_id)
        with pytest.raises(InputError, match="only = and != compare it"):
            set_condition(s, step, "attribute:insurance > medicare")
        with pytest.raises(InputError, match="no attribute 'height'"):
            set_condition(s, step, "attribute:height > 3")
        with pytest.raises(InputError, match="not a number"):
            set_condition(s, step, "attribute:age >= old")
        assert set_condition(s, step, "") is None and step.condition is None


def test_no_query_for_chunks_without_a_conditional_step(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "plain", n_items=1, every=timedelta(0))
        enroll(s, make_subscriber(s, "q@example.org"), c, T0, clinic_tz="UTC")
    d = Dispatcher(runtime, ScriptedBackend(runtime.settings), clock=Clock(T0 + timedelta(minutes=1)), worker_id="w")
    asked = []
    d.store.facts = lambda *a: asked.append(a) or {}
    assert d.tick().sent >= 1 and asked == []
