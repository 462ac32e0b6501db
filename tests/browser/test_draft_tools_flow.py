"""The draft tools in Chromium: upload the seed, merge two emails, split one on its page, drop one
(its text shows under "Excluded text"), undo; screenshots in test-artifacts/screenshots/draft-*.png."""

from __future__ import annotations

import pytest

from tests.browser.server import log_in, run_server
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "editor.tools@clinic.example.org"
PASSWORD = "another long and careful password"


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A server of its own: the session's `live_server` must stay empty for the staff flow test."""
    with run_server(tmp_path_factory.mktemp("draft-tools")) as server:
        yield server


def _titles(page) -> list[str]:
    return [t.strip() for t in page.locator("table.steps tbody tr .sub").all_inner_texts()]


def test_staff_fix_a_draft_merge_split_drop_undo(page, own_server, shoot, seed_path):
    with own_server.runtime.sessions.begin() as s:
        add_staff(s, EMAIL, PASSWORD, role="editor")
    base = own_server.url
    log_in(page, base, EMAIL, PASSWORD)
    page.wait_for_url(f"{base}/staff/campaigns")
    page.set_input_files("input[name=article]", str(seed_path))
    page.click("button:has-text('Upload and split')")
    page.wait_for_selector("h1:has-text('Acupuncture for Pain Relief')")
    campaign_url = page.url
    rows = page.locator("table.steps tbody tr")
    total = rows.count()
    assert total == 13 and page.locator("#undo").count() == 0
    shoot(page, "draft-01-uploaded")

    # Merge email 2 (Release of Endorphins) with email 3 (Improved Blood Circulation).
    rows.nth(1).locator("button:has-text('Merge with next')").click()
    page.wait_for_selector(".flash-success:has-text('Email 2 and the next are one email now.')")
    assert rows.count() == total - 1
    assert "Improved Blood Circulation" not in " ".join(_titles(page))
    assert page.locator("#undo button").inner_text() == "Undo last change (merge)"
    shoot(page, "draft-02-merged")
    page.goto(f"{campaign_url}/steps/2")
    body = page.input_value("textarea[name=body]")
    assert "Improved Blood Circulation" in body and "enhance blood flow" in body  # the merged text

    # Split email 2 again, before its second paragraph (the merged item's title), on its page.
    page.locator("#structure li[data-paragraph='2'] button:has-text('Split here')").click()
    page.wait_for_selector(".flash-success:has-text('Email 2 was split')")
    assert page.url == f"{campaign_url}/steps/3"
    assert page.input_value("input[name=title]") == "Release of Endorphins (continued)"
    shoot(page, "draft-03-split")

    # Drop email 1 (the seed's stray "nervous system" fragment sits in the intro): kept as excluded.
    page.goto(campaign_url)
    assert rows.count() == total
    rows.nth(0).locator("button:has-text('Drop')").click()
    page.wait_for_selector(".flash-success:has-text('Email 1 was dropped')")
    assert rows.count() == total - 1
    excluded = page.locator("#excluded")
    assert "Excluded text" in excluded.inner_text() and "nervous system" in excluded.inner_text()
    assert excluded.locator("button:has-text('Restore as email')").count() == 1
    shoot(page, "draft-04-dropped")

    # Undo the drop: the intro is back first, the excluded section is gone.
    page.locator("#undo button:has-text('Undo last change (drop)')").click()
    page.wait_for_selector(".flash-success:has-text('Undone: drop.')")
    assert rows.count() == total and page.locator("#excluded").count() == 0
    assert page.locator("table.steps tbody tr").nth(0).locator(".badge-intro").count() == 1
    assert page.locator("#undo button").inner_text() == "Undo last change (split)"
    shoot(page, "draft-05-undone")
