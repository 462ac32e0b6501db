"""A paused campaign says why on its page, and its failed emails can be retried with a button
(POST with the form's CSRF token)."""

from __future__ import annotations

from sqlalchemy import select

from drip.models import Campaign, Delivery
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.data import seed_staff

REASON = "auto-paused after 20 consecutive recipient failures (last: delivery 7: 550 5.1.1 <x@example.org>: no such user)"


def _fail_two(runtime, ids):
    with runtime.sessions.begin() as s:
        c = s.get(Campaign, ids.campaign_id)
        c.status, c.paused_reason, c.consecutive_failures = "paused", REASON, 20
        rows = list(s.scalars(select(Delivery).where(Delivery.subscriber_id == ids.ann_id).order_by(Delivery.id)))
        for d in rows[:2]:
            d.status, d.attempts, d.last_error = "failed", 1, "550 no such user"
        return [d.id for d in rows[:2]]


@both_databases
def test_paused_reason_is_shown_and_failed_emails_are_retried_by_button(runtime, staff):
    ids = seed_staff(runtime)
    failed = _fail_two(runtime, ids)
    page = staff.get("/staff/campaigns/onboarding").text
    assert "auto-paused after 20 consecutive recipient failures" in page
    assert "&lt;x@example.org&gt;" in page  # the server's text is escaped
    assert 'action="/staff/campaigns/onboarding/retry"' in page and "Retry failed emails" in page
    r = post_form(staff, "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/retry")
    assert r.status_code == 303
    after = staff.get(r.headers["location"]).text
    assert "2 failed emails of" in after and "once you resume sending" in after
    with runtime.sessions() as s:
        rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(failed)))}
        assert {(d.status, d.attempts) for d in rows.values()} == {("scheduled", 0)}
        c = s.get(Campaign, ids.campaign_id)
        assert (c.status, c.consecutive_failures) == ("paused", 0)  # resuming stays the staff's choice
    assert "Retry failed emails" not in after  # nothing failed any more


def test_retry_without_the_csrf_token_is_refused(runtime, staff):
    ids = seed_staff(runtime)
    failed = _fail_two(runtime, ids)
    r = staff.post("/staff/campaigns/onboarding/retry", data={}, follow_redirects=False)
    assert r.status_code == 403
    with runtime.sessions() as s:
        assert set(s.scalars(select(Delivery.status).where(Delivery.id.in_(failed)))) == {"failed"}


def test_retry_of_an_unknown_campaign_is_404(runtime, staff):
    seed_staff(runtime)
    r = post_form(staff, "/staff/campaigns/onboarding", "/staff/campaigns/nope/retry")
    assert r.status_code == 404
