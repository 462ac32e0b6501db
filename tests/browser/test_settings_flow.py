"""The owner changes the branding in Chromium: the preview shows the unsaved name and colour,
saving makes them the clinic's (a server of its own: the shared live server keeps its branding)."""

from __future__ import annotations

import pytest

from tests.browser.server import log_in, run_server
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "owner@clinic.example.org"
PASSWORD = "a long and careful password"


def test_owner_previews_then_saves_new_branding(page, shoot, tmp_path):
    from playwright.sync_api import expect

    with run_server(tmp_path) as server:
        with server.runtime.sessions.begin() as s:
            add_staff(s, EMAIL, PASSWORD)
        base = server.url
        log_in(page, base, EMAIL, PASSWORD)
        page.wait_for_selector(".account .who")
        page.goto(f"{base}/staff/settings")
        preview = page.frame_locator("#settings-preview").locator("body")
        expect(preview).to_contain_text("Riverside Acupuncture")

        page.fill("#s-name", "Harbor Physio")
        page.fill("#s-brand_color", "#aa3311")
        with page.expect_response(lambda r: r.url.endswith("/staff/settings/preview") and r.request.method == "POST"):
            page.click("#preview-button")
        expect(preview).to_contain_text("Harbor Physio")
        assert "#aa3311" in page.frame(name="settings-preview").content().lower()
        assert page.url == f"{base}/staff/settings"  # the page itself did not move: nothing saved
        assert "<strong>Riverside Acupuncture" in page.content()
        shoot(page, "settings-preview-unsaved")

        page.click("button:has-text('Save')")
        page.wait_for_selector(".flash-success")
        assert page.locator(".brand-text strong").inner_text() == "Harbor Physio"
        expect(page.frame_locator("#settings-preview").locator("body")).to_contain_text("Harbor Physio")
        shoot(page, "settings-saved")
