"""Staff correct the Spanish version of an email in Chromium: the step page's language switch opens
the Spanish form, the saved subject shows on the Spanish preview, the English preview keeps the
English one. Screenshots: test-artifacts/screenshots/step-es-*.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns import service
from tests.browser.server import log_in, run_server
from tests.campaigns.test_translations import spanish
from tests.factories import make_campaign
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

EMAIL = "frontdesk@clinic.example.org"
PASSWORD = "a long and careful password"
SUBJECT = "Cómo ayudan las agujas finas"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A published onboarding series with its Spanish version, and one staff user (an owner)."""
    with run_server(tmp_path_factory.mktemp("step-es")) as live:
        with live.runtime.sessions.begin() as s:
            c = make_campaign(s, "onboarding", n_items=2, every=timedelta(days=2))
            service.add_translation(s, c, spanish(), "es", clinic_language="en")
            add_staff(s, EMAIL, PASSWORD)
        yield live


def test_staff_edit_the_spanish_subject_and_see_it_on_the_spanish_preview(page, server, shoot):
    base = server.url
    log_in(page, base, EMAIL, PASSWORD)
    page.wait_for_selector(".account .who")

    page.goto(f"{base}/staff/campaigns/onboarding/steps/2")
    english_subject = page.input_value("input[name=subject]")
    page.click("nav[aria-label=Language] a:has-text('Spanish')")
    page.wait_for_url("**/steps/2?language=es")
    assert page.input_value("input[name=subject]") == "Cómo funciona la acupuntura, parte 1"
    assert page.locator("input[name=delay]").count() == 0
    page.fill("input[name=subject]", SUBJECT)
    page.click("button:has-text('Save email')")
    page.wait_for_selector(".flash-success:has-text('The Spanish version of email 2 saved')")
    assert page.url.endswith("/steps/2?language=es") and page.input_value("input[name=subject]") == SUBJECT
    shoot(page, "step-es-1-edit")

    page.click("a.btn:has-text('Desktop')")
    page.wait_for_url("**/preview?device=desktop&language=es")
    assert page.inner_text(".inbox-subject") == SUBJECT
    frame = page.locator("iframe.email-frame").element_handle().content_frame()
    frame.wait_for_load_state("load")
    assert "Texto del mecanismo 1." in frame.inner_text("body")
    shoot(page, "step-es-2-preview")

    page.click(".segmented a:has-text('Own language')")
    page.wait_for_url("**/preview?device=desktop")
    assert page.inner_text(".inbox-subject") == english_subject  # the English email as it was
