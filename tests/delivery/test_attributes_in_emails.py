"""`{{ patient.attributes.KEY }}` in an article: each patient's value, escaped, in the body only -
never in what the provider keeps as metadata (custom_args, categories, headers)."""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta, timezone
from email import policy

from campaigns import service
from campaigns.draft import Draft, DraftStep
from campaigns.enrollment import enroll
from delivery.backends.outbox import OutboxBackend
from delivery.backends.sendgrid_payload import build_payload
from delivery.dispatcher import Dispatcher
from subscribers.attributes import define_attribute, set_attributes
from tests.delivery.test_dispatcher import Clock, ScriptedBackend
from tests.factories import make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
BODY = "Your first visit is on {{ patient.attributes.first_visit }}.\n\nYou told us: {{ patient.attributes.note }}"


class SharedBackend(ScriptedBackend):
    """Like SendGrid: takes shared bodies with substitutions when the dispatcher offers them."""

    uses_shared_content = True
    sends_groups = True


def setup(runtime):
    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date")
        define_attribute(s, "note", "text")
        draft = Draft(title="Before your visit", steps=[
            DraftStep("intro", "", "Welcome", "Before your first visit", BODY),
            DraftStep("item", "", "Plain", "What to wear", "Wear something comfortable."),
        ])
        c = service.create_campaign(s, draft, "pre-visit", every=timedelta(days=1), window="daily 00:00-23:59")
        service.set_status(s, c, "published")
        ann = make_subscriber(s, "ann@example.org", name="Ann")
        bob = make_subscriber(s, "bob@example.org", name="Bob")
        set_attributes(s, ann.id, {"first_visit": "2027-01-12", "note": "<b>knee</b> & {{ 7*7 }}"}, T0)
        for sub in (ann, bob):
            enroll(s, sub, c, T0, clinic_tz="UTC")
        return ann.id, bob.id


def test_each_patient_gets_their_own_escaped_value(runtime):
    setup(runtime)
    report = Dispatcher(runtime, OutboxBackend(runtime.settings), clock=Clock(T0), worker_id="w").tick()
    assert report.sent == 2 and report.failed == 0
    bodies = {}
    for path in runtime.settings.outbox_dir.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        bodies[msg["To"]] = (msg.get_body(("html",)).get_content(), msg.get_body(("plain",)).get_content())
    html, text = bodies["Ann <ann@example.org>"]
    assert "first visit is on 12 January 2027." in html and "first visit is on 12 January 2027." in text
    assert "&lt;b&gt;knee&lt;/b&gt; &amp; {{ 7*7 }}" in html and "<b>knee</b>" not in html and "49" not in html
    html, _ = bodies["Bob <bob@example.org>"]
    assert "first visit is on ." in html and "patient.attributes" not in html  # no value: nothing printed


def test_attributes_never_reach_provider_metadata(runtime):
    setup(runtime)
    backend = SharedBackend(runtime.settings)
    Dispatcher(runtime, backend, clock=Clock(T0), worker_id="w").tick()
    (ann,) = [m for m in backend.sent if m.to_email == "ann@example.org"]
    assert ann.shared is None and "12 January 2027" in ann.html  # rendered for her alone
    body = build_payload([ann]).body
    assert body["personalizations"][0]["custom_args"] == {"delivery_id": str(ann.delivery_id)}
    outside_content = json.dumps({k: v for k, v in body.items() if k != "content"})
    assert "2027" not in outside_content and "knee" not in outside_content
    assert "2027" not in ann.subject and "knee" not in ann.subject
    # Content that prints no attribute keeps the shared body (one request per 1,000 recipients).
    clock_next = Clock(T0 + timedelta(days=1, hours=1))
    later = SharedBackend(runtime.settings)
    Dispatcher(runtime, later, clock=clock_next, worker_id="w").tick()
    assert later.sent and all(m.shared is not None for m in later.sent)
