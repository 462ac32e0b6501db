"""The benches refresh statistics for their own tables only: a database-wide ANALYZE run beside a
test session on the same PostgreSQL database deadlocked that session's TRUNCATE."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from bench import analyze
from drip.db import make_engine
from tests.conftest import PG_URL


def _analyzed(admin, schema: str) -> set[str]:
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return set(conn.execute(text(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = :s AND last_analyze IS NOT NULL"),
            {"s": schema}).scalars())


@pytest.mark.postgres
def test_analyze_touches_only_the_bench_schema_on_postgresql(pg_schema_url):
    engine = make_engine(pg_schema_url)
    other = f"drip_other_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{other}"'))
            conn.execute(text(f'CREATE TABLE "{other}".subscribers (id int)'))
            conn.execute(text(f'INSERT INTO "{other}".subscribers SELECT generate_series(1, 10)'))
        with engine.begin() as conn:
            mine = conn.execute(text("SELECT current_schema()")).scalar_one()
            analyze(conn)
        assert {"subscribers", "enrollments", "deliveries", "steps", "campaigns"} <= _analyzed(admin, mine)
        assert _analyzed(admin, mine) <= {"subscribers", "enrollments", "deliveries", "steps", "campaigns"}
        assert _analyzed(admin, other) == set()  # same table name, another schema: left alone
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{other}" CASCADE'))
        admin.dispose()
        engine.dispose()


def test_analyze_names_the_bench_tables_on_sqlite(sqlite_runtime):
    with sqlite_runtime.engine.begin() as conn:
        conn.execute(text("INSERT INTO suppressions (email_key, reason, source, created_at) VALUES ('a@b.c', 'x', 'x', '2026-01-01')"))
        conn.execute(text("INSERT INTO subscribers (email, email_key, name, status, consent_source, created_at, updated_at) "
                          "VALUES ('a@b.c', 'a@b.c', 'A', 'active', 'x', '2026-01-01', '2026-01-01')"))
        analyze(conn)
        stats = set(conn.execute(text("SELECT tbl FROM sqlite_stat1")).scalars())
    assert "subscribers" in stats
    assert "suppressions" not in stats
