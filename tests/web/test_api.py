"""The REST API (/api/v1) through the whole app, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from drip.models import (
    ApiToken,
    Delivery,
    Enrollment,
    Event,
    Subscriber,
    SubscriberTag,
    Suppression,
)
from tests.factories import make_campaign, make_subscriber
from tests.web.api_helpers import API, OPERATIONS, bearer, new_token
from tests.web.seed import T0, snapshot
from subscribers.suppression import erased_key, suppress
from subscribers.unsubscribe import unsubscribe
from web.api_tokens import authenticate, hash_token, revoke_token


@pytest.fixture
def token(runtime) -> str:
    return new_token(runtime)


@pytest.fixture
def api(client, token):
    """The test client with the token set on every request."""
    client.headers.update(bearer(token))
    return client


@pytest.fixture
def campaigns(runtime):
    with runtime.sessions.begin() as s:
        live = make_campaign(s, "onboarding", n_items=2, every=timedelta(days=1))
        draft = make_campaign(s, "draft-series", n_items=1, publish=False)
        return {"onboarding": live.id, "draft-series": draft.id}


def count(runtime, model) -> int:
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def data(runtime) -> dict:
    """Every table but api_tokens (a request with a token records its use there)."""
    return {k: v for k, v in snapshot(runtime).items() if k != "api_tokens"}


def subscriber(runtime, sid: int) -> Subscriber | None:
    with runtime.sessions() as s:
        return s.get(Subscriber, sid)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("method, path, body", OPERATIONS)
def test_every_endpoint_requires_a_token(runtime, client, method, path, body):
    with runtime.sessions.begin() as s:
        make_subscriber(s, "ann@example.org")
    before = snapshot(runtime)
    for headers in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}):
        r = client.request(method, API + path, json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.request(method, API + path, json=body, headers=bearer("drip_not-a-real-token"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert snapshot(runtime) == before


def test_revoked_token_is_refused(runtime, client, token):
    assert client.get(f"{API}/campaigns", headers=bearer(token)).status_code == 200
    with runtime.sessions.begin() as s:
        revoke_token(s, "booking-system")
    r = client.get(f"{API}/campaigns", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_tokens_are_stored_hashed_only(runtime, token):
    dump = repr(snapshot(runtime))
    assert token not in dump and token[len("drip_"):] not in dump
    with runtime.sessions() as s:
        row = s.scalar(select(ApiToken))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert token.startswith("drip_") and len(token) >= 40


def test_use_is_recorded_at_most_once_a_minute(runtime, token):
    for minute, expected in ((0, T0), (0.5, T0), (2, T0 + timedelta(minutes=2))):
        with runtime.sessions.begin() as s:
            authenticate(s, token, T0 + timedelta(minutes=minute))
        with runtime.sessions() as s:
            assert s.scalar(select(ApiToken.last_used_at)) == expected


# --------------------------------------------------------------------------- POST /subscribers


def test_create_is_201_then_200_and_idempotent(runtime, api):
    body = {"email": "Ann@Example.org", "name": "Ann Lee", "tz": "europe/paris", "tags": ["vip"],
            "consent": {"source": "front-desk", "text_version": "2026-11", "ip": "203.0.113.9"}}
    r = api.post(f"{API}/subscribers", json=body)
    assert r.status_code == 201, r.text
    data = r.json()
    assert r.headers["location"] == f"{API}/subscribers/{data['id']}"
    assert (data["email"], data["name"], data["tz"], data["status"], data["tags"]) == (
        "Ann@example.org", "Ann Lee", "Europe/Paris", "active", ["vip"])
    assert data["consent"] == {"source": "front-desk", "at": "2026-12-01T14:00:00Z", "text_version": "2026-11",
                               "ip": "203.0.113.9"}
    assert data["created"] is True and data["enrollment"] is None

    again = api.post(f"{API}/subscribers", json={**body, "email": "ANN@example.org", "tags": ["spring"]})
    assert again.status_code == 200
    assert again.json()["id"] == data["id"] and again.json()["created"] is False
    assert again.json()["tags"] == ["spring", "vip"]
    assert count(runtime, Subscriber) == 1


def test_create_with_enroll_schedules_the_campaign_once(runtime, api, campaigns):
    body = {"email": "ann@example.org", "enroll": "onboarding"}
    r = api.post(f"{API}/subscribers", json=body)
    assert r.status_code == 201, r.text
    enrollment = r.json()["enrollment"]
    assert enrollment["campaign"] == "onboarding" and enrollment["state"] == "active"
    assert enrollment["scheduled"] == 3 and enrollment["next_due_at"] == "2026-12-01T14:00:00Z"
    # The booking system retries: the same enrollment, nothing scheduled twice.
    again = api.post(f"{API}/subscribers", json=body)
    assert again.status_code == 200 and again.json()["enrollment"]["id"] == enrollment["id"]
    assert count(runtime, Enrollment) == 1 and count(runtime, Delivery) == 3


def test_create_with_unknown_campaign_is_404_and_writes_nothing(runtime, api, campaigns):
    before = data(runtime)
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "tags": ["vip"], "enroll": "no-such"})
    assert r.status_code == 404 and "no-such" in r.json()["detail"]
    assert data(runtime) == before


def test_create_with_unpublished_campaign_is_409_and_writes_nothing(runtime, api, campaigns):
    before = data(runtime)
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "draft-series"})
    assert r.status_code == 409 and "not published" in r.json()["detail"]
    assert data(runtime) == before


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-address"}, "email"),
    ({"email": ""}, "email"),
    ({"email": "ann@example.org", "tz": "Mars/Olympus"}, "tz"),
    ({"email": "ann@example.org", "tags": ["bad\x01tag"]}, "tags"),
    ({"email": "ann@example.org", "enroll": "Not A Slug"}, "enroll"),
    ({"email": "ann@example.org", "unknown": 1}, "unknown"),
    ({"email": "ann@exa\u0000mple.org"}, "email"),
    ({"email": "ann@example.org", "consent": {"source": "desk", "text_version": "1", "ip": "999.1.1.1"}}, "consent"),
    ({"name": "no address"}, "email"),
])
def test_bad_input_is_422_naming_the_field(runtime, api, body, field):
    before = data(runtime)
    r = api.post(f"{API}/subscribers", json=body)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(field in loc for loc in locs), locs
    assert data(runtime) == before


def test_malformed_json_is_422(api):
    r = api.post(f"{API}/subscribers", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_consent_activates_a_pending_web_signup(runtime, api):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", status="pending").id
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org"})
    assert r.status_code == 200 and r.json()["status"] == "pending"  # no consent given: still pending
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org",
                                             "consent": {"source": "front-desk", "text_version": "v2"}})
    assert r.json()["status"] == "active" and r.json()["consent"]["source"] == "front-desk"
    assert subscriber(runtime, sid).status == "active"


def test_unsubscribed_patient_is_not_resubscribed_by_a_create(runtime, api, campaigns):
    with runtime.sessions.begin() as s:
        make_subscriber(s, "ann@example.org", status="unsubscribed")
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding",
                                             "consent": {"source": "front-desk", "text_version": "v2"}})
    assert r.status_code == 409 and "unsubscribed" in r.json()["detail"]
    assert count(runtime, Enrollment) == 0


# --------------------------------------------------------------------------- GET /subscribers


def test_list_search_and_paging(runtime, api):
    with runtime.sessions.begin() as s:
        for i in range(5):
            make_subscriber(s, f"p{i}@example.org", name=f"Patient {i}")
        make_subscriber(s, "zoe@other.org", name="Zoe 100%", status="paused")
    page = api.get(f"{API}/subscribers", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 6 and [x["email"] for x in page["items"]] == ["p1@example.org", "p2@example.org"]
    assert api.get(f"{API}/subscribers", params={"search": "100%"}).json()["total"] == 1
    assert api.get(f"{API}/subscribers", params={"search": "EXAMPLE"}).json()["total"] == 5
    assert api.get(f"{API}/subscribers", params={"status": "paused"}).json()["items"][0]["name"] == "Zoe 100%"
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "gone"}, {"search": "a\x00b"}):
        r = api.get(f"{API}/subscribers", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"][-1] in bad
    assert api.get(f"{API}/subscribers", params={"tag": "no-such-tag"}).status_code == 404


def test_list_pages_by_id_with_next_after(runtime, api):
    with runtime.sessions.begin() as s:
        for i in range(7):
            make_subscriber(s, f"p{i}@example.org", name=f"Patient {i}")
        make_subscriber(s, "zoe@other.org", name="Zoe")
    seen, after = [], None
    while True:
        page = api.get(f"{API}/subscribers", params={"limit": 3, "search": "example"}
                       | ({"after": after} if after is not None else {})).json()
        seen += [x["email"] for x in page["items"]]
        assert page["total"] == 7
        after = page["next_after"]
        if after is None:
            break
        assert after == page["items"][-1]["id"]
    assert seen == [f"p{i}@example.org" for i in range(7)]  # each once, in id order, Zoe filtered out
    assert api.get(f"{API}/subscribers", params={"after": -1}).status_code == 422


def test_get_one(runtime, api):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", name="Ann").id
    assert api.get(f"{API}/subscribers/{sid}").json()["name"] == "Ann"
    assert api.get(f"{API}/subscribers/{sid + 1}").status_code == 404
    assert api.get(f"{API}/subscribers/{2**40}").status_code == 422  # beyond a 32-bit id: not a driver error
    assert api.get(f"{API}/subscribers/abc").status_code == 422


# --------------------------------------------------------------------------- PATCH


def test_patch_fields_and_tags(runtime, api):
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "tz": "Europe/Paris", "tags": ["a", "b"]})
    sid = r.json()["id"]
    r = api.patch(f"{API}/subscribers/{sid}", json={"name": "Ann\r\nLee", "tz": "", "add_tags": ["c"],
                                                    "remove_tags": ["a", "never-existed"]})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["tz"], r.json()["tags"]) == ("Ann Lee", None, ["b", "c"])
    r = api.patch(f"{API}/subscribers/{sid}", json={"tz": "Nowhere/Land"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "tz"]
    assert api.patch(f"{API}/subscribers/{sid + 99}", json={"name": "x"}).status_code == 404
    assert api.patch(f"{API}/subscribers/{sid}", json={"email": "new@example.org"}).status_code == 422


def test_patch_status_pause_resume_unsubscribe(runtime, api, campaigns):
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding"}).json()["id"]
    assert api.patch(f"{API}/subscribers/{sid}", json={"status": "paused"}).json()["status"] == "paused"
    assert api.patch(f"{API}/subscribers/{sid}", json={"status": "active"}).json()["status"] == "active"

    r = api.patch(f"{API}/subscribers/{sid}", json={"status": "unsubscribed"})
    assert r.json()["status"] == "unsubscribed"
    with runtime.sessions() as s:
        assert s.get(Suppression, "ann@example.org").reason == "unsubscribe"
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}
    assert api.patch(f"{API}/subscribers/{sid}", json={"status": "paused"}).status_code == 409


def test_patch_cannot_undo_a_patients_unsubscribe(runtime, api, campaigns, signer):
    """Only the patient's own opt-in undoes an unsubscribe: the API answers 409 and changes nothing."""
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding"}).json()["id"]
    with runtime.sessions.begin() as s:  # the patient's own one-click link
        unsubscribe(s, signer.read_unsubscribe(signer.unsubscribe_token(sid)), "all", now=T0, source="one-click")
    before = subscriber(runtime, sid)
    r = api.patch(f"{API}/subscribers/{sid}", json={"status": "active", "name": "Ann"})
    assert r.status_code == 409 and "unsubscribed" in r.json()["detail"]
    after = subscriber(runtime, sid)
    assert (after.status, after.name, after.consent_source, after.consent_at) == (
        "unsubscribed", before.name, before.consent_source, before.consent_at)
    with runtime.sessions() as s:
        assert s.get(Suppression, "ann@example.org").reason == "unsubscribe"


