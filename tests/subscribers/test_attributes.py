"""Custom attributes: typed definitions, values through the service, CSV import (with Mailchimp's
export), exit conditions on a change; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.enrollment import enroll
from campaigns.exits import add_exit
from drip.errors import InputError
from drip.models import Enrollment, Subscriber
from subscribers.attributes import define_attribute, display_values, set_attributes, typed_values
from subscribers.importer import import_csv
from subscribers.service import tags_of
from tests.factories import make_campaign, make_subscriber

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def defined(runtime):
    with runtime.sessions.begin() as s:
        define_attribute(s, "first_visit", "date", label="First visit")
        define_attribute(s, "sessions", "number")
        define_attribute(s, "insured", "yesno")
        define_attribute(s, "slot", "choice", choices=["Morning", "Afternoon"])
        define_attribute(s, "referrer", "text")


@pytest.mark.parametrize("key, raw, stored, typed", [
    ("first_visit", "2027-01-12", "2027-01-12", "2027-01-12"),
    ("first_visit", "2027-01-12T09:30:00", "2027-01-12", "2027-01-12"),
    ("sessions", "6", "6", 6),
    ("sessions", 2.50, "2.5", 2.5),
    ("insured", "Yes", "yes", True),
    ("insured", False, "no", False),
    ("slot", "morning", "Morning", "Morning"),
    ("referrer", "  Dr.\\n Smith ", "Dr.\\n Smith", "Dr.\\n Smith"),
])
def test_values_are_checked_and_stored_canonically(runtime, defined, key, raw, stored, typed):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org").id
        assert set_attributes(s, sid, {key: raw}, T0) == [key]
        assert typed_values(s, [sid])[sid] == {key: typed}
        assert set_attributes(s, sid, {key: raw}, T0) == []  # the same value again changes nothing


@pytest.mark.parametrize("key, raw, message", [
    ("first_visit", "12/01/2027", "not a date"),
    ("sessions", "six", "not a number"),
    ("sessions", "1e400", r"below 10\^15"),
    ("insured", "maybe", "not yes or no"),
    ("slot", "evening", "not one of: Morning, Afternoon"),
    ("sessions", True, "not true/false"),
    ("unknown_key", "x", "no attribute 'unknown_key' is defined"),
])
def test_bad_values_name_the_attribute(runtime, defined, key, raw, message):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org").id
        with pytest.raises(InputError, match=message) as info:
            set_attributes(s, sid, {key: raw}, T0)
        assert info.value.where == f"attributes.{key}"


def test_definitions_check_their_input(runtime):
    with runtime.sessions.begin() as s:
        for key, kind, choices, message in [("First Visit", "date", (), "not valid"), ("x", "colour", (), "unknown"),
                                            ("slot", "choice", (), "needs its options")]:
            with pytest.raises(InputError, match=message):
                define_attribute(s, key, kind, choices=choices)
        define_attribute(s, "sessions", "number")
        sid = make_subscriber(s, "ann@example.org").id
        set_attributes(s, sid, {"sessions": 3}, T0)
        with pytest.raises(InputError, match="cannot change"):
            define_attribute(s, "sessions", "text")


def test_an_empty_value_removes_it_and_dates_display_for_people(runtime, defined):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org").id
        set_attributes(s, sid, {"first_visit": "2027-01-12", "sessions": 4}, T0)
        assert display_values(s, [sid])[sid] == {"first_visit": "12 January 2027", "sessions": "4"}
        assert set_attributes(s, sid, {"sessions": ""}, T0) == ["sessions"]
        assert typed_values(s, [sid])[sid] == {"first_visit": "2027-01-12"}


def test_an_attribute_change_exits_when_the_campaign_says_so(runtime, defined):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "pre-visit", n_items=2, every=timedelta(days=1))
        add_exit(s, c, "attribute-changed", "first_visit", T0)
        a, b = make_subscriber(s, "a@example.org"), make_subscriber(s, "b@example.org")
        for sub in (a, b):
            enroll(s, sub, c, T0, clinic_tz="UTC")
        set_attributes(s, b.id, {"sessions": 2}, T0)  # another attribute: no exit
        set_attributes(s, a.id, {"first_visit": "2027-02-01"}, T0)
        ids = a.id, b.id
    with runtime.sessions() as s:
        states = dict(s.execute(select(Enrollment.subscriber_id, Enrollment.exit_reason)).all())
    assert states == {ids[0]: "exit condition: attribute “first_visit” changed", ids[1]: ""}


MAILCHIMP = (
    'Email Address,First Name,Last Name,Address,Phone Number,First Visit,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,'
    'CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS\n'
    'maria@example.org,Maria,Lopez,,,2027-01-12,2,"2023-05-01 10:22:33",,"2023-05-01 10:25:00",203.0.113.7,,,,,'
    'America/New_York,US,,"2024-01-01 00:00:00",1,abc,,"""Back pain"",""New patients"""\n'
    'li@example.org,Li,,,,,2,"2023-06-02 08:00:00",198.51.100.2,,,,,,,,,,,2,def,,"""New patients"""\n'
    'bad@example.org,Bad,Date,,,next tuesday,2,,,,,,,,,,,,,3,ghi,,\n'
)


def test_mailchimp_export_names_tags_consent_and_attributes(runtime, defined, tmp_path):
    path = tmp_path / "members_export.csv"
    path.write_text(MAILCHIMP, encoding="utf-8")
    report = import_csv(runtime, path, now=T0)
    assert (report.created, report.skipped) == (2, 1), report.errors
    assert [(e.line, e.field) for e in report.errors] == [(4, "first_visit")]
    assert report.attributes == 1 and "First Visit" not in report.ignored_columns and "LEID" in report.ignored_columns
    with runtime.sessions() as s:
        subs = {x.email: x for x in s.scalars(select(Subscriber))}
        maria, li = subs["maria@example.org"], subs["li@example.org"]
        assert (maria.name, maria.tz, li.name) == ("Maria Lopez", "America/New_York", "Li")
        # OPTIN_TIME and CONFIRM_IP are the consent evidence (OPTIN_IP when there is no CONFIRM_IP)
        assert maria.consent_at == datetime(2023, 5, 1, 10, 22, 33, tzinfo=timezone.utc)
        assert maria.consent_ip == "203.0.113.7" and li.consent_ip == "198.51.100.2"
        tags = tags_of(s, [maria.id, li.id])
        assert tags[maria.id] == ["Back pain", "New patients"] and tags[li.id] == ["New patients"]
        assert typed_values(s, [maria.id]) == {maria.id: {"first_visit": "2027-01-12"}}


def test_import_columns_become_attributes_and_an_empty_cell_keeps_the_value(runtime, defined, tmp_path):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org").id
        set_attributes(s, sid, {"sessions": 3}, T0)
    path = tmp_path / "patients.csv"
    path.write_text("email,name,sessions,insured,favourite colour\nann@example.org,Ann,,yes,blue\n", encoding="utf-8")
    report = import_csv(runtime, path, now=T0)
    assert report.updated == 1 and report.ignored_columns == ("favourite colour",)
    with runtime.sessions() as s:
        assert typed_values(s, [sid])[sid] == {"insured": True, "sessions": 3}


def test_strict_import_refuses_a_bad_attribute_and_writes_nothing(runtime, defined, tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text("email,slot\na@example.org,Morning\nb@example.org,Evening\n", encoding="utf-8")
    report = import_csv(runtime, path, mode="refuse", now=T0)
    assert report.refused and report.errors[0].field == "slot"
    with runtime.sessions() as s:
        assert s.scalar(select(Subscriber.id)) is None
