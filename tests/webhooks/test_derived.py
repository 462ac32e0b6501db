"""email.sent and enrollment.completed from the ledger (webhooks/derived.py): the record marks its
sent rows, the webhook job writes the events and clears the marks in one transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from drip.db import make_engine, session_factory
from drip.models import Delivery, Enrollment, WebhookDelivery, WebhookEvent
from drip.runtime import Runtime
from tests.delivery.test_dispatcher import Clock, ScriptedBackend, run_until_done
from tests.factories import make_campaign, make_subscriber
from webhooks.derived import prepare, publish
from webhooks.endpoints import add_endpoint
from webhooks.sender import WebhookSender

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
KINDS = ("email.sent", "enrollment.completed")


def _endpoint(rt, events=(), url="http://127.0.0.1:9/") -> int:
    with rt.sessions.begin() as s:
        return add_endpoint(s, url, events, T0, allow_private=True).id


def _enroll(rt, n=2, start=0) -> None:
    """n patients in a two-step campaign (make_campaign's welcome and one item)."""
    with rt.sessions.begin() as s:
        from drip.models import Campaign

        c = s.scalar(select(Campaign).where(Campaign.slug == "onboarding")) or make_campaign(
            s, n_items=1, every=timedelta(days=1))
        for i in range(start, start + n):
            enroll(s, make_subscriber(s, f"p{i}@example.org", name=f"P{i}"), c, T0, clinic_tz="UTC")


def _send_all(rt) -> list[int]:
    clock = Clock(T0)
    backend = ScriptedBackend(rt.settings)
    run_until_done(Dispatcher(rt, backend, clock=clock), clock)
    return sorted(m.delivery_id for m in backend.sent)


def _publish_all(rt) -> int:
    done = 0
    while n := _publish_once(rt):
        done += n
    return done


def _publish_once(rt) -> int:
    with rt.sessions.begin() as s:
        return publish(s)


def _outbox(rt):
    """(type, event id) of the sent/completed events, and deliveries per (event, endpoint)."""
    with rt.sessions() as s:
        events = sorted(s.execute(select(WebhookEvent.type, WebhookEvent.id).where(WebhookEvent.type.in_(KINDS))).all())
        per = dict(s.execute(select(WebhookDelivery.event_id, func.count()).join(
            WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id).where(WebhookEvent.type.in_(KINDS))
            .group_by(WebhookDelivery.event_id)).all())
        endpoints = {tuple(r) for r in s.execute(select(WebhookDelivery.event_id, WebhookDelivery.endpoint_id))}
    return events, per, endpoints


def _marked(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.hooks_until.is_not(None)))


def test_killed_between_the_record_and_the_webhook_job_loses_and_doubles_nothing(runtime, receiver):
    """The worker recorded its sends and died before the webhook job ran (and a job that died in
    its own transaction): after a restart the job runs twice, and each sent delivery has exactly
    one email.sent, each enrollment one enrollment.completed, each posted once."""
    ep = _endpoint(runtime, url=receiver.url)
    with runtime.sessions() as s:
        from drip.models import WebhookEndpoint

        receiver.secrets = [s.get(WebhookEndpoint, ep).secret]
    _enroll(runtime)
    sent = _send_all(runtime)
    assert len(sent) == 4 and _marked(runtime) == 4 and _outbox(runtime)[0] == []
    url = runtime.settings.db_url
    runtime.close()  # the worker is gone: only what was committed is left

    engine = make_engine(url)
    rt = Runtime(settings=runtime.settings, engine=engine, sessions=session_factory(engine))
    try:
        with pytest.raises(RuntimeError):  # the job dies inside its transaction: its writes go with it
            with rt.sessions.begin() as s:
                assert publish(s) == 4
                raise RuntimeError("killed")
        assert _marked(rt) == 4 and _outbox(rt)[0] == []
        sender = WebhookSender(rt.sessions, "w-after-restart", allow_private=True, timeout=3.0, concurrency=4,
                               read_sessions=rt.read_sessions)
        try:
            first, second = sender.run_once(T0 + timedelta(days=3)), sender.run_once(T0 + timedelta(days=3))
        finally:
            sender.close()
        assert _publish_all(rt) == 0 and _marked(rt) == 0
        with rt.sessions() as s:
            eids = sorted(s.scalars(select(Enrollment.id)))
        events, per, _ = _outbox(rt)
    finally:
        rt.close()
    assert events == sorted([("email.sent", f"msg_sent_{d}") for d in sent]
                            + [("enrollment.completed", f"msg_completed_{e}") for e in eids])
    assert per == {i: 1 for _, i in events}
    assert (first.delivered, second.claimed) == (2 + 4 + 2, 0)  # started, sent, completed; nothing left
    got = sorted(r.json["data"]["delivery_id"] for r in receiver.ok() if r.json["type"] == "email.sent")
    assert got == sent and receiver.bad == 0


def test_an_endpoint_added_after_the_send_gets_no_event_for_it(runtime):
    first = _endpoint(runtime)
    _enroll(runtime, n=1)
    before = _send_all(runtime)
    second = _endpoint(runtime)  # the webhook job has not run yet
    _enroll(runtime, n=1, start=1)
    after = _send_all(runtime)
    assert _publish_all(runtime) == 4
    _, _, pairs = _outbox(runtime)
    for did in before:
        assert (f"msg_sent_{did}", first) in pairs and (f"msg_sent_{did}", second) not in pairs
    for did in after:
        assert {(f"msg_sent_{did}", first), (f"msg_sent_{did}", second)} <= pairs


