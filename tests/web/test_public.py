"""Unsubscribe and preference pages through the real app and database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from drip.models import Campaign, CampaignOptOut, Subscriber, Suppression
from tests.web.seed import CANCELLED, SCHEDULED, campaign_of, deliveries, seed, snapshot
from web.pages import brand_color


@pytest.fixture
def ids(runtime):
    return seed(runtime)


def token_for(signer, ids, campaign=True, delivery_id=11):
    return signer.unsubscribe_token(ids.subscriber_id, ids.campaign_id if campaign else None, delivery_id)


def status(runtime, sid):
    with runtime.sessions() as s:
        return s.get(Subscriber, sid).status


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# -- GET changes nothing

def test_get_shows_a_confirmation_page_and_changes_nothing(runtime, client, signer, ids):
    token = token_for(signer, ids)
    before = snapshot(runtime)
    page = client.get(f"/u/{token}")
    head = client.head(f"/u/{token}")
    assert page.status_code == 200 and head.status_code == 200
    assert snapshot(runtime) == before
    html = page.text
    assert "Unsubscribe from this series" in html and "Unsubscribe from all emails" in html
    assert f'href="/preferences/{token}"' in html
    assert "A***@Example.org" in html and "Acupuncture basics" in html
    assert page.headers["cache-control"] == "no-store"


def test_newsletter_link_offers_only_unsubscribe_all(client, signer, ids):
    html = client.get(f"/u/{token_for(signer, ids, campaign=False)}").text
    assert "Unsubscribe from this series" not in html and 'value="all"' in html


# -- POST

@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_post_unsubscribes_from_everything(runtime, client, signer, ids, multipart):
    token = token_for(signer, ids)
    if multipart:  # RFC 8058's own example posts multipart/form-data
        r = client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    else:
        r = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    assert status(runtime, ids.subscriber_id) == "unsubscribed"
    with runtime.sessions() as s:
        row = s.get(Suppression, "ann@example.org")
        assert (row.reason, row.source) == ("unsubscribe", "one-click d11")
    assert {d.status for d in deliveries(runtime, ids.subscriber_id)} == {CANCELLED}
    assert {d.status for d in deliveries(runtime, ids.other_id)} == {SCHEDULED}
    # Clicking again is fine.
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_button_unsubscribes_from_the_series_only(runtime, client, signer, ids):
    token = token_for(signer, ids)
    r = client.post(f"/u/{token}", data={"scope": "campaign"})
    assert r.status_code == 200
    assert "unsubscribed from this series" in r.text and f"/preferences/{token}" in r.text
    assert status(runtime, ids.subscriber_id) == "active"
    with runtime.sessions() as s:
        assert s.get(CampaignOptOut, (ids.subscriber_id, ids.campaign_id)) is not None
        assert s.get(Suppression, "ann@example.org") is None
    for d in deliveries(runtime, ids.subscriber_id):
        assert d.status == (CANCELLED if campaign_of(runtime, d) == ids.campaign_id else SCHEDULED)
    # The page now offers only "all" (the series is done).
    assert "Unsubscribe from this series" not in client.get(f"/u/{token}").text


def test_button_unsubscribes_from_all(runtime, client, signer, ids):
    token = token_for(signer, ids)
    r = client.post(f"/u/{token}", data={"scope": "all"})
    assert r.status_code == 200 and "Resubscribe" in r.text
    assert status(runtime, ids.subscriber_id) == "unsubscribed"
    assert "already unsubscribed" in client.get(f"/u/{token}").text


def test_post_without_a_choice_changes_nothing(runtime, client, signer, ids):
    before = snapshot(runtime)
    token = token_for(signer, ids)
    assert client.post(f"/u/{token}", data={"scope": "everything"}).status_code == 400
    assert client.post(f"/u/{token}", data={}).status_code == 400
    assert client.post(f"/u/{token_for(signer, ids, campaign=False)}", data={"scope": "campaign"}).status_code == 400
    assert snapshot(runtime) == before


# -- invalid tokens

def _expired_token(runtime, ids) -> str:
    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return 1_000_000_000  # 2001: far past the 400-day lifetime

    s = URLSafeTimedSerializer(runtime.settings.secret_key, salt="drip.unsubscribe", signer=LongAgo)
    return s.dumps([ids.subscriber_id, ids.campaign_id, None])


def bad_tokens(runtime, signer, ids):
    good = token_for(signer, ids)
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    from subscribers.tokens import TokenSigner

    forged = TokenSigner("someone-elses-key").unsubscribe_token(ids.subscriber_id, ids.campaign_id)
    # A valid signature over a different payload: swap the payload of another token in.
    other = signer.unsubscribe_token(ids.other_id, ids.campaign_id)
    swapped = other.split(".")[0] + "." + ".".join(good.split(".")[1:])
    return {
        "garbage": "not-a-token",
        "altered": altered,
        "forged": forged,
        "swapped": swapped,
        "expired": _expired_token(runtime, ids),
        "confirm-purpose": signer.confirm_token(ids.subscriber_id),
        "too-long": "a" * 600,
    }


def test_invalid_tokens_are_refused_and_change_nothing(runtime, client, signer, ids):
    before = snapshot(runtime)
    for kind, token in bad_tokens(runtime, signer, ids).items():
        for method, path, data in [
            ("GET", f"/u/{token}", None),
            ("POST", f"/u/{token}", {"List-Unsubscribe": "One-Click"}),
            ("GET", f"/preferences/{token}", None),
            ("POST", f"/preferences/{token}", {"action": "pause", "csrf": "x"}),
        ]:
            r = client.request(method, path, data=data)
            assert r.status_code == 400, (kind, method, path)
            assert "This link is not valid" in r.text
            assert ("expired" in r.text) == (kind == "expired"), kind
    assert snapshot(runtime) == before


def test_link_of_an_erased_subscriber(runtime, client, signer):
    token = signer.unsubscribe_token(424242, None, None)
    assert "not on our mailing list" in client.get(f"/u/{token}").text
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with runtime.sessions() as s:
        assert s.scalar(select(Suppression)) is None


# -- escaping, branding, headers

def test_pages_escape_data_and_carry_branding(runtime, client, signer, ids):
    with runtime.sessions.begin() as s:
        s.get(Campaign, ids.campaign_id).title = "<script>alert(1)</script> & more"
    html = client.get(f"/u/{token_for(signer, ids)}").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    clinic = runtime.settings.clinic
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    assert "Riverside Acupuncture &amp; Wellness" in html and clinic.address in html
    css = client.get("/static/site.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert f"--brand: {clinic.brand_color};" in css.text and "@media (max-width" in css.text


def test_brand_colour_is_only_a_plain_hex_colour():
    assert brand_color("#abc") == "#abc" and brand_color("#A1B2C3") == "#A1B2C3"
    assert brand_color("red; } body { display:none") == "#2f6f6a"
    assert brand_color("") == "#2f6f6a"


def test_security_headers_on_every_response(sqlite_client):
    for path in ["/healthz", "/u/not-a-token", "/no/such/page", "/static/site.css"]:
        r = sqlite_client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["strict-transport-security"].startswith("max-age=")  # base_url is https


def test_not_found_is_a_branded_page(sqlite_client):
    r = sqlite_client.get("/no/such/page")
    assert r.status_code == 404 and "Page not found" in r.text and "Riverside" in r.text


def test_healthz_reports_whether_a_worker_is_sending(runtime, client, clock):
    from delivery.heartbeat import Heartbeat

    r = client.get("/healthz")  # the web app is up, but nothing has ever sent
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json() == {"status": "degraded", "database": "ok",
                        "worker": {"status": "never", "live": 0, "last_beat": None}}
    assert client.get("/healthz?require=worker").status_code == 503

    Heartbeat(runtime.sessions, "box:1", clock=lambda: clock.now).start()
    r = client.get("/healthz?require=worker")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["worker"]["status"] == "running"

    clock.now += timedelta(seconds=runtime.settings.worker_stale_seconds + 1)
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    assert r.json()["worker"] == {"status": "stale", "live": 0, "last_beat": "2026-12-01T14:00:00+00:00"}
    assert client.get("/healthz?require=worker").status_code == 503


def test_healthz_reports_an_unreachable_database(sqlite_client, sqlite_runtime):
    from sqlalchemy import create_engine

    client = sqlite_client
    client.app.state.web.runtime = type(sqlite_runtime)(
        settings=sqlite_runtime.settings, engine=create_engine("sqlite:////nonexistent-dir/x.db"),
        sessions=sqlite_runtime.sessions,
    )
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["database"] == "unreachable"


# -- preferences

def test_preferences_page_changes_nothing_on_get(runtime, client, signer, ids):
    before = snapshot(runtime)
    r = client.get(f"/preferences/{token_for(signer, ids)}")
    assert r.status_code == 200 and "Pause all emails" in r.text and 'name="csrf"' in r.text
    assert "Monthly clinic newsletter" in r.text
    assert snapshot(runtime) == before


def test_pause_and_resume_with_a_valid_form_token(runtime, client, signer, ids):
    url = f"/preferences/{token_for(signer, ids)}"
    csrf = csrf_of(client.get(url).text)
    r = client.post(url, data={"csrf": csrf, "action": "pause"}, headers={"Origin": "https://clinic.test"})
    assert r.status_code == 200 and "Emails are paused" in r.text and "Resume emails" in r.text
    assert status(runtime, ids.subscriber_id) == "paused"
    assert {d.status for d in deliveries(runtime, ids.subscriber_id)} == {SCHEDULED}  # kept, deferred at send time
    r = client.post(url, data={"csrf": csrf_of(r.text), "action": "resume"})
    assert r.status_code == 200 and status(runtime, ids.subscriber_id) == "active"


def test_preferences_post_needs_the_form_token(runtime, client, signer, ids):
    url = f"/preferences/{token_for(signer, ids)}"
    csrf = csrf_of(client.get(url).text)
    other_csrf = csrf_of(client.get(f"/preferences/{signer.unsubscribe_token(ids.other_id)}").text)
    cases = {
        "missing": ({"action": "pause"}, {}),
        "other-link": ({"action": "pause", "csrf": other_csrf}, {}),
        "garbage": ({"action": "pause", "csrf": csrf[:-4] + "abcd"}, {}),
        "cross-origin": ({"action": "pause", "csrf": csrf}, {"Origin": "https://evil.example"}),
        "cross-site": ({"action": "pause", "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    }
    before = snapshot(runtime)
    for case, (data, headers) in cases.items():
        assert client.post(url, data=data, headers=headers).status_code == 403, case
    assert snapshot(runtime) == before
    # The same form with its own token goes through.
    assert client.post(url, data={"action": "pause", "csrf": csrf}).status_code == 200


def test_same_origin_browser_post_with_origin_null_is_accepted(runtime, client, signer, ids):
    # Under Referrer-Policy: no-referrer, Chromium sends `Origin: null` for the page's own form.
    url = f"/preferences/{token_for(signer, ids)}"
    csrf = csrf_of(client.get(url).text)
    r = client.post(url, data={"csrf": csrf, "action": "pause"},
                    headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 200 and status(runtime, ids.subscriber_id) == "paused"


def test_choose_lists(runtime, client, signer, ids):
    url = f"/preferences/{token_for(signer, ids)}"
    html = client.get(url).text
    assert f'name="list" value="{ids.list_tag_id}"' in html and "checked" not in html
    r = client.post(url, data={"csrf": csrf_of(html), "action": "lists", "list": [str(ids.list_tag_id)]})
    assert r.status_code == 200 and "Your choices are saved." in r.text and " checked" in r.text
    r = client.post(url, data={"csrf": csrf_of(r.text), "action": "lists"})
    assert r.status_code == 200 and " checked" not in r.text
    # The newsletter to that list is cancelled for her once she left it.
    assert [d.status for d in deliveries(runtime, ids.subscriber_id) if d.broadcast_id] == [CANCELLED]
    bad = client.post(url, data={"csrf": csrf_of(r.text), "action": "lists", "list": ["1; drop table"]})
    assert bad.status_code == 400


def test_resubscribe_from_preferences_after_unsubscribing(runtime, client, signer, ids):
    token = token_for(signer, ids)
    client.post(f"/u/{token}", data={"scope": "all"})
    url = f"/preferences/{token}"
    html = client.get(url).text
    assert "Resubscribe" in html and "Pause all emails" not in html
    # Pausing is refused while unsubscribed (a hand-made form).
    r = client.post(url, data={"csrf": csrf_of(html), "action": "pause"})
    assert r.status_code == 409 and status(runtime, ids.subscriber_id) == "unsubscribed"
    r = client.post(url, data={"csrf": csrf_of(html), "action": "resubscribe"})
    assert r.status_code == 200 and "subscribed again" in r.text
    assert status(runtime, ids.subscriber_id) == "active"
    with runtime.sessions() as s:
        assert s.get(Suppression, "ann@example.org") is None


def test_bounced_address_cannot_resubscribe_from_the_page(runtime, client, signer, ids):
    with runtime.sessions.begin() as s:
        s.get(Subscriber, ids.subscriber_id).status = "bounced"
    html = client.get(f"/preferences/{token_for(signer, ids)}").text
    assert "contact" in html and "Resubscribe" not in html and "Pause all emails" not in html


def test_unhandled_error_is_a_branded_500_without_details(sqlite_runtime, clock):
    from types import SimpleNamespace

    from starlette.routing import Route
    from starlette.testclient import TestClient

    from web.app import create_app

    def boom(request):
        raise RuntimeError("secret internals")

    extra = SimpleNamespace(routes=lambda ctx: [Route("/boom", boom)])
    with TestClient(create_app(sqlite_runtime, clock=clock, route_modules=[extra]), raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500 and "Something went wrong" in r.text
    assert "secret internals" not in r.text and "Traceback" not in r.text
