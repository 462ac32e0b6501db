"""A Spanish-speaking patient on a phone whose browser asks for Spanish, in Chromium against the
real app under uvicorn: subscribe -> confirmation email -> confirm -> the first email (the Spanish
version of the series) -> preferences -> unsubscribe, every page in Spanish with no English msgid on
it. Screenshots go to test-artifacts/screenshots/spanish-*.png.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns import service
from delivery.backends import get_backend
from delivery.dispatcher import Dispatcher
from drip.models import Delivery, Enrollment, Subscriber
from tests.browser.server import run_server
from tests.browser.test_patient_flow import read_email, wait_for_file
from tests.campaigns.test_translations import spanish
from tests.factories import make_campaign
from tests.web.test_spanish_pages import english_fragments, texts

pytestmark = pytest.mark.browser

ADDRESS = "lucia.garcia@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh database with a published onboarding series and its Spanish version."""
    with run_server(tmp_path_factory.mktemp("spanish")) as live:
        with live.runtime.sessions.begin() as s:
            c = make_campaign(s, "onboarding", n_items=2, every=timedelta(days=2))
            service.add_translation(s, c, spanish(), "es", clinic_language="en")
        yield live


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="es-MX", timezone_id="America/Mexico_City")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def all_spanish(page) -> None:
    """The page says it is Spanish and shows none of the English msgids' words."""
    html = page.content()
    assert page.get_attribute("html", "lang") == "es"
    shown = "\n".join(texts(html))
    leftovers = sorted(f for f in english_fragments() if f in shown)
    assert leftovers == [], leftovers


def test_a_spanish_patient_sees_spanish_pages_from_sign_up_to_unsubscribe(phone, server, shoot):
    page, base, rt = phone, server.url, server.runtime

    page.goto(f"{base}/subscribe")
    page.wait_for_selector("h1:has-text('Consejos de salud de')")
    assert page.input_value("select[name=language]") == "es"  # from the browser's Accept-Language
    assert page.input_value("select[name=tz]") == "America/Mexico_City"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    all_spanish(page)
    page.fill("input[name=name]", "Lucía García")
    page.fill("input[name=email]", ADDRESS)
    page.check("input[name=consent]")
    shoot(page, "spanish-1-subscribe")
    page.click("button:has-text('Suscribirme')")
    page.wait_for_selector("h1:has-text('Revise su bandeja de entrada')")
    all_spanish(page)
    shoot(page, "spanish-2-check-inbox")

    with rt.sessions() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email_key == ADDRESS))
        assert (sub.status, sub.language, sub.consent_text_version) == ("pending", "es", "2026-11:es")
    confirmation = read_email(wait_for_file(server.outbox / f"-{sub.id}.eml"))
    assert confirmation["Subject"].startswith("Confirme su suscripción a ")
    link = re.search(rf"{re.escape(base)}/confirm/\S+", confirmation.get_body(("plain",)).get_content()).group(0)
    page.goto("about:blank")
    page.set_content(confirmation.get_body(("html",)).get_content())
    assert "Hola, Lucía:" in page.inner_text("body") and "Confirmar mi suscripción" in page.inner_text("body")
    shoot(page, "spanish-2b-confirmation-email")

    page.goto(link)
    page.wait_for_selector("h1:has-text('Confirme su suscripción')")
    all_spanish(page)
    shoot(page, "spanish-3-confirm")
    page.click("button:has-text('Confirmar mi suscripción')")
    page.wait_for_selector("h1:has-text('Suscripción confirmada')")
    all_spanish(page)
    assert "Acupuntura básica" in page.inner_text("main")  # the series' title from the Spanish article
    shoot(page, "spanish-4-confirmed")

    with rt.sessions() as s:
        enrollment = s.scalar(select(Enrollment).where(Enrollment.subscriber_id == sub.id))
        first = s.scalars(select(Delivery).where(Delivery.enrollment_id == enrollment.id)
                          .order_by(Delivery.due_at)).first()
    with get_backend(rt.settings) as backend:
        assert Dispatcher(rt, backend, clock=lambda: first.due_at + timedelta(minutes=1)).tick().sent == 1
    welcome = read_email((server.outbox / f"{first.id}.eml").read_bytes())
    assert welcome["Subject"] == "Bienvenido a la acupuntura"  # the Spanish version of the step
    html = welcome.get_body(("html",)).get_content()
    page.goto("about:blank")
    page.set_content(html)
    body = page.inner_text("body")
    assert "Darse de baja" in body and "Preferencias de correo" in body and "Unsubscribe" not in body
    assert "a la serie «Acupuntura básica»" in body
    shoot(page, "spanish-5-first-email")
    preferences_url = re.search(r'href="([^"]+/preferences/[^"]+)"', html).group(1)
    unsubscribe_url = welcome["List-Unsubscribe"].strip("<>")

    page.goto(preferences_url)
    page.wait_for_selector("h1:has-text('Preferencias de correo')")
    all_spanish(page)
    shoot(page, "spanish-6-preferences")
    page.click("button:has-text('Pausar todos los correos')")
    page.wait_for_selector("text=Sus preferencias están guardadas.")
    all_spanish(page)
    shoot(page, "spanish-7-paused")
    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "paused"

    page.goto(unsubscribe_url)
    page.wait_for_selector("h1:has-text('¿Dar de baja')")
    assert "Acupuntura básica" in page.inner_text("main")
    all_spanish(page)
    shoot(page, "spanish-8-unsubscribe")
    page.click("button:has-text('Darme de baja de todos los correos')")
    page.wait_for_selector("h1:has-text('Se ha dado de baja')")
    all_spanish(page)
    shoot(page, "spanish-9-unsubscribed")
    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "unsubscribed"
