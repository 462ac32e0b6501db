"""The SMTP pool (`DRIP_SMTP_CONNECTIONS`) through the dispatcher and a SQLite ledger: parallel
connections, and a server-level failure on one of them holding the whole backend."""

from __future__ import annotations

import asyncio
import threading

import pytest

from delivery.backends.smtp import SMTPBackend
from delivery.dispatcher import Dispatcher
from tests.delivery.test_resilience import FastClock, counts, due_ids, populate, received, tick_until, tuned
from tests.delivery.conftest import _Handler
from tests.delivery.test_smtp_backend import message


def pool_settings(runtime, port: int, **changes):
    return tuned(runtime.settings, backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5.0,
                 smtp_connections=4, record_every=20, batch_size=40, **changes)


def test_pool_sends_over_several_connections_each_message_once(settings, smtp_server):
    smtp_server.pipelining = True
    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0, smtp_connections=4)
    with SMTPBackend(s) as backend:
        results = backend.send_batch([message(i, f"p{i}@example.org") for i in range(40)])
        again = backend.send_batch([message(i, f"p{i}@example.org") for i in range(40, 48)])
    assert [r.delivery_id for r in results + again] == list(range(48)) and all(r.ok for r in results + again)
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == sorted(f"p{i}@example.org" for i in range(48))
    assert smtp_server.connections == 4  # opened once, reused by the next batch


def test_server_level_failure_on_one_connection_holds_the_backend_fails_nothing(sqlite_runtime, smtp_server):
    runtime = sqlite_runtime
    populate(runtime, 40)
    runtime.settings = pool_settings(runtime, smtp_server.port)
    ids = sorted(due_ids(runtime))
    # the 421 comes on whichever connection carries this recipient, then that connection closes
    smtp_server.reject("p7@example.org", 421, "4.3.2 shutting down")
    with SMTPBackend(runtime.settings) as backend:
        d = Dispatcher(runtime, backend, clock=FastClock())
        first = d.tick()
        assert first.backend_down and first.held_for > 0 and first.failed == 0
        after = counts(runtime)
        assert after.get("failed", 0) == 0 and "sending" not in after
        assert after["sent"] == len(smtp_server.envelopes) < 40  # the pool stopped; the rest stays due
        assert after["scheduled"] == 40 - after["sent"]
        smtp_server.accept_all()
        with smtp_server.lock:
            smtp_server._rejections.clear()
        reports = tick_until(d, lambda: counts(runtime).get("sent") == 40)
    got = received(smtp_server)
    assert sorted(got) == ids, "lost"
    assert max(got.values()) == 1, "duplicated"
    assert sum(r.failed for r in [first, *reports]) == 0
    assert smtp_server.connections > 1


class _HoldRcpt(_Handler):
    """The fixture's handler, but RCPT for `held` waits (off the event loop) until `release` is set."""

    def __init__(self, inner: _Handler, held: str, release: threading.Event) -> None:
        super().__init__(inner.server)
        self.held, self.release = held, release

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        if address.lower() == self.held:
            await asyncio.to_thread(self.release.wait, 20)
        return await super().handle_RCPT(smtp, session, envelope, address, rcpt_options)


@pytest.mark.parametrize("pipelining", [False, True], ids=["lock-step", "pipelined"])
def test_a_stop_on_one_connection_holds_a_message_whose_envelope_is_under_way(settings, smtp_server, pipelining):
    """Lane 1 takes 'held' and waits for its RCPT reply; meanwhile lane 2's message makes the batch
    stop (keep_going says no, as when a campaign reaches its auto-pause count). The held message's
    envelope was already under way when the stop came: it must not go out (before the fix it did,
    and the dispatcher, told the batch stopped, would have found a sent email it never recorded)."""
    smtp_server.pipelining = pipelining
    release = threading.Event()
    controller = smtp_server._controller
    controller.handler = _HoldRcpt(controller.handler, "held@example.org", release)
    smtp_server.reject("stopper@example.org", 550, "5.1.1 no such user")
    seen: list[int] = []

    def keep_going(results) -> bool:  # called by the pool under its lock, as the dispatcher's is
        seen.extend(r.delivery_id for r in results)
        release.set()  # the held RCPT is answered only now: the stop is set before lane 1 goes on
        return False

    s = settings.with_(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=20.0, smtp_connections=2)
    with SMTPBackend(s) as backend:
        backend.keep_going = keep_going
        results = backend.send_batch([message(1, "held@example.org"), message(2, "stopper@example.org")])
        assert release.is_set() and seen == [2]
        assert [r.delivery_id for r in results] == [2] and not results[0].ok  # 1: not attempted, stays due
        assert smtp_server.envelopes == []  # nothing reached the server's DATA handler
        backend.keep_going = None
        again = backend.send_batch([message(1, "held@example.org"), message(3, "p3@example.org")])
    assert sorted(r.delivery_id for r in again) == [1, 3] and all(r.ok for r in again)
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == ["held@example.org", "p3@example.org"]
