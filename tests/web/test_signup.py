"""Public sign-up with double opt-in, through the whole app, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import email
import hashlib
import logging
import re
from datetime import timedelta
from email import policy

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from drip.models import Delivery, Enrollment, Subscriber, SubscriberTag, Suppression, Tag
from subscribers.tokens import TokenSigner
from tests.factories import make_campaign, make_subscriber
from tests.web.seed import T0, snapshot
from web.signup import PER_IP

COOKIE = "__Host-drip-signup"  # the test app's base URL is https


@pytest.fixture
def onboarding(runtime):
    with runtime.sessions.begin() as s:
        return make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1)).id


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_up(client, **fields):
    """Open the form (cookie + token), then post it like a browser would."""
    page = client.get("/subscribe")
    data = {"csrf": csrf_of(page.text), "name": "Ann", "email": "ann@example.org", "tz": "Europe/Paris",
            "consent": "yes", "website": ""}
    data.update(fields)
    return client.post("/subscribe", data={k: v for k, v in data.items() if v is not None}, follow_redirects=False)


def outbox_messages(runtime) -> dict[str, email.message.EmailMessage]:
    folder = runtime.settings.outbox_dir
    if not folder.exists():
        return {}
    return {p.stem: email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in folder.glob("*.eml")}


def confirm_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https://clinic\.test(/confirm/\S+)", text).group(1)


def subscriber(runtime, address: str = "ann@example.org") -> Subscriber | None:
    with runtime.sessions() as s:
        return s.scalar(select(Subscriber).where(Subscriber.email_key == address))


def count(runtime, model) -> int:
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- the form


def test_form_shows_consent_zone_honeypot_and_sets_a_form_cookie(client):
    r = client.get("/subscribe")
    assert r.status_code == 200
    html = r.text
    assert "I agree to receive educational emails from the clinic." in html
    assert re.search(r'<input type="checkbox" name="consent" value="yes" required', html)
    assert '<option value="America/New_York" selected>' in html  # the clinic's zone until the script runs
    assert 'name="website"' in html and 'tabindex="-1"' in html
    assert '<meta name="viewport"' in html and "/static/site.css" in html
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=strict" in cookie and "Path=/" in cookie
    assert r.headers["cache-control"] == "no-store"


def test_the_form_promises_the_clinic_s_emails_without_naming_a_treatment(client):
    """One form serves whatever campaign staff chose for it: its intro names no treatment (it
    said "acupuncture" for every clinic), in English and in Spanish."""
    for lang, intro in (("en", "Short, practical emails from the clinic about your care and recovery"),
                        ("es", "Correos breves y prácticos de la clínica sobre su atención")):
        lede = re.search(r'<p class="lede">(.*?)</p>', client.get(f"/subscribe?lang={lang}").text, re.S).group(1)
        assert lede.startswith(intro)
        assert "acupunct" not in lede.lower() and "acupunt" not in lede.lower()  # the clinic's name may say it


def test_inline_script_is_allowed_by_hash_and_nothing_else(client):
    r = client.get("/subscribe")
    scripts = re.findall(r"<script>(.*?)</script>", r.text, flags=re.S)
    assert len(scripts) == 1 and "resolvedOptions().timeZone" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = r.headers["content-security-policy"]
    assert f"script-src 'sha256-{digest}'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "form-action 'self'" in csp


def test_sign_up_records_consent_and_sends_a_confirmation_email(runtime, client):
    r = sign_up(client, name="Ann Lee", email="Ann@Example.org", tz="europe/paris")
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/check-your-inbox"
    sub = subscriber(runtime)
    assert (sub.status, sub.name, sub.tz, sub.email) == ("pending", "Ann Lee", "Europe/Paris", "Ann@example.org")
    assert (sub.consent_source, sub.consent_at, sub.consent_text_version, sub.consent_ip) == (
        "web-form", T0, "2026-11", "testclient")

    messages = outbox_messages(runtime)
    assert list(messages) == [f"-{sub.id}"]
    msg = messages[f"-{sub.id}"]
    assert msg["To"].addresses[0].addr_spec == "Ann@example.org"
    assert msg["Subject"] == "Confirm your subscription to Riverside Acupuncture & Wellness"
    assert msg["List-Unsubscribe"].startswith("<https://clinic.test/u/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = confirm_link(msg)
    assert TokenSigner(runtime.settings.secret_key).read_confirm(link.rsplit("/", 1)[1]).subscriber_id == sub.id
    html = msg.get_body(("html",)).get_content()
    assert f'href="https://clinic.test{link}"' in html and "Confirm my subscription" in html
    assert "120 Harbor Street" in html  # CAN-SPAM postal address

    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "Check your inbox" in page.text


def test_name_with_markup_is_escaped_in_the_email_and_the_pages(runtime, client):
    evil = "<script>alert(1)</script>"
    sign_up(client, name=evil)
    msg = outbox_messages(runtime)[f"-{subscriber(runtime).id}"]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The form shown again after an error keeps the value, escaped.
    page = sign_up(client, name=evil, consent=None, email="bob@example.org")
    assert page.status_code == 400
    assert "<script>alert(1)" not in page.text and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text


@pytest.mark.parametrize("fields, field, message", [
    ({"consent": None}, "consent", "Please tick the box"),
    ({"email": "not-an-address"}, "email", "valid email address"),
    ({"email": ""}, "email", "valid email address"),
    ({"tz": "Mars/Olympus"}, "tz", "time zone"),
])
def test_invalid_form_is_shown_again_and_writes_nothing(runtime, client, fields, field, message):
    before = snapshot(runtime)
    r = sign_up(client, **fields)
    assert r.status_code == 400 and message in r.text
    assert f'aria-describedby="{field}-error"' in r.text
    assert snapshot(runtime) == before and outbox_messages(runtime) == {}


# --------------------------------------------------------------------------- CSRF, bots, limits


def test_post_without_a_valid_form_token_is_403(runtime, client):
    before = snapshot(runtime)
    good = csrf_of(client.get("/subscribe").text)
    data = {"name": "Ann", "email": "ann@example.org", "tz": "UTC", "consent": "yes"}
    assert client.post("/subscribe", data=data).status_code == 403  # no token
    assert client.post("/subscribe", data={**data, "csrf": good[:-6] + ("A" if good[-6] != "A" else "B") + good[-5:]}).status_code == 403  # altered
    other = client.__class__(client.app, base_url="https://clinic.test")
    assert other.post("/subscribe", data={**data, "csrf": good}).status_code == 403  # token without its cookie
    other.cookies.set(COOKIE, "a-different-nonce-of-24chars", domain="clinic.test")
    assert other.post("/subscribe", data={**data, "csrf": good}).status_code == 403  # cookie of another form
    r = client.post("/subscribe", data={**data, "csrf": good}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "Reload the page" in r.text
    assert snapshot(runtime) == before and outbox_messages(runtime) == {}


def test_honeypot_gets_the_same_answer_and_nothing_happens(runtime, client):
    before = snapshot(runtime)
    r = sign_up(client, website="https://spam.example")
    assert r.status_code == 303 and r.headers["location"] == "/subscribe/check-your-inbox"
    assert snapshot(runtime) == before and outbox_messages(runtime) == {}


def test_rate_limit_per_ip(runtime, client):
    limit = PER_IP[0]
    for i in range(limit):
        assert sign_up(client, email=f"p{i}@example.org").status_code == 303
    r = sign_up(client, email="one-too-many@example.org")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert subscriber(runtime, "one-too-many@example.org") is None
    assert count(runtime, Subscriber) == limit


def test_one_inbox_gets_at_most_three_confirmation_emails_an_hour(runtime, client, clock):
    sent_times = []
    for minute in range(5):
        clock.now = T0 + timedelta(minutes=minute)
        assert sign_up(client).status_code == 303
        sent_times.append(subscriber(runtime).consent_at)
    assert sent_times == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)] + [T0 + timedelta(minutes=2)] * 2


# --------------------------------------------------------------------------- no enumeration


def test_same_answer_whatever_the_address_and_no_changes_to_others(runtime, client):
    with runtime.sessions.begin() as s:
        active = make_subscriber(s, "active@example.org", name="Alice", tz="Asia/Tokyo")
        make_subscriber(s, "pending@example.org", name="Pat", status="pending")
        make_subscriber(s, "left@example.org", status="unsubscribed")
        s.add(Suppression(email_key="left@example.org", reason="unsubscribe", source="one-click", created_at=T0))
        s.add(Suppression(email_key="bounced@example.org", reason="bounce", source="sendgrid", created_at=T0))
        active_id = active.id
    answers = set()
    for address in ("new@example.org", "active@example.org", "pending@example.org", "left@example.org",
                    "bounced@example.org"):
        r = sign_up(client, email=address, name="Mallory", tz="UTC")
        answers.add((r.status_code, r.headers["location"], r.text))
    assert len(answers) == 1
    with runtime.sessions() as s:
        alice = s.get(Subscriber, active_id)
        assert (alice.name, alice.tz, alice.status, alice.consent_source) == ("Alice", "Asia/Tokyo", "active", None)
        assert s.scalar(select(Subscriber).where(Subscriber.email_key == "bounced@example.org")) is None
        assert s.scalar(select(Subscriber.status).where(Subscriber.email_key == "left@example.org")) == "unsubscribed"
    # Only the new and the still-pending address get a confirmation email; a pending one is refreshed.
    pending = subscriber(runtime, "pending@example.org")
    assert (pending.name, pending.consent_source) == ("Mallory", "web-form")
    expected = {f"-{subscriber(runtime, 'new@example.org').id}", f"-{pending.id}"}
    assert set(outbox_messages(runtime)) == expected


# --------------------------------------------------------------------------- confirm


def test_get_confirm_shows_a_button_and_changes_nothing(runtime, client, onboarding):
    sign_up(client)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    before = snapshot(runtime)
    for method in ("GET", "HEAD"):
        assert client.request(method, link).status_code == 200
    page = client.get(link)
    assert "Confirm my subscription" in page.text and "a***@example.org" in page.text
    assert f'action="{link}"' in page.text and 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert snapshot(runtime) == before


def test_post_confirm_activates_tags_and_enrolls(runtime, client, onboarding):
    sign_up(client)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    csrf = csrf_of(client.get(link).text)
    r = client.post(link, data={"csrf": csrf})
    assert r.status_code == 200 and "You're subscribed" in r.text and "Acupuncture basics" in r.text
    sub = subscriber(runtime)
    assert sub.status == "active" and sub.consent_source == "web-form"
    with runtime.sessions() as s:
        enrollment = s.scalar(select(Enrollment).where(Enrollment.subscriber_id == sub.id))
        assert (enrollment.campaign_id, enrollment.state, enrollment.source) == (onboarding, "active", "web-form")
        dues = list(s.scalars(select(Delivery.due_at).where(Delivery.enrollment_id == enrollment.id)
                              .order_by(Delivery.due_at)))
        assert len(dues) == 3 and dues[0] == T0
        tags = list(s.scalars(select(Tag.name).join(SubscriberTag).where(SubscriberTag.subscriber_id == sub.id)))
        assert tags == ["new-patients"]
    # A second click (a second tab, a double submit) changes nothing more.
    before = snapshot(runtime)
    again = client.post(link, data={"csrf": csrf})
    assert again.status_code == 200 and "already subscribed" in again.text
    assert "already subscribed" in client.get(link).text
    assert snapshot(runtime) == before


def test_confirm_post_needs_the_form_token(runtime, client, onboarding):
    sign_up(client)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    before = snapshot(runtime)
    assert client.post(link, data={}).status_code == 403
    other_link_token = csrf_of(client.get("/subscribe").text)
    assert client.post(link, data={"csrf": other_link_token}).status_code == 403
    assert snapshot(runtime) == before


@pytest.mark.parametrize("settings_change, why", [
    ({"signup_campaign": "no-such-campaign"}, "no campaign 'no-such-campaign'"),
    ({}, "is draft, not published"),
])
def test_confirm_without_a_live_campaign_activates_and_tags_only(runtime, make_client, caplog, settings_change, why):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1, publish=False)
    client = make_client(**settings_change)
    sign_up(client)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    with caplog.at_level(logging.WARNING, logger="drip.signup"):
        r = client.post(link, data={"csrf": csrf_of(client.get(link).text)})
    assert r.status_code == 200 and "You're subscribed" in r.text and "series" not in r.text
    assert subscriber(runtime).status == "active"
    assert count(runtime, Enrollment) == 0 and count(runtime, SubscriberTag) == 1
    assert why in caplog.text


def _expired_confirm_token(runtime, subscriber_id: int) -> str:
    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return 1_000_000_000  # 2001: long past the 7-day lifetime

    return URLSafeTimedSerializer(runtime.settings.secret_key, salt="drip.confirm", signer=LongAgo).dumps(
        [subscriber_id, None, None])


def test_forged_altered_expired_or_wrong_purpose_tokens_are_refused(runtime, client, onboarding):
    sign_up(client)
    sid = subscriber(runtime).id
    signer = TokenSigner(runtime.settings.secret_key)
    good = signer.confirm_token(sid)
    bad = {
        "altered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "forged": TokenSigner("someone-elses-key").confirm_token(sid),
        "expired": _expired_confirm_token(runtime, sid),
        "unsubscribe-purpose": signer.unsubscribe_token(sid),
        "garbage": "not-a-token",
        "too-long": "a" * 600,
    }
    before = snapshot(runtime)
    csrf = csrf_of(client.get(f"/confirm/{good}").text)
    for kind, token in bad.items():
        for method in ("GET", "POST"):
            r = client.request(method, f"/confirm/{token}", data={"csrf": csrf} if method == "POST" else None)
            assert r.status_code == 400, (kind, method)
            assert "This confirmation link is not valid" in r.text
            assert ("expired" in r.text) == (kind == "expired"), kind
    assert snapshot(runtime) == before


def test_confirm_never_undoes_an_unsubscribe(runtime, client, onboarding):
    sign_up(client)
    sub = subscriber(runtime)
    link = confirm_link(next(iter(outbox_messages(runtime).values())))
    csrf = csrf_of(client.get(link).text)
    unsubscribe_url = outbox_messages(runtime)[f"-{sub.id}"]["List-Unsubscribe"].strip("<>")
    assert client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    r = client.post(link, data={"csrf": csrf})
    assert r.status_code == 200 and "can't be confirmed" in r.text
    assert subscriber(runtime).status == "unsubscribed" and count(runtime, Enrollment) == 0


def test_confirm_link_of_an_erased_subscriber(runtime, client):
    token = TokenSigner(runtime.settings.secret_key).confirm_token(424242)
    r = client.get(f"/confirm/{token}")
    assert r.status_code == 400 and "no sign-up for it" in r.text


# --------------------------------------------------------------------------- timing


def _statement_shapes(engine):
    """Record the kind of every SQL statement (a write of any table counts as one write)."""
    from sqlalchemy import event

    shapes: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        verb = statement.lstrip().split(None, 1)[0].upper()
        shapes.append("WRITE" if verb in ("INSERT", "UPDATE", "DELETE") else verb)

    event.listen(engine, "before_cursor_execute", before)
    return shapes, lambda: event.remove(engine, "before_cursor_execute", before)


def test_known_and_new_addresses_cost_the_same_database_work(runtime, client):
    """A known address used to be answered after two reads, a new one after a write and its commit
    (a third of the time): the answer's timing told a stranger who is a patient. Now every address
    does the same statements in the same order before the answer, one row written each."""
    with runtime.sessions.begin() as s:
        make_subscriber(s, "active@example.org", name="Alice")
        make_subscriber(s, "pending@example.org", status="pending")
        make_subscriber(s, "left@example.org", status="unsubscribed")
        s.add(Suppression(email_key="left@example.org", reason="unsubscribe", source="one-click", created_at=T0))
        s.add(Suppression(email_key="bounced@example.org", reason="bounce", source="sendgrid", created_at=T0))
    before = snapshot(runtime)
    per_address = {}
    for address in ("new@example.org", "active@example.org", "pending@example.org", "left@example.org",
                    "bounced@example.org", "new2@example.org"):
        page = client.get("/subscribe")
        data = {"csrf": csrf_of(page.text), "name": "Ann", "email": address, "tz": "UTC", "consent": "yes", "website": ""}
        shapes, stop = _statement_shapes(runtime.engine)
        try:
            r = client.post("/subscribe", data=data, follow_redirects=False)
        finally:
            stop()
        assert r.status_code == 303
        per_address[address] = tuple(shapes)
    assert len(set(per_address.values())) == 1, per_address
    assert per_address["new@example.org"].count("WRITE") == 1
    after = snapshot(runtime)  # the writes for known, not-pending addresses changed nothing
    assert after["suppressions"] == before["suppressions"]
    kept = [row for row in before["subscribers"] if "'active@example.org'" in row or "'left@example.org'" in row]
    assert len(kept) == 2 and set(kept) <= set(after["subscribers"])
