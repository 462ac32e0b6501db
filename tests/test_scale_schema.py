"""The schema and connection settings a ledger of millions of rows needs (migration 0029, drip/db.py);
what they buy is measured by `drip bench scale`, not here."""

from __future__ import annotations

from sqlalchemy import inspect, text

from drip.db import SQLITE_CACHE_KB, SQLITE_MMAP_BYTES, make_engine


def _indexes(engine, table: str) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes(table)}


def test_migrated_schema_has_the_ledger_indexes(runtime):
    deliveries = _indexes(runtime.engine, "deliveries")
    assert deliveries["ix_deliveries_due"] == ["status", "due_at", "id"]  # the claim's ORDER BY due_at, id
    assert deliveries["ix_deliveries_step_status"] == ["step_id", "status", "outcome"]  # counts from the index
    assert "ix_deliveries_step_id" not in deliveries  # covered by the one above
    assert deliveries["ix_deliveries_sent_at"] == ["sent_at"]
    assert deliveries["ix_deliveries_provider_message_id"] == ["provider_message_id"]
    assert _indexes(runtime.engine, "events")["ix_events_type"] == ["type"]
    assert _indexes(runtime.engine, "suppressions")["ix_suppressions_created_at"] == ["created_at"]


def test_step_counts_are_read_from_the_covering_index_on_sqlite(sqlite_runtime):
    with sqlite_runtime.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT step_id, status, outcome, count(*) FROM deliveries "
            "WHERE step_id IN (1, 2, 3) GROUP BY step_id, status, outcome")))
    assert "COVERING INDEX ix_deliveries_step_status" in plan, plan


def test_sqlite_connections_get_a_large_cache_mmap_and_memory_temp_store(tmp_path):
    for read_only in (False, True):
        engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.sqlite3'}", read_only=read_only)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KB
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
        engine.dispose()
