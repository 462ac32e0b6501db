"""Where events come from: each change writes its event in its own transaction (the outbox);
email.sent and enrollment.completed from the ledger's marks, by the webhook job (publish)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from delivery.events import apply_events, normalize_sendgrid
from drip.models import WebhookEvent
from subscribers.signup import confirm_signup
from tests.delivery.test_dispatcher import Clock, ScriptedBackend, run_until_done
from tests.factories import make_campaign, make_subscriber
from webhooks.derived import publish
from webhooks.endpoints import add_endpoint

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def _events(rt):
    with rt.sessions() as s:
        return [(t, json.loads(p)["data"]) for t, p in
                s.execute(select(WebhookEvent.type, WebhookEvent.payload).order_by(WebhookEvent.created_at))]


def _publish(rt) -> int:
    """What the webhook job does before each claim, until no marked send is left."""
    done = 0
    while True:
        with rt.sessions.begin() as s:
            n = publish(s)
        if not n:
            return done
        done += n


def _all_events(rt):
    with rt.sessions.begin() as s:
        add_endpoint(s, "http://127.0.0.1:9/", (), T0, allow_private=True)


def _two_enrolled(rt) -> list[int]:
    """Every event type subscribed, and two patients enrolled in a one-step campaign: their ids."""
    _all_events(rt)
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=1, every=timedelta(days=1))
        subs = [make_subscriber(s, f"p{i}@example.org", name=f"P{i}") for i in range(2)]
        for sub in subs:
            enroll(s, sub, c, T0, clinic_tz="UTC")
        return [sub.id for sub in subs]


def test_sent_and_completed_from_the_dispatcher(runtime):
    subscriber_ids = _two_enrolled(runtime)
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings)
    run_until_done(Dispatcher(runtime, backend, clock=clock), clock)
    # the sender only marked its rows: the webhook job writes the events
    assert [t for t, _ in _events(runtime)] == ["enrollment.started"] * 2
    assert _publish(runtime) == 4
    events = _events(runtime)
    sent = [d for t, d in events if t == "email.sent"]
    assert sorted(d["delivery_id"] for d in sent) == sorted(m.delivery_id for m in backend.sent)
    assert len(sent) == 4 and {d["campaign"] for d in sent} == {"onboarding"} and {d["step"] for d in sent} == {1, 2}
    done = [d for t, d in events if t == "enrollment.completed"]
    assert sorted(d["subscriber_id"] for d in done) == sorted(subscriber_ids)  # once each, after the last step
    assert all("example.org" not in json.dumps(d) for _, d in events)


def test_confirmed_bounced_complained_unsubscribed(runtime):
    _all_events(runtime)
    with runtime.sessions.begin() as s:
        pending = make_subscriber(s, "new@example.org", status="pending")
        b = make_subscriber(s, "b@example.org")
        c = make_subscriber(s, "c@example.org")
        u = make_subscriber(s, "u@example.org")
        ids = pending.id, b.id, c.id, u.id
    with runtime.sessions.begin() as s:
        assert confirm_signup(s, ids[0], now=T0, settings=runtime.settings).state == "confirmed"
    raw = [{"event": "bounce", "type": "bounce", "email": "b@example.org", "sg_event_id": "e1", "timestamp": 1},
           {"event": "spamreport", "email": "c@example.org", "sg_event_id": "e2", "timestamp": 1},
           {"event": "unsubscribe", "email": "u@example.org", "sg_event_id": "e3", "timestamp": 1}]
    with runtime.sessions.begin() as s:
        apply_events(s, [normalize_sendgrid(r, now=T0) for r in raw], runtime.settings, T0)
    got = {(t, d["subscriber_id"]) for t, d in _events(runtime)}
    assert got == {("subscriber.confirmed", ids[0]), ("subscriber.bounced", ids[1]),
                   ("subscriber.complained", ids[2]), ("subscriber.unsubscribed", ids[3])}


def test_csv_import_emits_subscribed_for_new_rows_only(runtime, tmp_path):
    from subscribers.importer import import_csv
    from subscribers.service import upsert_subscriber

    with runtime.sessions.begin() as s:
        known, _ = upsert_subscriber(s, "known@example.org", now=T0)
    _all_events(runtime)
    path = tmp_path / "patients.csv"
    path.write_text("email,name\nknown@example.org,Known\nnew1@example.org,New One\nnew2@example.org,\n")
    import_csv(runtime, path, now=T0)
    got = [d for t, d in _events(runtime) if t == "subscriber.subscribed"]
    with runtime.sessions() as s:
        from drip.models import Subscriber

        new_ids = set(s.scalars(select(Subscriber.id).where(Subscriber.email_key.in_(
            ["new1@example.org", "new2@example.org"]))))
    assert {d["subscriber_id"] for d in got} == new_ids and len(got) == 2
    assert all(d["source"] and d["status"] == "active" for d in got)


def test_retention_deletes_old_finished_webhook_events_only(runtime):
    from delivery.retention import apply_retention
    from drip.models import WebhookDelivery
    from subscribers.service import upsert_subscriber

    _all_events(runtime)
    with runtime.sessions.begin() as s:
        upsert_subscriber(s, "old@example.org", now=T0)
        upsert_subscriber(s, "waiting@example.org", now=T0)
        first = s.scalar(select(WebhookDelivery).order_by(WebhookDelivery.id))
        first.status = "delivered"
    result = apply_retention(runtime.sessions, T0 + timedelta(days=40), 30)
    assert result.webhook_events == 1
    with runtime.sessions() as s:
        assert [st for (st,) in s.execute(select(WebhookDelivery.status))] == ["pending"]
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_a_record_run_again_after_its_commit_writes_sent_and_completed_once(runtime):
    """The database took the record's COMMIT but the worker never heard (a dropped connection, a
    'database is locked' answer after the fact): retry_unavailable runs the record again. The
    ledger's rows are no longer `sending`, so they stay as they are, and the outbox must not write
    a second email.sent or enrollment.completed: their ids are the delivery's and the enrollment's
    (ON CONFLICT DO NOTHING), and deliveries are written only for events inserted."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from drip.models import Delivery, Enrollment, WebhookDelivery

    _two_enrolled(runtime)
    clock = Clock(T0)
    backend = ScriptedBackend(runtime.settings)
    lost = []

    def answer_lost(session):
        if backend.sent and not lost:  # the first commit after the send: the chunk's record
            lost.append(1)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    event.listen(runtime.sessions, "after_commit", answer_lost)
    try:
        run_until_done(Dispatcher(runtime, backend, clock=clock), clock)
    finally:
        event.remove(runtime.sessions, "after_commit", answer_lost)
    assert _publish(runtime) == 4
    assert lost and len(backend.sent) == 4  # two steps each (make_campaign's welcome and one item)
    with runtime.sessions() as s:
        dids = sorted(s.scalars(select(Delivery.id)))
        eids = sorted(s.scalars(select(Enrollment.id)))
        assert sorted(s.scalars(select(Delivery.status))) == ["sent"] * 4
        kinds = ("email.sent", "enrollment.completed")
        got = sorted((t, i) for t, i in s.execute(select(WebhookEvent.type, WebhookEvent.id)
                                                  .where(WebhookEvent.type.in_(kinds))))
        per_event = dict(s.execute(select(WebhookDelivery.event_id, func.count()).join(
            WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id).where(WebhookEvent.type.in_(kinds))
            .group_by(WebhookDelivery.event_id)).all())
    assert got == sorted([("email.sent", f"msg_sent_{d}") for d in dids]
                         + [("enrollment.completed", f"msg_completed_{e}") for e in eids])
    assert per_event == {i: 1 for _, i in got}  # one delivery per event and endpoint, not two


