"""Custom attributes through the API: set on create and patch, typed in answers, checked (422)."""

from __future__ import annotations

import pytest

from subscribers.attributes import define_attribute
from tests.web.api_helpers import API, bearer, new_token
from tests.web.seed import snapshot


@pytest.fixture
def api(client, runtime):
    client.headers.update(bearer(new_token(runtime)))
    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date")
        define_attribute(s, "sessions", "number")
        define_attribute(s, "insured", "yesno")
    return client


def test_set_read_and_remove(runtime, api):
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org",
                                             "attributes": {"first_visit": "2027-01-12", "sessions": 4}})
    assert r.status_code == 201, r.text
    assert r.json()["attributes"] == {"first_visit": "2027-01-12", "sessions": 4}
    sid = r.json()["id"]
    r = api.patch(f"{API}/subscribers/{sid}", json={"attributes": {"insured": True, "sessions": None}})
    assert r.status_code == 200 and r.json()["attributes"] == {"first_visit": "2027-01-12", "insured": True}
    assert api.get(f"{API}/subscribers/{sid}").json()["attributes"]["insured"] is True
    assert api.get(f"{API}/subscribers").json()["items"][0]["attributes"]["first_visit"] == "2027-01-12"
    kinds = {a["key"]: a["type"] for a in api.get(f"{API}/attributes").json()}
    assert kinds == {"first_visit": "date", "insured": "yesno", "sessions": "number"}


@pytest.mark.parametrize("attributes, field", [
    ({"first_visit": "soon"}, "attributes.first_visit"),
    ({"colour": "blue"}, "attributes.colour"),
    ({"insured": 7}, "attributes.insured"),
])
def test_bad_attributes_are_422_and_write_nothing(runtime, api, attributes, field):
    before = {k: v for k, v in snapshot(runtime).items() if k != "api_tokens"}
    r = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "attributes": attributes})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert {k: v for k, v in snapshot(runtime).items() if k != "api_tokens"} == before


def test_erasing_a_patient_erases_their_attributes_and_events(runtime, api):
    from sqlalchemy import func, select

    from drip.models import SubscriberAttribute, SubscriberEvent

    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "attributes": {"sessions": 2}}).json()["id"]
    assert api.post(f"{API}/subscribers/{sid}/events", json={"name": "appointment_booked"}).status_code == 201
    assert api.delete(f"{API}/subscribers/{sid}").status_code == 204
    with runtime.sessions() as s:
        for model in (SubscriberAttribute, SubscriberEvent):
            assert s.scalar(select(func.count()).select_from(model)) == 0