def test_patch_cannot_activate_a_suppressed_address(runtime, api):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", status="paused").id
        pending = make_subscriber(s, "bob@example.org", status="pending").id
        for key in ("ann@example.org", "bob@example.org"):
            suppress(s, key, "staff", "staff lee@clinic.test", T0)
    for one in (sid, pending):
        r = api.patch(f"{API}/subscribers/{one}", json={"status": "active"})
        assert r.status_code == 409 and "suppression" in r.json()["detail"]
    assert (subscriber(runtime, sid).status, subscriber(runtime, pending).status) == ("paused", "pending")
    with runtime.sessions() as s:
        assert s.get(Suppression, "ann@example.org") is not None


def test_patch_cannot_revive_a_bounced_address(runtime, api):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", status="bounced").id
    r = api.patch(f"{API}/subscribers/{sid}", json={"status": "active", "name": "Ann"})
    assert r.status_code == 409 and "bounced" in r.json()["detail"]
    assert subscriber(runtime, sid).name == ""  # the whole request was rolled back


# --------------------------------------------------------------------------- DELETE


def test_delete_erases_personal_data_and_keeps_the_opt_out(runtime, api, campaigns):
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "tags": ["vip"],
                                               "enroll": "onboarding"}).json()["id"]
    other = api.post(f"{API}/subscribers", json={"email": "bob@example.org", "enroll": "onboarding"}).json()["id"]
    api.patch(f"{API}/subscribers/{sid}", json={"status": "unsubscribed"})
    with runtime.sessions.begin() as s:
        s.add(Event(provider="sendgrid", provider_event_id="e1", type="open", email_key="ann@example.org",
                    occurred_at=T0, raw={"email": "ann@example.org"}))

    assert api.delete(f"{API}/subscribers/{sid}").status_code == 204
    with runtime.sessions() as s:
        assert s.get(Subscriber, sid) is None
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == sid)) == 0
        assert s.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.subscriber_id == sid)) == 0
        assert s.scalar(select(func.count()).select_from(SubscriberTag)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0
        # never mailed again, and not even the address is kept: only its hash
        assert s.get(Suppression, "ann@example.org") is None
        assert s.get(Suppression, erased_key("ann@example.org")).reason == "unsubscribe"
        assert s.get(Subscriber, other) is not None
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == other)) == 3
    assert api.delete(f"{API}/subscribers/{sid}").status_code == 404
    # Re-adding the address later does not make it mailable again.
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding"})
    assert r.status_code == 409 and "erased at their request" in r.json()["detail"]
    assert count(runtime, Subscriber) == 1  # bob only


