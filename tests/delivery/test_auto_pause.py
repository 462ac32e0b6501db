"""Auto-pause counts consecutive recipient-level permanent failures only, stops the batch on the
failure that trips it, says why; server-level failures leave rows due and count nothing; failed
rows of a paused campaign can be retried (CLI), and the half-open probe is one message."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from campaigns import service
from delivery.breaker import CircuitBreaker
from delivery.dispatcher import Dispatcher
from delivery.types import SendResult
from drip.models import Campaign, Delivery
from tests.delivery.test_dispatcher import T0, Clock, ScriptedBackend, setup, statuses


class Outage(ScriptedBackend):
    """The backend is down for every message (connection refused), until `up` is set."""

    def __init__(self, settings):
        super().__init__(settings)
        self.up = False
        self.asked: list[int] = []

    def send_batch(self, messages):
        self.asked.append(len(messages))
        if self.up:
            return super().send_batch(messages)
        return [SendResult(m.delivery_id, ok=False, transient=True, server=True, error="connection refused")
                for m in messages]


class Ticking:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_auto_pause_stops_on_the_failure_that_trips_it_and_says_why(runtime):
    runtime.settings = runtime.settings.with_(pause_after_errors=3, record_every=50)
    cid = setup(runtime, n_subs=10, n_items=0)
    tried: list[int] = []
    backend = ScriptedBackend(runtime.settings, rule=lambda m: tried.append(m.delivery_id) or "permanent")
    report = Dispatcher(runtime, backend, clock=Clock(T0)).tick()
    assert report.paused_campaigns == ["onboarding"]
    assert report.failed == 3 and len(tried) == 3  # not one message more than the trip
    by_status = {}
    for _, st, attempts, err in statuses(runtime):
        by_status.setdefault(st, []).append((attempts, err))
    assert len(by_status["failed"]) == 3 and len(by_status["scheduled"]) == 7
    assert {a for a, _ in by_status["scheduled"]} == {0}  # untouched: their attempt given back
    with runtime.sessions() as s:
        c = s.get(Campaign, cid)
        assert c.status == "paused" and c.consecutive_failures == 3
        assert "3 consecutive recipient failures" in c.paused_reason and "550 no such user" in c.paused_reason


def test_a_success_resets_the_count_and_transient_retries_do_not_count(runtime):
    runtime.settings = runtime.settings.with_(pause_after_errors=3)
    cid = setup(runtime, n_subs=9, n_items=0)
    # p0,p1 fail, p2 ok, p3,p4 fail, p5..p8 transient: never 3 permanent in a row
    rule = {0: "permanent", 1: "permanent", 2: "ok", 3: "permanent", 4: "permanent"}
    backend = ScriptedBackend(runtime.settings, rule=lambda m: rule.get(int(m.to_email[1:].split("@")[0]), "transient"))
    report = Dispatcher(runtime, backend, clock=Clock(T0), rng=random.Random(1)).tick()
    assert report.paused_campaigns == [] and report.failed == 4 and report.retried == 4
    with runtime.sessions() as s:
        c = s.get(Campaign, cid)
        assert (c.status, c.consecutive_failures) == ("published", 2)


def test_server_level_failures_leave_every_row_due_and_count_nothing(runtime):
    runtime.settings = runtime.settings.with_(pause_after_errors=2, record_every=4)
    cid = setup(runtime, n_subs=10, n_items=0)
    clock = Ticking()
    backend = Outage(runtime.settings)
    d = Dispatcher(runtime, backend, clock=Clock(T0), breaker=CircuitBreaker(base=10, cap=60, clock=clock))
    r = d.tick()
    assert r.backend_down and r.released == 10 and r.failed == r.retried == 0
    assert backend.asked == [4]  # the first chunk found the outage; the rest was not tried
    assert {(st, a) for _, st, a, _ in statuses(runtime)} == {("scheduled", 0)}
    assert d.tick().claimed == 0 and backend.asked == [4]  # held: nothing claimed
    with runtime.sessions() as s:
        assert s.get(Campaign, cid).consecutive_failures == 0 and s.get(Campaign, cid).status == "published"
    clock.now += 10  # the hold is over: one message probes, still down
    r = d.tick()
    assert backend.asked == [4, 1] and r.backend_down and d.breaker.failures == 2
    clock.now += 20
    backend.up = True
    r = d.tick()
    assert backend.asked[2] == 1 and r.sent == 10  # the probe, then full chunks again
    assert backend.asked[3:] == [4, 4, 1] and d.breaker.closed
    assert {(st, a) for _, st, a, _ in statuses(runtime)} == {("sent", 1)}


def test_a_configuration_error_while_sending_holds_the_backend_instead_of_stopping(runtime):
    from drip.errors import ConfigurationError

    setup(runtime, n_subs=3, n_items=0)

    class Refused(ScriptedBackend):
        def send_batch(self, messages):
            raise ConfigurationError("SMTP server refused the login as 'clinic'")

    r = Dispatcher(runtime, Refused(runtime.settings), clock=Clock(T0)).tick()
    assert r.backend_down and r.failed == 0
    assert {st for _, st, _, _ in statuses(runtime)} == {"scheduled"}


def _cli(capsys, *argv: str) -> tuple[int, str]:
    import pytest

    from drip.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return info.value.code or 0, out + err


def test_retry_failed_rows_of_a_paused_campaign_from_the_cli(runtime, monkeypatch, capsys):

    runtime.settings = runtime.settings.with_(pause_after_errors=2)
    cid = setup(runtime, n_subs=4, n_items=0)
    Dispatcher(runtime, ScriptedBackend(runtime.settings, rule=lambda m: "permanent"), clock=Clock(T0)).tick()
    monkeypatch.setattr("drip.runtime.open_runtime", lambda: runtime)  # the command imports it when run
    code, out = _cli(capsys, "campaigns", "retry", "onboarding", "--resume")
    assert code == 0, out
    assert "2 failed emails due again" in out
    with runtime.sessions() as s:
        c = s.get(Campaign, cid)
        assert (c.status, c.consecutive_failures, c.paused_reason) == ("published", 0, "")
    backend = ScriptedBackend(runtime.settings)
    Dispatcher(runtime, backend, clock=Clock(T0)).tick()
    assert len(backend.sent) == 4 and {st for _, st, _, _ in statuses(runtime)} == {"sent"}
    code, out = _cli(capsys, "campaigns", "retry", "nope")
    assert code == 2 and "no campaign 'nope'" in out and "Traceback" not in out


def test_retry_refuses_a_draft_or_archived_campaign(runtime):
    import pytest

    from drip.errors import InputError

    cid = setup(runtime, n_subs=1, n_items=0)
    with runtime.sessions.begin() as s:
        c = s.get(Campaign, cid)
        service.set_status(s, c, "archived")
        with pytest.raises(InputError, match="archived"):
            service.retry_failed(s, c)
    with runtime.sessions() as s:
        assert s.scalar(select(Delivery.status)) == "cancelled"


def test_rows_taken_over_by_another_worker_meanwhile_are_not_sent_here(runtime):
    """"Recorded or still leased": once a claim has taken a third of its lease, the rows not yet
    sent get a fresh lease before the next chunk, and only rows still this worker's are sent; one
    another worker took over meanwhile (this one waited on a slow server or a locked database) is
    left to that worker, not sent by both."""
    from sqlalchemy import update

    runtime.settings = runtime.settings.with_(record_every=2, lease_seconds=60)
    setup(runtime, n_subs=6, n_items=0)
    clock = Clock(T0)

    class TakenOver(ScriptedBackend):
        def send_batch(self, messages):
            results = super().send_batch(messages)
            clock.now += timedelta(seconds=30)  # a slow server: half the lease per chunk
            if len(self.sent) == 2:  # after the first chunk, another worker holds the last two rows
                with runtime.sessions.begin() as s:
                    s.execute(update(Delivery).where(Delivery.id.in_([5, 6])).values(claimed_by="other"))
            return results

    backend = TakenOver(runtime.settings)
    d = Dispatcher(runtime, backend, clock=clock, worker_id="me")
    report = d.tick()
    assert [m.delivery_id for m in backend.sent] == [1, 2, 3, 4] and report.sent == 4
    with runtime.sessions() as s:
        held = dict(s.execute(select(Delivery.id, Delivery.claimed_by).where(Delivery.status == "sending")).all())
        leases = set(s.scalars(select(Delivery.lease_until).where(Delivery.id.in_([5, 6]))))
    assert held == {5: "other", 6: "other"} and leases != {None}