def test_marking_and_publishing_a_chunk_do_not_walk_the_ledgers_sent_rows(sqlite_runtime):
    """The record's completion mark finds its chunk's rows by primary key and `publish` finds marked
    rows through a partial index: the work for a chunk of 10 is the same beside 20 sent rows as
    beside 4,000 more (counted in SQLite VM steps, not time). With `status = 'sent'` in the SQL,
    SQLite walked the status index over every sent row."""
    from sqlalchemy import insert

    from drip.models import Delivery, Enrollment
    from webhooks.derived import mark_completed

    rt = sqlite_runtime
    _all_events(rt)
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=1, every=timedelta(days=1))
        step, cid = c.steps[0].id, c.id
        sub_id = make_subscriber(s, "p@example.org").id
        active = [make_subscriber(s, f"a{i}@example.org").id for i in range(10)]  # one active enrollment each

    def add_sent(count, marked):
        with rt.sessions.begin() as s:
            first = s.scalar(select(func.coalesce(func.max(Enrollment.id), 0)))
            s.execute(insert(Enrollment), [{"subscriber_id": active[i] if marked else sub_id, "campaign_id": cid,
                                            "enrolled_at": T0, "state": "active" if marked else "completed"}
                                           for i in range(count)])
            eids = list(s.scalars(select(Enrollment.id).where(Enrollment.id > first).order_by(Enrollment.id)))
            s.execute(insert(Delivery), [{"subscriber_id": sub_id, "enrollment_id": e, "step_id": step, "due_at": T0,
                                          "status": "sent", "sent_at": T0, "claimed_by": "w",
                                          "hooks_until": 1 if marked else None} for e in eids])
            return list(s.scalars(select(Delivery.id).where(Delivery.enrollment_id.in_(eids))))

    def steps_for(chunk):
        counted = [0]

        def tick():
            counted[0] += 1
            return 0

        with rt.sessions() as s:
            raw = s.connection().connection.driver_connection
            raw.set_progress_handler(tick, 100)
            try:
                mark_completed(s, chunk, "w")
                assert publish(s) == len(chunk)
            finally:
                raw.set_progress_handler(None, 100)
            s.rollback()
        return counted[0]

    add_sent(20, False)
    chunk = add_sent(10, True)
    small = steps_for(chunk)
    add_sent(4000, False)
    large = steps_for(chunk)
    assert small > 0 and large < small * 2, (small, large)