def test_delete_of_an_active_patient_leaves_only_a_hash_that_refuses_re_adding(runtime, api):
    sid = api.post(f"{API}/subscribers", json={"email": "Ann@Example.org"}).json()["id"]
    assert api.delete(f"{API}/subscribers/{sid}").status_code == 204
    with runtime.sessions() as s:
        assert count(runtime, Subscriber) == 0
        assert [(x.email_key, x.reason) for x in s.scalars(select(Suppression))] == [
            (erased_key("ann@example.org"), "erased")]
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org"})
    assert r.status_code == 409 and count(runtime, Subscriber) == 0


def test_delete_writes_a_missing_suppression_for_a_bounced_patient(runtime, api):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", status="bounced").id
    assert api.delete(f"{API}/subscribers/{sid}").status_code == 204
    with runtime.sessions() as s:
        kept = s.get(Suppression, erased_key("ann@example.org"))
        assert (kept.reason, kept.source) == ("bounce", "erased") and s.get(Suppression, "ann@example.org") is None


# --------------------------------------------------------------------------- enrollments


def test_enroll_endpoint(runtime, api, campaigns):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org").id
        gone = make_subscriber(s, "gone@example.org", status="unsubscribed").id
    r = api.post(f"{API}/subscribers/{sid}/enrollments", json={"campaign": "onboarding"})
    assert r.status_code == 201 and r.json()["scheduled"] == 3
    again = api.post(f"{API}/subscribers/{sid}/enrollments", json={"campaign": "onboarding"})
    assert again.status_code == 409 and "already enrolled" in again.json()["detail"]
    assert api.post(f"{API}/subscribers/{sid}/enrollments", json={"campaign": "no-such"}).status_code == 404
    assert api.post(f"{API}/subscribers/{sid + 99}/enrollments", json={"campaign": "onboarding"}).status_code == 404
    assert api.post(f"{API}/subscribers/{gone}/enrollments", json={"campaign": "onboarding"}).status_code == 409
    assert api.post(f"{API}/subscribers/{sid}/enrollments", json={"campaign": "draft-series"}).status_code == 409
    r = api.post(f"{API}/subscribers/{sid}/enrollments", json={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "campaign"]
    assert count(runtime, Enrollment) == 1


def test_bulk_enroll_endpoint_by_ids_and_by_tag(runtime, api, campaigns):
    with runtime.sessions.begin() as s:
        ids = [make_subscriber(s, f"p{i}@example.org", tz="Europe/London").id for i in range(4)]
        gone = make_subscriber(s, "gone@example.org", status="unsubscribed").id
    url = f"{API}/campaigns/onboarding/enrollments"
    r = api.post(url, json={"subscriber_ids": [ids[0], ids[1], gone, 99_999]})
    assert r.status_code == 200
    assert r.json() == {"campaign": "onboarding", "enrolled": 2, "skipped": {"inactive": 1, "missing": 1}}
    api.patch(f"{API}/subscribers/{ids[2]}", json={"add_tags": ["front-desk"]})
    api.patch(f"{API}/subscribers/{ids[1]}", json={"add_tags": ["front-desk"]})
    r = api.post(url, json={"tag": "front-desk"})
    assert r.json() == {"campaign": "onboarding", "enrolled": 1, "skipped": {"enrolled": 1}}
    with runtime.sessions() as s:
        enrolled = set(s.scalars(select(Enrollment.subscriber_id).where(Enrollment.campaign_id == campaigns["onboarding"])))
        assert enrolled == {ids[0], ids[1], ids[2]}
        assert s.scalar(select(func.count()).select_from(Delivery)) == 3 * 3
    before = data(runtime)
    assert api.post(f"{API}/campaigns/no-such/enrollments", json={"tag": "front-desk"}).status_code == 404
    assert api.post(url, json={"tag": "no-such-tag"}).status_code == 404
    assert api.post(f"{API}/campaigns/draft-series/enrollments", json={"subscriber_ids": [ids[3]]}).status_code == 409
    for body in ({}, {"subscriber_ids": [ids[3]], "tag": "front-desk"}, {"subscriber_ids": []}, {"tag": " "}):
        assert api.post(url, json=body).status_code == 422, body
    assert data(runtime) == before


# --------------------------------------------------------------------------- campaigns, deliveries


def test_campaigns(api, campaigns):
    data = api.get(f"{API}/campaigns").json()
    assert [(c["slug"], c["status"], c["steps"]) for c in data] == [("onboarding", "published", 3),
                                                                    ("draft-series", "draft", 2)]


def test_deliveries_filters(runtime, api, campaigns):
    ann = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding"}).json()["id"]
    api.post(f"{API}/subscribers", json={"email": "bob@example.org", "enroll": "onboarding"})
    api.patch(f"{API}/subscribers/{ann}", json={"status": "unsubscribed"})

    items = api.get(f"{API}/deliveries", params={"subscriber_id": ann}).json()["items"]
    assert [(d["campaign"], d["step"], d["status"]) for d in items] == [("onboarding", i, "cancelled") for i in (1, 2, 3)]
    assert len(api.get(f"{API}/deliveries", params={"campaign": "onboarding"}).json()["items"]) == 6
    scheduled = api.get(f"{API}/deliveries", params={"status": "scheduled", "limit": 2}).json()["items"]
    assert len(scheduled) == 2 and {d["subscriber_id"] for d in scheduled} != {ann}
    assert api.get(f"{API}/deliveries", params={"campaign": "no-such"}).status_code == 404
    assert api.get(f"{API}/deliveries", params={"status": "lost"}).status_code == 422
    assert api.get(f"{API}/deliveries", params={"subscriber_id": 0}).status_code == 422


def test_openapi_document_and_docs_page(client):
    doc = client.get(f"{API}/openapi.json").json()
    assert doc["servers"] == [{"url": API}]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert set(doc["paths"]) == {"/subscribers", "/subscribers/{subscriber_id}",
                                 "/subscribers/{subscriber_id}/enrollments", "/campaigns", "/deliveries",
                                 "/subscribers/{subscriber_id}/enrollments/{campaign}/stop",
                                 "/subscribers/{subscriber_id}/events", "/attributes",
                                 "/campaigns/{slug}/enrollments"}
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 200 and f"{API}/openapi.json" in docs.text
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    # Swagger UI's files come from us, not a CDN: no third-party script on the staff app's origin.
    assert "https://" not in csp and "https://" not in docs.text and "http://" not in docs.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert f"{API}/docs/files/swagger-ui-bundle.js" in sources and f"{API}/docs/files/swagger-ui.css" in sources
    for path in sources:
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 500, path
    assert "SwaggerUIBundle" in client.get(f"{API}/docs/files/swagger-ui-bundle.js").text
    for outside in ("index.html", "..%2F__init__.py", "swagger-ui-bundle.js.map"):
        assert client.get(f"{API}/docs/files/{outside}").status_code == 404


# --------------------------------------------------------------------------- drip api-token


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./drip.toml
    monkeypatch.setenv("DRIP_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setenv("DRIP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIP_CONFIG", str(tmp_path / "absent.toml"))
    return tmp_path / "cli.sqlite3"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from drip.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_create_list_revoke(cli_db, capsys):
    code, out, err = run_cli(capsys, "api-token", "create", "booking-system")
    token = out.strip()
    assert code == 0 and token.startswith("drip_") and "\n" not in token
    assert "shown only now" in err and token not in err
    stored = b"".join(p.read_bytes() for p in cli_db.parent.glob(cli_db.name + "*"))  # the file and its WAL
    assert token.encode() not in stored and hash_token(token).encode() in stored

    run_cli(capsys, "api-token", "create", "[red]desk[/red]")
    code, out, _ = run_cli(capsys, "api-token", "list")
    assert code == 0 and "booking-system" in out and "live" in out and "never" in out and token not in out
    assert "[red]desk[/red]" in out  # a name is shown as typed, never as console markup

    code, out, _ = run_cli(capsys, "api-token", "revoke", "booking-system")
    assert code == 0 and "revoked API token 1 (booking-system)" in out
    code, out, _ = run_cli(capsys, "api-token", "list")
    assert "revoked" in out
    code, _, err = run_cli(capsys, "api-token", "revoke", "nobody")
    assert code == 2 and err.startswith("drip: error: TOKEN: no API token 'nobody'")
    code, _, err = run_cli(capsys, "api-token", "create", "  ")
    assert code == 2 and "a token needs a name" in err


def test_cli_token_authenticates_against_the_api(cli_db, capsys, settings, clock):
    from starlette.testclient import TestClient

    from drip.runtime import open_runtime
    from web.app import create_app

    _, out, _ = run_cli(capsys, "api-token", "create", "booking-system")
    rt = open_runtime(settings.with_(database_url=f"sqlite:///{cli_db}"))
    try:
        with TestClient(create_app(rt, clock=clock), base_url="https://clinic.test") as c:
            assert c.get(f"{API}/campaigns", headers=bearer(out.strip())).status_code == 200
            run_cli(capsys, "api-token", "revoke", "1")
            assert c.get(f"{API}/campaigns", headers=bearer(out.strip())).status_code == 401
    finally:
        rt.close()


def test_revoke_by_name_refuses_an_ambiguous_name(runtime):
    from drip.errors import InputError

    new_token(runtime, "shared")
    new_token(runtime, "shared")
    with runtime.sessions.begin() as s, pytest.raises(InputError, match="revoke one by its id"):
        revoke_token(s, "shared")
