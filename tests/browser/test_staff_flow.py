"""The staff app in Chromium: log in, upload the seed article, edit, preview, test, publish,
import patients, enroll one, create a newsletter. Screenshots of the main pages are saved to
test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import email
from datetime import date, timedelta
from email import policy

import pytest

from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "frontdesk@clinic.example.org"
PASSWORD = "a long and careful password"
CSV = (
    "email,name,tz,tags\n"
    "maria.lopez@example.org,Maria Lopez,America/Chicago,patients;newsletter\n"
    "not-an-address,Bad Row,,patients\n"
    "james.chen@example.org,James Chen,Europe/London,patients;newsletter\n"
)


def test_staff_runs_a_campaign_end_to_end(page, live_server, shoot, seed_path, tmp_path):
    with live_server.runtime.sessions.begin() as s:
        add_staff(s, EMAIL, PASSWORD)
    base = live_server.url

    # Not logged in: the login page, remembering where we were going.
    page.goto(f"{base}/staff/campaigns")
    assert page.url.startswith(f"{base}/staff/login?next=")
    shoot(page, "01-login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base}/staff/campaigns")
    assert page.locator(".empty-title").inner_text() == "No campaigns yet"

    # Upload the article: ten item steps, one per mechanism or condition.
    page.set_input_files("input[name=article]", str(seed_path))
    page.click("button:has-text('Upload and split')")
    page.wait_for_selector("h1:has-text('Acupuncture for Pain Relief')")
    assert page.locator("table.steps .badge-item").count() == 10
    campaign_url = page.url
    total_steps = page.locator("table.steps tbody tr").count()
    shoot(page, "03-campaign-draft")

    # Edit the first item's subject.
    first_item = page.locator("table.steps tbody tr", has=page.locator(".badge-item")).first
    first_item.locator("a:has-text('Edit')").click()
    page.wait_for_selector("textarea[name=body]")
    subject = "How acupuncture releases endorphins"
    page.fill("input[name=subject]", subject)
    page.click("button:has-text('Save email')")
    page.wait_for_selector(".flash-success")
    assert page.input_value("input[name=subject]") == subject
    title = page.input_value("input[name=title]")
    shoot(page, "04-step-edit")

    # Preview at phone and desktop width: the iframe shows the real rendered email.
    for link, device, width in (("Phone", "mobile", 375), ("Desktop", "desktop", 800)):
        page.click(f"a.btn:has-text('{link}')" if device == "mobile" else f".segmented a:has-text('{link}')")
        page.wait_for_url(f"**/preview?device={device}")
        frame_el = page.locator("iframe.email-frame")
        assert round(frame_el.bounding_box()["width"]) == width
        frame = frame_el.element_handle().content_frame()
        frame.wait_for_load_state("load")
        assert title in frame.inner_text("body")
        assert subject in page.inner_text(".inbox-subject")
        shoot(page, f"05-preview-{width}")

    # Send a test email to myself: through the outbox, "[TEST]" subject.
    page.click("button:has-text('Send a test email to me')")
    page.wait_for_selector(f".flash-success:has-text('Test email sent to {EMAIL}')")
    [test_file] = live_server.outbox.glob("test-*.eml")  # a one-off test email: a file of its own
    sent = email.message_from_bytes(test_file.read_bytes(), policy=policy.default)
    assert sent["To"].addresses[0].addr_spec == EMAIL and sent["Subject"] == f"[TEST] {subject}"

    # Publish: the seed's review warnings are listed, and publishing asks to confirm them first.
    page.goto(campaign_url)
    assert page.locator(".warning-line").count() == 2
    shoot(page, "01b-review-warnings")
    page.click("button:has-text('Publish')")
    page.wait_for_selector(".flash-error:has-text('review warnings still open')")
    assert page.locator("h1 .badge-draft").count() == 1
    page.check("input[name=confirm]")
    page.click("button:has-text('Publish')")
    page.wait_for_selector("h1 .badge-published")
    page.click("nav.mainnav a:has-text('Campaigns')")
    assert page.locator("td .badge-published").count() == 1
    shoot(page, "02-campaigns")

    # Import patients: the bad row is reported with its line number, the good ones are in.
    csv_path = tmp_path / "patients.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    page.click("nav.mainnav a:has-text('Subscribers')")
    page.set_input_files("input[name=csv]", str(csv_path))
    page.click("button:has-text('Import')")
    page.wait_for_selector("table.errors")
    errors = page.inner_text("table.errors")
    assert "line 3" in errors and "email" in errors
    assert page.locator("a.rowlink:has-text('Maria Lopez')").count() == 1
    shoot(page, "06-subscribers-import")

    # Enroll a patient; her timeline lists every email with its local send time.
    page.click("a.rowlink:has-text('Maria Lopez')")
    page.select_option("select[name=campaign]", label="Acupuncture for Pain Relief and Muscle Spasm")
    page.click("button:has-text('Enroll')")
    page.wait_for_selector(".flash-success:has-text('is enrolled in')")
    assert page.locator(".tl-email").count() == total_steps
    assert "America/Chicago" in page.inner_text(".card-head")
    shoot(page, "07-subscriber-timeline")

    # A newsletter from a template to the "newsletter" list, scheduled at 09:00 local.
    page.click("nav.mainnav a:has-text('Newsletters')")
    page.select_option("select[name=template]", "holiday-hours")
    page.select_option("select[name=list]", "newsletter")
    page.click("button:has-text('Create draft')")
    page.wait_for_selector("h1:has-text('Our holiday opening hours')")
    shoot(page, "08-newsletter-draft")
    day = (date.today() + timedelta(days=20)).isoformat()
    page.fill("input[name=at]", f"{day} 09:00")
    page.check("input[name=local]")
    page.click("button:has-text('Schedule')")
    page.wait_for_selector(".flash-success:has-text('2 recipients')")
    assert page.locator("h1 .badge-scheduled").count() == 1
    shoot(page, "08-newsletter-scheduled")
    page.click("nav.mainnav a:has-text('Newsletters')")
    shoot(page, "09-newsletters")

    # On a phone: nothing wider than the screen, navigation still there.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(campaign_url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # home, campaigns, subscribers, newsletters, sign-up, settings (webhooks inside), team, audit log (an owner)
    assert page.locator("nav.mainnav a").count() == 8
    shoot(page, "10-phone-campaign")

    # Home: what went out, what is next, the chart (server-rendered SVG, nothing blocked by the CSP).
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/staff/")
    assert page.locator("svg.chart rect").count() >= 90 and page.locator(".tile").count() >= 6
    shoot(page, "11-home")
