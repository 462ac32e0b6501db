"""Bulk enrollment from the campaign page: a tag at once or with a progress page, linking a tag,
and a CSV import straight into a campaign."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import campaigns.bulk
from drip.models import Enrollment, Tag
from subscribers.service import tag_subscribers
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import both_databases, post_form

PAGE = "/staff/campaigns/onboarding"


@pytest.fixture
def tagged(runtime):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1))
        make_campaign(s, "draft-one", n_items=1, publish=False)
        ids = [make_subscriber(s, f"p{i}@example.org").id for i in range(5)]
        ids.append(make_subscriber(s, "gone@example.org", status="unsubscribed").id)
        tag_subscribers(s, ids, ["back-pain"], T0)


def enrolled(runtime) -> int:
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(Enrollment))


@both_databases
def test_enroll_everyone_with_a_tag(runtime, staff, tagged):
    r = post_form(staff, PAGE, f"{PAGE}/enroll", data={"tag": "back-pain"})
    assert r.status_code == 303 and r.headers["location"] == PAGE
    html = staff.get(PAGE).text
    assert "tag “back-pain”: 5 of 6 patients enrolled, 1 passed over (1 patient is unsubscribed" in html
    assert enrolled(runtime) == 5
    post_form(staff, PAGE, f"{PAGE}/enroll", data={"tag": "back-pain"})  # again: nobody twice
    assert "0 of 6 patients enrolled, 6 passed over" in staff.get(PAGE).text and enrolled(runtime) == 5


def test_a_large_run_has_a_progress_page(runtime, staff, tagged, monkeypatch):
    monkeypatch.setattr(campaigns.bulk, "INLINE_MAX", 0)
    monkeypatch.setattr(campaigns.bulk, "CHUNK", 2)
    r = post_form(staff, PAGE, f"{PAGE}/enroll", data={"tag": "back-pain"})
    assert r.status_code == 303 and "/bulk/" in r.headers["location"]
    deadline = time.monotonic() + 120  # the run is in a thread: wait for it (generous: a loaded CI machine)
    while time.monotonic() < deadline:
        page = staff.get(r.headers["location"])
        if "Enrollment finished" in page.text:
            break
        assert page.headers.get("refresh") == "2" and "<progress" in page.text
        time.sleep(0.05)
    assert "Enrollment finished" in page.text and "refresh" not in page.headers
    assert "5 of 6 patients enrolled" in page.text and enrolled(runtime) == 5
    assert staff.get(f"{PAGE}/bulk/999").status_code == 404


def test_link_a_tag_then_joining_it_enrolls(runtime, staff, tagged):
    r = post_form(staff, PAGE, f"{PAGE}/tags", data={"action": "link", "tag": "back-pain", "enroll_existing": "1"})
    assert r.status_code == 303
    html = staff.get(PAGE).text
    assert "joining “back-pain” enrolls automatically" in html and "5 of 6 patients enrolled" in html
    with runtime.sessions.begin() as s:
        new = make_subscriber(s, "new@example.org").id
        assert tag_subscribers(s, [new], ["back-pain"], T0) == 1  # joining the list enrolls
    assert enrolled(runtime) == 6
    post_form(staff, PAGE, f"{PAGE}/tags", data={"action": "unlink", "tag": "back-pain"})
    with runtime.sessions() as s:
        assert s.scalar(select(Tag.campaign_id).where(Tag.name == "back-pain")) is None
    r = post_form(staff, "/staff/campaigns/draft-one", "/staff/campaigns/draft-one/enroll", data={"tag": "back-pain"})
    assert "publish it before enrolling" in staff.get("/staff/campaigns/draft-one").text


def test_bulk_forms_need_csrf(runtime, staff, tagged):
    for action, data in (("enroll", {"tag": "back-pain"}), ("tags", {"action": "link", "tag": "x"})):
        assert staff.post(f"{PAGE}/{action}", data=data, follow_redirects=False).status_code == 403
    assert enrolled(runtime) == 0


def test_csv_import_into_a_campaign(runtime, staff, tagged):
    body = b"email,name\nann@example.org,Ann\np1@example.org,\ngone@example.org,\n"
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import", data={"campaign": "onboarding"},
                  files={"csv": ("patients.csv", body, "text/csv")})
    assert r.status_code == 200
    assert '<span class="tile-value">2</span><span class="tile-label">enrolled</span>' in r.text
    assert enrolled(runtime) == 2
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import", data={"campaign": "draft-one"},
                  files={"csv": ("patients.csv", body, "text/csv")})
    assert r.status_code == 400 and "not published" in r.text
