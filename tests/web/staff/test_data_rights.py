"""Patient data rights from the staff pages: export one patient's data, erase a patient."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from drip.models import Delivery, Enrollment, Subscriber, Suppression
from subscribers.importer import import_csv
from subscribers.service import ErasedAddress, add_subscriber
from subscribers.suppression import erased_key
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.data import seed_staff

import pytest


@both_databases
def test_export_holds_profile_consent_enrollments_and_every_delivery(runtime, staff):
    ids = seed_staff(runtime)
    r = staff.get(f"/staff/subscribers/{ids.ann_id}/export.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    data = r.json()
    assert data["profile"]["email"] == "ann@example.org" and data["profile"]["time_zone"] == "Europe/Paris"
    assert set(data["consent"]) == {"source", "at", "text_version", "ip"}
    assert data["tags"] == ["newsletter"]
    assert [e["campaign"] for e in data["enrollments"]] == ["onboarding"]
    with runtime.sessions() as s:
        rows = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.subscriber_id == ids.ann_id))
    assert len(data["deliveries"]) == rows > 0 and all(d["email"] for d in data["deliveries"])
    page = staff.get(f"/staff/subscribers/{ids.ann_id}/export").text
    assert "Data held about Ann Lee" in page and f"Every email ({rows})" in page
    assert staff.get(f"/staff/subscribers/{ids.bob_id}/export.json").json()["enrollments"] == []


def test_export_needs_a_login(runtime, anon):
    ids = seed_staff(runtime)
    r = anon.get(f"/staff/subscribers/{ids.ann_id}/export.json", follow_redirects=False)
    assert r.status_code == 303 and "/staff/login" in r.headers["location"]


@both_databases
def test_erase_needs_the_typed_address_then_keeps_only_a_hash(runtime, staff, tmp_path):
    ids = seed_staff(runtime)
    page = f"/staff/subscribers/{ids.ann_id}"
    r = post_form(staff, page, f"{page}/erase", data={"confirm_email": "someone@else.org"})
    assert "type their email address exactly" in staff.get(r.headers["location"]).text
    with runtime.sessions() as s:
        assert s.get(Subscriber, ids.ann_id) is not None
    r = post_form(staff, page, f"{page}/erase", data={"confirm_email": " Ann@Example.org "})
    assert r.headers["location"] == "/staff/subscribers"
    with runtime.sessions() as s:
        assert s.get(Subscriber, ids.ann_id) is None
        assert s.scalar(select(func.count()).select_from(Enrollment).where(Enrollment.subscriber_id == ids.ann_id)) == 0
        kept = [x.email_key for x in s.scalars(select(Suppression))]
        assert kept == [erased_key("ann@example.org")] and "ann@example.org" not in json.dumps(kept)
    # never re-added: not by hand, not by an import (the row is refused and named)
    with runtime.sessions.begin() as s, pytest.raises(ErasedAddress):
        add_subscriber(s, "ann@example.org")
    csv = tmp_path / "old-list.csv"
    csv.write_text("email,name\nann@example.org,Ann\nnew@example.org,New\n")
    report = import_csv(runtime, csv)
    assert (report.created, report.skipped) == (1, 1)
    assert [str(e) for e in report.errors] == [
        "line 2: email: this patient's data was erased at their request; not re-added"]


def test_the_readable_export_shows_every_part_in_plain_words_and_local_times(runtime, staff):
    """The page a patient reads holds what the JSON holds: events reported by the clinic's systems
    and the provider's events too; times in the clinic's zone, not ISO strings."""
    from datetime import timedelta

    from drip.models import Event, SubscriberEvent
    from tests.web.seed import T0

    ids = seed_staff(runtime)
    with runtime.sessions.begin() as s:
        s.add(SubscriberEvent(subscriber_id=ids.ann_id, name="appointment_booked", source="booking", occurred_at=T0))
        s.add(Event(provider="sendgrid", provider_event_id="sg-1", type="delivered", delivery_id=None,
                    email_key="ann@example.org", occurred_at=T0 + timedelta(minutes=5), raw={}))
    page = staff.get(f"/staff/subscribers/{ids.ann_id}/export").text
    data = staff.get(f"/staff/subscribers/{ids.ann_id}/export.json").json()
    assert len(data["events"]) == 1 and len(data["provider_events"]) == 1
    events = page.split('id="events"')[1].split("</section>")[0]
    assert "Reported by the clinic's systems (1)" in events and "appointment_booked" in events
    assert "Tue 01 Dec 2026, 09:00 EST" in events  # T0 in the clinic's zone (America/New_York)
    provider = page.split('id="provider-events"')[1].split("</section>")[0]
    assert "sendgrid" in provider and "delivered" in provider and "09:05 EST" in provider
    assert "T14:00:00+00:00" not in page  # no raw ISO time anywhere on the page
    assert "<dt>From IP address</dt>" in page and "<dt>Time zone</dt>" in page and "<dt>ip</dt>" not in page
