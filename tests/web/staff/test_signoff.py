"""Clinician sign-off: an editor's change to a published step waits (patients get the approved
text), the approver sees the diff (escaped) and approves or sends it back; a draft is published by
its approval; `require_signoff = false` turns it off."""

from __future__ import annotations

import email
from email import policy

import pytest
from sqlalchemy import select

from campaigns.enrollment import enroll
from campaigns.service import latest_versions
from delivery.backends.outbox import OutboxBackend
from delivery.dispatcher import Dispatcher
from drip.models import AuditEntry, Campaign, Step
from tests.delivery.test_dispatcher import Clock
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import STAFF_PASSWORD, both_databases, csrf_of, login
from web.staff import auth

STEP = "/staff/campaigns/onboarding/steps/1"
NEW_BODY = "A changed paragraph with <script>alert(1)</script> in it."


def member(runtime, make_client, role, **settings):
    email_ = f"{role}@clinic.example.org"
    with runtime.sessions.begin() as s:
        if s.scalar(select(auth.StaffUser.id).where(auth.StaffUser.email == email_)) is None:
            auth.add_staff(s, email_, STAFF_PASSWORD, role=role)
    c = make_client(**settings)
    assert login(c, email_).status_code == 303
    return c


def post(client, page, action, data=None):
    return client.post(action, data={"csrf": csrf_of(client.get(page).text), **(data or {})}, follow_redirects=False)


def edit_step(client, body=NEW_BODY):
    page = client.get(STEP).text
    import re
    subject = re.search(r'name="subject"[^>]*value="([^"]*)"', page).group(1)
    return post(client, STEP, STEP, {"subject": subject, "preheader": "", "title": "Welcome", "body": body,
                                     "delay": "0d"})


def live_body(runtime):
    with runtime.sessions() as s:
        step = s.scalar(select(Step).join(Campaign).where(Campaign.slug == "onboarding", Step.position == 1))
        return latest_versions(s, [step.id], live=True)[step.id].body, latest_versions(s, [step.id])[step.id].body


@both_databases
def test_an_editors_change_waits_for_the_approver(runtime, make_client):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "onboarding", n_items=1)
        enroll(s, make_subscriber(s, "ann@example.org", name="Ann"), c, T0, clinic_tz="UTC")
    approved_before, _ = live_body(runtime)
    editor = member(runtime, make_client, "editor")
    assert edit_step(editor).status_code == 303
    live, newest = live_body(runtime)
    assert live == approved_before and newest == NEW_BODY  # waiting, not sent

    # The worker sends the approved text while the change waits.
    Dispatcher(runtime, OutboxBackend(runtime.settings), clock=Clock(T0), worker_id="w").tick()
    [sent] = runtime.settings.outbox_dir.glob("*.eml")
    text = email.message_from_bytes(sent.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    assert "A changed paragraph" not in text

    page = editor.get("/staff/campaigns/onboarding").text
    assert "1 changed email waits for approval" in page
    assert post(editor, "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/submit").status_code == 303
    assert "Waiting for approval" in editor.get("/staff/campaigns/onboarding").text
    assert post(editor, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/approve").status_code == 403

    approver = member(runtime, make_client, "approver")
    review = approver.get("/staff/campaigns/onboarding/review")
    assert review.status_code == 200 and 'class="diff"' in review.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in review.text and "<script>" not in review.text
    assert "Last published" in review.text and "diff_add" in review.text
    assert post(approver, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/approve").status_code == 303
    live, newest = live_body(runtime)
    assert live == newest == NEW_BODY
    with runtime.sessions() as s:
        actions = [(a, who) for a, who in s.execute(select(AuditEntry.action, AuditEntry.actor)
                                                    .where(AuditEntry.action.in_(["step.edit", "review.submit",
                                                                                  "review.approve"]))
                                                    .order_by(AuditEntry.id))]
    assert actions == [("step.edit", "editor@clinic.example.org"), ("review.submit", "editor@clinic.example.org"),
                       ("review.approve", "approver@clinic.example.org")]


def test_sent_back_with_a_comment(runtime, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1)
    editor = member(runtime, make_client, "editor")
    edit_step(editor)
    approver = member(runtime, make_client, "approver")
    r = post(approver, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/return", {"comment": " "})
    assert r.status_code == 303 and r.headers["location"].endswith("/review")
    r = post(approver, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/return",
             {"comment": "Dosage <b>wording</b> needs a source."})
    assert r.status_code == 303
    page = editor.get("/staff/campaigns/onboarding").text
    assert "Sent back by the approver" in page and "Dosage &lt;b&gt;wording&lt;/b&gt; needs a source." in page
    live, newest = live_body(runtime)
    assert live != newest  # still waiting


def test_a_draft_is_published_by_its_approval(runtime, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1, publish=False)
    editor = member(runtime, make_client, "editor")
    assert edit_step(editor).status_code == 303  # a draft is edited in place
    assert post(editor, "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/submit").status_code == 303
    approver = member(runtime, make_client, "approver")
    review = approver.get("/staff/campaigns/onboarding/review").text
    assert "Nothing published yet" in review and "Approve and publish" in review
    # the factory's short bodies are review warnings: approving a draft asks to confirm them, as Publish does
    assert "I have reviewed the warnings" in review and "a very short body" in review
    post(approver, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/approve")
    with runtime.sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.slug == "onboarding")) == "draft"
    post(approver, "/staff/campaigns/onboarding/review", "/staff/campaigns/onboarding/approve", {"confirm": "1"})
    with runtime.sessions() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.slug == "onboarding")) == "published"


@pytest.mark.parametrize("role, signoff, waits", [("editor", True, True), ("editor", False, False),
                                                   ("owner", True, False), ("approver", True, None)])
def test_who_needs_approval(runtime, make_client, role, signoff, waits):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1)
    client = member(runtime, make_client, role, require_signoff=signoff)
    r = edit_step(client)
    if waits is None:  # an approver reads content but does not edit it
        assert r.status_code == 403
        return
    live, newest = live_body(runtime)
    assert newest == NEW_BODY and (live != newest) is waits
