"""A patient is exported and erased in Chromium (#14 "Prove it"): the owner opens the readable
export and downloads the JSON from the patient's page, then erases the patient (a wrong address
typed first is refused), after which the address cannot be added again and the audit log names
record ids only. Screenshots: test-artifacts/screenshots/data-rights-*.png.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from drip.models import AuditEntry, Delivery, Subscriber, Suppression
from subscribers.suppression import erased_key
from tests.browser.server import log_in, run_server
from tests.web.staff.data import seed_staff
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

OWNER = "owner@clinic.example.org"
PASSWORD = "a long and careful password"
ANN = "ann@example.org"


def test_the_owner_exports_then_erases_a_patient(page, shoot, tmp_path):
    with run_server(tmp_path) as server:
        ids = seed_staff(server.runtime)  # Ann Lee: enrolled in a published series, on the newsletter list
        with server.runtime.sessions.begin() as s:
            add_staff(s, OWNER, PASSWORD)
            deliveries = s.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.subscriber_id == ids.ann_id))
        base = server.url
        log_in(page, base, OWNER, PASSWORD)
        page.wait_for_selector(".account .who")

        page.goto(f"{base}/staff/subscribers")
        page.click("a.rowlink:has-text('Ann Lee')")
        page.wait_for_url(f"**/staff/subscribers/{ids.ann_id}")
        patient_url = page.url

        # The readable export: profile, consent, lists, series, every email.
        page.click("a:has-text('View the export')")
        page.wait_for_selector("h1:has-text('Data held about Ann Lee')")
        for section in ("profile", "consent", "lists", "enrollments", "deliveries"):
            assert page.locator(f"section#{section}").count() == 1, section
        assert ANN in page.inner_text("#profile")
        assert f"Every email ({deliveries})" in page.inner_text("#deliveries") and deliveries > 0
        assert page.locator("#deliveries tbody tr").count() == deliveries
        shoot(page, "data-rights-1-export")

        # The same as a JSON file, downloaded by the browser.
        page.goto(patient_url)
        with page.expect_download() as info:
            page.click("a:has-text('Download as JSON')")
        download = info.value
        assert download.suggested_filename == f"patient-{ids.ann_id}-export.json"
        data = json.loads(open(download.path(), encoding="utf-8").read())
        assert data["profile"]["email"] == ANN and len(data["deliveries"]) == deliveries
        assert [e["campaign"] for e in data["enrollments"]] == ["onboarding"]

        # Erase: a wrong address changes nothing; the right one (any case, spaces) erases.
        page.fill("input[name=confirm_email]", "someone@else.example.org")
        page.click("button:has-text('Erase permanently')")
        page.wait_for_selector(".flash-error:has-text('type their email address exactly')")
        with server.runtime.sessions() as s:
            assert s.get(Subscriber, ids.ann_id) is not None
        page.fill("input[name=confirm_email]", " Ann@Example.org ")
        page.click("button:has-text('Erase permanently')")
        page.wait_for_selector(f".flash-success:has-text('Patient {ids.ann_id} was erased')")
        assert page.url == f"{base}/staff/subscribers"
        assert page.locator("a.rowlink:has-text('Ann Lee')").count() == 0
        assert page.locator("a.rowlink:has-text('Bob Stone')").count() == 1  # nobody else touched
        shoot(page, "data-rights-2-erased")
        assert page.goto(patient_url).status == 404
        with server.runtime.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Delivery)
                            .where(Delivery.subscriber_id == ids.ann_id)) == 0
            assert [x.email_key for x in s.scalars(select(Suppression))] == [erased_key(ANN)]

        # Never re-added by hand: the add form names why.
        page.goto(f"{base}/staff/subscribers")
        page.fill("form[action$='/subscribers/add'] input[name=email]", ANN)
        page.click("button:has-text('Add patient')")
        page.wait_for_selector(".form-error:has-text('erased at their request')")
        shoot(page, "data-rights-3-not-re-added")

        # Audited: two exports and the erasure, by record id; the address is in no audit row.
        with server.runtime.sessions() as s:
            rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action.like("subscriber.%"))
                                  .order_by(AuditEntry.id)))
        assert [(r.action, r.actor, r.target, r.after) for r in rows] == [
            ("subscriber.export", OWNER, f"subscriber {ids.ann_id}", {"format": "page"}),
            ("subscriber.export", OWNER, f"subscriber {ids.ann_id}", {"format": "json"}),
            ("subscriber.erase", OWNER, f"subscriber {ids.ann_id}", None)]
        assert all(ANN not in json.dumps([r.target, r.before, r.after]).lower() for r in rows)
