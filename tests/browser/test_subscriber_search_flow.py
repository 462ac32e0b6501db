"""Staff find patients in a long list in Chromium: a search by part of a name through the trigram
index, Next and Previous by id with the filter kept, and the capped "N shown of M" line.
Screenshots in test-artifacts/screenshots/ (search-1, search-2)."""

from __future__ import annotations

import pytest

from tests.browser.server import log_in, run_server
from tests.factories import make_subscriber
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "frontdesk@clinic.example.org"
PASSWORD = "a long and careful password for the search flow"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("search")) as live:
        with live.runtime.sessions.begin() as s:
            add_staff(s, EMAIL, PASSWORD)
            for i in range(130):
                family = "García" if i % 2 else "Lee"
                make_subscriber(s, f"patient{i:03d}@example.org", name=f"Ana {family} {i:03d}")
        yield live


def names(page) -> list[str]:
    return [t.strip() for t in page.locator("table tbody tr td:first-child a").all_inner_texts()]


def test_search_then_page_through_the_matches(page, server, shoot):
    base = server.url
    log_in(page, base, EMAIL, PASSWORD)
    page.wait_for_url(f"{base}/staff/campaigns")

    page.goto(f"{base}/staff/subscribers")
    assert "130 patients on file" in page.locator(".pagehead").inner_text()
    page.fill("input[name=q]", "garcía")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=garc*")
    first = names(page)
    assert first == [f"Ana García {i:03d}" for i in range(1, 100, 2)]  # 50 of the 65, in id order
    assert "50 shown of 65 matching" in page.locator(".card-foot").inner_text()
    assert page.locator("a[rel=prev]").count() == 0
    shoot(page, "search-1-first-page")

    page.click("a[rel=next]")
    page.wait_for_url("**after=*")
    assert names(page) == [f"Ana García {i:03d}" for i in range(101, 130, 2)]
    assert page.locator("input[name=q]").input_value() == "garcía"  # the filter is kept
    assert page.locator("a[rel=next]").count() == 0
    shoot(page, "search-2-second-page")

    page.click("a[rel=prev]")
    page.wait_for_url("**before=*")
    assert names(page) == first