def test_subscribed_types_only_and_nothing_marked_without_an_endpoint_for_them(runtime):
    _endpoint(runtime, events=["confirmed"])
    _enroll(runtime, n=1)
    assert len(_send_all(runtime)) == 2
    assert _marked(runtime) == 0 and _publish_all(runtime) == 0 and _outbox(runtime)[0] == []
    _endpoint(runtime, events=["enrollment.completed"])
    _enroll(runtime, n=1, start=1)
    _send_all(runtime)
    assert _marked(runtime) == 2 and _publish_all(runtime) == 2
    assert [t for t, _ in _outbox(runtime)[0]] == ["enrollment.completed"]  # and no email.sent


def test_the_events_are_the_ones_the_record_wrote(runtime):
    """Same ids, types and payload bytes as when the record wrote them: the timestamp and the
    rows' times are the send's sent_at, whenever the job runs."""
    _endpoint(runtime)
    _enroll(runtime, n=1)
    _send_all(runtime)
    _publish_all(runtime)
    with runtime.sessions() as s:
        d = s.execute(select(Delivery).order_by(Delivery.id).limit(1)).scalar_one()
        ev = s.get(WebhookEvent, f"msg_sent_{d.id}")
        wd = s.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == ev.id))
        done = s.scalar(select(WebhookEvent).where(WebhookEvent.type == "enrollment.completed"))
        last = s.scalar(select(func.max(Delivery.sent_at)))
    stamp = d.sent_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    assert ev.payload == ('{"type":"email.sent","timestamp":"' + stamp + '","data":{"delivery_id":' + str(d.id)
                          + ',"subscriber_id":' + str(d.subscriber_id)
                          + ',"campaign":"onboarding","step":1,"broadcast_id":null}}')
    assert ev.created_at == wd.next_attempt_at == d.sent_at
    assert json.loads(done.payload) == {"type": "enrollment.completed",
                                        "timestamp": last.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                                        "data": {"enrollment_id": d.enrollment_id, "subscriber_id": d.subscriber_id,
                                                 "campaign": "onboarding"}}


def test_events_made_before_the_write_are_written_only_for_rows_still_marked(runtime):
    """The job makes the events in a read transaction, then writes them: rows another job wrote
    meanwhile are left out, so a stale read never doubles an event."""
    _endpoint(runtime)
    _enroll(runtime, n=2)
    sent = _send_all(runtime)
    with runtime.read_sessions() as r:
        stale = prepare(r)
    assert sorted(stale.ids) == sent
    with runtime.sessions.begin() as s:
        assert publish(s, limit=2) == 2  # another job, in between
    with runtime.sessions.begin() as s:
        assert publish(s, ready=stale) == 2  # only the two still marked
    assert _marked(runtime) == 0
    events, per, _ = _outbox(runtime)
    assert sorted(i for t, i in events if t == "email.sent") == sorted(f"msg_sent_{d}" for d in sent)
    assert per == {i: 1 for _, i in events}


def test_completion_is_decided_by_the_record_not_by_the_job(runtime):
    """A patient stopped after their last email but before the job ran still gets the
    enrollment.completed the record decided (and the exit its own event), as before."""
    from campaigns.exits import stop_enrollment

    _endpoint(runtime)
    _enroll(runtime, n=1)
    _send_all(runtime)
    with runtime.sessions.begin() as s:
        stop_enrollment(s, s.scalar(select(Enrollment)), "booked", T0 + timedelta(days=2))
    _publish_all(runtime)
    assert [t for t, _ in _outbox(runtime)[0]].count("enrollment.completed") == 1


def test_the_cron_fast_path_sees_a_marked_send(sqlite_runtime):
    """SQLite only: the cron check reads the file directly; on PostgreSQL it is the driver path
    the other tests cover."""
    from delivery.due_check import anything_due

    runtime = sqlite_runtime
    _endpoint(runtime, events=["email.sent"])
    _enroll(runtime, n=1)
    _send_all(runtime)
    with runtime.sessions.begin() as s:
        s.execute(update(WebhookDelivery).values(status="delivered"))  # enrollment.started is out
    later = T0 + timedelta(days=30)
    assert anything_due(runtime.settings.db_url, later) is True  # the marks: the webhook job has work
    _publish_all(runtime)
    with runtime.sessions.begin() as s:
        s.execute(update(WebhookDelivery).values(status="delivered"))
    assert anything_due(runtime.settings.db_url, later) is False


@pytest.mark.postgres
def test_two_webhook_jobs_on_postgres_never_write_one_send_twice(pg_schema_url, settings):
    """Two workers' jobs at once: the second skips the rows the first holds (SKIP LOCKED) and
    takes the rest; together they write each event once."""
    from tests.conftest import _truncate_pg

    engine = make_engine(pg_schema_url)
    _truncate_pg(engine)
    rt = Runtime(settings=settings.with_(database_url=pg_schema_url), engine=engine, sessions=session_factory(engine))
    try:
        _endpoint(rt)
        _enroll(rt, n=3)
        sent = _send_all(rt)
        assert len(sent) == 6
        with rt.sessions.begin() as first:
            assert publish(first, limit=2) == 2  # holds its two rows until it commits
            assert _publish_once(rt) == 4  # the other job, meanwhile: the other four
        assert _publish_all(rt) == 0
        events, per, _ = _outbox(rt)
        assert sorted(i for t, i in events if t == "email.sent") == sorted(f"msg_sent_{d}" for d in sent)
        assert len([t for t, _ in events if t == "enrollment.completed"]) == 3
        assert per == {i: 1 for _, i in events}
    finally:
        rt.close()
