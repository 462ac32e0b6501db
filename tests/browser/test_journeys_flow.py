"""Patient journeys in Chromium: choose the sign-up campaign, link a tag (enrolling those who have
it), set an exit condition, stop one patient with a reason. Screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.browser.server import log_in, run_server
from tests.factories import make_campaign, make_subscriber
from subscribers.service import tag_subscribers
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "journeys@clinic.example.org"
PASSWORD = "another long and careful password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server: choosing the sign-up campaign must not change the other browser tests' app."""
    with run_server(tmp_path_factory.mktemp("journeys")) as live:
        with live.runtime.sessions.begin() as s:
            add_staff(s, EMAIL, PASSWORD)
            make_campaign(s, "back-pain-basics", n_items=2, every=timedelta(days=2))
            ids = [make_subscriber(s, f"patient{i}@example.org", name=f"Patient {i}").id for i in range(3)]
            tag_subscribers(s, ids, ["back-pain"], datetime.now(timezone.utc))
        yield live


def test_front_desk_journeys(page, server, shoot):
    base = server.url
    log_in(page, base, EMAIL, PASSWORD)
    page.wait_for_url(f"{base}/staff/campaigns")
    assert "there is no campaign 'onboarding'" in page.locator("#signup-warning").inner_text()

    # Choose the campaign sign-ups start.
    page.click("#signup-warning a")
    page.wait_for_url(f"{base}/staff/signup")
    page.select_option("#signup-campaign", "back-pain-basics")
    page.fill("#signup-tag", "website")
    page.click("#signup-form button[type=submit]")
    page.wait_for_selector("#signup-status")
    assert page.locator("#signup-warning").count() == 0
    shoot(page, "20-signup-campaign")

    # Link a tag to the campaign and enroll those who already have it; add an exit condition.
    page.goto(f"{base}/staff/campaigns/back-pain-basics")
    page.fill("#link-tag input[name=tag]", "back-pain")
    page.check("#link-tag input[name=enroll_existing]")
    page.click("#link-tag button[type=submit]")
    page.wait_for_selector(".flash-success")
    assert "3 of 3 patients enrolled" in page.locator(".flashes").inner_text()
    page.fill("#exits input[name=value]", "appointment_booked")
    page.click("#exits button:has-text('Add exit condition')")
    page.wait_for_selector("#exits li")
    assert "Exit on event “appointment_booked”" in page.locator("#exits").inner_text()
    shoot(page, "21-campaign-tag-and-exit")

    # Stop one patient, with the reason the front desk gives.
    page.goto(f"{base}/staff/subscribers?q=patient1")
    page.click("a.rowlink:has-text('Patient 1')")
    page.wait_for_selector("#enrollments")
    page.fill("#enrollments input[name=reason]", "booked by phone")
    page.click("#enrollments button:has-text('Stop this series')")
    page.wait_for_selector(".flash-success")
    assert "3 scheduled emails cancelled" in page.locator(".flashes").inner_text()
    assert page.locator("#enrollments").count() == 0
    timeline = page.locator(".timeline").inner_text()
    assert "Stopped “Acupuncture basics”" in timeline and "booked by phone" in timeline
    shoot(page, "22-patient-stopped")
