"""The staff home page: worker status, sent today and this week, next sends, what came back; and
the campaign page's chart. The clock is pinned (T0, a Tuesday 09:00 in New York)."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from drip.models import Delivery, Step, Suppression, WorkerHeartbeat
from tests.web.seed import T0
from tests.web.staff.conftest import both_databases
from tests.web.staff.data import seed_staff
from web.staff.charts import Series, bar_chart


def tiles(html):
    return {label: int(v) for v, label in re.findall(
        r'<span class="tile-value">(\d+)</span><span class="tile-label">([^<]+)</span>', html)}


def _send(runtime, ids, *when):
    """Mark the first delivery rows of Ann as sent at these instants (one each)."""
    with runtime.sessions.begin() as s:
        rows = list(s.scalars(select(Delivery).where(Delivery.subscriber_id == ids.ann_id).order_by(Delivery.id)))
        for row, at in zip(rows, when):
            row.status, row.sent_at = "sent", at
        s.add(Suppression(email_key="gone@example.org", reason="bounce", source="smtp:rcpt", created_at=T0 - timedelta(hours=2)))


@both_databases
def test_home_says_what_went_out_what_is_next_and_what_came_back(runtime, staff):
    ids = seed_staff(runtime)
    _send(runtime, ids, T0 - timedelta(hours=1), T0 - timedelta(days=1))  # today, and Monday (same week)
    html = staff.get("/staff/").text
    t = tiles(html)
    assert (t["Sent today"], t["Sent this week"], t["Bounced (7 days)"]) == (1, 2, 1)
    assert "no worker has ever run" in html
    assert "gone@example.org" in html and "Next scheduled" in html
    assert html.count('<rect x=') >= 30 * 3 and "<script" not in html  # 30 days x 3 series, server-rendered


def test_home_reports_a_running_worker(runtime, staff):
    seed_staff(runtime)
    with runtime.sessions.begin() as s:
        s.add(WorkerHeartbeat(worker_id="w:1", host="w", pid=1, mode="run", started_at=T0, last_beat_at=T0,
                              last_sent=0, sent_total=0))
    assert "Sending is running (1 worker)" in staff.get("/staff/").text


def test_a_viewer_sees_counts_but_no_patient_address(runtime, make_client):
    from tests.web.staff.conftest import login
    from web.staff import auth

    ids = seed_staff(runtime)
    _send(runtime, ids, T0 - timedelta(hours=1))
    with runtime.sessions.begin() as s:
        user, _ = auth.add_staff(s, "viewer@clinic.example.org", "a long viewer password", role="viewer")
    client = make_client()
    assert login(client, "viewer@clinic.example.org", "a long viewer password").status_code == 303
    html = client.get("/staff/").text
    assert tiles(html)["Bounced (7 days)"] == 1 and "gone@example.org" not in html


def test_campaign_page_has_its_chart_and_progress(runtime, staff):
    """Per day: sent, bounced, unsubscribed bars; while emails are due and not all sent, a progress bar."""
    from campaigns.enrollment import enroll
    from campaigns.service import get_campaign
    from drip.models import Subscriber

    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:  # Bob too: two first emails due now (T0)
        enroll(s, s.get(Subscriber, ids.bob_id), get_campaign(s, "onboarding"), T0, clinic_tz="America/New_York")
    _send(runtime, ids, T0 - timedelta(hours=1))  # Ann's went out
    html = staff.get("/staff/campaigns/onboarding").text
    assert "This campaign per day, last 30 days" in html
    assert 'aria-label="Due so far, sent"' in html and "Due so far, sent: 1 of 2 (50%)" in html
    day = T0.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    assert f"<title>{day}: 1 sent</title>" in html
    assert f"<title>{day}: 0 bounced</title>" in html and f"<title>{day}: 0 unsubscribed</title>" in html
    with runtime.sessions.begin() as s:  # Bob's is sent too: nothing due is waiting, no bar
        bob_first = s.scalar(select(Delivery).where(Delivery.subscriber_id == ids.bob_id).order_by(Delivery.due_at))
        bob_first.status, bob_first.sent_at = "sent", T0
    assert "Due so far, sent" not in staff.get("/staff/campaigns/onboarding").text


def test_chart_labels_are_escaped_and_heights_scale():
    from datetime import date

    svg = str(bar_chart([date(2026, 12, 1), date(2026, 12, 2)],
                        [Series("<b>x</b>", "#000", [5, 10])], title="a & b"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a &amp; b" in svg
    heights = [float(h) for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([\d.]+)"', svg)]
    assert heights[1] == 2 * heights[0] > 0


def test_the_pictures_need_nothing_beyond_our_own_origin(runtime, staff):
    """No CDN, no script (#14 item 5): the home and campaign pages keep the staff CSP and load
    nothing from another origin; the charts are inline SVG."""
    from web.staff.base import STAFF_CSP

    seed_staff(runtime)
    for path in ("/staff/", "/staff/campaigns/onboarding"):
        r = staff.get(path)
        assert r.headers["content-security-policy"] == STAFF_CSP and "script-src" not in STAFF_CSP
        assert "<svg" in r.text and "<script" not in r.text
        external = re.findall(r'(?:src|href)="((?:https?:)?//[^"]+)"', r.text)
        assert external == [], external
