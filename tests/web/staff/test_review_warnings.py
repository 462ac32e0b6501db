"""Review warnings on the staff campaign page; publishing with warnings open asks to confirm."""

from __future__ import annotations

from campaigns.service import get_campaign
from tests.conftest import SEED
from tests.web.staff.conftest import post_form

SLUG = "acupuncture-for-pain-relief-and-muscle-spasm"


def _upload(staff):
    r = post_form(staff, "/staff/campaigns", "/staff/campaigns/upload",
                  files={"article": ("acupuncture.txt", SEED.read_bytes(), "application/octet-stream")})
    assert r.status_code == 303 and r.headers["location"] == f"/staff/campaigns/{SLUG}"


def _status(runtime):
    with runtime.sessions() as s:
        return get_campaign(s, SLUG).status


def test_the_draft_page_shows_each_warning_beside_its_email(runtime, staff):
    _upload(staff)
    page = staff.get(f"/staff/campaigns/{SLUG}").text
    assert page.count('class="warning-line"') == 2
    assert "a fragment kept from the source: “nervous system”" in page
    assert "a likely typo: “work may work”" in page
    assert "Email 1</a>: a likely typo" in page  # the summary links each warning to its email
    assert "I have reviewed the warnings" in page
    assert "To review before publishing:" in page


def test_publishing_with_open_warnings_needs_the_confirmation(runtime, staff):
    _upload(staff)
    page = f"/staff/campaigns/{SLUG}"
    r = post_form(staff, page, f"{page}/status", data={"action": "publish"})
    assert r.status_code == 303 and _status(runtime) == "draft"
    assert "2 review warnings still open" in staff.get(page).text
    r = post_form(staff, page, f"{page}/status", data={"action": "publish", "confirm": "1"})
    assert r.status_code == 303 and _status(runtime) == "published"
    published = staff.get(page).text
    assert "I have reviewed the warnings" not in published  # nothing left to confirm
    assert "To review before publishing" not in published  # it is published: the notes say so
    assert "Review notes on these published emails" in published and "a likely typo" in published
