"""A newsletter that speaks of the reader's own health is flagged, and scheduling asks to confirm."""

from __future__ import annotations

from sqlalchemy import func, select

from campaigns.broadcasts import get_broadcast
from drip.models import Delivery
from tests.web.staff.conftest import post_form
from tests.web.staff.data import seed_staff

PAGE = "/staff/newsletters/december"


def _reword(runtime, body: str) -> None:
    with runtime.sessions.begin() as s:
        get_broadcast(s, "december").body = body


def _state(runtime):
    with runtime.sessions() as s:
        b = get_broadcast(s, "december")
        return b.status, s.scalar(select(func.count()).select_from(Delivery).where(Delivery.broadcast_id == b.id))


def test_personal_health_wording_needs_a_confirmation_to_schedule(runtime, staff):
    seed_staff(runtime)
    _reword(runtime, "Hello!\n\nPlease bring your test results to your next appointment.")
    html = staff.get(PAGE).text
    assert "speaks of the reader's own health" in html and "your test results" in html
    r = post_form(staff, PAGE, f"{PAGE}/schedule", data={"mode": "once", "at": "2026-12-20 09:00"})
    assert "I have checked the wording" in staff.get(r.headers["location"]).text
    assert _state(runtime) == ("draft", 0)
    r = post_form(staff, PAGE, f"{PAGE}/schedule",
                  data={"mode": "once", "at": "2026-12-20 09:00", "confirm_wording": "1"})
    assert _state(runtime) == ("scheduled", 2)


def test_general_wording_schedules_without_a_question(runtime, staff):
    seed_staff(runtime)
    _reword(runtime, "Hello!\n\nA diagnosis of sciatica usually starts with a physical exam.")
    assert "I have checked the wording" not in staff.get(PAGE).text
    post_form(staff, PAGE, f"{PAGE}/schedule", data={"mode": "once", "at": "2026-12-20 09:00"})
    assert _state(runtime) == ("scheduled", 2)
