"""subscribers.service: address and zone checks, add/tag/list on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, inspect, select

from drip.errors import InputError, NotFoundError
from drip.models import Enrollment, Subscriber, SubscriberTag, Tag
from subscribers.service import (
    MAX_NAME,
    add_subscriber,
    clean_name,
    count_subscribers,
    get_subscriber,
    list_subscribers,
    normalize_email,
    tag_subscribers,
    tags_of,
    upsert_subscriber,
    validate_zone,
)
from tests.factories import make_campaign

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


# --- addresses, zones, names (pure) -------------------------------------------------------------


def test_normalize_email_lowercases_domain_and_keys_whole_address():
    assert normalize_email("  Ann.Lee@Example.COM ") == ("Ann.Lee@example.com", "ann.lee@example.com")


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "ann", "ann@", "@example.com", "ann@localhost", "a b@example.com", "ann@example.com\r\nBcc: x@y.z",
     "Ann <ann@example.com>", "ann@exa mple.com"],
)
def test_bad_addresses_are_input_errors_on_the_email_field(raw):
    with pytest.raises(InputError) as info:
        normalize_email(raw)
    assert info.value.where == "email"


@given(st.text(max_size=80))
@hsettings(max_examples=300, deadline=None)
def test_normalize_email_never_crashes_and_keys_are_stable(raw):
    try:
        email, key = normalize_email(raw)
    except InputError as exc:
        assert exc.where == "email"
        return
    assert key == email.lower()
    assert not any(c in email for c in "\r\n\t\x00 ")
    assert normalize_email(email) == (email, key)  # idempotent: a stored address re-validates to itself


@given(st.emails())
@hsettings(max_examples=200, deadline=None)
def test_generated_addresses_match_case_insensitively(address):
    try:
        email, key = normalize_email(address)
    except InputError:
        return  # hypothesis also generates addresses email-validator rightly refuses (e.g. reserved TLDs)
    if address.isascii():  # str.upper() of non-ASCII text can change the address itself (ß -> SS)
        assert normalize_email(address.upper())[1] == key
        assert normalize_email(address.lower())[1] == key


def test_validate_zone():
    assert validate_zone("Europe/Paris") == "Europe/Paris"
    assert validate_zone("  europe/paris ") == "Europe/Paris"  # typed in lower case: canonical name stored
    assert validate_zone("") is None and validate_zone(None) is None and validate_zone("  ") is None
    for bad in ["Mars/Olympus", "../../etc/passwd", "/etc/passwd", "America", "Europe/Paris\x00", "x" * 200]:
        with pytest.raises(InputError) as info:
            validate_zone(bad)
        assert info.value.where == "tz"


@given(st.text(max_size=400))
def test_clean_name_has_no_line_breaks_or_controls_and_fits(raw):
    name = clean_name(raw)
    assert len(name) <= MAX_NAME
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name)
    assert name == name.strip()


def test_clean_name_keeps_the_visible_text():
    assert clean_name("Ann\r\nBcc: evil@example.com\x00") == "Ann Bcc: evil@example.com"
    assert clean_name("  Zoë   O'Brien ") == "Zoë O'Brien"


# --- add / get -------------------------------------------------------------------------------


def test_add_is_idempotent_on_the_address_in_any_case(runtime):
    with runtime.sessions.begin() as s:
        a, created_a = upsert_subscriber(s, "Ann@Example.com", name="Ann", tz="Europe/Paris", now=NOW)
        b, created_b = upsert_subscriber(s, "ANN@example.COM", now=NOW)
        assert (created_a, created_b) == (True, False)
        assert a.id == b.id
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 1
    with runtime.sessions() as s:
        sub = get_subscriber(s, "ann@EXAMPLE.com")
        assert sub.email == "Ann@example.com" and sub.email_key == "ann@example.com"
        assert (sub.name, sub.tz, sub.status) == ("Ann", "Europe/Paris", "active")  # empty name/zone kept them
        assert sub.consent_source == "cli" and sub.consent_at == NOW


def test_add_updates_name_and_zone_only_when_given_and_never_the_status(runtime):
    with runtime.sessions.begin() as s:
        sub = add_subscriber(s, "ann@example.com", name="Ann", tz="Europe/Paris", now=NOW)
        sub.status = "unsubscribed"
        add_subscriber(s, "ann@example.com", name="Ann Lee", now=NOW)
        add_subscriber(s, "ann@example.com", tz="Asia/Tokyo", now=NOW)
    with runtime.sessions() as s:
        sub = get_subscriber(s, "ann@example.com")
        assert (sub.name, sub.tz, sub.status) == ("Ann Lee", "Asia/Tokyo", "unsubscribed")


def test_add_with_a_bad_zone_or_tag_writes_nothing(runtime):
    with runtime.sessions.begin() as s:
        with pytest.raises(InputError, match="tz"):
            add_subscriber(s, "ann@example.com", tz="Mars/Olympus")
        with pytest.raises(InputError, match="tags"):
            add_subscriber(s, "ann@example.com", tags=["ok", "x" * 101])
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert s.scalar(select(func.count()).select_from(Tag)) == 0


def test_get_unknown_subscriber_is_not_found(runtime):
    with runtime.sessions() as s, pytest.raises(NotFoundError) as info:
        get_subscriber(s, "nobody@example.com")
    assert info.value.where == "email"


# --- tags ------------------------------------------------------------------------------------


def test_tagging_creates_tags_once_and_links_once(runtime):
    with runtime.sessions.begin() as s:
        a = add_subscriber(s, "a@example.com", tags=["patients"], now=NOW)
        b = add_subscriber(s, "b@example.com", now=NOW)
        assert tag_subscribers(s, [a.id, b.id], ["patients", "  spring 2026 "], NOW) == 0
        tag_subscribers(s, [a.id, b.id], ["patients"], NOW)
        assert sorted(s.scalars(select(Tag.name))) == ["patients", "spring 2026"]
        assert s.scalar(select(func.count()).select_from(SubscriberTag)) == 4
        assert tags_of(s, [a.id, b.id]) == {a.id: ["patients", "spring 2026"], b.id: ["patients", "spring 2026"]}


def test_tag_tied_to_a_campaign_enrolls_the_newly_tagged_once(runtime):
    with runtime.sessions.begin() as s:
        campaign = make_campaign(s, "onboarding")
        s.add(Tag(name="new-patients", campaign_id=campaign.id))
        s.flush()
        a = add_subscriber(s, "a@example.com", now=NOW)
        b = add_subscriber(s, "b@example.com", now=NOW)
        assert tag_subscribers(s, [a.id], ["new-patients", "plain"], NOW, clinic_tz="America/New_York") == 1
        # b is new to the tag, a already has it: only b is enrolled, a is not enrolled twice
        assert tag_subscribers(s, [a.id, b.id], ["new-patients"], NOW) == 1
        assert tag_subscribers(s, [a.id, b.id], ["new-patients"], NOW) == 0
        rows = s.execute(select(Enrollment.subscriber_id, Enrollment.source)).all()
        assert sorted(rows) == sorted([(a.id, "tag"), (b.id, "tag")])
        # a finished campaign is not restarted by tagging (or importing) the patient again
        for e in s.scalars(select(Enrollment)):
            e.state = "completed"
        s.flush()
        assert tag_subscribers(s, [a.id, b.id], ["new-patients"], NOW) == 0


# --- list / search ---------------------------------------------------------------------------


@pytest.fixture
def people(runtime):
    with runtime.sessions.begin() as s:
        add_subscriber(s, "ann_lee@example.com", name="Ann Lee", tags=["vip"], now=NOW)
        add_subscriber(s, "annxlee@example.com", name="Ann X", now=NOW)
        add_subscriber(s, "bob@example.com", name="Bob 50% Smith", now=NOW)
        add_subscriber(s, "o.brien@example.com", name="Seán O'Brien", now=NOW)
        add_subscriber(s, "slash@example.com", name="a/b\\c", now=NOW).status = "unsubscribed"
    return runtime


def _emails(session, **kw):
    return [s.email for s in list_subscribers(session, **kw)]


def test_search_matches_address_or_name_case_insensitively(people):
    with people.sessions() as s:
        assert _emails(s, search="ANN") == ["ann_lee@example.com", "annxlee@example.com"]
        assert _emails(s, search="smith") == ["bob@example.com"]


@pytest.mark.parametrize(
    "needle,expected",
    [
        ("%", ["bob@example.com"]),  # a literal percent, not "anything"
        ("_", ["ann_lee@example.com"]),  # a literal underscore, not "any one character"
        ("ann_", ["ann_lee@example.com"]),
        ("'", ["o.brien@example.com"]),
        ("/", ["slash@example.com"]),  # SQLAlchemy's autoescape character itself
        ("\\", ["slash@example.com"]),
        ("'; drop table subscribers; --", []),
        ("\" or 1=1 --", []),
        ("%' or '1'='1", []),
    ],
)
def test_search_metacharacters_are_plain_text(people, needle, expected):
    with people.sessions() as s:
        assert _emails(s, search=needle) == expected
        assert count_subscribers(s, search=needle) == len(expected)
    assert "subscribers" in inspect(people.engine).get_table_names()


def test_filter_by_tag_and_status_and_page(people):
    with people.sessions() as s:
        assert _emails(s, tag="vip") == ["ann_lee@example.com"]
        assert _emails(s, status="unsubscribed") == ["slash@example.com"]
        assert count_subscribers(s, status="active") == 4
        assert _emails(s, limit=2, offset=1) == ["annxlee@example.com", "bob@example.com"]
        with pytest.raises(NotFoundError):
            list_subscribers(s, tag="no-such-tag")
        with pytest.raises(InputError, match="--status"):
            list_subscribers(s, status="gone")
        with pytest.raises(InputError, match="--limit"):
            list_subscribers(s, limit=0)
