"""API token scopes: an endpoint refuses (403) a token without its scope and does nothing; a token
made before scopes existed (scopes NULL) keeps full access; API writes are audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from drip.models import ApiToken, AuditEntry, Subscriber
from drip.permissions import check_scopes, token_has
from drip.errors import InputError
from tests.web.api_helpers import API, OPERATIONS, bearer
from tests.web.seed import seed
from web.api_tokens import create_token

NEEDS = {  # (method, path) -> the scope; the table a reviewer reads
    ("POST", "/subscribers"): "subscribers:write",
    ("GET", "/subscribers"): "read",
    ("GET", "/subscribers/1"): "read",
    ("PATCH", "/subscribers/1"): "subscribers:write",
    ("DELETE", "/subscribers/1"): "subscribers:erase",
    ("POST", "/subscribers/1/enrollments"): "enrollments:write",
    ("POST", "/subscribers/1/enrollments/onboarding/stop"): "enrollments:write",
    ("POST", "/subscribers/1/events"): "events:write",
    ("GET", "/campaigns"): "read",
    ("GET", "/attributes"): "read",
    ("POST", "/campaigns/onboarding/enrollments"): "enrollments:write",
    ("GET", "/deliveries"): "read",
}


def token(runtime, scopes: str) -> str:
    with runtime.sessions.begin() as s:
        return create_token(s, f"t-{scopes}", scopes=scopes)[1]


def test_every_operation_refuses_a_token_without_its_scope(runtime, client):
    seed(runtime)
    assert {(m, p) for m, p, _ in OPERATIONS} == set(NEEDS)
    for method, path, body in OPERATIONS:
        needed = NEEDS[(method, path)]
        other = "events:write" if needed != "events:write" else "read"
        r = client.request(method, API + path, json=body, headers=bearer(token(runtime, other)))
        assert r.status_code == 403 and needed in r.text, (method, path, r.text)
    with runtime.sessions() as s:  # nothing happened: Ann is still there, no write was audited
        assert s.get(Subscriber, 1) is not None
        assert not list(s.scalars(select(AuditEntry).where(AuditEntry.actor_kind == "token")))


def test_a_scoped_token_works_and_its_writes_are_audited(runtime, client):
    ids = seed(runtime)
    headers = bearer(token(runtime, "events:write,read"))
    assert client.get(f"{API}/subscribers", headers=headers).status_code == 200
    r = client.post(f"{API}/subscribers/{ids.subscriber_id}/events", json={"name": "appointment_booked"},
                    headers=headers)
    assert r.status_code == 201
    with runtime.sessions() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "api.event"))
    assert (entry.actor_kind, entry.actor, entry.target) == ("token", "t-events:write,read",
                                                             f"subscriber {ids.subscriber_id}")
    assert entry.after["event"] == "appointment_booked" and entry.ip


def test_enroll_on_create_needs_the_enrollment_scope(runtime, client):
    seed(runtime)
    headers = bearer(token(runtime, "subscribers:write"))
    r = client.post(f"{API}/subscribers", json={"email": "new@example.org", "enroll": "onboarding"}, headers=headers)
    assert r.status_code == 403 and "enrollments:write" in r.text
    with runtime.sessions() as s:
        assert s.scalar(select(Subscriber).where(Subscriber.email == "new@example.org")) is None
    assert client.post(f"{API}/subscribers", json={"email": "new@example.org"}, headers=headers).status_code == 201


def test_a_token_from_before_scopes_keeps_full_access(runtime, client):
    ids = seed(runtime)
    plain = token(runtime, "read")
    with runtime.sessions.begin() as s:
        s.execute(update(ApiToken).values(scopes=None))  # as migration 0014 leaves an existing token
    r = client.delete(f"{API}/subscribers/{ids.other_id}", headers=bearer(plain))
    assert r.status_code == 204
    with runtime.sessions() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "api.subscriber.erase"))
        assert entry.target == f"subscriber {ids.other_id}" and "@" not in entry.target


def test_scope_names_are_checked():
    assert check_scopes(["read", "events:write,read"]) == "events:write,read"
    assert check_scopes(["all", "read"]) == "all"
    assert token_has(None, "subscribers:erase") and token_has("all", "read")
    assert not token_has("read", "subscribers:write")
    with pytest.raises(InputError, match="unknown scope 'write'"):
        check_scopes(["write"])
    with pytest.raises(InputError, match="at least one"):
        check_scopes([" , "])
