"""The campaign page sets the cadence and shows, before publishing, when each email goes."""

from __future__ import annotations

import re
from datetime import datetime

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


def test_enrolling_today_column_shows_business_day_labels_and_each_steps_day_and_time(runtime, staff, clock):
    """Before publishing: 'Sends after' says 'business day N' once days count Mon-Fri, and
    'Enrolling today' gives the weekday, date and local time for a patient enrolling at the page's
    clock (Tue 1 Dec 2026), in the zone the hint names."""
    seed_staff(runtime)
    page = staff.get(PAGE).text
    assert "<th>Enrolling today</th>" in page
    assert re.findall(r'<td class="nowrap after">([^<]*)</td>', page) == ["at once", "day 2", "day 4"]
    post_form(staff, PAGE, f"{PAGE}/cadence", data={"business_days": "1", "send_time": "09:30"})
    page = staff.get(PAGE).text
    assert re.findall(r'<td class="nowrap after">([^<]*)</td>', page) == ["at once", "business day 2",
                                                                           "business day 4"]
    zone = re.search(r'<span id="plan-from">([^,<]*), enrolling today at', page).group(1)
    from zoneinfo import ZoneInfo

    assert zone == runtime.settings.clinic.timezone
    today = clock().astimezone(ZoneInfo(zone))
    plan = re.findall(r'<td class="nowrap plan">([^<]*)</td>', page)
    # the first email today or later at 09:30, the next two, two and four business days after it
    first = datetime.strptime(plan[0] + f" {today.year}", "%a %d %b, %H:%M %Y").date()
    assert first >= today.date() and all(p.endswith("09:30") for p in plan)
    from campaigns.schedule import add_days

    assert plan[1].startswith(f"{add_days(first, 2, True):%a %d %b}")
    assert plan[2].startswith(f"{add_days(first, 4, True):%a %d %b}")
