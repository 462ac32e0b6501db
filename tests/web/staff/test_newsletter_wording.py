"""A newsletter that speaks of the reader's own health is flagged, and scheduling asks to confirm."""

from __future__ import annotations

from sqlalchemy import func, select

from campaigns.broadcasts import get_broadcast
from drip.models import Delivery
from tests.web.staff.conftest import post_form
from tests.web.staff.data import seed_staff
from tests.web.staff.test_staff_cli import cli_env  # noqa: F401  (fixture)

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


def test_drip_broadcast_schedule_asks_the_same_in_a_script(cli_env, monkeypatch, capsys):  # noqa: F811
    """Not a terminal: the wording is listed, one error line, exit 2, nothing scheduled; --yes goes on."""
    from datetime import date, timedelta

    from tests.web.staff.test_staff_cli import run_main

    seed_staff(cli_env)
    _reword(cli_env, "Hello!\n\nPlease bring your test results to your next appointment.")
    at = f"{date.today() + timedelta(days=20):%Y-%m-%d} 09:00"
    code, out, err = run_main(monkeypatch, capsys, ["broadcast", "schedule", "december", "--at", at])
    assert code == 2 and "your test results" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == ("drip: error: december: the newsletter addresses the reader's own health "
                                            "(2 place(s), listed above): reword it, or re-run with --yes")
    assert _state(cli_env) == ("draft", 0)
    code, out, err = run_main(monkeypatch, capsys, ["broadcast", "schedule", "december", "--at", at, "--yes"])
    assert code == 0, err
    assert _state(cli_env) == ("scheduled", 2)
