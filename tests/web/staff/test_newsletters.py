"""Newsletter pages: create from a template or an article, schedule (absolute, local, cron), cancel, counts."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
from sqlalchemy import select

from drip.models import Broadcast, Delivery
from tests.conftest import SEED
from tests.web.seed import snapshot
from tests.web.staff.conftest import STAFF_EMAIL, both_databases, post_form
from tests.web.staff.data import seed_staff


def create(client, files=None, **fields):
    return post_form(client, "/staff/newsletters", "/staff/newsletters/create", data=fields, files=files)


def broadcast(runtime, slug):
    with runtime.sessions() as s:
        return s.scalar(select(Broadcast).where(Broadcast.slug == slug))


def tiles(html):
    return {label: int(v) for v, label in re.findall(
        r'<span class="tile-value">(\d+)</span><span class="tile-label">([A-Za-z ]+)</span>', html)}


def test_empty_state_and_list(runtime, staff):
    assert "No newsletters yet" in staff.get("/staff/newsletters").text
    seed_staff(runtime)
    html = staff.get("/staff/newsletters").text
    assert "December at the clinic" in html and "badge-draft" in html and "not scheduled" in html


@both_databases
def test_create_from_a_template(runtime, staff):
    seed_staff(runtime)
    r = create(staff, source="template", template="holiday-hours", list="newsletter")
    assert r.status_code == 303 and r.headers["location"] == "/staff/newsletters/our-holiday-opening-hours"
    html = staff.get(r.headers["location"]).text
    assert "Our holiday opening hours" in html and tiles(html)["On the list now"] == 2
    b = broadcast(runtime, "our-holiday-opening-hours")
    assert (b.status, b.title) == ("draft", "Holiday opening hours") and "Closed on public holidays" in b.body


def test_create_from_an_article_with_a_subject(runtime, staff):
    seed_staff(runtime)
    r = create(staff, files={"article": ("acupuncture.md", SEED.read_bytes(), "text/markdown")}, source="article",
               list="newsletter", subject="Acupuncture and pain: the full guide")
    assert r.status_code == 303
    b = broadcast(runtime, "acupuncture-and-pain-the-full-guide")
    assert b.title == "Acupuncture for Pain Relief and Muscle Spasm"
    assert "Release of Endorphins" in b.body and "Menstrual Pain" in b.body


@pytest.mark.parametrize("fields, files, message", [
    ({"source": "template", "template": "", "list": "newsletter"}, None, "choose a template"),
    ({"source": "template", "template": "holiday-hours", "list": ""}, None, "choose the list"),
    ({"source": "template", "template": "holiday-hours", "list": "nope"}, None, "no list &#39;nope&#39;"),
    ({"source": "template", "template": "../etc", "list": "newsletter"}, None, "bad template name"),
    ({"source": "article", "list": "newsletter"}, None, "choose an article file"),
    ({"source": "article", "list": "newsletter"}, {"article": ("x.pdf", b"%PDF", "application/pdf")}, "x.pdf: unsupported file type"),
    ({"source": "other", "list": "newsletter"}, None, "choose a template or an article"),
])
def test_bad_input_is_shown_and_nothing_stored(runtime, staff, fields, files, message):
    seed_staff(runtime)
    before = snapshot(runtime)
    r = create(staff, files=files, **fields)
    assert r.status_code == 400 and message in r.text
    assert snapshot(runtime) == before


@both_databases
def test_schedule_once_in_each_patients_zone_then_cancel(runtime, staff):
    seed_staff(runtime)
    page = "/staff/newsletters/december"
    r = post_form(staff, page, f"{page}/schedule", data={"mode": "once", "at": "2026-12-20 09:00", "local": "1"})
    html = staff.get(r.headers["location"]).text
    assert "Scheduled for 2026-12-20 09:00 in each patient&#39;s own time zone: 2 recipients." in html
    assert "badge-scheduled" in html and tiles(html)["Scheduled"] == 2
    with runtime.sessions() as s:
        due = sorted(d.due_at.isoformat() for d in s.scalars(select(Delivery).where(Delivery.broadcast_id.is_not(None))))
    assert due == ["2026-12-20T08:00:00+00:00", "2026-12-20T14:00:00+00:00"]  # 09:00 Paris, 09:00 New York
    r = post_form(staff, page, f"{page}/cancel")
    html = staff.get(r.headers["location"]).text
    assert "Newsletter cancelled; 2 emails will not be sent." in html and tiles(html)["Cancelled"] == 2
    r = post_form(staff, page, f"{page}/cancel")
    assert "Only a scheduled or paused newsletter can be cancelled" in staff.get(r.headers["location"]).text


def test_schedule_at_clinic_time_with_the_datetime_picker_format(runtime, staff):
    seed_staff(runtime)
    page = "/staff/newsletters/december"
    post_form(staff, page, f"{page}/schedule", data={"mode": "once", "at": "2026-12-20T10:30"})
    b = broadcast(runtime, "december")
    assert b.send_at.isoformat() == "2026-12-20T15:30:00+00:00" and b.local_time is None


def test_schedule_on_a_cron(runtime, staff):
    seed_staff(runtime)
    page = "/staff/newsletters/december"
    r = post_form(staff, page, f"{page}/schedule", data={"mode": "cron", "cron": "0 9 2 * *"})
    assert "Recurring newsletter scheduled (0 9 2 * *)" in staff.get(r.headers["location"]).text
    b = broadcast(runtime, "december")
    assert b.cron == "0 9 2 * *" and b.status == "scheduled"
    assert b.send_at.isoformat() == "2026-12-02T14:00:00+00:00"  # 09:00 New York; the clock is 2026-12-01 14:00 UTC


@pytest.mark.parametrize("data, message", [
    ({"mode": "once", "at": "tomorrow"}, "send at: expected &#39;YYYY-MM-DD HH:MM&#39;"),
    ({"mode": "once", "at": "2020-01-01 09:00"}, "is in the past"),
    ({"mode": "once", "at": ""}, "type the date and time"),
    ({"mode": "cron", "cron": "every day"}, "cron: not a cron expression"),
    ({"mode": "cron", "cron": ""}, "type a cron expression"),
])
def test_bad_schedules_are_shown_and_change_nothing(runtime, staff, data, message):
    seed_staff(runtime)
    before = snapshot(runtime)
    page = "/staff/newsletters/december"
    r = post_form(staff, page, f"{page}/schedule", data=data)
    assert message in staff.get(r.headers["location"]).text
    assert snapshot(runtime) == before


def test_preview_and_test_email(runtime, staff):
    seed_staff(runtime)
    html = staff.get("/staff/newsletters/december").text
    assert 'src="/staff/newsletters/december/email"' in html
    r = staff.get("/staff/newsletters/december/email")
    assert r.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert "Hello from the clinic." in r.text
    r = post_form(staff, "/staff/newsletters/december", "/staff/newsletters/december/test")
    assert f"Test email sent to {STAFF_EMAIL}." in staff.get(r.headers["location"]).text
    [sent] = runtime.settings.outbox_dir.glob("test-*.eml")
    msg = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "[TEST] December at the clinic" and msg["To"] == STAFF_EMAIL


def test_unknown_newsletter_is_404(staff):
    assert staff.get("/staff/newsletters/nope").status_code == 404


def _dues(runtime):
    with runtime.sessions() as s:
        return sorted(d.isoformat() for d in s.scalars(select(Delivery.due_at).where(Delivery.broadcast_id.is_not(None))))


def test_move_pause_resume_from_the_page(runtime, staff):
    seed_staff(runtime)
    page = "/staff/newsletters/december"
    post_form(staff, page, f"{page}/schedule", data={"mode": "once", "at": "2026-12-20 09:00"})
    html = staff.get(page).text
    assert ">Move</button>" in html and "Pause newsletter" in html
    post_form(staff, page, f"{page}/schedule", data={"mode": "once", "at": "2027-01-10 09:00"})
    assert _dues(runtime) == ["2027-01-10T14:00:00+00:00"] * 2  # the emails moved with it
    r = post_form(staff, page, f"{page}/pause", data={"action": "pause"})
    html = staff.get(r.headers["location"]).text
    assert "Newsletter paused; 2 emails held" in html and "badge-paused" in html and "Resume newsletter" in html
    r = post_form(staff, page, f"{page}/pause", data={"action": "resume"})
    assert "Newsletter resumed; 2 emails" in staff.get(r.headers["location"]).text
    assert broadcast(runtime, "december").status == "scheduled"


def test_cancelled_recurring_newsletter_shows_no_next_date(runtime, staff):
    seed_staff(runtime)
    page = "/staff/newsletters/december"
    post_form(staff, page, f"{page}/schedule", data={"mode": "cron", "cron": "0 9 2 * *"})
    assert "next Wed 02 Dec 2026, 09:00" in " ".join(staff.get(page).text.split())
    assert "next 02 Dec 09:00" in " ".join(staff.get("/staff/newsletters").text.split())
    post_form(staff, page, f"{page}/cancel")
    for html in (staff.get(page).text, staff.get("/staff/newsletters").text):
        assert "badge-cancelled" in html and "02 Dec" not in html and not re.search(r"\bnext\b", html), html
