"""Outbound webhooks end to end: events written with the change, posted to a real receiver on
loopback that verifies every signature with the `standardwebhooks` library, retried with backoff
after 500s, given up on after the schedule (then replayed), refused for private targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll, enroll_many
from campaigns.exits import stop_in_campaign
from drip.models import WebhookDelivery, WebhookEvent
from subscribers.service import upsert_subscriber
from tests.factories import make_campaign, make_subscriber
from webhooks import signing
from webhooks.endpoints import add_endpoint, delivery_log, replay, rotate_secret
from webhooks.outbox import FIELDS
from webhooks.sender import BACKOFF, MAX_ATTEMPTS, WebhookSender, next_attempt
from webhooks.targets import TargetRefused, is_private, resolve

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)


def _endpoint(rt, url, events=(), allow_private=True):
    with rt.sessions.begin() as s:
        ep = add_endpoint(s, url, events, T0, allow_private=allow_private)
        return ep.id, ep.secret


def _sender(rt, **kw):
    kw.setdefault("allow_private", True)
    return WebhookSender(rt.sessions, "w1", timeout=3.0, concurrency=4, **kw)


def test_spec_test_vector():
    """The Standard Webhooks spec's own example signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime.fromtimestamp(1614265330, timezone.utc)
    got = signing.signature_header([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", at, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_events_retried_after_500_then_delivered(runtime, receiver):
    receiver.fail_first = 2
    ep, secret = _endpoint(runtime, receiver.url)
    receiver.secrets = [secret]
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "onboarding", n_items=1)
        sub, _ = upsert_subscriber(s, "ann@example.org", "Ann", source="api", now=T0)
        enroll(s, sub, c, T0, clinic_tz="UTC")
        stop_in_campaign(s, sub.id, c, "booked by phone", T0)
        sid = sub.id
    sender = _sender(runtime)
    try:
        r1 = sender.run_once(T0)
        assert (r1.claimed, r1.delivered, r1.retried) == (3, 0, 3)
        assert sender.run_once(T0 + timedelta(seconds=1)).claimed == 0  # backoff: not due yet
        t2 = T0 + BACKOFF[0] + timedelta(seconds=1)
        assert sender.run_once(t2).retried == 3
        assert sender.run_once(t2 + timedelta(minutes=1)).claimed == 0
        r3 = sender.run_once(t2 + BACKOFF[1] + timedelta(seconds=1))
        assert (r3.delivered, r3.retried, r3.failed) == (3, 0, 0)
    finally:
        sender.close()

    assert receiver.bad == 0 and receiver.verified == 9  # every request carried a good signature
    assert sorted(receiver.tries.values()) == [3, 3, 3]
    bodies = {r.json["type"]: r.json for r in receiver.ok()}
    assert set(bodies) == {"subscriber.subscribed", "enrollment.started", "enrollment.exited"}
    for body in bodies.values():
        assert set(body["data"]) == set(FIELDS[body["type"]])  # documented fields, nothing else
        assert body["data"]["subscriber_id"] == sid
        assert "ann@example.org" not in json.dumps(body) and "Ann" not in json.dumps(body)
    assert bodies["enrollment.exited"]["data"]["reason"] == "booked by phone"
    first = receiver.received[0]
    assert first.headers["host"].startswith("127.0.0.1:") and first.headers["webhook-id"].startswith("msg_")
    with runtime.sessions() as s:
        rows = s.execute(select(WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.last_code)).all()
        assert sorted(rows) == [("delivered", 3, 200)] * 3


def test_outbox_rows_roll_back_with_the_change(runtime, receiver):
    _endpoint(runtime, receiver.url)
    with pytest.raises(RuntimeError):
        with runtime.sessions.begin() as s:
            upsert_subscriber(s, "bob@example.org", now=T0)
            raise RuntimeError("the change fails")
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    with runtime.sessions.begin() as s:  # and nothing at all without an endpoint that wants the type
        upsert_subscriber(s, "carl@example.org", now=T0)
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_subscribed_types_only_and_bulk_enrollment(runtime, receiver):
    _endpoint(runtime, receiver.url, events=["enrollment.started"])
    with runtime.sessions.begin() as s:
        c = make_campaign(s, "onboarding", n_items=1)
        ids = [make_subscriber(s, f"p{i}@example.org").id for i in range(5)]
        upsert_subscriber(s, "dora@example.org", now=T0)  # subscriber.subscribed: not wanted
        assert enroll_many(s, ids, c, T0, clinic_tz="UTC").enrolled == 5
    with runtime.sessions() as s:
        events = s.execute(select(WebhookEvent.type, WebhookEvent.payload)).all()
    assert {t for t, _ in events} == {"enrollment.started"}
    assert sorted(json.loads(p)["data"]["subscriber_id"] for _, p in events) == sorted(ids)


def test_gives_up_after_a_day_then_replayed(runtime, receiver):
    receiver.fail_first = 100
    ep, secret = _endpoint(runtime, receiver.url)
    receiver.secrets = [secret]
    assert sum(BACKOFF, timedelta()) >= timedelta(days=1)
    with runtime.sessions.begin() as s:
        upsert_subscriber(s, "eve@example.org", now=T0)
    sender = _sender(runtime)
    try:
        now = T0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            report = sender.run_once(now)
            assert report.claimed == 1
            nxt = next_attempt(attempt, now)
            if nxt is None:
                assert report.failed == 1
                break
            now = nxt
        with runtime.sessions() as s:
            row = delivery_log(s)[0]
        assert (row.status, row.attempts, row.last_code) == ("failed", MAX_ATTEMPTS, 500)
        assert "gave up after 8 attempts" in row.last_error
        receiver.fail_first = 0
        receiver.tries.clear()
        with runtime.sessions.begin() as s:
            replay(s, row.id, now)
        assert sender.run_once(now).delivered == 1
    finally:
        sender.close()
    assert receiver.bad == 0
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # a replay keeps the webhook-id


def test_rotation_signs_with_both_secrets_during_the_grace(runtime, receiver):
    ep, old = _endpoint(runtime, receiver.url)
    with runtime.sessions.begin() as s:
        from webhooks.endpoints import get_endpoint

        new = rotate_secret(s, get_endpoint(s, ep), T0, grace=timedelta(hours=1))
        upsert_subscriber(s, "fay@example.org", now=T0)
    receiver.secrets = [old, new]
    sender = _sender(runtime)
    try:
        assert sender.run_once(T0 + timedelta(minutes=1)).delivered == 1
        with runtime.sessions.begin() as s:
            upsert_subscriber(s, "gus@example.org", now=T0)
        assert sender.run_once(T0 + timedelta(hours=2)).delivered == 1  # grace over: the new secret only
    finally:
        sender.close()
    during, after = receiver.received
    assert during.headers["webhook-signature"].count("v1,") == 2 and set(during.verified_by) == {old, new}
    assert after.headers["webhook-signature"].count("v1,") == 1 and after.verified_by == [new]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1",
                                     "::ffff:127.0.0.1", "fd00::1", "0.0.0.0", "100.64.0.1"])
