"""The booking system stops the drip through the API: events, stop with a reason, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import select

from campaigns.exits import add_exit
from delivery.backends.outbox import OutboxBackend
from delivery.dispatcher import Dispatcher
from drip.models import Campaign, Delivery
from tests.factories import make_campaign
from tests.web.api_helpers import API, bearer, new_token
from tests.web.seed import T0


@pytest.fixture
def api(client, runtime):
    client.headers.update(bearer(new_token(runtime)))
    return client


@pytest.fixture
def onboarding(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "onboarding", n_items=3, every=timedelta(days=1))
        add_exit(s, c, "event", "appointment_booked", T0)  # what staff set on the campaign page
        return c.id


def booking_system(api, address: str) -> dict:
    """What the booking system's integration does when a patient books: find them, post the event."""
    found = api.get(f"{API}/subscribers", params={"search": address}).json()["items"]
    (patient,) = [p for p in found if p["email"] == address]
    r = api.post(f"{API}/subscribers/{patient['id']}/events",
                 json={"name": "appointment_booked", "source": "booking-system"})
    assert r.status_code == 201, r.text
    return r.json()


def sent_to(runtime) -> list[str]:
    folder = runtime.settings.outbox_dir
    return sorted(email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]
                  for p in folder.glob("*.eml")) if folder.exists() else []


def test_the_drip_stops_before_the_next_email(runtime, api, clock, onboarding):
    r = api.post(f"{API}/subscribers", json={"email": "maria@example.org", "name": "Maria", "enroll": "onboarding"})
    assert r.status_code == 201 and r.json()["enrollment"]["scheduled"] == 4
    api.post(f"{API}/subscribers", json={"email": "bob@example.org", "enroll": "onboarding"})
    worker = Dispatcher(runtime, OutboxBackend(runtime.settings), clock=clock, worker_id="w1")
    worker.tick()  # the welcome email goes out at once
    assert len(sent_to(runtime)) == 2

    answer = booking_system(api, "maria@example.org")
    (stopped,) = answer["exited"]
    assert stopped["campaign"] == "onboarding" and stopped["state"] == "exited" and stopped["scheduled"] == 0
    assert stopped["exit_reason"] == "exit condition: event “appointment_booked”"

    for day in range(1, 5):  # the simulated clock through the rest of the sequence
        clock.now = T0 + timedelta(days=day, hours=1)
        worker.tick()
    mails = sent_to(runtime)
    assert sum("maria@" in m for m in mails) == 1 and sum("bob@" in m for m in mails) == 4
    rows = api.get(f"{API}/deliveries", params={"subscriber_id": answer["subscriber_id"]}).json()["items"]
    assert [d["status"] for d in rows] == ["sent", "cancelled", "cancelled", "cancelled"]


def test_stop_one_enrollment_with_a_reason(runtime, api, onboarding):
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding"}).json()["id"]
    assert api.post(f"{API}/subscribers/{sid}/enrollments/onboarding/stop", json={"reason": ""}).status_code == 422
    r = api.post(f"{API}/subscribers/{sid}/enrollments/onboarding/stop", json={"reason": "booked by phone"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "exited" and body["exit_reason"] == "booked by phone" and body["scheduled"] == 0
    again = api.post(f"{API}/subscribers/{sid}/enrollments/onboarding/stop", json={"reason": "x"})
    assert again.status_code == 404 and "no active enrollment" in again.json()["detail"]
    assert api.post(f"{API}/subscribers/{sid}/enrollments/no-such/stop", json={"reason": "x"}).status_code == 404
    assert api.post(f"{API}/subscribers/{sid + 9}/enrollments/onboarding/stop",
                    json={"reason": "x"}).status_code == 404
    with runtime.sessions() as s:
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}


def test_events_check_their_input(runtime, api, onboarding):
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org"}).json()["id"]
    assert api.post(f"{API}/subscribers/{sid}/events", json={"name": "bad name\n"}).status_code == 422
    assert api.post(f"{API}/subscribers/{sid}/events", json={}).status_code == 422
    assert api.post(f"{API}/subscribers/{sid + 9}/events", json={"name": "appointment_booked"}).status_code == 404
    r = api.post(f"{API}/subscribers/{sid}/events", json={"name": "appointment_booked"})
    assert r.status_code == 201 and r.json()["exited"] == []  # not enrolled: nothing to stop


def test_tag_removed_through_the_api_exits(runtime, api, onboarding):
    with runtime.sessions.begin() as s:
        add_exit(s, s.get(Campaign, onboarding), "tag-removed", "needs-booking", T0)
    sid = api.post(f"{API}/subscribers", json={"email": "ann@example.org", "enroll": "onboarding",
                                                "tags": ["needs-booking"]}).json()["id"]
    r = api.patch(f"{API}/subscribers/{sid}", json={"remove_tags": ["needs-booking"]})
    assert r.status_code == 200 and r.json()["tags"] == []
    with runtime.sessions() as s:
        assert set(s.scalars(select(Delivery.status))) == {"cancelled"}
