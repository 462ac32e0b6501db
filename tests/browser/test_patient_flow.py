"""A patient on a phone (375 px wide), in Chromium against the real app under uvicorn:
subscribe -> confirmation email in the outbox -> confirm -> first onboarding email (dispatcher,
outbox backend) -> its unsubscribe link -> unsubscribed, the rest of the series cancelled.
Screenshots of each page go to test-artifacts/screenshots/patient-*.png.
"""

from __future__ import annotations

import email
import re
import time
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select

from delivery.backends import get_backend
from delivery.dispatcher import Dispatcher
from drip.models import Delivery, Enrollment, Subscriber, Suppression
from tests.browser.server import run_server
from tests.factories import make_campaign

pytestmark = pytest.mark.browser

ADDRESS = "maria.lopez@example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own: a fresh database with a published onboarding series."""
    with run_server(tmp_path_factory.mktemp("patient")) as live:
        with live.runtime.sessions.begin() as s:
            make_campaign(s, "onboarding", n_items=2, every=timedelta(days=2))
        yield live


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="en-US", timezone_id="Europe/Paris")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def wait_for_file(path: Path, seconds: float = 10.0) -> bytes:
    """The confirmation email is sent in a background task just after the response: wait for it."""
    for _ in range(int(seconds / 0.05)):
        if path.exists():
            return path.read_bytes()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {seconds} s")


def read_email(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def test_patient_subscribes_confirms_gets_the_first_email_and_unsubscribes(phone, server, shoot):
    page, base, rt = phone, server.url, server.runtime

    # The form: the browser's own zone is picked by the inline script (the CSP lets it run).
    page.goto(f"{base}/subscribe")
    assert page.input_value("select[name=tz]") == "Europe/Paris"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    page.fill("input[name=name]", "Maria Lopez")
    page.fill("input[name=email]", ADDRESS)
    page.check("input[name=consent]")
    shoot(page, "patient-1-subscribe")
    page.click("button:has-text('Subscribe')")
    page.wait_for_selector("h1:has-text('Check your inbox')")
    shoot(page, "patient-2-check-inbox")

    with rt.sessions() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email_key == ADDRESS))
        assert (sub.status, sub.tz, sub.consent_source, sub.consent_ip) == ("pending", "Europe/Paris", "web-form",
                                                                             "127.0.0.1")
    confirmation = read_email(wait_for_file(server.outbox / f"-{sub.id}.eml"))
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(base)}/confirm/\S+", text).group(0)
    page.goto("about:blank")  # no CSP of ours: the email as a phone's mail app shows it
    page.set_content(confirmation.get_body(("html",)).get_content())
    shoot(page, "patient-2b-confirmation-email")

    # The link shows a button; only pressing it confirms.
    page.goto(link)
    page.wait_for_selector("h1:has-text('Confirm your subscription')")
    assert "m***@example.org" in page.inner_text("main")
    shoot(page, "patient-3-confirm")
    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "pending"
    page.click("button:has-text('Confirm my subscription')")
    page.wait_for_selector("h1:has-text(\"You're subscribed\")")
    shoot(page, "patient-4-confirmed")
    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "active"
        enrollment = s.scalar(select(Enrollment).where(Enrollment.subscriber_id == sub.id))
        deliveries = list(s.scalars(select(Delivery).where(Delivery.enrollment_id == enrollment.id)
                                    .order_by(Delivery.due_at)))
        assert enrollment.state == "active" and len(deliveries) == 3

    # The worker runs once at the first due time: the first onboarding email lands in the outbox.
    first, rest = deliveries[0], deliveries[1:]
    with get_backend(rt.settings) as backend:
        report = Dispatcher(rt, backend, clock=lambda: first.due_at + timedelta(minutes=1)).tick()
    assert report.sent == 1
    welcome = read_email((server.outbox / f"{first.id}.eml").read_bytes())
    assert welcome["To"].addresses[0].addr_spec == ADDRESS
    unsubscribe_url = welcome["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith(f"{base}/u/")

    # Its unsubscribe link: a page first, then the button.
    page.goto(unsubscribe_url)
    page.wait_for_selector("h1:has-text('Unsubscribe')")
    shoot(page, "patient-5-unsubscribe")
    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "active"  # opening the page changed nothing
    page.click("button:has-text('Unsubscribe from all emails')")
    page.wait_for_selector("h1")
    shoot(page, "patient-6-unsubscribed")

    with rt.sessions() as s:
        assert s.get(Subscriber, sub.id).status == "unsubscribed"
        assert s.get(Suppression, ADDRESS).reason == "unsubscribe"
        assert s.get(Delivery, first.id).status == "sent"
        assert [s.get(Delivery, d.id).status for d in rest] == ["cancelled", "cancelled"]
        assert s.get(Enrollment, enrollment.id).state != "active"
