"""The ledger's references hold on both databases: a delivery refers to a subscriber, enrollment
and step that exist, and goes with them. On PostgreSQL these are statement-level triggers
(migration 0030, so that enrolling thousands of patients is not one foreign-key query per
delivery); on SQLite, foreign keys."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from campaigns.enrollment import enroll
from drip.models import Campaign, Delivery, Enrollment, Step, Subscriber
from tests.factories import make_campaign, make_subscriber

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)


def _row(**kw) -> dict:
    return {"due_at": NOW, "status": "scheduled", "attempts": 0, "last_error": "", **kw}


@pytest.fixture
def ledger(runtime):
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "refs", n_items=2)
        subs = [make_subscriber(s, f"r{i}@example.org") for i in range(3)]
        for sub in subs:
            enroll(s, sub, c, NOW, clinic_tz="UTC")
        e = s.scalar(select(Enrollment).where(Enrollment.subscriber_id == subs[0].id))
        step = s.scalar(select(Step.id).where(Step.campaign_id == c.id).order_by(Step.position))
        return {"campaign": c.id, "subs": [x.id for x in subs], "enrollment": e.id, "step": step}


def _count(runtime, *where) -> int:
    with runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(*where))


@pytest.mark.parametrize("bad", ["subscriber_id", "enrollment_id", "step_id"])
def test_a_delivery_to_nothing_is_refused_whole_statement(runtime, ledger, bad):
    good = _row(subscriber_id=ledger["subs"][1], enrollment_id=None, step_id=None)
    wrong = {**good, bad: 10**8}
    before = _count(runtime)
    with pytest.raises(IntegrityError):
        with runtime.sessions.begin() as s:
            s.execute(insert(Delivery), [good, wrong, good])
    assert _count(runtime) == before
    with pytest.raises(IntegrityError):
        with runtime.sessions.begin() as s:
            first = s.scalar(select(Delivery.id).order_by(Delivery.id).limit(1))
            s.execute(update(Delivery).where(Delivery.id == first).values({bad: 10**8}))
    with runtime.sessions.begin() as s:  # a change to references that exist is allowed
        first = s.scalar(select(Delivery.id).order_by(Delivery.id).limit(1))
        s.execute(update(Delivery).where(Delivery.id == first).values(subscriber_id=ledger["subs"][2]))


def test_deliveries_go_with_their_subscriber_enrollment_and_step(runtime, ledger):
    a, b, c = ledger["subs"]
    with runtime.sessions.begin() as s:
        s.execute(insert(Delivery), [_row(subscriber_id=a, enrollment_id=None, step_id=None)])  # not a step's
    assert _count(runtime, Delivery.subscriber_id == a) == 4 and _count(runtime) == 10  # 3 steps each, and one
    with runtime.sessions.begin() as s:
        s.execute(delete(Subscriber).where(Subscriber.id == a))
    assert _count(runtime, Delivery.subscriber_id == a) == 0 and _count(runtime) == 6
    with runtime.sessions.begin() as s:
        s.execute(delete(Enrollment).where(Enrollment.subscriber_id == b))
    assert _count(runtime, Delivery.subscriber_id == b) == 0 and _count(runtime) == 3
    with runtime.sessions.begin() as s:
        s.execute(delete(Step).where(Step.id == ledger["step"]))
    assert _count(runtime) == 2
    with runtime.sessions.begin() as s:
        s.execute(delete(Campaign).where(Campaign.id == ledger["campaign"]))
    assert _count(runtime) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)  # the triggers' row locks
def test_postgres_a_delete_waits_for_a_transaction_adding_deliveries(runtime, ledger):
    victim = ledger["subs"][1]
    with runtime.engine.connect() as adding, runtime.engine.connect() as deleting:
        adding.begin()
        adding.execute(insert(Delivery), [_row(subscriber_id=victim, enrollment_id=None, step_id=None)])
        deleting.begin()
        deleting.execute(text("SET LOCAL lock_timeout = '300ms'"))
        with pytest.raises(DBAPIError, match="lock timeout"):  # the subscriber is locked FOR KEY SHARE
            deleting.execute(delete(Subscriber).where(Subscriber.id == victim))
        deleting.rollback()
        adding.commit()
        with deleting.begin():
            deleting.execute(delete(Subscriber).where(Subscriber.id == victim))
    assert _count(runtime, Delivery.subscriber_id == victim) == 0
    with runtime.engine.connect() as deleting, runtime.engine.connect() as adding:  # the other way round
        deleting.begin()
        deleting.execute(delete(Subscriber).where(Subscriber.id == ledger["subs"][2]))
        adding.begin()
        adding.execute(text("SET LOCAL lock_timeout = '300ms'"))
        with pytest.raises(DBAPIError, match="lock timeout"):
            adding.execute(insert(Delivery), [_row(subscriber_id=ledger["subs"][2], enrollment_id=None,
                                                   step_id=None)])
        adding.rollback()
        deleting.commit()
        with pytest.raises(IntegrityError):
            with adding.begin():
                adding.execute(insert(Delivery), [_row(subscriber_id=ledger["subs"][2], enrollment_id=None,
                                                       step_id=None)])
