"""Campaign pages: upload -> draft, bad documents, step editing, previews, test email, status, numbers."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import func, select

from campaigns.service import get_campaign, latest_versions
from drip.models import Campaign, CampaignOptOut, Delivery, Event, Step, Suppression
from tests.campaigns.hostile_docs import declared_bomb, deep_html
from tests.conftest import SEED
from tests.web.seed import T0, snapshot
from tests.web.staff.conftest import STAFF_EMAIL, both_databases, post_form
from tests.web.staff.data import seed_staff
from web.staff.stats import step_stats


def upload(client, name: str, body: bytes, **fields):
    return post_form(client, "/staff/campaigns", "/staff/campaigns/upload", data=fields,
                     files={"article": (name, body, "application/octet-stream")})


def versions(runtime, slug):
    with runtime.sessions() as s:
        c = get_campaign(s, slug)
        steps = list(s.scalars(select(Step).where(Step.campaign_id == c.id).order_by(Step.position)))
        latest = latest_versions(s, [st.id for st in steps])
        return [(st, latest[st.id]) for st in steps]


def test_campaign_list_empty_state(staff):
    html = staff.get("/staff/campaigns").text
    assert "No campaigns yet" in html and 'enctype="multipart/form-data"' in html


@both_databases
def test_upload_splits_the_article_into_a_draft(runtime, staff):
    r = upload(staff, "acupuncture.txt", SEED.read_bytes(), every="3d", start="1d")
    assert r.status_code == 303
    slug = "acupuncture-for-pain-relief-and-muscle-spasm"
    assert r.headers["location"] == f"/staff/campaigns/{slug}"
    page = staff.get(r.headers["location"]).text
    assert "(10 item steps)" in page  # the flash
    assert page.count("badge-item") == 10 and "Release of Endorphins" in page and "badge-draft" in page
    steps = versions(runtime, slug)
    assert [st.delay_minutes // 1440 for st, _ in steps[:3]] == [1, 4, 7]
    with runtime.sessions() as s:
        c = get_campaign(s, slug)
        assert (c.status, c.source_name) == ("draft", "acupuncture.txt")
    # The same article again gets its own slug; the list shows both.
    again = upload(staff, "acupuncture.txt", SEED.read_bytes())
    assert again.headers["location"] == f"/staff/campaigns/{slug}-2"
    listing = staff.get("/staff/campaigns").text
    assert len(re.findall(r'class="rowlink"[^>]*>Acupuncture for Pain Relief and Muscle Spasm<', listing)) == 2


@pytest.mark.parametrize("name, body, message", [
    ("notes.pdf", b"%PDF-1.4 not an article", "notes.pdf: unsupported file type .pdf"),
    ("empty.txt", b"   \n", "empty.txt: empty file"),
    ("plain.txt", b"Just a paragraph of text with no list in it at all.\n", "plain.txt: no items found"),
    ("latin1.txt", "Caf\xe9 items\n1. Caf\xe9: body\n".encode("latin-1"), "latin1.txt"),
    ("deep.html", deep_html(10_000), "deep.html: HTML nested more than 250 elements deep"),
    ("bomb.docx", declared_bomb(), "bomb.docx: not a plausible Word .docx file"),
])
def test_a_bad_document_shows_one_line_and_stores_nothing(runtime, staff, name, body, message):
    before = snapshot(runtime)
    r = upload(staff, name, body)
    assert r.status_code == 400
    error = re.search(r'<div class="flash flash-error form-error" role="alert">([^<]*)</div>', r.text).group(1)
    assert message in error and "\n" not in error and "/tmp" not in error and "drip-upload" not in error
    assert snapshot(runtime) == before


def test_upload_without_a_file_or_with_bad_options(runtime, staff):
    before = snapshot(runtime)
    r = post_form(staff, "/staff/campaigns", "/staff/campaigns/upload", data={"every": "2d"})
    assert r.status_code == 400 and "Choose an article file" in r.text
    r = upload(staff, "a.txt", SEED.read_bytes(), every="two days")
    assert r.status_code == 400 and "every: bad duration" in r.text
    r = upload(staff, "a.txt", SEED.read_bytes(), slug="Bad Slug!")
    assert r.status_code == 400 and "slug" in r.text
    r = upload(staff, "a.txt", SEED.read_bytes(), window="sometimes")
    assert r.status_code == 400 and "window" in r.text
    assert snapshot(runtime) == before


def test_too_large_upload_is_refused_before_reading(staff):
    r = staff.post("/staff/campaigns/upload", content=b"x", headers={"Content-Length": str(30 * 1024 * 1024),
                   "Content-Type": "multipart/form-data; boundary=x"}, follow_redirects=False)
    assert r.status_code == 413


def test_edit_a_draft_step_in_place(runtime, staff):
    seed_staff(runtime)
    page = staff.get("/staff/campaigns/draft-series/steps/2")
    assert page.status_code == 200 and 'value="How acupuncture works, part 1"' in page.text
    r = post_form(staff, "/staff/campaigns/draft-series/steps/2", "/staff/campaigns/draft-series/steps/2", data={
        "subject": "A better subject", "preheader": "Short and clear", "title": "Mechanism one",
        "body": "First paragraph.\r\n\r\nSecond paragraph.", "delay": "1d12h"})
    assert r.status_code == 303 and r.headers["location"] == "/staff/campaigns/draft-series/steps/2"
    assert "Email 2 saved." in staff.get(r.headers["location"]).text
    step, v = versions(runtime, "draft-series")[1]
    assert (v.version, v.subject, v.preheader, v.title, v.body) == (
        1, "A better subject", "Short and clear", "Mechanism one", "First paragraph.\n\nSecond paragraph.")
    assert step.delay_minutes == 36 * 60


def test_edit_a_live_step_makes_a_new_version(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, "/staff/campaigns/onboarding/steps/1", "/staff/campaigns/onboarding/steps/1", data={
        "subject": "Welcome, again", "preheader": "", "title": "Welcome", "body": "New text.", "delay": "0d"})
    assert "This is version 2" in staff.get(r.headers["location"]).text
    assert versions(runtime, "onboarding")[0][1].version == 2


@pytest.mark.parametrize("field, value, message", [
    ("subject", "   ", "subject cannot be empty"), ("delay", "soon", "delay: bad duration"),
    ("subject", "x" * 201, "longer than 200"), ("body", "", "body cannot be empty"),
])
def test_a_bad_edit_is_shown_and_changes_nothing(runtime, staff, field, value, message):
    seed_staff(runtime)
    data = {"subject": "S", "preheader": "", "title": "T", "body": "B", "delay": "1d", field: value}
    before = snapshot(runtime)
    r = post_form(staff, "/staff/campaigns/draft-series/steps/2", "/staff/campaigns/draft-series/steps/2", data=data)
    assert r.status_code == 400 and message in r.text
    assert snapshot(runtime) == before


def test_unknown_campaign_or_step_is_404(runtime, staff):
    seed_staff(runtime)
    assert staff.get("/staff/campaigns/nope").status_code == 404
    assert staff.get("/staff/campaigns/onboarding/steps/99").status_code == 404
    assert staff.get("/staff/campaigns/onboarding/steps/99/email").status_code == 404
    assert staff.get("/staff/campaigns/" + "x" * 300).status_code == 404


@pytest.mark.parametrize("device, width", [("desktop", 800), ("mobile", 375)])
def test_preview_page_frames_the_real_email(runtime, staff, device, width):
    seed_staff(runtime)
    page = staff.get(f"/staff/campaigns/onboarding/steps/2/preview?device={device}").text
    assert 'src="/staff/campaigns/onboarding/steps/2/email"' in page
    assert f'class="email-frame frame-{device}"' in page and f'width="{width}"' in page
    assert "How acupuncture works, part 1" in page  # the inbox line: subject


def test_preview_email_may_be_framed_by_our_pages_only(runtime, staff):
    seed_staff(runtime)
    r = staff.get("/staff/campaigns/onboarding/steps/2/email")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert "Mechanism 1" in r.text and "Step 2 of 4" in r.text and "Hi Alex," in r.text
    # Ordinary staff pages are never framed and may frame only us.
    page = staff.get("/staff/campaigns/onboarding")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_preview_reflects_an_unsaved_draft_edit_after_saving(runtime, staff):
    """Draft steps are edited in place (same version number): the preview must not serve a stale cache."""
    seed_staff(runtime)
    assert "Mechanism 1" in staff.get("/staff/campaigns/draft-series/steps/2/email").text
    post_form(staff, "/staff/campaigns/draft-series/steps/2", "/staff/campaigns/draft-series/steps/2", data={
        "subject": "S", "preheader": "", "title": "Renamed mechanism", "body": "B", "delay": "1d"})
    html = staff.get("/staff/campaigns/draft-series/steps/2/email").text
    assert "Renamed mechanism" in html and "Mechanism 1" not in html


def test_send_a_test_email_to_me(runtime, staff):
    seed_staff(runtime)
    before = snapshot(runtime)
    r = post_form(staff, "/staff/campaigns/onboarding/steps/2", "/staff/campaigns/onboarding/steps/2/test",
                  data={"back": "preview"})
    assert r.status_code == 303 and r.headers["location"].endswith("/steps/2/preview")
    assert f"Test email sent to {STAFF_EMAIL}." in staff.get(r.headers["location"]).text
    [sent] = runtime.settings.outbox_dir.glob("test-*.eml")  # a one-off: a file name of its own
    msg = email.message_from_bytes(sent.read_bytes(), policy=policy.default)
    assert msg["To"] == STAFF_EMAIL and msg["Subject"] == "[TEST] How acupuncture works, part 1"
    assert "Mechanism 1" in msg.get_body(("plain",)).get_content()
    after = snapshot(runtime)
    assert len(after.pop("audit_log")) == len(before.pop("audit_log")) + 1  # email.test (test_audit_gaps.py)
    assert after == before  # not a delivery: the ledger is untouched
    post_form(staff, "/staff/campaigns/onboarding/steps/3", "/staff/campaigns/onboarding/steps/3/test")
    assert len(list(runtime.settings.outbox_dir.glob("test-*.eml"))) == 2  # the second test kept the first
    assert sent.exists() and not (runtime.settings.outbox_dir / "0.eml").exists()


def test_a_failing_backend_is_reported_not_crashed(runtime, make_client, staff_user):
    from tests.web.staff.conftest import login

    seed_staff(runtime)
    client = make_client(backend="sendgrid", sendgrid_api_key="")
    login(client)
    r = post_form(client, "/staff/campaigns/onboarding/steps/2", "/staff/campaigns/onboarding/steps/2/test")
    assert r.status_code == 303
    assert "The test email could not be sent" in client.get(r.headers["location"]).text


@both_databases
def test_publish_pause_resume_archive(runtime, staff):
    seed_staff(runtime)

    def act(slug, action):
        data = {"action": action, "confirm": "1"}  # the seeded drafts have short bodies: warnings to confirm
        r = post_form(staff, f"/staff/campaigns/{slug}", f"/staff/campaigns/{slug}/status", data=data)
        assert r.status_code == 303
        with runtime.sessions() as s:
            status = get_campaign(s, slug).status
        return status, staff.get(f"/staff/campaigns/{slug}").text

    status, page = act("draft-series", "publish")
    assert status == "published" and "is published" in page and ">Pause<" in page
    assert act("draft-series", "pause")[0] == "paused"
    status, page = act("draft-series", "resume")
    assert status == "published"
    status, page = act("onboarding", "archive")
    assert status == "archived" and "is archived" in page and ">Publish<" not in page
    with runtime.sessions() as s:
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}
    status, page = act("onboarding", "publish")  # archived is final
    assert status == "archived" and "cannot move campaign" in page
    status, page = act("onboarding", "explode")
    assert "That action is not known." in page


@both_databases
def test_step_numbers(runtime, staff):
    """scheduled / sent / failed / bounced / unsubscribed per step, from the ledger, events and opt-outs."""
    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:
        c = s.get(Campaign, ids.campaign_id)
        steps = list(s.scalars(select(Step).where(Step.campaign_id == c.id).order_by(Step.position)))
        ann = list(s.scalars(select(Delivery).where(Delivery.subscriber_id == ids.ann_id).order_by(Delivery.due_at)))
        # Ann: step 1 sent and delivered, step 2 sent then bounced, step 3 failed, step 4 still scheduled.
        ann[0].status, ann[0].sent_at, ann[0].outcome = "sent", T0, "delivered"
        ann[1].status, ann[1].sent_at, ann[1].outcome = "sent", T0 + timedelta(days=1), "bounced"
        ann[2].status, ann[2].last_error = "failed", "550 mailbox unavailable"
        # Bob: enrolled later, got step 1, then left the series through its link.
        from campaigns.enrollment import enroll
        from drip.models import Subscriber

        bob = s.get(Subscriber, ids.bob_id)
        enroll(s, bob, c, T0, clinic_tz="America/New_York")
        bobs = list(s.scalars(select(Delivery).where(Delivery.subscriber_id == bob.id).order_by(Delivery.due_at)))
        bobs[0].status, bobs[0].sent_at = "sent", T0 + timedelta(hours=1)
        s.add(CampaignOptOut(subscriber_id=bob.id, campaign_id=c.id, created_at=T0 + timedelta(hours=5)))
        # A third patient unsubscribed from everything from step 2's email, and SendGrid reported one on step 3.
        from tests.factories import make_subscriber

        cy = make_subscriber(s, "cy@example.org")
        enroll(s, cy, c, T0, clinic_tz="America/New_York")
        cys = list(s.scalars(select(Delivery).where(Delivery.subscriber_id == cy.id).order_by(Delivery.due_at)))
        cys[1].status, cys[1].sent_at = "sent", T0
        cys[2].status, cys[2].sent_at = "sent", T0
        s.add(Suppression(email_key="cy@example.org", reason="unsubscribe", source=f"one-click d{cys[1].id}", created_at=T0))
        s.add(Event(provider="sendgrid", provider_event_id="ev1", type="unsubscribe", delivery_id=cys[2].id,
                    email_key="cy@example.org", occurred_at=T0, raw={}))
        s.flush()
        stats = step_stats(s, c)
        by_pos = {st.position: stats[st.id] for st in steps}
    assert (by_pos[1].sent, by_pos[1].scheduled, by_pos[1].unsubscribed) == (2, 1, 1)
    assert (by_pos[2].sent, by_pos[2].bounced, by_pos[2].unsubscribed) == (2, 1, 1)
    assert (by_pos[3].failed, by_pos[3].sent, by_pos[3].unsubscribed) == (1, 1, 1)
    assert (by_pos[4].scheduled, by_pos[4].sent, by_pos[4].unsubscribed) == (3, 0, 0)
    page = staff.get("/staff/campaigns/onboarding").text
    tiles = {label: int(value) for value, label in re.findall(
        r'<span class="tile-value">(\d+)</span><span class="tile-label">([A-Za-z]+)</span>', page)}
    assert tiles == {"Enrolled": 3, "Active": 3, "Scheduled": 6, "Sent": 5, "Failed": 1, "Bounced": 1, "Unsubscribed": 3}
    listing = staff.get("/staff/campaigns").text
    assert re.search(r"onboarding.*?<td class=\"num\">5</td>", listing, re.S)


def test_campaign_list_counts(runtime, staff):
    seed_staff(runtime)
    html = staff.get("/staff/campaigns").text
    assert "badge-published" in html and "badge-draft" in html
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 2
