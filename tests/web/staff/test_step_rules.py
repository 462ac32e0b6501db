"""The step page sets "when and to whom" (a date anchor, a condition); skipped steps show in the
patient's timeline; bad input is a 400 that changes nothing."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from sqlalchemy import select

from drip.models import AuditEntry, Delivery, Step
from subscribers.attributes import define_attribute, set_attributes
from tests.web.staff.conftest import post_form
from tests.web.staff.data import seed_staff

PARIS = ZoneInfo("Europe/Paris")  # Ann's zone
PAGE = "/staff/campaigns/onboarding/steps/2"


def _step(runtime):
    with runtime.sessions() as s:
        return s.scalar(select(Step).where(Step.position == 2, Step.campaign.has(slug="onboarding")))


def test_anchor_and_condition_from_the_step_page_and_the_timeline_shows_the_skip(runtime, staff):
    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date")
    assert '<option value="first_visit"' in staff.get(PAGE).text
    r = post_form(staff, PAGE, f"{PAGE}/rules", data={
        "anchor_offset": "3d", "anchor_direction": "before", "anchor_attribute": "first_visit",
        "condition": "not tag:pregnant"})
    assert r.status_code == 303
    page = staff.get(r.headers["location"]).text
    assert "Email 2: sent 3 days before first_visit, only when not tag:pregnant." in page
    assert "0 planned, 1 skipped" in page
    step = _step(runtime)
    assert (step.anchor_attribute, step.anchor_offset_minutes, step.condition) == ("first_visit", -4320,
                                                                                 "not tag:pregnant")
    timeline = staff.get(f"/staff/subscribers/{ids.ann_id}").text
    assert "skipped: no first_visit for this patient (3 days before first_visit)" in timeline
    assert "badge-skipped" in timeline
    campaign_page = staff.get("/staff/campaigns/onboarding").text
    plan = re.findall(r'<td class="nowrap plan">([^<]*)</td>', campaign_page)
    assert plan[1] == "3 days before first_visit" and plan[0] and plan[2][:3].isalpha()  # the others keep a date
    assert re.findall(r'<td class="nowrap after">([^<]*)</td>', campaign_page)[1] == "on a date"
    with runtime.sessions() as s:
        assert "step.rules" in [a.action for a in s.scalars(select(AuditEntry))]
    with runtime.sessions.begin() as s:  # the booking system sends the date: the step is planned
        from drip.models import utcnow
        set_attributes(s, ids.ann_id, {"first_visit": "2099-01-10"}, utcnow(), clinic_tz="UTC")
    with runtime.sessions() as s:
        d = s.scalar(select(Delivery).where(Delivery.subscriber_id == ids.ann_id, Delivery.step_id == step.id))
        assert d.status == "scheduled" and d.last_error == "" and d.due_at.astimezone(PARIS).date().isoformat() == "2099-01-07"


def test_a_bad_condition_is_a_400_and_changes_nothing(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, PAGE, f"{PAGE}/rules", data={"anchor_attribute": "", "condition": "age > 3"})
    assert r.status_code == 400 and "is not a condition" in r.text
    r = post_form(staff, PAGE, f"{PAGE}/rules", data={"anchor_attribute": "nope", "anchor_offset": "1d"})
    assert r.status_code == 400 and "no attribute" in r.text
    step = _step(runtime)
    assert step.anchor_attribute is None and step.condition is None
