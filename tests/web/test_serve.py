"""`drip serve`: a real uvicorn server on loopback, started and stopped within the test."""

from __future__ import annotations

import threading
import time

import httpx
from typer.testing import CliRunner

from drip.cli import app as cli_app
from drip.commands.serve import build_server


def test_server_answers_on_loopback(sqlite_runtime):
    server = build_server(sqlite_runtime, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded wait for start-up (at most ~10 s)
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.status_code == 200 and r.json()["database"] == "ok"
        assert r.headers["x-frame-options"] == "DENY" and "server" not in r.headers
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_rejects_a_bad_port():
    result = CliRunner().invoke(cli_app, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "65535" in result.output


def test_serve_with_worker_sends_in_the_same_process(sqlite_runtime):
    """`drip serve --worker`: one process answers pages and sends what is due, then stops cleanly."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from campaigns import broadcasts
    from drip.models import Delivery, SubscriberTag, Tag, WorkerHeartbeat
    from tests.factories import make_subscriber

    with sqlite_runtime.sessions.begin() as s:
        tag = Tag(name="news")
        s.add(tag)
        s.flush()
        sub = make_subscriber(s, "ann@example.org")
        s.add(SubscriberTag(subscriber_id=sub.id, tag_id=tag.id))
        b = broadcasts.create_broadcast(s, "now", title="News", subject="News from the clinic", body="Hello.",
                                        list_name="news")
        now = datetime.now(timezone.utc)  # due at once (a newsletter keeps no send window)
        broadcasts.schedule(s, b, at=f"{now:%Y-%m-%d %H:%M}", clinic_tz="UTC", now=now)
    rt = type(sqlite_runtime)(settings=sqlite_runtime.settings.with_(tick_seconds=0.2), engine=sqlite_runtime.engine,
                              sessions=sqlite_runtime.sessions)
    server = build_server(rt, "127.0.0.1", 0, log_level="warning", worker=True)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded wait for start-up and the first tick (at most ~10 s)
            with rt.sessions() as s:
                status = s.scalar(select(Delivery.status))
            if server.started and status == "sent":
                break
            time.sleep(0.05)
        assert status == "sent"
        port = server.servers[0].sockets[0].getsockname()[1]
        r = httpx.get(f"http://127.0.0.1:{port}/healthz?require=worker", timeout=5)
        assert r.status_code == 200 and r.json()["worker"]["status"] == "running"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    assert not thread.is_alive()
    with rt.sessions() as s:
        hb = s.scalar(select(WorkerHeartbeat))
    assert (hb.mode, hb.sent_total) == ("serve", 1) and hb.stopped_at is not None
    assert len(list(rt.settings.outbox_dir.glob("*.eml"))) == 1


def test_serve_offers_the_worker_option():
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0 and "--worker" in result.output
