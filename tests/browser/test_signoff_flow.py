"""Clinician sign-off in Chromium (#14 "Prove it"): an editor uploads and edits a draft and submits
it; an approver reviews it and publishes it; the editor's change to a published email waits; the
approver sees that change as a diff beside the published text and approves it, and only then is it
the version patients get. Two browser contexts: the editor and the approver are logged in at once.
Screenshots: test-artifacts/screenshots/signoff-*.png.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns.service import latest_versions
from drip.models import AuditEntry, Campaign, Step
from tests.browser.server import log_in, run_server
from web.staff.auth import add_staff

pytestmark = pytest.mark.browser

PASSWORD = "a long and careful password"
EDITOR, APPROVER = "editor@clinic.example.org", "approver@clinic.example.org"
DRAFT_SUBJECT = "How acupuncture releases endorphins"
LIVE_SUBJECT = "Endorphins: how fine needles ease pain"


def open_as(browser, base: str, who: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    log_in(page, base, who, PASSWORD)
    page.wait_for_selector(".account .who")
    return context, page


def step_versions(runtime, position: int):
    """(newest live, newest) own version of one step of the only campaign."""
    with runtime.sessions() as s:
        step = s.scalar(select(Step).where(Step.position == position))
        return latest_versions(s, [step.id], live=True).get(step.id), latest_versions(s, [step.id])[step.id]


def test_an_editor_drafts_and_an_approver_approves_with_the_diff_on_screen(browser, shoot, seed_path, tmp_path):
    with run_server(tmp_path) as server:
        with server.runtime.sessions.begin() as s:
            add_staff(s, EDITOR, PASSWORD, role="editor")
            add_staff(s, APPROVER, PASSWORD, role="approver")
        base = server.url
        editor_ctx, editor = open_as(browser, base, EDITOR)
        approver_ctx, approver = open_as(browser, base, APPROVER)
        try:
            # The editor uploads the article and corrects the first item's subject; no Publish for her.
            editor.goto(f"{base}/staff/campaigns")
            editor.set_input_files("input[name=article]", str(seed_path))
            editor.click("button:has-text('Upload and split')")
            editor.wait_for_selector("h1 .badge-draft")
            campaign_url = editor.url
            assert editor.locator("button:has-text('Publish')").count() == 0
            first_item = editor.locator("table.steps tbody tr", has=editor.locator(".badge-item")).first
            first_item.locator("a:has-text('Edit')").click()
            editor.wait_for_selector("textarea[name=body]")
            step_url = editor.url
            position = int(step_url.rstrip("/").rsplit("/", 1)[1])
            editor.fill("input[name=subject]", DRAFT_SUBJECT)
            editor.click("button:has-text('Save email')")
            editor.wait_for_selector(".flash-success")
            editor.goto(campaign_url)
            editor.click("button:has-text('Submit for approval')")
            editor.wait_for_selector(".flash-success:has-text('Sent for approval')")
            assert "Waiting for approval" in editor.inner_text("#signoff")
            shoot(editor, "signoff-1-submitted")

            # The approver reviews the draft and publishes it (the seed's warnings confirmed first).
            approver.goto(campaign_url)
            approver.click("a:has-text('Review changes')")
            approver.wait_for_selector("h1:has-text('Review')")
            assert approver.locator("section.diff-step").count() == editor.locator("table.steps tbody tr").count()
            assert DRAFT_SUBJECT in approver.inner_text(f"#step-{position}").replace("\xa0", " ")  # difflib's &nbsp;
            approver.check("input[name=confirm]")
            approver.click("button:has-text('Approve and publish')")
            approver.wait_for_selector(".flash-success:has-text('is approved and published')")
            assert approver.locator("h1 .badge-published").count() == 1
            with server.runtime.sessions() as s:
                assert s.scalar(select(Campaign.status)) == "published"

            # The editor changes the published email: it waits, patients keep the approved text.
            editor.goto(step_url)
            editor.fill("input[name=subject]", LIVE_SUBJECT)
            editor.click("button:has-text('Save email')")
            editor.wait_for_selector(".flash-success:has-text('waiting for approval')")
            live, newest = step_versions(server.runtime, position)
            assert (live.subject, newest.subject, newest.pending) == (DRAFT_SUBJECT, LIVE_SUBJECT, True)
            editor.goto(campaign_url)
            editor.click("button:has-text('Submit for approval')")
            editor.wait_for_selector(".flash-success:has-text('Sent for approval')")

            # The approver sees the change beside the published text, marked, and approves it.
            approver.goto(campaign_url)
            approver.click("a:has-text('Review changes')")
            changed = approver.locator(f"#step-{position}")
            changed.locator("table.diff").wait_for()
            assert changed.locator(".badge:has-text('changed')").count() == 1
            assert approver.locator("section.diff-step .badge:has-text('changed')").count() == 1  # only that one
            removed = changed.locator("td .diff_sub, td .diff_chg").all_inner_texts()
            added = changed.locator("td .diff_add, td .diff_chg").all_inner_texts()
            assert removed and added  # difflib marks both sides
            text = changed.inner_text().replace("\xa0", " ")
            assert DRAFT_SUBJECT in text and LIVE_SUBJECT in text  # the published subject beside the new one
            changed.scroll_into_view_if_needed()
            shoot(approver, "signoff-2-diff")
            approver.click("button:has-text('Approve the changes')")
            approver.wait_for_selector(".flash-success:has-text('1 changed email now go out')")
            live, newest = step_versions(server.runtime, position)
            assert live.id == newest.id and live.subject == LIVE_SUBJECT and not live.pending
            shoot(approver, "signoff-3-approved")
            with server.runtime.sessions() as s:
                trail = [(a, who) for a, who in s.execute(
                    select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.action.like("review.%"))
                    .order_by(AuditEntry.id))]
            assert trail == [("review.submit", EDITOR), ("review.approve", APPROVER)] * 2
        finally:
            editor_ctx.close()
            approver_ctx.close()
