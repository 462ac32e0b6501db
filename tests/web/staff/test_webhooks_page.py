"""The staff webhooks page: add (private refused unless allowed), rotate, disable, log, replay."""

from __future__ import annotations

from sqlalchemy import select

from drip.models import WebhookDelivery, WebhookEndpoint
from subscribers.service import upsert_subscriber
from tests.web.seed import T0
from tests.web.staff.conftest import login, post_form
from tests.webhooks.receiver import start_receiver, stop_receiver
from webhooks.sender import WebhookSender


def test_webhooks_page_add_rotate_disable_and_replay(runtime, make_client, staff_user):
    rec = start_receiver()
    try:
        strict = make_client()
        assert login(strict).status_code == 303
        r = post_form(strict, "/staff/webhooks", "/staff/webhooks/add", data={"url": rec.url})
        assert r.status_code == 400 and "private or loopback" in r.text
        assert post_form(strict, "/staff/webhooks", "/staff/webhooks/add", data={"url": "http://x/", "csrf": "bad"}
                         ).status_code == 403  # the form's CSRF token is checked

        staff = make_client(webhook_allow_private=True)
        assert login(staff).status_code == 303
        r = post_form(staff, "/staff/webhooks", "/staff/webhooks/add",
                      data={"url": rec.url, "events": ["subscriber.subscribed", "enrollment.exited"],
                            "description": "booking <system>"})
        assert r.status_code == 200 and 'id="webhook-secret"' in r.text and "booking &lt;system&gt;" in r.text
        with runtime.sessions() as s:
            ep = s.scalar(select(WebhookEndpoint))
            first_secret = ep.secret
            assert ep.events == ["subscriber.subscribed", "enrollment.exited"]
        assert first_secret in r.text

        r = post_form(staff, "/staff/webhooks", f"/staff/webhooks/{ep.id}/rotate")
        with runtime.sessions() as s:
            ep = s.get(WebhookEndpoint, ep.id)
            assert ep.previous_secret == first_secret and ep.secret in r.text and "old secret also signs" in r.text

        with runtime.sessions.begin() as s:
            upsert_subscriber(s, "ann@example.org", now=T0)
        refusing = WebhookSender(runtime.sessions, "w1", allow_private=False)
        try:
            assert refusing.run_once(T0).failed == 1
        finally:
            refusing.close()
        page = staff.get("/staff/webhooks?status=failed").text
        with runtime.sessions() as s:
            did = s.scalar(select(WebhookDelivery.id))
        assert f'id="delivery-{did}"' in page and "refused:" in page and "Replay" in page

        r = post_form(staff, "/staff/webhooks", f"/staff/webhooks/deliveries/{did}/replay")
        assert r.status_code == 303
        rec.secrets = [ep.secret, first_secret]
        sender = WebhookSender(runtime.sessions, "w1", allow_private=True)
        try:
            assert sender.run_once(T0).delivered == 1
        finally:
            sender.close()
        assert rec.verified == 1 and rec.bad == 0
        assert "delivered" in staff.get("/staff/webhooks").text

        r = post_form(staff, "/staff/webhooks", f"/staff/webhooks/{ep.id}/active", data={"active": "0"})
        assert r.status_code == 303
        with runtime.sessions.begin() as s:
            assert s.get(WebhookEndpoint, ep.id).active is False
            upsert_subscriber(s, "bob@example.org", now=T0)  # a disabled endpoint gets no new events
            assert s.query(WebhookDelivery).count() == 1
    finally:
        stop_receiver(rec)


def test_webhooks_page_needs_login(anon):
    assert anon.get("/staff/webhooks", follow_redirects=False).status_code in (302, 303)
    assert anon.post("/staff/webhooks/add", data={"url": "https://93.184.216.34/"},
                     follow_redirects=False).status_code in (302, 303, 400, 403)
