"""The campaign page sets the cadence and shows, before publishing, when each email goes."""

from __future__ import annotations

import re

from campaigns.service import get_campaign
from tests.web.staff.conftest import post_form
from tests.web.staff.data import seed_staff

PAGE = "/staff/campaigns/draft-series"


def test_cadence_is_saved_and_the_plan_shows_each_steps_day_and_time(runtime, staff):
    seed_staff(runtime)
    before = re.findall(r'<td class="nowrap plan">([^<]*)</td>', staff.get(PAGE).text)
    assert len(before) == 3 and all(before)  # intro + 2 items, shown before publishing
    r = post_form(staff, PAGE, f"{PAGE}/cadence", data={"business_days": "1", "send_time": "09:30"})
    page = staff.get(r.headers["location"]).text
    assert "Cadence saved" in page
    plan = re.findall(r'<td class="nowrap plan">([^<]*)</td>', page)
    assert len(plan) == 3 and all(p.endswith("09:30") and not p.startswith(("Sat", "Sun")) for p in plan)
    with runtime.sessions() as s:
        c = get_campaign(s, "draft-series")
        assert (c.business_days, c.send_time) == (True, "09:30")


def test_a_bad_send_time_is_shown_and_changes_nothing(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, PAGE, f"{PAGE}/cadence", data={"send_time": "25:00"})
    assert "send time: expected a local time as HH:MM" in staff.get(r.headers["location"]).text
    with runtime.sessions() as s:
        assert get_campaign(s, "draft-series").send_time is None
