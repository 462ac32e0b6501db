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
    assert 'id="bulk-campaign">Into <strong>Acupuncture basics</strong> (onboarding)' in page.text  # names the campaign
    assert staff.get(f"{PAGE}/bulk/999").status_code == 404


def wait_finished(staff, url: str) -> str:
    deadline = time.monotonic() + 120  # the run is in a thread: wait for it (generous: a loaded CI machine)
    while time.monotonic() < deadline:
        page = staff.get(url)
        if "Enrollment finished" in page.text:
            assert "refresh" not in page.headers
            return page.text
        assert page.headers.get("refresh") == "2" and "<progress" in page.text
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


@both_databases
def test_a_large_csv_import_into_a_campaign_has_the_progress_page(runtime, staff, tagged, monkeypatch):
    monkeypatch.setattr(campaigns.bulk, "INLINE_MAX", 3)
    body = b"email,name\n" + b"".join(b"new%d@example.org,New %d\n" % (i, i) for i in range(40)) + \
        b"p1@example.org,\ngone@example.org,\nnot-an-address,\n"
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import", data={"campaign": "onboarding"},
                  files={"csv": ("patients.csv", body, "text/csv")})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{PAGE}/bulk/")
    page = wait_finished(staff, r.headers["location"])
    assert "Into <strong>Acupuncture basics</strong>" in page
    assert "file “patients.csv”: 41 of 42 patients enrolled, 1 passed over" in page  # gone@ is unsubscribed
    assert "1 row with a problem not imported" in page
    assert enrolled(runtime) == 41


def test_a_refused_large_csv_import_says_so_and_enrolls_nobody(runtime, staff, tagged, monkeypatch):
    monkeypatch.setattr(campaigns.bulk, "INLINE_MAX", 1)
    body = b"email\na@example.org\nb@example.org\nnot-an-address\n"
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import",
                  data={"campaign": "onboarding", "strict": "1"}, files={"csv": ("p.csv", body, "text/csv")})
    page = wait_finished(staff, r.headers["location"])
    assert "nothing was imported: 1 problem in the file (the first: line 4: email:" in page
    assert enrolled(runtime) == 0
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/import", data={"campaign": "draft-one"},
                  files={"csv": ("p.csv", body, "text/csv")})
    assert r.status_code == 400 and "publish it before enrolling patients" in r.text and enrolled(runtime) == 0


def test_every_dropdown_of_the_bulk_pages_has_a_label_for_it(runtime, staff, tagged):
    """Screen readers name a <select> by its <label for>; the enroll, link, exit, import and filter
    forms each have one, with text."""
    import re

    from drip.models import Subscriber

    with runtime.sessions() as s:
        sid = s.scalar(select(func.min(Subscriber.id)))
    for url in (PAGE, "/staff/subscribers", f"/staff/subscribers/{sid}", "/staff/signup"):
        html = staff.get(url).text
        selects = re.findall(r"<select\b[^>]*>", html)
        assert selects, url
        for tag in selects:
            if "aria-label=" in tag:
                continue
            m = re.search(r'\bid="([^"]+)"', tag)
            assert m, f"{url}: {tag} has no id for a label"
            label = re.search(rf'<label\b[^>]*\bfor="{re.escape(m.group(1))}"[^>]*>(.*?)</label>', html, re.S)
            assert label and re.sub(r"<[^>]+>", "", label.group(1)).strip(), f"{url}: no label for #{m.group(1)}"


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
