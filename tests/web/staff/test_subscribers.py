"""Subscriber pages: search (SQL metacharacters are plain text), filters, CSV import report, add,
tags, enroll, unsubscribe, suppress, timeline."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from drip.models import Delivery, Enrollment, Subscriber, Suppression
from tests.factories import make_subscriber
from tests.web.seed import snapshot
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.data import seed_staff

TRICKY = ["x' OR 1=1 -- y", "Robert'); DROP TABLE subscribers;--", "100% Natural", "Under_score", "Percent%_Underscore",
          "Plain Person"]


def shown(html: str) -> list[str]:
    """Names (or addresses) in the subscribers table, in order."""
    return re.findall(r'class="rowlink" href="/staff/subscribers/\d+">([^<]*)</a>', html)


@pytest.fixture
def tricky(runtime):
    with runtime.sessions.begin() as s:
        for i, name in enumerate(TRICKY):
            make_subscriber(s, f"p{i}@example.org", name=name)


@pytest.mark.parametrize("query, expected", [
    ("' OR 1=1 --", ["x&#39; OR 1=1 -- y"]),
    ("%_", ["Percent%_Underscore"]),
    ("%", ["100% Natural", "Percent%_Underscore"]),
    ("_", ["Under_score", "Percent%_Underscore"]),
    ("'); DROP TABLE", ["Robert&#39;); DROP TABLE subscribers;--"]),
    ("\\", []),
    ("plain", ["Plain Person"]),
    ("P3@EXAMPLE", ["Under_score"]),
])
@both_databases
def test_search_treats_sql_metacharacters_as_text(runtime, staff, tricky, query, expected):
    r = staff.get("/staff/subscribers", params={"q": query})
    assert r.status_code == 200
    assert shown(r.text) == expected
    with runtime.sessions() as s:  # and nothing was harmed
        assert len(list(s.scalars(select(Subscriber.id)))) == len(TRICKY)


@both_databases
def test_filters_by_status_and_tag(runtime, staff):
    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:
        s.get(Subscriber, ids.bob_id).status = "unsubscribed"
        make_subscriber(s, "cy@example.org", name="Cy Untagged")
    assert shown(staff.get("/staff/subscribers").text) == ["Ann Lee", "Bob Stone", "Cy Untagged"]
    assert shown(staff.get("/staff/subscribers?status=unsubscribed").text) == ["Bob Stone"]
    assert shown(staff.get("/staff/subscribers?tag=newsletter").text) == ["Ann Lee", "Bob Stone"]
    assert shown(staff.get("/staff/subscribers?tag=newsletter&status=active").text) == ["Ann Lee"]
    r = staff.get("/staff/subscribers?tag=nope")
    assert r.status_code == 200 and shown(r.text) == [] and "no tag named" in r.text
    assert shown(staff.get("/staff/subscribers?status=bogus").text) == ["Ann Lee", "Bob Stone", "Cy Untagged"]
    assert "No subscribers yet" not in staff.get("/staff/subscribers?q=zzz").text
    assert "No matches" in staff.get("/staff/subscribers?q=zzz").text


def test_empty_state(staff):
    assert "No subscribers yet" in staff.get("/staff/subscribers").text


def _link(html: str, rel: str) -> str:
    found = re.search(rf'href="([^"]*)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else ""


@both_databases
def test_pages_of_fifty_go_by_id(runtime, staff):
    with runtime.sessions.begin() as s:
        for i in range(120):
            make_subscriber(s, f"p{i:03d}@example.org", name=f"Patient {i:03d}")
    first = staff.get("/staff/subscribers").text
    assert shown(first) == [f"Patient {i:03d}" for i in range(50)]
    assert "50 shown of 120" in first and "120 patients on file" in first and not _link(first, "prev")
    second = staff.get("/staff/subscribers" + _link(first, "next")).text
    assert shown(second) == [f"Patient {i:03d}" for i in range(50, 100)] and "after=" in _link(first, "next")
    third = staff.get("/staff/subscribers" + _link(second, "next")).text
    assert shown(third) == [f"Patient {i:03d}" for i in range(100, 120)] and not _link(third, "next")
    back = staff.get("/staff/subscribers" + _link(third, "prev")).text
    assert shown(back) == shown(second) and _link(back, "next") and _link(back, "prev")
    assert shown(staff.get("/staff/subscribers" + _link(back, "prev")).text) == shown(first)
    # An old numbered link, and one beyond the end (its rows erased since), open the first page.
    assert shown(staff.get("/staff/subscribers?page=2").text) == shown(first)
    assert shown(staff.get("/staff/subscribers?after=999999").text) == shown(first)
    for junk in ("-5", "abc", "2147483648", "9" * 5000, "1e3"):  # not a row id: the first page, not an error
        r = staff.get(f"/staff/subscribers?after={junk}&before={junk}")
        assert r.status_code == 200 and shown(r.text) == shown(first), junk


@both_databases
def test_filtered_pages_keep_the_filter_and_cap_the_count(runtime, staff, monkeypatch):
    with runtime.sessions.begin() as s:
        for i in range(70):
            make_subscriber(s, f"p{i:03d}@example.org", name=f"{'Garcia' if i % 2 else 'Lee'} {i:03d}")
    first = staff.get("/staff/subscribers?q=garc").text
    assert shown(first) == [f"Garcia {i:03d}" for i in range(1, 70, 2)] and "35 shown of 35 matching" in first
    monkeypatch.setattr("web.staff.subscribers.PAGE_SIZE", 10)
    monkeypatch.setattr("web.staff.subscribers.COUNT_CAP", 20)
    page = staff.get("/staff/subscribers?q=garc").text
    assert "10 shown of 20+ matching" in page and "70 patients on file" in page
    nxt = _link(page, "next")
    assert "q=garc" in nxt
    assert shown(staff.get("/staff/subscribers" + nxt).text) == [f"Garcia {i:03d}" for i in range(21, 41, 2)]
    assert "5 shown of 5 matching" in staff.get("/staff/subscribers?q=lee+00").text  # Lee 000 ... 008


CSV = (
    "email,name,tz,tags\n"
    "maria@example.org,Maria,America/Chicago,patients\n"
    "not-an-address,Bad Email,,patients\n"
    "james@example.org,James,Mars/Olympus,patients\n"
    "li@example.org,Li,Asia/Shanghai,patients;newsletter\n"
)


def import_csv(client, body: str, **fields):
    return post_form(client, "/staff/subscribers", "/staff/subscribers/import", data=fields,
                     files={"csv": ("patients.csv", body.encode("utf-8"), "text/csv")})


@both_databases
def test_import_reports_each_bad_row(runtime, staff):
    r = import_csv(staff, CSV, tags="spring-2026")
    assert r.status_code == 200
    rows = re.findall(r'<tr><td class="nowrap">line (\d+)</td><td><code>(\w+)</code></td><td>([^<]*)</td></tr>', r.text)
    assert [(line, field) for line, field, _ in rows] == [("3", "email"), ("4", "tz")]
    assert "not a valid address" in rows[0][2] and "unknown time zone" in rows[1][2]
    assert "Import of patients.csv" in r.text and "imported with problems" in r.text
    assert shown(r.text) == ["Maria", "Li"]
    with runtime.sessions() as s:
        assert sorted(s.scalars(select(Subscriber.email))) == ["li@example.org", "maria@example.org"]
    assert shown(staff.get("/staff/subscribers?tag=spring-2026").text) == ["Maria", "Li"]


def test_strict_import_imports_nothing(runtime, staff):
    before = snapshot(runtime)
    r = import_csv(staff, CSV, strict="1")
    assert r.status_code == 200 and "nothing imported" in r.text and "line 3" in r.text
    assert snapshot(runtime) == before


@pytest.mark.parametrize("body, message", [
    ("name,tz\nAnn,UTC\n", "patients.csv:1: no &#39;email&#39; column"),
    ("", "patients.csv: file is empty"),
])
def test_unreadable_csv_is_one_line(runtime, staff, body, message):
    before = snapshot(runtime)
    r = import_csv(staff, body)
    assert r.status_code == 400 and message in r.text and "drip-upload" not in r.text
    assert snapshot(runtime) == before


def test_add_a_patient(runtime, staff):
    r = post_form(staff, "/staff/subscribers", "/staff/subscribers/add",
                  data={"email": "New.Person@Example.org", "name": "New Person", "tz": "europe/paris", "tags": "a, b"})
    assert r.status_code == 303
    page = staff.get(r.headers["location"]).text
    assert "New.Person@example.org added." in page and "Europe/Paris" in page
    with runtime.sessions() as s:
        sub = s.scalar(select(Subscriber))
        assert (sub.email_key, sub.tz, sub.consent_source) == ("new.person@example.org", "Europe/Paris", "staff")
    bad = post_form(staff, "/staff/subscribers", "/staff/subscribers/add", data={"email": "nope", "name": "X"})
    assert bad.status_code == 400 and "not a valid address" in bad.text and 'value="X"' in bad.text


def test_tags_add_and_remove(runtime, staff):
    ids = seed_staff(runtime)
    page = f"/staff/subscribers/{ids.bob_id}"
    post_form(staff, page, f"{page}/tags", data={"action": "add", "tags": "vip, back pain"})
    html = staff.get(page).text
    assert "Tagged vip, back pain." in html
    assert re.findall(r'<span>([^<]+)</span><button type="submit" class="chip-x"', html) == ["back pain", "newsletter", "vip"]
    post_form(staff, page, f"{page}/tags", data={"action": "remove", "tag": "vip"})
    assert shown(staff.get("/staff/subscribers?tag=vip").text) == []
    assert shown(staff.get("/staff/subscribers?tag=back pain").text) == ["Bob Stone"]
    r = post_form(staff, page, f"{page}/tags", data={"action": "add", "tags": " "})
    assert "type a tag name" in staff.get(r.headers["location"]).text


@both_databases
def test_enroll_and_timeline(runtime, staff):
    ids = seed_staff(runtime)
    page = f"/staff/subscribers/{ids.bob_id}"
    assert "Nothing sent yet" in staff.get(page).text
    r = post_form(staff, page, f"{page}/enroll", data={"campaign": "onboarding"})
    html = staff.get(r.headers["location"]).text
    assert "bob@example.org is enrolled in" in html
    assert html.count('class="tl tl-email"') == 4
    assert "How acupuncture works, part 2" in html  # the step's subject
    assert "EST" in html  # Bob has no zone: the clinic's (America/New_York) applies
    # Twice: a clear refusal, nothing new.
    r = post_form(staff, page, f"{page}/enroll", data={"campaign": "onboarding"})
    assert "already enrolled" in staff.get(r.headers["location"]).text
    # A draft campaign cannot be chosen or forced.
    r = post_form(staff, page, f"{page}/enroll", data={"campaign": "draft-series"})
    assert "is draft, not published" in staff.get(r.headers["location"]).text
    with runtime.sessions() as s:
        assert len(list(s.scalars(select(Enrollment).where(Enrollment.subscriber_id == ids.bob_id)))) == 1


def test_timeline_shows_local_send_times(runtime, staff):
    ids = seed_staff(runtime)
    html = staff.get(f"/staff/subscribers/{ids.ann_id}").text
    assert "Times in the patient's zone (Europe/Paris)" in html
    times = re.findall(r'<div class="tl-time"><span>([^<]+)</span><span>([^<]+)</span></div>', html)
    assert len(times) == 1 + 1 + 4  # added, enrolled, four emails
    assert all(t.endswith("CET") for _, t in times)


@both_databases
def test_unsubscribe_and_suppress(runtime, staff):
    ids = seed_staff(runtime)
    page = f"/staff/subscribers/{ids.ann_id}"
    r = post_form(staff, page, f"{page}/unsubscribe")
    html = staff.get(r.headers["location"]).text
    assert "unsubscribed from all email; 4 scheduled emails cancelled" in html
    with runtime.sessions() as s:
        assert s.get(Subscriber, ids.ann_id).status == "unsubscribed"
        assert s.get(Suppression, "ann@example.org").reason == "unsubscribe"
        assert set(s.scalars(select(Delivery.status).where(Delivery.subscriber_id == ids.ann_id))) == {"cancelled"}
    page = f"/staff/subscribers/{ids.bob_id}"
    r = post_form(staff, page, f"{page}/suppress")
    html = staff.get(r.headers["location"]).text
    assert "on the suppression list" in html and "badge-suppressed" in html
    with runtime.sessions() as s:
        row = s.get(Suppression, "bob@example.org")
        assert row.reason == "staff" and row.source.startswith("staff frontdesk@")
        assert s.get(Subscriber, ids.bob_id).status == "active"
    listing = staff.get("/staff/subscribers").text
    assert listing.count("badge-suppressed") == 2


def test_edit_details(runtime, staff):
    ids = seed_staff(runtime)
    page = f"/staff/subscribers/{ids.bob_id}"
    post_form(staff, page, f"{page}/edit", data={"name": "Robert Stone", "tz": "Asia/Tokyo"})
    with runtime.sessions() as s:
        sub = s.get(Subscriber, ids.bob_id)
        assert (sub.name, sub.tz) == ("Robert Stone", "Asia/Tokyo")
    r = post_form(staff, page, f"{page}/edit", data={"name": "", "tz": "Nowhere/Land"})
    assert "unknown time zone" in staff.get(r.headers["location"]).text


def test_unknown_subscriber_is_404(staff):
    assert staff.get("/staff/subscribers/999").status_code == 404
