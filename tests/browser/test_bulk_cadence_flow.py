"""Staff parts of patient journeys in Chromium: set the cadence and read the "Enrolling today"
plan, enroll ~230 tagged patients through the progress page, link a tag, stop a patient with a
reason; and the staff top bar never lays one item on another (bounding boxes in the browser).
Screenshots in test-artifacts/screenshots/ (23-27)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from drip.models import Enrollment
from subscribers.service import tag_subscribers
from tests.browser.server import log_in, run_server
from tests.factories import make_campaign, make_subscriber
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "cadence@clinic.example.org"
PASSWORD = "a long and careful password for the cadence flow"
PATIENTS = 230  # more than campaigns.bulk.INLINE_MAX: the run goes to the background and its progress page


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("bulk-cadence")) as live:
        with live.runtime.sessions.begin() as s:
            add_staff(s, EMAIL, PASSWORD)
            make_campaign(s, "back-pain-basics", n_items=3, every=timedelta(days=2), window="mon-fri 09:00-17:00")
            ids = [make_subscriber(s, f"spine{i:03d}@example.org", name=f"Spine Patient {i:03d}").id
                   for i in range(PATIENTS)]
            tag_subscribers(s, ids, ["spine-clinic"], datetime.now(timezone.utc))
            make_subscriber(s, "walkin@example.org", name="Walk In")
        yield live


def login(page, base: str) -> None:
    log_in(page, base, EMAIL, PASSWORD)
    page.wait_for_url(f"{base}/staff/campaigns")


def test_cadence_bulk_enroll_link_and_stop(page, server, shoot):
    base = server.url
    login(page, base)
    campaign = f"{base}/staff/campaigns/back-pain-basics"

    # The cadence: Monday to Friday days at 09:30, and the plan for a patient enrolling today.
    page.goto(campaign)
    page.get_by_label("Count days Monday to Friday only").check()
    page.get_by_label("Send at (patient's local time)").fill("09:30")
    page.click("button:has-text('Save cadence')")
    page.wait_for_selector(".flash-success")
    assert "Cadence saved" in page.locator(".flashes").inner_text()
    assert page.locator("table.steps th", has_text="Enrolling today").count() == 1
    plan = page.locator("td.plan").all_inner_texts()
    after = page.locator("td.after").all_inner_texts()
    assert len(plan) == 4 and all(p.endswith("09:30") and not p.startswith(("Sat", "Sun")) for p in plan)
    assert after == ["at once", "business day 2", "business day 4", "business day 6"]
    page.locator("table.steps").scroll_into_view_if_needed()
    shoot(page, "23-cadence-plan")

    # Enroll everyone with the tag: 230 patients, through the progress page, which names the campaign.
    page.get_by_label("Patients with the tag").select_option("spine-clinic")
    page.click("button:has-text('Enroll everyone with this tag')")
    page.wait_for_url(re.compile(r".*/staff/campaigns/back-pain-basics/bulk/\d+$"))
    assert "Acupuncture basics" in page.locator("#bulk-campaign").inner_text()
    shoot(page, "24-bulk-progress")
    page.wait_for_selector("#bulk-summary", timeout=90_000)  # the page refreshes itself until the run ends
    summary = page.locator("#bulk-summary").inner_text()
    assert f"tag “spine-clinic”: {PATIENTS} of {PATIENTS} patients enrolled" in summary
    assert page.locator("progress").get_attribute("value") == "100"
    shoot(page, "25-bulk-finished")
    with server.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Enrollment)) == PATIENTS

    # Link a tag: a patient who joins it is enrolled from then on.
    page.click("a:has-text('Back to the campaign')")
    page.get_by_label("Tag that enrolls").fill("walk-ins")
    page.click("#link-tag button[type=submit]")
    page.wait_for_selector(".flash-success")
    assert "Patients who join “walk-ins” are now enrolled" in page.locator(".flashes").inner_text()
    assert "joining “walk-ins” enrolls automatically" in page.locator(".pagehead").inner_text()
    shoot(page, "26-tag-linked")

    # Stop one of the 230, with the reason the front desk gives.
    page.goto(f"{base}/staff/subscribers?q=spine007")
    page.click("a.rowlink:has-text('Spine Patient 007')")
    page.fill("#enrollments input[name=reason]", "booked by phone")
    page.click("#enrollments button:has-text('Stop this series')")
    page.wait_for_selector(".flash-success")
    assert "4 scheduled emails cancelled" in page.locator(".flashes").inner_text()
    assert "booked by phone" in page.locator(".timeline").inner_text()
    shoot(page, "27-patient-stopped")


# Every box of the top bar, by what it is: the clinic's name and tagline, each menu link, the account.
# A box is where its text is actually painted: the element's box joined with its text's extent (text
# overflowing a squeezed element still shows), cut to the element's box when it clips its overflow.
TOPBAR_BOXES = """() => {
  const pick = (sel, name) => [...document.querySelectorAll(sel)].map((el, i) => {
    const r = el.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(el);
    const t = range.getBoundingClientRect();
    const clips = getComputedStyle(el).overflowX !== 'visible';
    const left = clips ? Math.max(r.left, t.left) : Math.min(r.left, t.left);
    const right = clips ? Math.min(r.right, t.right) : Math.max(r.right, t.right);
    const top = clips ? Math.max(r.top, t.top) : Math.min(r.top, t.top);
    const bottom = clips ? Math.min(r.bottom, t.bottom) : Math.max(r.bottom, t.bottom);
    return {name: name + (i ? i : ''), text: el.innerText.trim(), x: left, y: top, w: Math.max(0, right - left),
            h: Math.max(0, bottom - top), clipped: el.scrollWidth > el.clientWidth + 1};
  });
  return [...pick('.brand-text strong', 'name'), ...pick('.brand-text small', 'tagline'),
          ...pick('.mainnav a', 'link'), ...pick('.account .who', 'who'), ...pick('.account button', 'logout')];
}"""


def overlaps(a: dict, b: dict) -> bool:
    """Whether two boxes share more than a pixel (touching edges and rounding are not overlap)."""
    return (min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]) > 1
            and min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]) > 1)


@pytest.mark.parametrize("width", [1440, 1280, 1100, 1000, 800, 390])
def test_the_staff_top_bar_never_overlaps_the_clinic_name(browser, server, screenshots, width):
    """The clinic's name ("Riverside Acupuncture & Wellness") and "Patient email" keep their own
    place next to the menu at every width: "Home" once sat on top of them at 1280 px."""
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="en-US")
    try:
        page = context.new_page()
        login(page, server.url)
        for path in ("/staff/campaigns", "/staff/campaigns/back-pain-basics", "/staff/subscribers"):
            page.goto(server.url + path)
            boxes = page.evaluate(TOPBAR_BOXES)
            assert {"name", "tagline", "link", "logout"} <= {b["name"] for b in boxes}, (width, path, boxes)
            bad = [(a["name"], a["text"], b["name"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                   if overlaps(a, b)]
            assert not bad, f"{width}px {path}: overlapping top bar items {bad}"
            name = next(b for b in boxes if b["name"] == "name")
            assert name["w"] >= 100, f"{width}px {path}: the clinic's name is squeezed to {name['w']:.0f}px"
            links = [b for b in boxes if b["name"].startswith("link")]
            assert all(not b["clipped"] for b in links), f"{width}px {path}: a menu link is cut off"
        page.locator(".topbar").screenshot(path=str(screenshots / f"28-topbar-{width}.png"))
    finally:
        context.close()


def test_dropdowns_are_as_tall_as_the_text_fields_beside_them(page, server):
    """In a form row a shorter <select> sits its label lower than its neighbours' (seen on the
    campaign and sign-up pages): every dropdown is as tall as a text field."""
    login(page, server.url)
    for path in ("/staff/campaigns/back-pain-basics", "/staff/signup", "/staff/subscribers"):
        page.goto(server.url + path)
        heights = page.evaluate("""() => ({
          selects: [...document.querySelectorAll('main select')].map(e => e.getBoundingClientRect().height),
          inputs: [...document.querySelectorAll('main input[type=text], main input:not([type]), main input[type=search]')]
                    .map(e => e.getBoundingClientRect().height).filter(h => h > 0)})""")
        assert heights["selects"] and heights["inputs"], path
        field = max(set(heights["inputs"]), key=heights["inputs"].count)
        assert all(abs(h - field) <= 1 for h in heights["selects"]), (path, field, heights["selects"])
