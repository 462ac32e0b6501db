"""On SQLite, pages that only read keep loading while a long write holds the lock (a large CSV
import holds it for its whole transaction), instead of waiting out the busy timeout behind it."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from drip.commands.serve import build_server
from drip.models import ApiToken, Tag
from tests.factories import make_campaign, make_subscriber
from web.api_tokens import create_token

PAGES = ["/staff/", "/staff/subscribers", "/staff/campaigns", "/staff/newsletters", "/staff/subscribers/{sid}",
         "/staff/campaigns/{slug}"]


def test_staff_pages_load_while_another_writer_holds_the_lock(staff, runtime):
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", name="Ann").id
        slug = make_campaign(s).slug
    paths = [p.format(sid=sid, slug=slug) for p in PAGES]
    conn = sqlite3.connect(runtime.engine.url.database, isolation_level=None, timeout=1)
    conn.execute("BEGIN IMMEDIATE")  # as a 1,000,000-row import does for a minute
    conn.execute("INSERT INTO tags (name, description) VALUES ('written-meanwhile', '')")
    answers: list[tuple[int, str]] = []

    def browse() -> None:
        for path in paths:
            r = staff.get(path)
            answers.append((r.status_code, r.text))

    reader = threading.Thread(target=browse)
    try:
        reader.start()
        reader.join(timeout=15)  # the busy timeout is 30 s: a page waiting for the lock misses this
        finished = not reader.is_alive()
    finally:
        conn.execute("ROLLBACK")
        conn.close()
        reader.join()
    assert finished, "a read-only page waited for the writer"
    assert [code for code, _ in answers] == [200] * len(paths)
    assert "written-meanwhile" not in "".join(text for _, text in answers)  # uncommitted: not seen


def test_api_reads_and_health_answer_under_uvicorn_while_another_writer_holds_the_lock(runtime):
    """Under a real server (background tasks run after the answer is sent, which TestClient does
    not model): the token check reads, and recording its use waits for the lock after answering."""
    with runtime.sessions.begin() as s:
        sid = make_subscriber(s, "ann@example.org", name="Ann").id
        _, api_token = create_token(s, "booking-system")  # never used: this use is due to be recorded
    server = build_server(runtime, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    conn = sqlite3.connect(runtime.engine.url.database, isolation_level=None, timeout=1)
    try:
        for _ in range(200):  # bounded wait for start-up
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO tags (name, description) VALUES ('written-meanwhile', '')")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {api_token}"}, timeout=15) as http:
            answers = [http.get(path) for path in ("/healthz", f"/api/v1/subscribers/{sid}", "/api/v1/subscribers")]
        assert [r.status_code for r in answers] == [200, 200, 200]  # within the 15 s timeout, not 30 s
        assert answers[1].json()["email"] == "ann@example.org"
        with runtime.read_sessions() as s:
            assert s.scalar(select(ApiToken.last_used_at)) is None  # the record waits for the lock
        conn.execute("ROLLBACK")
        for _ in range(200):
            with runtime.read_sessions() as s:
                if s.scalar(select(ApiToken.last_used_at)) is not None:
                    break
            time.sleep(0.05)
        with runtime.read_sessions() as s:
            assert s.scalar(select(ApiToken.last_used_at)) is not None  # recorded once the writer finished
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
        server.should_exit = True
        thread.join(timeout=40)


def test_a_read_session_refuses_to_write(runtime):
    with runtime.read_sessions() as s:
        s.add(Tag(name="through-a-reader"))
        with pytest.raises(OperationalError, match="readonly"):
            s.flush()
    with runtime.sessions() as s:
        assert s.scalar(select(Tag).where(Tag.name == "through-a-reader")) is None


def test_postgres_and_in_memory_sqlite_read_through_the_same_engine():
    from drip.db import make_engine, read_engine

    memory = make_engine("sqlite://")
    assert read_engine(memory) is memory
    pg = make_engine("postgresql://postgres@127.0.0.1:5432/test")  # not connected: no server needed
    assert read_engine(pg) is pg