def test_private_addresses(address):
    assert is_private(address)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(TargetRefused):
        resolve(f"http://{host}:8080/x", allow_private=False)
    assert resolve(f"http://{host}:8080/x", allow_private=True).address == address


def test_public_address_and_bad_forms():
    assert not is_private("93.184.216.34")
    assert resolve("https://93.184.216.34/hook", allow_private=False).pinned_url == "https://93.184.216.34:443/hook"
    for bad in ["ftp://example.org/", "http:///x", "http://user:pw@93.184.216.34/", "http://a b/", "javascript:x"]:
        with pytest.raises(TargetRefused):
            resolve(bad, allow_private=True)


def test_private_target_refused_when_added_and_when_sent(runtime, receiver):
    with runtime.sessions.begin() as s, pytest.raises(TargetRefused, match="private or loopback"):
        add_endpoint(s, receiver.url, (), T0, allow_private=False)
    _endpoint(runtime, receiver.url)  # allowed when added (e.g. the setting was on then) ...
    with runtime.sessions.begin() as s:
        upsert_subscriber(s, "hal@example.org", now=T0)
    sender = _sender(runtime, allow_private=False)  # ... refused at send time: nothing is posted
    try:
        assert sender.run_once(T0).failed == 1
    finally:
        sender.close()
    assert receiver.received == []
    with runtime.sessions() as s:
        row = delivery_log(s)[0]
    assert row.status == "failed" and row.last_error.startswith("refused:")


def test_a_disabled_endpoint_keeps_its_waiting_events_until_enabled(runtime, receiver):
    from webhooks.endpoints import get_endpoint, set_active

    ep, secret = _endpoint(runtime, receiver.url)
    receiver.secrets = [secret]
    with runtime.sessions.begin() as s:
        upsert_subscriber(s, "ida@example.org", now=T0)
        set_active(s, get_endpoint(s, ep), False)
    sender = _sender(runtime)
    try:
        assert sender.run_once(T0).claimed == 0 and receiver.received == []
        with runtime.sessions.begin() as s:
            set_active(s, get_endpoint(s, ep), True)
        assert sender.run_once(T0).delivered == 1
    finally:
        sender.close()
    assert receiver.verified == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_post_threads_yield_the_cpu_to_sending(sqlite_runtime):
    """The POST threads lower their own priority (DRIP_WEBHOOK_NICE, 10 by default); the thread
    that made the sender (the worker's) keeps its own."""
    import os
    import threading

    def nice_here():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = nice_here()
    sender = _sender(sqlite_runtime, nice=max(mine, 7))
    try:
        assert sender.pool.submit(nice_here).result() == max(mine, 7)
        assert nice_here() == mine
    finally:
        sender.close()
    from drip.config import load_settings
    from drip.errors import ConfigurationError

    assert load_settings({}, toml_path=Path("/nonexistent/drip.toml")).webhook_nice == 10
    with pytest.raises(ConfigurationError, match="DRIP_WEBHOOK_NICE must be 0"):
        load_settings({"DRIP_WEBHOOK_NICE": "25"}, toml_path=Path("/nonexistent/drip.toml"))


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="Linux autogroup scheduling not here")
def test_a_webhook_process_leading_its_session_lowers_its_autogroup_and_never_a_shells():
    """`drip webhooks run` as a service (its own session): its autogroup goes to DRIP_WEBHOOK_NICE,
    since the kernel shares the CPU between sessions before nice values count. Started inside
    another session (a shell's), only its threads are lowered."""
    import subprocess

    code = ("import os; from webhooks.sender import lower_process_priority; "
            "print(lower_process_priority(7), os.getpriority(os.PRIO_PROCESS, 0), "
            "(open('/proc/self/autogroup').read().split() or ['none'])[-1])")
    root = Path(__file__).resolve().parents[2]
    own = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         start_new_session=True, check=True).stdout.split()
    # "none": a process outside the root cgroup (a CI runner's service) reads an empty autogroup
    # file; the kernel applies no autogroup to it either.
    assert own[:2] == ["True", "7"] and own[2] in ("7", "none")

    def autogroup_nice() -> str:
        return (Path("/proc/self/autogroup").read_text().split() or ["none"])[-1]

    before = autogroup_nice()
    shared = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                            check=True).stdout.split()
    assert shared[:2] == ["False", "7"] and shared[2] == before == autogroup_nice()
