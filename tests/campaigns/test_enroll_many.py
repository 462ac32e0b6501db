"""enroll_many makes exactly the rows one-by-one enroll() makes (ids aside), with the same checks.

Each scenario builds two identical campaigns over the same patients (same steps, window,
opt-outs and earlier enrollments), enrolls one patient at a time into the first with `enroll()`
and everyone at once into the second with `enroll_many`, and compares both campaigns' enrollments
and deliveries per patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

import campaigns.enrollment as enrollment_module
from campaigns.enrollment import NotEnrollable, enroll, enroll_many
from drip.errors import InputError
from drip.models import (
    Campaign,
    CampaignOptOut,
    Delivery,
    Enrollment,
    Step,
    Subscriber,
    SubscriberTag,
    Suppression,
    Tag,
)

ZONES = [None, "America/New_York", "Europe/London", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Tokyo",
         "America/St_Johns", "Pacific/Apia", "Asia/Kolkata", "UTC"]
WINDOWS = ["daily 00:00-23:59", "mon-fri 09:00-17:00", "sat,sun 10:00-12:00", "sun 02:30-03:30",
           "daily 01:00-02:00", "mon-fri 09:00-09:01"]
STATUSES = ["active", "active", "active", "pending", "paused", "unsubscribed", "bounced"]
EARLIER = [None, None, "active", "cancelled", "completed"]  # an earlier enrollment in the campaign
# Instants near DST changes (US, EU, southern hemisphere) and one far from any.
BASES = [datetime(2026, 3, 8, 6, 0), datetime(2026, 3, 29, 0, 30), datetime(2026, 4, 5, 15, 0),
         datetime(2026, 10, 3, 15, 30), datetime(2026, 11, 1, 5, 0), datetime(2026, 7, 15, 12, 0)]


@dataclass(frozen=True)
class Patient:
    tz: str | None
    status: str
    suppressed: bool
    opted_out: bool
    earlier: str | None


patients = st.builds(Patient, st.sampled_from(ZONES), st.sampled_from(STATUSES), st.integers(0, 4).map(lambda n: n == 0),
                     st.integers(0, 4).map(lambda n: n == 0), st.sampled_from(EARLIER))


def _campaign(s, slug: str, delays: list[int], window: str, status: str) -> Campaign:
    c = Campaign(slug=slug, title=slug, status=status, send_window=window)
    s.add(c)
    s.flush()
    s.add_all(Step(campaign_id=c.id, position=i + 1, kind="item", slug=f"s{i}", delay_minutes=d)
              for i, d in enumerate(delays))
    s.flush()
    return c


def _setup(s, tag: str, people: list[Patient], delays: list[int], window: str, status: str, now: datetime):
    """Two twin campaigns and the patients; returns (one-by-one campaign, bulk campaign, subscriber ids)."""
    one = _campaign(s, f"{tag}-one", delays, window, status)
    bulk = _campaign(s, f"{tag}-bulk", delays, window, status)
    ids = []
    for i, p in enumerate(people):
        email = f"{tag}-{i}@example.org"
        sub = Subscriber(email=email, email_key=email, tz=p.tz, status=p.status)
        s.add(sub)
        s.flush()
        ids.append(sub.id)
        if p.suppressed:
            s.add(Suppression(email_key=email, reason="bounce"))
        for c in (one, bulk):
            if p.opted_out:
                s.add(CampaignOptOut(subscriber_id=sub.id, campaign_id=c.id))
            if p.earlier:
                s.add(Enrollment(subscriber_id=sub.id, campaign_id=c.id, enrolled_at=now - timedelta(days=3),
                                 state=p.earlier, source="earlier"))
    s.flush()
    return one, bulk, ids


def _one_by_one(s, ids, campaign, now, clinic_tz) -> int:
    made = 0
    for sid in ids:
        sub = s.get(Subscriber, sid)
        if sub is None:
            continue
        try:
            enroll(s, sub, campaign, now, clinic_tz=clinic_tz, source="test")
            made += 1
        except NotEnrollable:
            pass
    return made


def _rows(s, campaign: Campaign):
    """Per patient: enrollments and deliveries of this campaign, without ids (steps by position)."""
    enrollments = sorted(
        (e.subscriber_id, e.enrolled_at, e.state, e.source)
        for e in s.scalars(select(Enrollment).where(Enrollment.campaign_id == campaign.id))
    )
    deliveries = sorted(
        (d.subscriber_id, pos, d.due_at, d.status, d.attempts, d.last_error, d.broadcast_id, d.lease_until,
         d.claimed_by, d.step_version_id, d.provider_message_id, d.sent_at, d.outcome,
         e.subscriber_id == d.subscriber_id, e.enrolled_at)
        for d, pos, e in s.execute(
            select(Delivery, Step.position, Enrollment)
            .join(Step, Step.id == Delivery.step_id)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(Step.campaign_id == campaign.id)
        )
    )
    return enrollments, deliveries


def _compare(s, tag, people, delays, window, now, clinic_tz, order, *, chunk, status="published", as_query=False):
    one, bulk, ids = _setup(s, tag, people, delays, window, status, now)
    wanted = [ids[i] for i in order if i < len(ids)] + [i + 10**9 for i in order if i >= len(ids)]  # some missing
    if status != "published":
        with pytest.raises(NotEnrollable, match="not published"):
            enroll_many(s, wanted, bulk, now, clinic_tz=clinic_tz, chunk=chunk)
        return
    made = _one_by_one(s, wanted, one, now, clinic_tz)
    target = select(Subscriber.id).where(Subscriber.id.in_(wanted)) if as_query else wanted
    outcome = enroll_many(s, target, bulk, now, clinic_tz=clinic_tz, source="test", chunk=chunk)
    assert outcome.enrolled == made
    if not as_query:
        assert outcome.enrolled + sum(outcome.skipped.values()) == len(wanted)
    assert _rows(s, bulk) == _rows(s, one)
    return outcome


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=st.lists(patients, max_size=12),
    delays=st.lists(st.sampled_from([0, 1, 59, 60, 20 * 60, 1440, 2880, 10080]), max_size=13).map(sorted),
    window=st.sampled_from(WINDOWS),
    base=st.sampled_from(BASES),
    shift=st.integers(0, 72 * 60),
    clinic_tz=st.sampled_from([z for z in ZONES if z]),
    order=st.lists(st.integers(0, 13), max_size=20),
    chunk=st.integers(1, 6),
    as_query=st.booleans(),
    status=st.sampled_from(["published"] * 5 + ["draft", "paused"]),
)
def test_enroll_many_matches_one_by_one(runtime, people, delays, window, base, shift, clinic_tz, order,
                                         chunk, as_query, status):
    """On both databases (each example rolls back, so they share one)."""
    now = base.replace(tzinfo=timezone.utc) + timedelta(minutes=shift)
    with runtime.sessions() as s:
        with s.begin():
            _compare(s, "h", people, delays, window, now, clinic_tz, order, chunk=chunk, status=status,
                     as_query=as_query)
            s.rollback()


def _every_case() -> list[Patient]:
    return [Patient(tz, status, suppressed, opted_out, earlier)
            for tz in ZONES
            for status, suppressed, opted_out, earlier in [
                ("active", False, False, None), ("active", False, False, "cancelled"), ("active", True, False, None),
                ("active", False, True, None), ("active", False, False, "active"), ("unsubscribed", False, False, None),
                ("pending", False, False, None)]]


def test_enroll_many_matches_one_by_one_example(runtime, monkeypatch):
    """The same comparison on both databases: every case, 13 steps, several chunks and plan parts."""
    monkeypatch.setattr(enrollment_module, "_PLAN_ROWS", 20)  # several INSERT ... SELECT parts per chunk
    people = _every_case()
    order = list(range(len(people))) + [3, 3, 0, len(people) + 5]  # repeats and a missing id
    delays = [0] + [2 * 1440 * i + 60 for i in range(1, 13)]
    now = datetime(2026, 3, 7, 22, 45, tzinfo=timezone.utc)  # a weekend before the US clocks change
    with runtime.sessions.begin() as s:
        outcome = _compare(s, "ex", people, delays, "mon-fri 09:00-17:00", now, "America/Chicago", order, chunk=9)
        assert outcome.enrolled == 2 * len(ZONES)  # per zone: the new one and the one whose earlier was cancelled
        # ids 3 (opted out) twice more and 0 (enrolled) once more
        assert outcome.skipped == {"suppressed": len(ZONES), "opted_out": len(ZONES) + 2,
                                   "inactive": 2 * len(ZONES), "enrolled": len(ZONES) + 1, "missing": 1}
        assert s.query(Delivery).count() == 2 * 13 * 2 * len(ZONES)


def test_enroll_many_by_tag_query_and_twice(runtime):
    with runtime.sessions.begin() as s:
        c = _campaign(s, "tagged", [0, 1440, 2880], "daily 08:00-20:00", "published")
        tag = Tag(name="members")
        s.add(tag)
        s.flush()
        subs = [Subscriber(email=f"m{i}@example.org", email_key=f"m{i}@example.org", tz="Europe/London")
                for i in range(7)]
        s.add_all(subs)
        s.flush()
        s.add_all(SubscriberTag(subscriber_id=x.id, tag_id=tag.id) for x in subs[:5])
        s.flush()
        members = select(SubscriberTag.subscriber_id).where(SubscriberTag.tag_id == tag.id)
        now = datetime(2026, 12, 1, 21, 0, tzinfo=timezone.utc)
        first = enroll_many(s, members, c, now, clinic_tz="UTC", chunk=2)
        again = enroll_many(s, members, c, now, clinic_tz="UTC", chunk=2)
        enrolled = set(s.scalars(select(Enrollment.subscriber_id).where(Enrollment.campaign_id == c.id)))
    assert (first.enrolled, again.enrolled, again.skipped["enrolled"]) == (5, 0, 5)
    assert enrolled == {x.id for x in subs[:5]}


def test_enroll_many_refuses_an_unknown_zone_before_writing(sqlite_runtime):
    with sqlite_runtime.sessions.begin() as s:
        c = _campaign(s, "z", [0], "daily 08:00-20:00", "published")
        good = Subscriber(email="g@example.org", email_key="g@example.org", tz="Asia/Tokyo")
        bad = Subscriber(email="b@example.org", email_key="b@example.org", tz="Mars/Olympus")
        s.add_all([good, bad])
        s.flush()
        with pytest.raises(InputError, match="unknown time zone"):
            enroll_many(s, [good.id, bad.id], c, datetime(2026, 12, 1, tzinfo=timezone.utc), clinic_tz="UTC")
        assert s.scalar(select(Enrollment.id)) is None
